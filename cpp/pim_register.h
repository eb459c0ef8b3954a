// PIM Register messages (RFC 7761 4.4, 4.9.3) as the engine's data path
// sees them: the 8-byte header it puts before a packet it encapsulates for
// the RP, and the parse of a Register it receives as the RP. Pure
// functions, no allocation. The control messages (Register-Stop, the
// supervisor's own copy of every Register) are Python's.
//
// A Register: PIM header {version 2 | type 1, reserved, checksum}, then
// {B, N, 30 reserved bits}, then the whole IPv4 packet as the DR received
// it. Its checksum covers those 8 bytes only (RFC 7761 4.9.3); some
// implementations sum the whole message, so a receiver accepts either.
#pragma once
#include <cstddef>
#include <cstdint>

#include "counters.h"
#include "packet_parser.h"

namespace mcr {

// The engine's virtual input for decapsulated Registers: rules whose input
// ifindex is this match packets that arrived inside a Register (never a
// real interface: Linux ifindexes are positive ints).
constexpr uint32_t kRegisterIfindex = 0xffffffff;

constexpr size_t kRegisterHeader = 8;
constexpr uint8_t kPimRegister = 0x21;  // version 2, type 1

// The header of every Register this engine sends: B=0, N=0, so the bytes,
// checksum included, never change.
extern const uint8_t kRegisterHeaderBytes[kRegisterHeader];

struct ReceivedRegister {
  uint32_t dr = 0;      // the outer IPv4 source (the DR that encapsulated it), network byte order
  ParsedPacket inner{};  // the encapsulated packet; points into the received buffer
};

// `ip`: a whole IPv4 packet as a raw IPPROTO_PIM socket delivers it (outer
// header included). Returns true for a Register whose inner packet is
// relayable UDP/IPv4; otherwise false and the drop reason (null-Registers
// are RegisterNull).
bool parse_register(const uint8_t* ip, size_t len, ReceivedRegister& out, DropReason& reason);

// RFC 1071 one's complement sum of `len` bytes (odd length padded), folded, not complemented.
uint16_t ones_sum(const uint8_t* data, size_t len, uint32_t sum = 0);

}  // namespace mcr
