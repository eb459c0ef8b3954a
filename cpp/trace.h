// Packet tracing on demand (`mcr trace RULE`): records of the packets one
// rule matched, with the fate of each of its outputs, in a preallocated
// ring that the supervisor drains with TakeTrace.
//
// Off by default and bounded: a trace has a packet budget and a deadline,
// and ends by itself when either runs out. While none is running the data
// path asks one question per packet (Tracer::active(), a counter that is
// zero), so tracing costs a predicted branch and nothing else; the record
// is written only for a packet the trace takes. A record never allocates:
// when the ring is full (nobody drained it in time) the packet is not
// recorded and is counted as missed, and the budget is kept for later ones.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace mcr {

// What became of a traced packet at one output of its rule.
enum class TraceOutcome : uint8_t {
  SentRing,      // written into the output's TX ring (packet path)
  SentSocket,    // handed to a sendmsg (UDP socket, or a frame without a TX ring); a later send error is
                 // counted in the output's errors, not here
  SentRegister,  // sent as a PIM Register to the RP
  SkippedTtl,    // TTL 1 arrived and the output decrements it (RFC 1812 5.3.1)
  SkippedMtu,    // beyond the output's MTU where only the packet path may send (keep-source)
  SkippedRingFull,  // TX ring full where only the packet path may send (keep-source)
  SkippedNoSlot,    // every send slot (or submission entry) in flight
  SkippedError,     // the output could not send at all (no packet socket, a Register that failed)
  kCount
};

constexpr std::array<const char*, static_cast<size_t>(TraceOutcome::kCount)> kTraceOutcomeNames = {
    "sent_ring",        "sent_socket",     "sent_register", "skipped_ttl", "skipped_mtu",
    "skipped_ring_full", "skipped_no_slot", "skipped_error"};

constexpr uint16_t kTraceOutputs = 16;  // outputs whose outcome a record keeps (it counts all)

struct TraceRecord {
  uint64_t time_ns = 0;  // CLOCK_REALTIME when the packet was forwarded
  uint32_t rule_id = 0;
  uint32_t ifindex = 0;   // the input it arrived on
  uint32_t source = 0;    // IPv4 source, network byte order
  uint32_t destination = 0;  // IPv4 destination, network byte order
  uint16_t src_port = 0, dst_port = 0;  // host byte order
  uint16_t ip_len = 0;   // the IPv4 total length
  uint16_t vlan = 0;
  uint8_t ttl = 0, tos = 0;
  uint16_t outputs = 0;  // outputs the rule has; the first kTraceOutputs have an outcome
  std::array<TraceOutcome, kTraceOutputs> outcomes{};

  void note(uint16_t output, TraceOutcome outcome) {
    if (output < kTraceOutputs) outcomes[output] = outcome;
  }
};

class Tracer {
 public:
  static constexpr uint32_t kCapacity = 256;  // records held until TakeTrace

  // The one check the data path makes per packet: is any trace running?
  bool active() const { return remaining_ != 0; }

  // Traces rule `rule_id`: every `sample`-th packet it matches (the
  // sample-th, then 2*sample-th, ...), `count` of them, until `deadline_ms`
  // (CLOCK_MONOTONIC). Replaces a running trace and its records; count 0 stops.
  void start(uint32_t rule_id, uint32_t count, uint32_t sample, uint64_t deadline_ms);

  // A packet of rule `rule_id` at `now_ms`: the record to fill (its
  // timestamp set), or null when it is not traced (another rule, not the
  // sample, the ring full). Past the deadline the trace ends.
  TraceRecord* begin(uint32_t rule_id, uint64_t now_ms);

  // Ends the trace if `now_ms` is past its deadline.
  void expire(uint64_t now_ms) {
    if (now_ms >= deadline_ms_) remaining_ = 0;
  }

  // The records so far, oldest first; the ring is empty afterwards.
  std::vector<TraceRecord> take();

  uint32_t remaining() const { return remaining_; }  // packets the running trace still records
  uint64_t missed() const { return missed_; }        // traced packets the full ring could not hold

 private:
  std::array<TraceRecord, kCapacity> ring_{};
  uint32_t head_ = 0, size_ = 0;  // oldest record, records held
  uint32_t rule_id_ = 0, remaining_ = 0, sample_ = 1, seen_ = 0;
  uint64_t deadline_ms_ = 0, missed_ = 0;
};

}  // namespace mcr
