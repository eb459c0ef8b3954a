#include "packet_parser.h"

namespace mcr {
namespace {

constexpr size_t kEthHeader = 14;
constexpr size_t kVlanTag = 4;
constexpr uint16_t kEtherIpv4 = 0x0800;
constexpr uint16_t kEtherVlan = 0x8100;
constexpr uint16_t kEtherQinQ = 0x88a8;
constexpr uint8_t kProtoUdp = 17;

inline uint16_t be16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }

// RFC 1071: the one's complement sum over a valid header, checksum field
// included, is 0xffff.
bool header_checksum_ok(const uint8_t* ip, size_t header_len) {
  uint32_t sum = 0;
  for (size_t i = 0; i < header_len; i += 2) sum += be16(ip + i);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return sum == 0xffff;
}

bool fail(DropReason& reason, DropReason why) {
  reason = why;
  return false;
}

}  // namespace

bool parse_frame(const uint8_t* frame, size_t len, ParsedPacket& out, DropReason& reason) {
  if (len < kEthHeader) return fail(reason, DropReason::Truncated);
  size_t offset = kEthHeader;
  uint16_t ethertype = be16(frame + 12);
  out.vlan = 0;
  // Tags the NIC did not strip (the kernel usually moves them to metadata).
  for (int tags = 0; (ethertype == kEtherVlan || ethertype == kEtherQinQ) && tags < 2; ++tags) {
    if (len < offset + kVlanTag) return fail(reason, DropReason::Truncated);
    if (tags == 0) out.vlan = be16(frame + offset) & 0x0fff;
    ethertype = be16(frame + offset + 2);
    offset += kVlanTag;
  }
  if (ethertype != kEtherIpv4) return fail(reason, DropReason::NotIpv4);
  return parse_ipv4(frame + offset, len - offset, out, reason);
}

bool parse_ipv4(const uint8_t* ip, size_t available, ParsedPacket& out, DropReason& reason) {
  if (available < 20) return fail(reason, DropReason::Truncated);
  if ((ip[0] >> 4) != 4) return fail(reason, DropReason::NotIpv4);
  size_t header_len = static_cast<size_t>(ip[0] & 0x0f) * 4;
  if (header_len < 20) return fail(reason, DropReason::BadIpHeader);
  if (header_len > available) return fail(reason, DropReason::Truncated);
  size_t total_len = be16(ip + 2);
  // Ethernet may pad short frames, so the frame can be longer than the packet.
  if (total_len < header_len || total_len > available) return fail(reason, DropReason::BadIpLength);
  if (!header_checksum_ok(ip, header_len)) return fail(reason, DropReason::BadIpChecksum);
  uint16_t fragment = be16(ip + 6);
  if ((fragment & 0x2000) || (fragment & 0x1fff)) return fail(reason, DropReason::Fragment);
  if (ip[9] != kProtoUdp) return fail(reason, DropReason::NotUdp);

  const uint8_t* udp = ip + header_len;
  size_t ip_payload = total_len - header_len;
  if (ip_payload < 8) return fail(reason, DropReason::Truncated);
  size_t udp_len = be16(udp + 4);
  if (udp_len < 8 || udp_len > ip_payload) return fail(reason, DropReason::BadUdpLength);

  __builtin_memcpy(&out.source, ip + 12, 4);
  __builtin_memcpy(&out.destination, ip + 16, 4);
  __builtin_memcpy(&out.src_port, udp, 2);
  __builtin_memcpy(&out.udp_checksum, udp + 6, 2);
  out.dst_port = be16(udp + 2);
  out.ttl = ip[8];
  out.tos = ip[1];
  out.ip = ip;
  out.ip_len = static_cast<uint16_t>(total_len);
  out.payload = udp + 8;
  out.payload_len = static_cast<uint16_t>(udp_len - 8);
  out.partial_checksum = false;
  return true;
}

bool parse_ip_frame(const uint8_t* packet, size_t len, ParsedPacket& out, DropReason& reason) {
  out.vlan = 0;
  return parse_ipv4(packet, len, out, reason);
}

}  // namespace mcr
