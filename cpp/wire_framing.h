// How a command-channel message of any size crosses a SOCK_SEQPACKET
// socket: as one or more datagrams ("parts").
//
// Every part starts with the message's own 8-byte header {u16 type,
// u16 flags, u32 seq} (see wire.h); flag bit 0 (kMoreParts) says that more
// parts of the same message follow, the other bits must be zero. A part
// holds at most kMaxPartBody body bytes; the bodies joined in order are the
// message's body. A message is at most kMaxMessage bytes in all. So a rule
// sync or a stats reply is never bigger than a socket buffer in one piece,
// and a receiver always learns the seq of what it refuses: a part cut short
// by the kernel (MSG_TRUNC) still carries its header.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace mcr::wire {

constexpr uint16_t kMoreParts = 1;
constexpr size_t kMaxPartBody = 256 << 10;
constexpr size_t kMaxPart = 8 + kMaxPartBody;  // header + body: the largest datagram
constexpr size_t kMaxMessage = 64 << 20;       // a whole message, header included

// `message` (header with flags 0, then body) as the datagrams that carry it.
std::vector<std::vector<uint8_t>> split(const std::vector<uint8_t>& message);

// Joins parts back into messages, one message at a time. Every refusal is
// queued as (seq, what was wrong) for the caller to answer; the rest of a
// refused message's parts are then skipped without another word.
class Assembler {
 public:
  // One datagram; `truncated`: the kernel cut it (MSG_TRUNC). Returns true
  // when it completed a message, which message() then holds (header flags 0).
  bool add(const uint8_t* data, size_t len, bool truncated = false);
  std::vector<uint8_t>& message() { return message_; }
  // Refusals since the last call, oldest first.
  std::vector<std::pair<uint32_t, std::string>> take_errors();
  bool assembling() const { return state_ != State::Idle; }

 private:
  enum class State { Idle, Joining, Skipping };
  void begin(uint16_t type, uint32_t seq);
  void refuse(uint32_t seq, std::string why, bool more);

  State state_ = State::Idle;
  uint16_t type_ = 0;
  uint32_t seq_ = 0;
  std::vector<uint8_t> message_;
  std::vector<std::pair<uint32_t, std::string>> errors_;
};

}  // namespace mcr::wire
