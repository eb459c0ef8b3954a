// Writes the seed corpora of the C++ fuzz targets (tests/fuzz/corpus/<target>/)
// from the engine's own encoders, plus edge cases: `make fuzz-seeds`.
// Each seed is what its target reads (the packet parser's first byte is the
// harness's "fix the checksum" flag).
#include <arpa/inet.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "pim_register.h"
#include "wire.h"

using namespace mcr;
using Bytes = std::vector<uint8_t>;

namespace {

uint32_t ip(const char* text) {
  in_addr a{};
  inet_pton(AF_INET, text, &a);
  return a.s_addr;
}

void write(const std::string& dir, const std::string& name, const Bytes& bytes) {
  std::ofstream out(dir + "/" + name, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!out) std::fprintf(stderr, "cannot write %s/%s\n", dir.c_str(), name.c_str());
}

void put16(Bytes& b, size_t at, uint16_t v) {
  b[at] = static_cast<uint8_t>(v >> 8);
  b[at + 1] = static_cast<uint8_t>(v);
}

// Ethernet with `tags` 802.1Q tags / IPv4 with `options` bytes / UDP / payload,
// checksum left for the harness to fix (flag byte 1).
Bytes frame(size_t payload, int tags = 0, size_t options = 0, uint16_t fragment = 0, uint8_t proto = 17) {
  size_t eth = 14 + 4 * static_cast<size_t>(tags), ihl = 20 + options;
  Bytes f(1 + eth + ihl + 8 + payload, 0x5a);
  f[0] = 1;
  uint8_t* e = f.data() + 1;
  const uint8_t mac[6] = {0x01, 0x00, 0x5e, 0x01, 0x01, 0x01};
  std::copy(mac, mac + 6, e);
  for (int t = 0; t < tags; ++t) {
    put16(f, 1 + 12 + 4 * t, t == 0 && tags == 2 ? 0x88a8 : 0x8100);
    put16(f, 1 + 14 + 4 * t, static_cast<uint16_t>(10 + t));
  }
  size_t at = 1 + eth;
  put16(f, at - 2, 0x0800);
  f[at] = static_cast<uint8_t>(0x40 | ihl / 4);
  f[at + 1] = 0;
  put16(f, at + 2, static_cast<uint16_t>(ihl + 8 + payload));
  put16(f, at + 6, fragment);
  f[at + 8] = 16;
  f[at + 9] = proto;
  put16(f, at + 10, 0);
  const uint8_t source[4] = {10, 0, 0, 2}, group[4] = {239, 1, 1, 1};
  std::copy(source, source + 4, f.begin() + static_cast<long>(at) + 12);
  std::copy(group, group + 4, f.begin() + static_cast<long>(at) + 16);
  put16(f, at + ihl, 40000);
  put16(f, at + ihl + 2, 5000);
  put16(f, at + ihl + 4, static_cast<uint16_t>(8 + payload));
  put16(f, at + ihl + 6, 0);
  return f;
}

void packet_seeds(const std::string& dir) {
  write(dir, "udp", frame(16));
  write(dir, "udp-empty", frame(0));
  write(dir, "vlan", frame(16, 1));
  write(dir, "qinq", frame(16, 2));
  write(dir, "options", frame(3, 0, 12));
  write(dir, "fragment", frame(16, 0, 0, 0x2000));
  write(dir, "not-udp", frame(16, 0, 0, 0, 6));
  Bytes padded = frame(4);
  padded.resize(padded.size() + 20, 0);  // Ethernet padding past the IP packet
  write(dir, "padded", padded);
  Bytes bare = frame(16);  // a tun link: IP from the first byte on
  bare.erase(bare.begin() + 1, bare.begin() + 15);
  write(dir, "bare-ip", bare);
  write(dir, "short", Bytes{0, 1, 2, 3});
}

wire::Command command(wire::Type type, uint32_t seq) {
  wire::Command c;
  c.type = type;
  c.seq = seq;
  return c;
}

RuleSpec rule() {
  RuleSpec r;
  r.id = 42;
  r.key = {3, ip("239.1.1.1"), ip("10.0.0.2"), 5000, 7};
  r.outputs = {{ip("239.2.2.2"), 6000, 4, -1, 46, true, 0},
               {ip("10.9.9.9"), 7000, 5, 8, -1, false, 0},
               {0, 0, 6, 1, 0, true, 12, true}};
  return r;
}

void command_seeds(const std::string& dir) {
  for (auto [type, name] : {std::pair{wire::Type::AddInput, "add-input"}, {wire::Type::AddEgress, "add-egress"},
                            {wire::Type::RemoveInterface, "remove-interface"}}) {
    wire::Command c = command(type, 1);
    c.ifindex = 3;
    write(dir, name, wire::encode_command(c));
  }
  wire::Command add = command(wire::Type::AddRule, 2);
  add.rule = rule();
  write(dir, "add-rule", wire::encode_command(add));
  add.rule.key = {3, ip("239.1.0.0"), 0, 0, 0, 16};
  write(dir, "add-range", wire::encode_command(add));
  add.rule.outputs.clear();
  write(dir, "add-rule-no-outputs", wire::encode_command(add));
  wire::Command sync = command(wire::Type::SyncRules, 3);
  sync.rules = {rule(), add.rule};
  write(dir, "sync-rules", wire::encode_command(sync));
  sync.rules.clear();
  write(dir, "sync-empty", wire::encode_command(sync));
  wire::Command remove = command(wire::Type::RemoveRule, 4);
  remove.rule_id = 42;
  write(dir, "remove-rule", wire::encode_command(remove));
  write(dir, "get-stats", wire::encode_command(command(wire::Type::GetStats, 5)));
  write(dir, "shutdown", wire::encode_command(command(wire::Type::Shutdown, 6)));
  wire::Command init = command(wire::Type::Initialize, 7);
  init.init = {2, 1, 0, 100, 1024, 512};
  write(dir, "initialize", wire::encode_command(init));
  wire::Command level = command(wire::Type::SetLogLevel, 8);
  level.log_level = 3;
  write(dir, "set-log-level", wire::encode_command(level));
  for (auto [type, name] : {std::pair{wire::Type::AddPacketEgress, "add-packet-egress"},
                            {wire::Type::UpdateLink, "update-link"}}) {
    wire::Command c = command(type, 9);
    c.packet_egress = {4, ip("10.200.1.7"), 1500, {2, 0, 0, 0, 0xaa, 7}};
    write(dir, name, wire::encode_command(c));
  }
  write(dir, "add-register-egress", wire::encode_command(command(wire::Type::AddRegisterEgress, 10)));
  write(dir, "add-register-input", wire::encode_command(command(wire::Type::AddRegisterInput, 11)));
  write(dir, "take-notifications", wire::encode_command(command(wire::Type::TakeNotifications, 12)));
  wire::Command window = command(wire::Type::SetNotifyWindow, 13);
  window.notify_window_ms = 2000;
  write(dir, "set-notify-window", wire::encode_command(window));
  wire::Command notify = command(wire::Type::AddRule, 14);
  notify.rule = rule();
  notify.rule.notify = true;
  notify.rule.outputs[1].pim_register = true;  // a Register to the RP, from a given outer source
  notify.rule.outputs[1].register_source = ip("10.0.0.1");
  write(dir, "add-rule-register-notify", wire::encode_command(notify));
  write(dir, "unknown-type", Bytes{0xff, 0, 0, 0, 1, 0, 0, 0});
}

void reply_seeds(const std::string& dir) {
  write(dir, "ok", wire::encode_ok(1));
  write(dir, "error", wire::encode_error(2, "AddRule: message truncated"));
  wire::Stats stats;
  stats.ruleset_hash = 0x1234;
  stats.drops[0] = 5;
  stats.events[1] = 2;
  write(dir, "stats-empty", wire::encode_stats(3, stats));
  stats.inputs = {{3, 10, 1000, 11, 1}};
  stats.rules = {{42, 9, 900, {{9, 900, 0}, {8, 800, 1}}}, {43, 0, 0, {}}};
  write(dir, "stats", wire::encode_stats(4, stats));
  write(dir, "notifications-empty", wire::encode_notifications(5, {}));
  write(dir, "notifications", wire::encode_notifications(6, {{42, ip("10.0.0.2"), ip("239.1.1.1"), 3, 0},
                                                             {43, ip("10.0.0.3"), ip("239.1.1.2"), 0xffffffff,
                                                              ip("10.9.9.1")}}));
}

}  // namespace

// A Register as the RP's raw socket reads it: an outer IPv4 header (PIM,
// DR 10.0.0.1 to RP 10.0.0.9), the Register header, then the inner packet
// (a frame()'s IPv4 part); flag byte 1: the harness fixes the checksums.
Bytes register_message(size_t payload, bool null = false) {
  Bytes inner = frame(payload);
  Bytes r(1 + 20, 0);
  r[0] = 1;
  r[1] = 0x45;
  put16(r, 1 + 2, static_cast<uint16_t>(20 + kRegisterHeader + inner.size() - 15));
  r[1 + 8] = 64;
  r[1 + 9] = 103;
  const uint8_t dr[4] = {10, 0, 0, 1}, rp[4] = {10, 0, 0, 9};
  std::copy(dr, dr + 4, r.begin() + 1 + 12);
  std::copy(rp, rp + 4, r.begin() + 1 + 16);
  r.insert(r.end(), kRegisterHeaderBytes, kRegisterHeaderBytes + kRegisterHeader);
  if (null) r.back() = 0, r[1 + 20 + 4] = 0x40;
  r.insert(r.end(), inner.begin() + 15, inner.end());  // less the flag byte and Ethernet
  return r;
}

void register_seeds(const std::string& dir) {
  write(dir, "register", register_message(16));
  write(dir, "register-empty", register_message(0));
  write(dir, "null-register", register_message(0, true));
  write(dir, "short", Bytes{1, 0x45, 0, 0});
}

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR (holding packet_parser/, command/, reply/, register/)\n", argv[0]);
    return 2;
  }
  std::string root = argv[1];
  packet_seeds(root + "/packet_parser");
  command_seeds(root + "/command");
  reply_seeds(root + "/reply");
  register_seeds(root + "/register");
  return 0;
}
