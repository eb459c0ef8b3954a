// Frame parser: Ethernet, optional 802.1Q tag, IPv4, UDP. Pure function,
// no allocation; used on every received frame.
#pragma once
#include <cstddef>
#include <cstdint>

#include "counters.h"

namespace mcr {

struct ParsedPacket {
  uint32_t source;       // IPv4 source, network byte order
  uint32_t destination;  // IPv4 destination, network byte order
  uint16_t src_port;     // UDP ports and checksum, network byte order
  uint16_t dst_port;     // UDP destination port, host byte order
  uint16_t udp_checksum;  // as received (network byte order); 0: none
  uint8_t ttl;
  uint8_t tos;
  const uint8_t* payload;  // UDP payload, points into the frame
  uint16_t payload_len;
  uint16_t vlan;  // VLAN id of the outer 802.1Q tag left in the frame; 0: untagged
  // The UDP checksum field holds only the pseudo-header sum (a local sender's
  // CHECKSUM_PARTIAL, TP_STATUS_CSUMNOTREADY): set by the caller, who knows.
  bool partial_checksum;
  const uint8_t* ip;  // the IPv4 header, points into the frame (a Register carries the whole packet)
  uint16_t ip_len;    // the IP total length
};

// Returns true and fills `out` for a relayable UDP/IPv4 frame; otherwise
// returns false and sets `reason`.
bool parse_frame(const uint8_t* frame, size_t len, ParsedPacket& out, DropReason& reason);
// The same for a bare IPv4 packet, from a link without an Ethernet header
// (tun, WireGuard, GRE, ipip).
bool parse_ip_frame(const uint8_t* packet, size_t len, ParsedPacket& out, DropReason& reason);
// The IPv4 and UDP part of both (`available` bytes from the IP header on).
bool parse_ipv4(const uint8_t* ip, size_t available, ParsedPacket& out, DropReason& reason);

}  // namespace mcr
