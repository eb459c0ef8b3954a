// Egress: how a packet leaves by each output of its rule.
// - Packet path (multicast outputs on an interface with a packet socket): a
//   52-byte header (virtio_net_hdr, Ethernet, IPv4, UDP) from the output's
//   template, then the payload, written into the socket's TX ring below the
//   kernel's UDP and routing layers; one send per loop pass flushes the ring.
// - sendmsg path (unicast outputs, payloads too big for the MTU, a full TX
//   ring): the output interface's UDP socket, TTL and TOS as control
//   messages; the kernel resolves neighbours and fragments. The payload is
//   copied once per packet into a BufferPool buffer that these sends share.
//   (A packet socket without a TX ring takes the frame the same way.)
// A follow output (a layer-3 route, for any-port and range rules) sends to
// each packet's own group and UDP port: the packet path writes them, and
// the group's MAC, into the frame; the sendmsg path into the slot's address.
// A register output (PIM-SM, at the DR of a source) sends the whole IPv4
// packet, behind the 8-byte Register header, to the RP on the raw PIM
// socket: one copy of the packet into a BufferPool buffer, one sendmsg.
// The kernel adds the outer IPv4 header; that socket clears DF (the
// supervisor sets IP_PMTUDISC_DONT), so a Register beyond the path MTU is
// fragmented by the kernel and reassembled by the RP, as with Linux's pimreg.
// A multicast packet with a priority (QoS) takes the interface's queued TX
// ring instead: its socket keeps the qdisc (no PACKET_QDISC_BYPASS) and
// carries the priority, set when it changes (write_to_ring); without one,
// the sendmsg path, with the priority as a control message.
// Send slots and buffers are preallocated; nothing is allocated per packet.
#pragma once
#include <liburing.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <vector>

#include "buffer_pool.h"
#include "counters.h"
#include "packet_parser.h"
#include "rule_table.h"
#include "trace.h"
#include "tx_ring.h"
#include "wire.h"

namespace mcr {

class Egress {
 public:
  // `slots` sends in flight at most, each with a payload of up to `payload_size` bytes.
  Egress(uint32_t slots, uint32_t payload_size);

  // Sends the packet to every eligible output of `rule`; returns how many it
  // went to. Nothing keeps reading the received frame after this returns.
  uint16_t queue(io_uring* ring, Rule& rule, uint32_t rule_slot, const ParsedPacket& packet, DropCounters& drops);
  // The same for a traced packet: also notes what became of it at each output in `record`.
  uint16_t queue_traced(io_uring* ring, Rule& rule, uint32_t rule_slot, const ParsedPacket& packet,
                        DropCounters& drops, TraceRecord& record);

  // Accounts a finished send and frees its slot (and its payload copy, if last).
  void complete(uint32_t slot, int result, RuleTable& rules, DropCounters& drops);

  // Hands the kernel every frame `tx` holds (one send, completed as Op::Flush).
  // With the submission queue full even after submitting it, the frames stay
  // in the ring for the next flush, counted as Event::FlushDeferred.
  void flush(io_uring* ring, TxRing& tx);

  // A TX ring flush failed: takes its unsent frames back, counted as `why`
  // and as errors of their outputs.
  static void reclaim(TxRing& ring, RuleTable& rules, DropCounters& drops, DropReason why);

  const EventCounters& events() const { return events_; }
  void count_event(Event event) { count(events_, event); }

  // Sends multicast output `out` as frames on the packet socket `fd` of
  // `link` (through `tx` when it has a ring): writes the output's header template.
  static void use_packet_socket(Output& out, const wire::PacketEgress& link, int fd, TxRing* tx);

 private:
  struct Slot {
    msghdr msg{};
    iovec iov[2]{};
    uint8_t header[kMaxFrameHeader]{};
    alignas(cmsghdr) uint8_t control[3 * CMSG_SPACE(sizeof(int))]{};  // IP_TTL, IP_TOS[, SO_PRIORITY]
    alignas(cmsghdr) uint8_t pktinfo[CMSG_SPACE(sizeof(in_pktinfo))]{};  // a register's outer source
    sockaddr_in address{};  // a follow output's destination: the packet's group and port
    uint32_t rule_slot = 0, generation = 0, payload = 0;
    uint16_t output = 0, payload_len = 0;
  };
  // queue and queue_traced: one body, the tracing compiled out of the first.
  template <bool kTraced>
  uint16_t queue_outputs(io_uring* ring, Rule& rule, uint32_t rule_slot, const ParsedPacket& packet,
                         DropCounters& drops, TraceRecord* record);
  static int prepare_udp(Slot& s, Output& out, const ParsedPacket& packet, uint8_t* payload, uint32_t priority);
  static int prepare_frame(Slot& s, Output& out, const ParsedPacket& packet, uint8_t* payload);
  static int prepare_register(Slot& s, Output& out, const ParsedPacket& packet, uint8_t* copy);
  bool queue_register(io_uring* ring, Output& out, const FrameOwner& owner, const ParsedPacket& packet,
                      DropCounters& drops);
  bool write_to_ring(io_uring* ring, Output& out, TxRing& tx, const FrameOwner& owner, const ParsedPacket& packet,
                     uint32_t priority);

  std::vector<Slot> slots_;
  std::vector<uint32_t> free_;
  BufferPool payloads_;
  EventCounters events_{};
};

}  // namespace mcr
