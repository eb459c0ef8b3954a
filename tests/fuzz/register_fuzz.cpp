// libFuzzer target: the RP's Register parser (cpp/pim_register.cpp) on
// arbitrary bytes as a raw IPPROTO_PIM socket would deliver them (outer
// IPv4 header first). Random bytes almost never pass the Register's
// checksum or the inner packet's, so when the input's first byte is odd the
// harness makes the outer header a Register's and fixes both checksums; the
// rest of the input is the packet.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "pim_register.h"

namespace {

// Writes the folded complement of the one's complement sum of [at, at+len) at `field`.
void fix_sum(std::vector<uint8_t>& p, size_t at, size_t len, size_t field) {
  p[field] = p[field + 1] = 0;
  uint16_t sum = mcr::ones_sum(p.data() + at, len);
  p[field] = static_cast<uint8_t>(~sum >> 8);
  p[field + 1] = static_cast<uint8_t>(~sum);
}

void make_plausible(std::vector<uint8_t>& p) {
  if (p.size() < 20 + mcr::kRegisterHeader + 20) return;
  p[0] = 0x45;
  p[9] = 103;  // PIM
  p[20] = mcr::kPimRegister;
  fix_sum(p, 20, mcr::kRegisterHeader, 22);
  size_t inner = 20 + mcr::kRegisterHeader;
  size_t inner_len = static_cast<size_t>(p[inner] & 0x0f) * 4;
  if (inner_len >= 20 && p.size() >= inner + inner_len) fix_sum(p, inner, inner_len, inner + 10);
}

// An accepted Register's inner payload lies inside the bytes given, behind
// the outer header, the Register header and an inner IPv4 and UDP header.
void check(const std::vector<uint8_t>& p, const mcr::ReceivedRegister& r) {
  const uint8_t* end = p.data() + p.size();
  if (r.inner.payload < p.data() + 20 + mcr::kRegisterHeader + 28) std::abort();
  if (r.inner.payload + r.inner.payload_len > end) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  // A copy of exactly the packet's size, so ASan sees any read past its end.
  std::vector<uint8_t> packet(data + 1, data + size);
  if (data[0] & 1) make_plausible(packet);
  mcr::ReceivedRegister r{};
  mcr::DropReason reason{};
  if (mcr::parse_register(packet.data(), packet.size(), r, reason)) check(packet, r);
  else if (static_cast<size_t>(reason) >= static_cast<size_t>(mcr::DropReason::kCount)) std::abort();
  return 0;
}
