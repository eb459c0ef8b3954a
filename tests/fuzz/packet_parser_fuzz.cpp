// libFuzzer target: the frame parser (cpp/packet_parser.cpp) on arbitrary
// bytes, as an Ethernet frame and as a bare IPv4 packet. Random bytes almost
// never carry a valid IPv4 header checksum, so when the input's first byte is
// odd the harness fixes that checksum first; the rest of the input is the frame.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "packet_parser.h"

namespace {

constexpr size_t kNone = SIZE_MAX;

// Where the IPv4 header starts in an Ethernet frame with up to two tags;
// kNone when it cannot (too short or not IPv4), which the parser refuses anyway.
size_t ip_offset(const std::vector<uint8_t>& f) {
  size_t offset = 12;
  for (int tags = 0; tags < 3 && offset + 2 <= f.size(); ++tags) {
    uint16_t type = static_cast<uint16_t>(f[offset] << 8 | f[offset + 1]);
    if (type == 0x0800) return offset + 2;
    if (type != 0x8100 && type != 0x88a8) return kNone;
    offset += 4;
  }
  return kNone;
}

void fix_ip_checksum(std::vector<uint8_t>& f, size_t at) {
  if (at == kNone || f.size() < at + 20) return;
  size_t len = static_cast<size_t>(f[at] & 0x0f) * 4;
  if (len < 20 || f.size() < at + len) return;
  f[at + 10] = f[at + 11] = 0;
  uint32_t sum = 0;
  for (size_t i = 0; i < len; i += 2) sum += static_cast<uint32_t>(f[at + i] << 8 | f[at + i + 1]);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  f[at + 10] = static_cast<uint8_t>(~sum >> 8);
  f[at + 11] = static_cast<uint8_t>(~sum);
}

// An accepted packet's payload lies inside the bytes given, and its length
// agrees with the UDP header it came from.
void check(const std::vector<uint8_t>& f, const mcr::ParsedPacket& p) {
  const uint8_t* end = f.data() + f.size();
  if (p.payload < f.data() + 28 || p.payload + p.payload_len > end) std::abort();
  const uint8_t* udp = p.payload - 8;
  if (static_cast<size_t>(udp[4] << 8 | udp[5]) != p.payload_len + 8u) std::abort();
}

void check_refusal(mcr::DropReason reason) {
  if (static_cast<size_t>(reason) >= static_cast<size_t>(mcr::DropReason::kCount)) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  bool fix = data[0] & 1;
  // A copy of exactly the frame's size, so ASan sees any read past its end.
  std::vector<uint8_t> frame(data + 1, data + size);
  if (fix) fix_ip_checksum(frame, ip_offset(frame));
  mcr::ParsedPacket p{};
  mcr::DropReason reason{};
  if (mcr::parse_frame(frame.data(), frame.size(), p, reason)) check(frame, p);
  else check_refusal(reason);
  frame.assign(data + 1, data + size);  // the same bytes from a link without Ethernet
  if (fix) fix_ip_checksum(frame, 0);
  if (mcr::parse_ip_frame(frame.data(), frame.size(), p, reason)) check(frame, p);
  else check_refusal(reason);
  return 0;
}
