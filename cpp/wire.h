// The command channel's wire format: the one definition, used by the engine
// (decode commands, encode replies) and, through the bindings, by Python
// (encode commands, decode replies).
//
// Transport: a SOCK_SEQPACKET socketpair, host byte order. Every message
// starts with a header {u16 type, u16 flags, u32 seq} and travels as one or
// more datagrams (wire_framing.h: flags say whether more parts follow; a
// whole message, as decoded here, has flags 0). Commands that hand over a
// socket carry it as SCM_RIGHTS, on their first part.
//
//   AddInput   {u32 ifindex}                 + fd: AF_PACKET socket on ifindex
//   AddEgress  {u32 ifindex}                 + fd: UDP socket for that output
//   AddRule    {u32 id, u32 ifindex, u32 group, u32 source, u16 port, u16 vlan,
//               u8 prefix_len, u16 n, n x {u32 dst, u16 port, u32 ifindex,
//                            i16 ttl, i16 dscp, u8 flags, u16 vlan}}
//               port 0: any UDP port. prefix_len: 32 = exactly `group`; 4..31 =
//               the groups in group/prefix_len (within 224.0.0.0/4, no bits set
//               past the prefix). Output flags: bit 0 keep the source address,
//               bit 1 follow: send to the packet's own group and port (dst and
//               port are then unused; the rule's group must be multicast).
//               (The prefix_len byte and flag bit 1 came with any-port and
//               range rules; engine and bindings are one module, so both
//               ends always agree.)
//               Output flag bit 2, register: a PIM Register to the RP at dst
//               (pim_register.h); such an output is followed by {u32 source}
//               (the outer source address, 0: the kernel's choice). After the
//               outputs, {u8 rule_flags}: bit 0 notify (notify_table.h).
//               Priorities (QoS, rule_table.h): output flag bit 3, the output's own
//               priority, follows as {i64 priority} (after a register's source);
//               rule flag bit 1, the rule's, follows the flags as {i64 priority}
//               (0..6, or -2: each packet's DSCP class).
//   RemoveRule {u32 id}
//   GetStats   {}
//   Shutdown   {}
//   Initialize {u32 worker_id, i32 core, u8 log_level, u32 max_rules,
//               u32 rx_frames, u32 send_slots}   first message to a worker
//   SyncRules  {u32 n, n x AddRule body}       replace the whole rule set
//   SetLogLevel {u8 level}                      0 debug .. 3 error
//   AddPacketEgress {u32 ifindex, u32 source, u16 mtu, u8 mac[6]}
//                  + fd: AF_PACKET socket bound to ifindex, for multicast outputs
//   AddQueuedEgress {same body as AddPacketEgress}
//                  + fd: the same without PACKET_QDISC_BYPASS, so its frames pass the
//                  interface's qdisc: the TX ring of outputs with a priority (QoS)
//   UpdateLink {same body as AddPacketEgress}   the interface's address, MTU or
//                  MAC changed: every output's header template on it follows
//   RemoveInterface {u32 ifindex}   no rule uses it any more: close its sockets
//                  and unmap its rings (refused while a rule still does)
//   AddRegisterEgress {}  + fd: raw IPPROTO_PIM socket that register outputs send on
//   AddRegisterInput  {}  + fd: raw IPPROTO_PIM socket the engine reads Registers
//                  from; their packets match rules on input kRegisterIfindex
//   TakeNotifications {}  reply Notifications {u32 n, n x {u32 rule_id, u32 source,
//                  u32 group, u32 ifindex, u32 dr}}, the pending ones, now cleared
//   SetNotifyWindow {u32 window_ms}   how long a recorded (rule, S, G) stays quiet
//   TraceRule {u32 rule_id, u32 count, u32 sample, u32 timeout_ms}   trace every
//                  sample-th packet of the rule, count of them, for at most timeout_ms
//                  (trace.h); replaces a running trace, count 0 stops it. Refused for a
//                  rule the engine does not hold, sample 0, or a zero timeout
//   TakeTrace {}   reply Trace {u32 remaining, u64 missed, u32 n, n x {u64 time_ns,
//                  u32 rule_id, u32 ifindex, u32 source, u32 destination, u16 src_port,
//                  u16 dst_port, u16 ip_len, u16 vlan, u8 ttl, u8 tos, u16 outputs,
//                  u8 noted, noted x u8 outcome}}: the records so far, now cleared,
//                  the packets the running trace still records and those it missed
// Replies echo the seq: Ok {}, Error {utf-8 message}, Stats {snapshot}.
// The stats snapshot carries the ruleset hash (FNV-1a over the rules' wire
// bodies in id order), so a supervisor can detect drift and re-sync.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "counters.h"
#include "notify_table.h"
#include "rule_table.h"
#include "trace.h"
#include "wire_framing.h"

namespace mcr::wire {

enum class Type : uint16_t {
  AddInput = 1,
  AddEgress = 2,
  AddRule = 3,
  RemoveRule = 4,
  GetStats = 5,
  Shutdown = 6,
  Initialize = 7,
  SyncRules = 8,
  SetLogLevel = 9,
  AddPacketEgress = 10,
  UpdateLink = 11,
  RemoveInterface = 12,
  AddRegisterEgress = 13,
  AddRegisterInput = 14,
  TakeNotifications = 15,
  SetNotifyWindow = 16,
  TraceRule = 17,
  TakeTrace = 18,
  AddQueuedEgress = 19,
  ReplyOk = 100,
  ReplyError = 101,
  ReplyStats = 102,
  ReplyNotifications = 103,
  ReplyTrace = 104,
};

constexpr size_t kHeaderSize = 8;
constexpr uint16_t kMaxOutputs = 4096;    // outputs per rule

struct Initialize {
  uint32_t worker_id = 0;
  int32_t core = -1;  // -1: not pinned
  uint8_t log_level = 1;
  uint32_t max_rules = 16384, rx_frames = 2048, send_slots = 8192;
};

struct PacketEgress {
  uint32_t ifindex = 0;
  uint32_t source = 0;  // the interface's IPv4 address, network byte order
  uint16_t mtu = 0;
  uint8_t mac[6]{};
};

struct TraceRequest {
  uint32_t count = 0, sample = 1, timeout_ms = 0;
};

struct Command {
  Type type{};
  uint32_t seq = 0;
  uint32_t ifindex = 0;          // AddInput, AddEgress
  uint32_t rule_id = 0;          // RemoveRule
  uint8_t log_level = 0;         // SetLogLevel
  RuleSpec rule;                 // AddRule
  std::vector<RuleSpec> rules;   // SyncRules
  Initialize init;               // Initialize
  PacketEgress packet_egress;    // AddPacketEgress
  uint32_t notify_window_ms = 0;  // SetNotifyWindow
  TraceRequest trace;             // TraceRule (with rule_id)
};

struct InputStats {
  uint32_t ifindex = 0;
  uint64_t frames = 0, bytes = 0, kernel_packets = 0, kernel_drops = 0;
};
struct OutputStats {
  uint64_t packets = 0, bytes = 0, errors = 0;
};
struct RuleStats {
  uint32_t id = 0;
  uint64_t packets = 0, bytes = 0;
  std::vector<OutputStats> outputs;
};
struct Stats {
  uint64_t ruleset_hash = 0;
  DropCounters drops{};
  EventCounters events{};
  std::vector<InputStats> inputs;
  std::vector<RuleStats> rules;
};

struct TraceTaken {
  uint32_t remaining = 0;
  uint64_t missed = 0;
  std::vector<TraceRecord> records;
};

struct Reply {
  Type type{};
  uint32_t seq = 0;
  std::string error;  // ReplyError
  Stats stats;        // ReplyStats
  std::vector<Notification> notifications;  // ReplyNotifications
  TraceTaken trace;                         // ReplyTrace
};

// The type in a message's header (at least kHeaderSize bytes).
inline Type message_type(const std::vector<uint8_t>& message) {
  uint16_t type;
  std::memcpy(&type, message.data(), sizeof(type));
  return static_cast<Type>(type);
}

// Decoders return an empty string on success, else what was wrong.
std::string decode_command(const uint8_t* data, size_t len, Command& out);
std::string decode_reply(const uint8_t* data, size_t len, Reply& out);

// FNV-1a 64 over `len` bytes, continuing from `hash`.
constexpr uint64_t kHashSeed = 0xcbf29ce484222325ull;
uint64_t fnv1a(const uint8_t* data, size_t len, uint64_t hash);

// Reads a SyncRules message one rule at a time, so that the engine can
// check and build a large rule set over several loop passes.
class SyncReader {
 public:
  // `data`: a whole SyncRules message, header included; it must outlive the reader.
  std::string open(const uint8_t* data, size_t len);
  uint32_t left() const { return left_; }
  // The next rule; the last one also checks that nothing trails it.
  std::string next(RuleSpec& rule);
  // ruleset_hash of the rules read so far, had they been sent sorted by id
  // (a sender that sorts them, as the bindings do, saves the engine hashing
  // the table again after the sync).
  uint64_t hash() const { return hash_; }
  bool sorted() const { return sorted_; }

 private:
  const uint8_t* data_ = nullptr;
  size_t len_ = 0, pos_ = 0;
  uint32_t left_ = 0;
  uint64_t hash_ = kHashSeed;
  bool sorted_ = true;
  uint32_t last_id_ = 0;
  bool first_ = true;
};

std::vector<uint8_t> encode_command(const Command& command);
std::vector<uint8_t> encode_ok(uint32_t seq);
std::vector<uint8_t> encode_error(uint32_t seq, const std::string& message);
std::vector<uint8_t> encode_stats(uint32_t seq, const Stats& stats);
std::vector<uint8_t> encode_notifications(uint32_t seq, const std::vector<Notification>& notifications);
std::vector<uint8_t> encode_trace(uint32_t seq, const TraceTaken& trace);  // wire_trace.cpp

// The hash a rule set is known by; `rules` sorted by id.
uint64_t ruleset_hash(const std::vector<RuleSpec>& rules);

}  // namespace mcr::wire
