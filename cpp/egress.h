// Egress: one sendmsg per output. The payload is never copied: every send's
// iovec points into the received frame. Two paths:
// - packet path (multicast outputs on an interface with a packet socket): a
//   42-byte Ethernet/IPv4/UDP header from the output's template, then the
//   payload, written below the kernel's UDP and routing layers;
// - UDP path (unicast outputs, payloads too big for the MTU): the output
//   interface's UDP socket, TTL and TOS as control messages; the kernel
//   resolves neighbours and fragments.
// Send slots are preallocated; none is allocated per packet.
#pragma once
#include <liburing.h>
#include <sys/socket.h>

#include <cstdint>
#include <vector>

#include "counters.h"
#include "packet_parser.h"
#include "rule_table.h"
#include "tx_ring.h"

namespace mcr {

struct Queued {
  uint16_t outputs = 0;  // outputs the packet went to
  uint16_t holding = 0;  // of those, sends still reading the frame (0: give it back now)
};

class Egress {
 public:
  explicit Egress(uint32_t slots);

  // Sends the packet to every eligible output of `rule`: into a TX ring
  // (copied at once) or as a queued sendmsg reading the received frame,
  // which the engine knows as `hold` and keeps until complete() returns it.
  Queued queue(io_uring* ring, Rule& rule, uint32_t rule_slot, const ParsedPacket& packet, uint32_t hold,
                 DropCounters& drops);

  // Accounts a finished send and frees its slot; returns the frame it read.
  uint32_t complete(uint32_t slot, int result, RuleTable& rules, DropCounters& drops);

 private:
  struct Slot {
    msghdr msg{};
    iovec iov[2]{};
    uint8_t header[kFrameHeader]{};
    alignas(cmsghdr) uint8_t control[2 * CMSG_SPACE(sizeof(int))]{};
    uint32_t rule_slot = 0, generation = 0, hold = 0;
    uint16_t output = 0, payload_len = 0;
  };
  static io_uring_sqe* get_sqe(io_uring* ring);
  static int prepare_udp(Slot& s, Output& out, const ParsedPacket& packet);
  static int prepare_frame(Slot& s, Output& out, const ParsedPacket& packet);
  static bool write_to_ring(Output& out, const FrameOwner& owner, const ParsedPacket& packet);

 public:
  // A TX ring flush failed: takes its unsent frames back, counted as errors of their outputs.
  static void reclaim(TxRing& ring, RuleTable& rules, DropCounters& drops);

 private:

  std::vector<Slot> slots_;
  std::vector<uint32_t> free_;
};

}  // namespace mcr
