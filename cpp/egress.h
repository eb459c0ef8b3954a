// Egress: one sendmsg per output through the output interface's UDP socket.
// The payload is not copied: every send's iovec points into the receive
// buffer. TTL and TOS travel as control messages, so one socket serves every
// output on its interface. Send slots are preallocated; none is allocated
// per packet.
#pragma once
#include <liburing.h>
#include <sys/socket.h>

#include <cstdint>
#include <vector>

#include "counters.h"
#include "packet_parser.h"
#include "rule_table.h"

namespace mcr {

class Egress {
 public:
  explicit Egress(uint32_t slots);

  // Queues one send per eligible output of `rule` reading from buffer `bid`.
  // Returns how many sends were queued (0: the caller recycles the buffer).
  uint16_t queue(io_uring* ring, Rule& rule, uint32_t rule_slot, const ParsedPacket& packet, uint16_t bid,
                 DropCounters& drops);

  // Accounts a finished send and frees its slot; returns its buffer id.
  uint16_t complete(uint32_t slot, int result, RuleTable& rules, DropCounters& drops);

 private:
  struct Slot {
    msghdr msg{};
    iovec iov{};
    alignas(cmsghdr) uint8_t control[2 * CMSG_SPACE(sizeof(int))]{};
    uint32_t rule_slot = 0, generation = 0;
    uint16_t output = 0, bid = 0;
  };
  static io_uring_sqe* get_sqe(io_uring* ring);

  std::vector<Slot> slots_;
  std::vector<uint32_t> free_;
};

}  // namespace mcr
