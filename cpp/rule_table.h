// Rules and their flat hash table. Key: (input ifindex, group, UDP port,
// source); source 0 is a (*,G) rule. An (S,G) rule wins over a (*,G) rule.
// Changes happen on the control path only; lookup never allocates.
#pragma once
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
  bool operator==(const RuleKey&) const = default;
};

struct OutputSpec {
  uint32_t destination = 0;  // network byte order; multicast or unicast
  uint16_t port = 0;
  uint32_t ifindex = 0;
  int16_t ttl = -1;   // -1: incoming TTL minus one
  int16_t dscp = -1;  // -1: keep the incoming TOS byte
  bool keep_source = false;  // send with the packet's own IP source (SSM receivers filter on it)
  uint16_t vlan = 0;  // tag frames with this 802.1Q VLAN id; 0: untagged
  bool operator==(const OutputSpec&) const = default;
};

struct RuleSpec {
  uint32_t id = 0;
  RuleKey key;
  std::vector<OutputSpec> outputs;
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
  uint16_t max_payload = 0;
  uint32_t source = 0;  // network byte order
  uint8_t link_len = 14;  // link-layer header in the template: 14, or 18 with a VLAN tag
  uint8_t frame[kMaxFrameHeader]{};
  size_t header_len() const { return kVnetHeader + link_len + 28; }
  bool needs_frame() const { return spec.keep_source || spec.vlan != 0; }  // only the packet path can
  uint64_t packets = 0, bytes = 0, errors = 0;
};

struct Rule {
  uint32_t id = 0;
  RuleKey key;
  std::vector<Output> outputs;
  uint64_t packets = 0, bytes = 0;
  uint32_t generation = 0;  // bumped when the slot is reused; stale sends check it
  bool live = false;

  RuleSpec spec() const {
    RuleSpec s{id, key, {}};
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

  // Hot path: (S,G) first, then (*,G).
  Rule* lookup(uint32_t ifindex, uint32_t group, uint16_t port, uint32_t source, uint16_t vlan = 0) {
    if (source_specific_ > 0) {
      if (Rule* r = find({ifindex, group, source, port, vlan})) return r;
    }
    return find({ifindex, group, 0, port, vlan});
  }

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

 private:
  static constexpr int32_t kEmpty = -1;
  struct Bucket {
    RuleKey key;
    int32_t slot = kEmpty;
  };

  Rule* find(const RuleKey& key) {
    for (size_t i = hash(key) & mask_;; i = (i + 1) & mask_) {
      const Bucket& b = buckets_[i];
      if (b.slot == kEmpty) return nullptr;
      if (b.key == key) return &rules_[b.slot];
    }
  }
  size_t hash(const RuleKey& key) const;
  size_t bucket_of(const RuleKey& key) const;
  void erase_bucket(size_t index);

  std::vector<Rule> rules_;
  std::vector<uint32_t> free_slots_;
  std::vector<Bucket> buckets_;  // open addressing, linear probing, load <= 1/2
  size_t mask_;
  std::unordered_map<uint32_t, uint32_t> by_id_;  // rule id -> slot
  uint32_t source_specific_ = 0;
};

}  // namespace mcr
