#include "pim_register.h"

#include <cstring>

namespace mcr {
namespace {

constexpr uint8_t kProtoPim = 103;
constexpr uint8_t kNullRegister = 0x40;  // the N bit, in the byte after the checksum

bool fail(DropReason& reason, DropReason why) {
  reason = why;
  return false;
}

}  // namespace

// ~0x2100 is the checksum of {0x21, 0, 0 ...}.
const uint8_t kRegisterHeaderBytes[kRegisterHeader] = {kPimRegister, 0, 0xde, 0xff, 0, 0, 0, 0};

uint16_t ones_sum(const uint8_t* data, size_t len, uint32_t sum) {
  size_t i = 0;
  for (; i + 1 < len; i += 2) sum += static_cast<uint32_t>(data[i] << 8 | data[i + 1]);
  if (i < len) sum += static_cast<uint32_t>(data[i] << 8);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(sum);
}

bool parse_register(const uint8_t* ip, size_t len, ReceivedRegister& out, DropReason& reason) {
  if (len < 20 || (ip[0] >> 4) != 4) return fail(reason, DropReason::RegisterShort);
  size_t header_len = static_cast<size_t>(ip[0] & 0x0f) * 4;
  if (header_len < 20 || len < header_len + kRegisterHeader) return fail(reason, DropReason::RegisterShort);
  if (ip[9] != kProtoPim) return fail(reason, DropReason::RegisterNotRegister);
  const uint8_t* pim = ip + header_len;
  size_t pim_len = len - header_len;
  if (pim[0] != kPimRegister) return fail(reason, DropReason::RegisterNotRegister);
  // A valid sum (checksum field included) is 0xffff: over the header (RFC 7761) or over the whole message.
  if (ones_sum(pim, kRegisterHeader) != 0xffff && ones_sum(pim, pim_len) != 0xffff)
    return fail(reason, DropReason::RegisterBadChecksum);
  if (pim[4] & kNullRegister) return fail(reason, DropReason::RegisterNull);
  std::memcpy(&out.dr, ip + 12, 4);
  DropReason inner;
  if (!parse_ipv4(pim + kRegisterHeader, pim_len - kRegisterHeader, out.inner, inner))
    return fail(reason, DropReason::RegisterBadInner);
  out.inner.vlan = 0;
  return true;
}

}  // namespace mcr
