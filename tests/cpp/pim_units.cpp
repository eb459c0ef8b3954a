// Standalone tests of the engine's PIM units (no io_uring, no Python): the
// Register parser (cpp/pim_register.h), the notify table
// (cpp/notify_table.h) and their wire format (register outputs, the notify
// flag, the Notifications reply), plus a bounded fuzz of the Register
// parser. Built with ASan/UBSan by `make unit-tests`.
#include <arpa/inet.h>

#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "notify_table.h"
#include "pim_register.h"
#include "wire.h"

using namespace mcr;

#include "check.h"

static void put16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}

// An IPv4 header (no options) of `total` bytes, protocol `proto`, checksummed.
static void ipv4_header(uint8_t* h, uint16_t total, uint8_t proto, const char* src, const char* dst) {
  std::memset(h, 0, 20);
  h[0] = 0x45;
  put16(h + 2, total);
  h[8] = 30;
  h[9] = proto;
  uint32_t s = ip(src), d = ip(dst);
  std::memcpy(h + 12, &s, 4);
  std::memcpy(h + 16, &d, 4);
  put16(h + 10, static_cast<uint16_t>(~ones_sum(h, 20)));
}

// Outer IPv4 (DR 10.0.0.1 -> RP) / Register header / inner IPv4 / UDP / payload.
static std::vector<uint8_t> register_packet(size_t payload = 32) {
  size_t inner = 20 + 8 + payload;
  std::vector<uint8_t> p(20 + 8 + inner, 0x5a);
  ipv4_header(p.data(), static_cast<uint16_t>(p.size()), 103, "10.0.0.1", "10.0.0.9");
  std::memcpy(p.data() + 20, kRegisterHeaderBytes, 8);
  uint8_t* in = p.data() + 28;
  ipv4_header(in, static_cast<uint16_t>(inner), 17, "10.1.1.1", "239.1.1.1");
  put16(in + 20, 4000);
  put16(in + 22, 5000);
  put16(in + 24, static_cast<uint16_t>(8 + payload));
  put16(in + 26, 0);
  return p;
}

static DropReason refused(const std::vector<uint8_t>& p) {
  ReceivedRegister r;
  DropReason reason = DropReason::kCount;
  CHECK(!parse_register(p.data(), p.size(), r, reason));
  return reason;
}

static void test_register_parse() {
  CHECK(ones_sum(kRegisterHeaderBytes, 8) == 0xffff);  // the constant header's checksum is right
  auto p = register_packet();
  ReceivedRegister r;
  DropReason reason;
  CHECK(parse_register(p.data(), p.size(), r, reason));
  CHECK(r.dr == ip("10.0.0.1") && r.inner.source == ip("10.1.1.1") && r.inner.destination == ip("239.1.1.1"));
  CHECK(r.inner.dst_port == 5000 && r.inner.payload_len == 32 && r.inner.ttl == 30);
  CHECK(r.inner.ip == p.data() + 28 && r.inner.ip_len == 60);

  // A checksum over the whole message (other implementations) is accepted too.
  auto whole = p;
  put16(whole.data() + 22, 0);
  put16(whole.data() + 22, static_cast<uint16_t>(~ones_sum(whole.data() + 20, whole.size() - 20)));
  CHECK(parse_register(whole.data(), whole.size(), r, reason));

  auto bad = p;
  bad[23] ^= 1;
  CHECK(refused(bad) == DropReason::RegisterBadChecksum);
  auto null = p;
  null[24] = 0x40;  // N
  put16(null.data() + 22, 0);
  put16(null.data() + 22, static_cast<uint16_t>(~ones_sum(null.data() + 20, 8)));
  CHECK(refused(null) == DropReason::RegisterNull);
  auto stop = p;
  stop[20] = 0x22;  // Register-Stop
  CHECK(refused(stop) == DropReason::RegisterNotRegister);
  auto other = p;
  other[9] = 17;
  CHECK(refused(other) == DropReason::RegisterNotRegister);
  for (size_t len = 0; len < 28; ++len) CHECK(refused({p.begin(), p.begin() + len}) == DropReason::RegisterShort);
  for (size_t len = 28; len < p.size(); ++len)  // the inner packet cut short
    CHECK(refused({p.begin(), p.begin() + len}) == DropReason::RegisterBadInner);
  auto tcp = p;
  tcp[28 + 9] = 6;
  CHECK(refused(tcp) == DropReason::RegisterBadInner);  // (its IP checksum is now wrong too: either way)
}

static void test_notify_table() {
  NotifyTable table(4);
  Notification a{1, ip("10.1.1.1"), ip("239.1.1.1"), 3, 0}, b = a;
  b.source = ip("10.1.1.2");
  uint64_t t = 1000000;
  CHECK(table.record(a, t) == NotifyTable::Result::Recorded);
  CHECK(table.record(a, t + 10) == NotifyTable::Result::Suppressed);
  CHECK(table.record(b, t + 20) == NotifyTable::Result::Recorded);
  auto taken = table.take();
  CHECK(taken.size() == 2 && taken[0].source == a.source && taken[1].source == b.source);
  CHECK(table.take().empty());
  CHECK(table.record(a, t + NotifyTable::kDefaultWindowMs - 1) == NotifyTable::Result::Suppressed);
  CHECK(table.record(a, t + NotifyTable::kDefaultWindowMs) == NotifyTable::Result::Recorded);  // window passed
  Notification other_rule = a;
  other_rule.rule_id = 2;  // the same (S,G) under another rule is another key
  CHECK(table.record(other_rule, t + NotifyTable::kDefaultWindowMs) == NotifyTable::Result::Recorded);
  table.take();

  // Pending overflow: four held, the rest refused (and not marked, so they are reported later).
  NotifyTable small(4);
  for (uint32_t g = 0; g < 10; ++g) {
    Notification n{1, ip("10.1.1.1"), htonl(0xef000000 + g), 3, 0};
    CHECK(small.record(n, t) == (g < 4 ? NotifyTable::Result::Recorded : NotifyTable::Result::Overflow));
  }
  CHECK(small.take().size() == 4);
  Notification fifth{1, ip("10.1.1.1"), htonl(0xef000004), 3, 0};
  CHECK(small.record(fifth, t + 1) == NotifyTable::Result::Recorded);

  // Many keys over time: expired entries are reused in place, so a table of
  // 64 entries keeps taking new keys for ever, one window apart.
  NotifyTable reuse(16);
  reuse.set_window(1000);
  uint32_t recorded = 0;
  for (uint32_t round = 0; round < 50; ++round) {
    for (uint32_t k = 0; k < 16; ++k) {
      Notification n{k, htonl(0x0a000000 + round), ip("239.1.1.1"), 3, 0};
      recorded += reuse.record(n, t + round * 1000) == NotifyTable::Result::Recorded;
    }
    reuse.take();
  }
  CHECK(recorded == 50 * 16);
}

static void test_wire_register() {
  wire::Command c;
  c.type = wire::Type::AddRule;
  c.seq = 5;
  c.rule = {9, {kRegisterIfindex, ip("239.1.1.1"), 0, 5000}, {}, true};
  OutputSpec reg{ip("10.0.0.9"), 0, 0, -1, -1, false, 0};
  reg.pim_register = true;
  reg.register_source = ip("10.0.0.1");
  c.rule.outputs = {reg, {ip("239.2.2.2"), 6000, 4, -1, -1, true, 0}};
  auto bytes = wire::encode_command(c);
  wire::Command back;
  CHECK(wire::decode_command(bytes.data(), bytes.size(), back).empty());
  CHECK(back.rule == c.rule && back.rule.notify && back.rule.outputs[0].register_source == ip("10.0.0.1"));
  for (size_t len = 0; len < bytes.size(); ++len) {
    wire::Command t;
    CHECK(!wire::decode_command(bytes.data(), len, t).empty());
  }
  auto refused = [&](auto change, const char* why) {
    wire::Command bad = c;
    change(bad.rule);
    auto b = wire::encode_command(bad);
    wire::Command t;
    CHECK(wire::decode_command(b.data(), b.size(), t).find(why) != std::string::npos);
  };
  refused([](RuleSpec& r) { r.outputs[0].keep_source = true; }, "register output cannot");
  refused([](RuleSpec& r) { r.outputs[0].destination = ip("239.0.0.1"); }, "RP's unicast address");
  refused([](RuleSpec& r) { r.outputs[0].destination = 0; }, "RP's unicast address");
  bytes[bytes.size() - 1] = 4;  // rule flags: only notify and priority are defined
  CHECK(wire::decode_command(bytes.data(), bytes.size(), back).find("unknown rule flags") != std::string::npos);

  std::vector<Notification> notes = {{9, ip("10.1.1.1"), ip("239.1.1.1"), kRegisterIfindex, ip("10.0.0.1")},
                                     {3, ip("10.1.1.2"), ip("239.1.1.2"), 4, 0}};
  auto reply = wire::encode_notifications(11, notes);
  wire::Reply r;
  CHECK(wire::decode_reply(reply.data(), reply.size(), r).empty());
  CHECK(r.type == wire::Type::ReplyNotifications && r.seq == 11 && r.notifications.size() == 2);
  CHECK(r.notifications[0].dr == ip("10.0.0.1") && r.notifications[1].ifindex == 4);
  for (size_t len = 8; len < reply.size(); ++len) CHECK(!wire::decode_reply(reply.data(), len, r).empty());

  wire::Command window;
  window.type = wire::Type::SetNotifyWindow;
  window.notify_window_ms = 250;
  auto wb = wire::encode_command(window);
  CHECK(wire::decode_command(wb.data(), wb.size(), back).empty() && back.notify_window_ms == 250);
}

// Random bytes and random corruptions of a valid Register: the parser never
// reads out of bounds (ASan) and accepts only what it can relay.
static void test_fuzz_register() {
  std::mt19937 random(7);
  auto valid = register_packet(64);
  for (int i = 0; i < 20000; ++i) {
    std::vector<uint8_t> p = valid;
    if (i % 2) {
      p.resize(random() % 200);
      for (uint8_t& byte : p) byte = static_cast<uint8_t>(random());
    } else {
      for (int flips = 1 + random() % 4; flips > 0; --flips) p[random() % p.size()] = static_cast<uint8_t>(random());
      p.resize(random() % (p.size() + 1));
    }
    ReceivedRegister r;
    DropReason reason;
    if (parse_register(p.data(), p.size(), r, reason))
      CHECK(r.inner.payload + r.inner.payload_len <= p.data() + p.size());
  }
}

int main() {
  test_register_parse();
  test_notify_table();
  test_wire_register();
  test_fuzz_register();
  if (failures) {
    std::fprintf(stderr, "%d check(s) failed\n", failures);
    return 1;
  }
  std::puts("pim units: all checks passed");
  return 0;
}
