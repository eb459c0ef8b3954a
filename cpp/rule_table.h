// Rules and their lookup. Key: (input ifindex, group, UDP port,
// source, VLAN, group prefix length); source 0 is a (*,G) rule, port 0 an
// any-port rule, a prefix length below 32 a group-range rule (a group
// prefix such as 239.1.0.0/16).
//
// Lookup order for a packet (input, VLAN, S, G, P), the first match wins:
//   (S,G,P) -> (*,G,P)                       exact index (a flat hash table)
//   -> (S,G,any) -> (*,G,any)                any-port index (another one)
//   -> range rules, longest prefix first; within one prefix length, port
//      exact before any port, then (S) before (*)        a small sorted array
// Port is ranked above source at every level (as (*,G,P) beats (S,G,any)).
// Exact rules pay nothing for the others: the any-port probes and the range
// scan run only when the exact probes missed, and only while rules of that
// kind exist; a table without any takes the exact-only path.
// Changes happen on the control path only; lookup never allocates.
#pragma once
#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace mcr {

class TxRing;

struct RuleKey {
  uint32_t ifindex = 0;
  uint32_t group = 0;   // network byte order
  uint32_t source = 0;  // network byte order; 0 = any source
  uint16_t port = 0;    // host byte order
  uint16_t vlan = 0;    // 802.1Q VLAN id the frame arrived with; 0: untagged
  uint8_t prefix_len = 32;  // group prefix length: 32 = exactly `group`, fewer = a range of groups
  bool operator==(const RuleKey&) const = default;

  bool is_range() const { return prefix_len < 32; }
  uint32_t mask() const { return prefix_len == 0 ? 0 : htonl(~0u << (32 - prefix_len)); }  // network byte order
  // Whether packets to `to_group`:`to_port` fall under this key's group(s) and port.
  bool covers(uint32_t to_group, uint16_t to_port) const {
    return (to_group & mask()) == group && (port == 0 || port == to_port);
  }
};

// Packet priorities (QoS). A priority is the skb priority Linux qdiscs
// classify by (pfifo_fast and prio through their priomap); 0 is none.
// Packets with one leave through the interface's queued TX ring, whose
// socket keeps the qdisc (or its UDP socket), not the packet path's own
// ring, which bypasses it (egress.h). At most 6
// (TC_PRIO_INTERACTIVE): higher ones, and tc class ids, need CAP_NET_ADMIN
// for SO_PRIORITY, which workers do not hold.
constexpr int64_t kRulePriority = -1;  // an output's: the rule's
constexpr int64_t kDscpPriority = -2;  // a rule's: each packet's DSCP class (DSCP >> 3, EF 46 -> 5), 6 at most
constexpr int64_t kMaxPriority = 6;

struct OutputSpec {
  uint32_t destination = 0;  // network byte order; multicast or unicast
  uint16_t port = 0;
  uint32_t ifindex = 0;
  int16_t ttl = -1;   // -1: incoming TTL minus one
  int16_t dscp = -1;  // -1: keep the incoming TOS byte
  bool keep_source = false;  // send with the packet's own IP source (SSM receivers filter on it)
  uint16_t vlan = 0;  // tag frames with this 802.1Q VLAN id; 0: untagged
  // Send to the packet's own group and UDP port (a layer-3 multicast route);
  // `destination` and `port` are then unused. What range and any-port rules
  // need, since their outputs cannot name one group or port.
  bool follow = false;
  // A PIM Register to the RP at `destination` (RFC 7761 4.4.1): the whole
  // IPv4 packet, as received, behind an 8-byte Register header, on the
  // engine's raw PIM socket (port, ifindex, ttl, dscp, vlan unused). The
  // outer source is `register_source`, or the kernel's choice if 0.
  bool pim_register = false;
  uint32_t register_source = 0;  // network byte order
  // The packet priority (SO_PRIORITY, what qdiscs classify by) of this
  // output's packets; kRulePriority: the rule's.
  int64_t priority = kRulePriority;
  bool needs_frame_path() const { return keep_source || vlan != 0; }  // only the packet path can
  bool operator==(const OutputSpec&) const = default;
};

struct RuleSpec {
  uint32_t id = 0;
  RuleKey key;
  std::vector<OutputSpec> outputs;
  bool notify = false;  // record new (rule, source, group)s for the supervisor (notify_table.h)
  // Its outputs' packet priority (unless an output has its own), fixed or
  // kDscpPriority. A fixed one above 0 also makes its input one the engine
  // serves first under overload (loop.cpp).
  int64_t priority = 0;
  bool operator==(const RuleSpec&) const = default;
};

// What the packet egress path writes before the payload: a virtio_net_hdr
// (packet egress sockets have PACKET_VNET_HDR, see sockets.py), then
// Ethernet (with an 802.1Q tag if the output has a VLAN) + IPv4 (no
// options) + UDP.
constexpr size_t kVnetHeader = 10;
constexpr size_t kFrameHeader = kVnetHeader + 14 + 28;  // untagged
constexpr size_t kMaxFrameHeader = kFrameHeader + 4;     // tagged

struct Output {
  OutputSpec spec;
  sockaddr_in address{};  // prebuilt destination for sendmsg
  int fd = -1;            // UDP egress socket for spec.ifindex
  // Packet egress (multicast outputs on an interface with a packet socket):
  // a header template filled per packet, and the largest payload that fits
  // the MTU unfragmented (larger ones take the UDP socket, which fragments).
  int packet_fd = -1;
  TxRing* tx = nullptr;  // the packet socket's TX ring, when it has one
  int64_t priority = 0;  // resolved: the output's own, else the rule's (fixed, or kDscpPriority)
  TxRing* queued_tx = nullptr;  // the interface's queued TX ring (through the qdisc), for a priority
  uint16_t max_payload = 0;
  uint32_t source = 0;  // network byte order
  uint8_t link_len = 14;  // link-layer header in the template: 14, or 18 with a VLAN tag
  uint8_t frame[kMaxFrameHeader]{};
  size_t header_len() const { return kVnetHeader + link_len + 28; }
  bool needs_frame() const { return spec.needs_frame_path(); }
  uint64_t packets = 0, bytes = 0, errors = 0;
};

struct Rule {
  uint32_t id = 0;
  RuleKey key;
  std::vector<Output> outputs;
  uint64_t packets = 0, bytes = 0;
  uint32_t generation = 0;  // bumped when the slot is reused; stale sends check it
  bool live = false;
  bool notify = false;
  int64_t priority = 0;  // the rule's own (RuleSpec::priority)

  RuleSpec spec() const {
    RuleSpec s{id, key, {}, notify, priority};
    for (const Output& o : outputs) s.outputs.push_back(o.spec);
    return s;
  }
};

class RuleTable {
 public:
  explicit RuleTable(uint32_t capacity);

  // Control path. Return an empty string on success, else the reason.
  std::string add(Rule&& rule, uint32_t& slot);
  std::string remove(uint32_t id);

  // Hot path: (S,G,P), then (*,G,P), in the exact index; on a miss, and
  // only while any-port or range rules exist, the rest of the order above
  // (out of line).
  Rule* lookup(uint32_t ifindex, uint32_t group, uint16_t port, uint32_t source, uint16_t vlan = 0) {
    if (source_specific_ > 0) {
      if (Rule* r = find(exact_, {ifindex, group, source, port, vlan})) return r;
    }
    Rule* r = find(exact_, {ifindex, group, 0, port, vlan});
    if (r != nullptr || wildcards_ == 0) return r;
    return lookup_wildcard(ifindex, group, port, source, vlan);
  }

  // Range rules live in an array scanned on a miss, so there are few of them.
  static constexpr uint32_t kMaxRangeRules = 256;
  uint32_t any_port_rules() const { return any_port_; }
  uint32_t range_rules() const { return static_cast<uint32_t>(ranges_.size()); }

  Rule& at(uint32_t slot) { return rules_[slot]; }
  const Rule* by_id(uint32_t id) const {
    auto it = by_id_.find(id);
    return it == by_id_.end() ? nullptr : &rules_[it->second];
  }
  std::vector<RuleSpec> specs() const;  // live rules, sorted by id
  const std::vector<Rule>& rules() const { return rules_; }
  std::vector<Rule>& mutable_rules() { return rules_; }  // control path: outputs change in place, keys never
  uint32_t size() const { return static_cast<uint32_t>(by_id_.size()); }
  uint32_t capacity() const { return static_cast<uint32_t>(rules_.size()); }
  uint64_t changes() const { return changes_; }  // rules added and removed so far
  // Inputs with a rule of fixed priority above 0, which the engine serves
  // first; the epoch moves whenever that set of inputs changes.
  bool priority_input(uint32_t ifindex) const { return priority_inputs_.count(ifindex) != 0; }
  uint64_t priority_epoch() const { return priority_epoch_; }

 private:
  static constexpr int32_t kEmpty = -1;
  // What a hash index compares: a single-group rule's key (prefix length 32).
  struct Probe {
    uint32_t ifindex, group, source;
    uint16_t port, vlan;
    bool operator==(const Probe&) const = default;
  };
  struct Bucket {
    Probe key{};
    int32_t slot = kEmpty;
  };
  // Open addressing, linear probing, load <= 1/2: probe -> rule slot.
  struct Index {
    std::vector<Bucket> buckets;
    size_t mask = 0;
    void init(uint32_t capacity);
    size_t bucket_of(const Probe& key) const;  // the key's bucket, or the empty one it would take
    void erase(size_t index);
  };

  Rule* find(const Index& index, const Probe& key) {
    for (size_t i = hash(key) & index.mask;; i = (i + 1) & index.mask) {
      const Bucket& b = index.buckets[i];
      if (b.slot == kEmpty) return nullptr;
      if (b.key == key) return &rules_[b.slot];
    }
  }
  static size_t hash(const Probe& key);
  static Probe probe_of(const RuleKey& k) { return {k.ifindex, k.group, k.source, k.port, k.vlan}; }
  Index& index_of(const RuleKey& key) { return key.port == 0 ? any_port_index_ : exact_; }
  void count_hashed(const RuleKey& key, int delta);
  Rule* lookup_wildcard(uint32_t ifindex, uint32_t group, uint16_t port, uint32_t source, uint16_t vlan);

  // A range rule as the scan reads it: 24 bytes, the whole array (at most
  // kMaxRangeRules) a few KiB. Sorted by precedence (longest prefix, then
  // exact port, then source-specific), so the first match is the answer.
  struct Range {
    uint32_t group, mask, source, ifindex;  // group, mask and source in network byte order
    uint16_t port, vlan;
    uint32_t slot;
  };

  std::vector<Rule> rules_;
  std::vector<uint32_t> free_slots_;
  Index exact_;           // rules with one group and a port: the only index exact traffic reads
  Index any_port_index_;  // rules with one group and port 0; its buckets come with the first one
  std::vector<Range> ranges_;
  std::unordered_map<uint32_t, uint32_t> by_id_;  // rule id -> slot
  uint32_t source_specific_ = 0;   // (S,G,P) rules
  uint32_t any_port_ = 0;          // (S,G,any) and (*,G,any) rules
  uint32_t any_port_sources_ = 0;  // (S,G,any) rules
  uint32_t wildcards_ = 0;         // any-port and range rules: 0 keeps lookup on the exact path
  uint64_t changes_ = 0;
  void count_priority(const Rule& rule, int delta);
  std::unordered_map<uint32_t, uint32_t> priority_inputs_;  // input ifindex -> its rules of fixed priority > 0
  uint64_t priority_epoch_ = 0;
};

}  // namespace mcr
