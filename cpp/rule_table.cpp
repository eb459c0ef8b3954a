#include "rule_table.h"

#include <algorithm>

namespace mcr {
namespace {

// Precedence among range rules: a longer prefix, then an exact port, then a source.
bool ranks_before(const RuleKey& a, const RuleKey& b) {
  if (a.prefix_len != b.prefix_len) return a.prefix_len > b.prefix_len;
  if ((a.port != 0) != (b.port != 0)) return a.port != 0;
  return a.source != 0 && b.source == 0;
}

}  // namespace

RuleTable::RuleTable(uint32_t capacity) : rules_(capacity) {
  exact_.init(capacity);
  for (uint32_t slot = capacity; slot > 0; --slot) free_slots_.push_back(slot - 1);
  ranges_.reserve(kMaxRangeRules);
}

void RuleTable::Index::init(uint32_t capacity) {
  size_t size = 16;
  while (size < 2 * static_cast<size_t>(capacity)) size <<= 1;
  buckets.assign(size, Bucket{});
  mask = size - 1;
}

// A product carries each input bit only upwards, and an index is the low
// bits, so the high half is folded down and mixed once more (MurmurHash3's
// fmix64). Without that, groups that differ only in their last two octets
// (in network byte order, the high bits of `group`: 239.1.1.1, 239.1.1.2,
// ...) all took the same bucket, and a lookup walked one probe chain as long
// as the rule set.
size_t RuleTable::hash(const Probe& key) {
  uint64_t h = (static_cast<uint64_t>(key.group) << 32 | key.source) * 0x9e3779b97f4a7c15ull;
  h ^= (static_cast<uint64_t>(key.ifindex) << 32 | static_cast<uint32_t>(key.vlan) << 16 | key.port) * 0xc2b2ae3d27d4eb4full;
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  return static_cast<size_t>(h ^ (h >> 33));
}

size_t RuleTable::Index::bucket_of(const Probe& key) const {
  size_t i = hash(key) & mask;
  while (buckets[i].slot != kEmpty && !(buckets[i].key == key)) i = (i + 1) & mask;
  return i;
}

// Backward-shift deletion keeps probe chains intact without tombstones.
void RuleTable::Index::erase(size_t index) {
  size_t hole = index;
  for (size_t i = (hole + 1) & mask; buckets[i].slot != kEmpty; i = (i + 1) & mask) {
    size_t home = hash(buckets[i].key) & mask;
    // Move the entry back if its home is not cyclically within (hole, i].
    bool stays = hole <= i ? (home > hole && home <= i) : (home > hole || home <= i);
    if (!stays) {
      buckets[hole] = buckets[i];
      hole = i;
    }
  }
  buckets[hole] = Bucket{};
}

std::string RuleTable::add(Rule&& rule, uint32_t& slot) {
  if (by_id_.count(rule.id)) return "duplicate rule id " + std::to_string(rule.id);
  const RuleKey& key = rule.key;
  if (key.is_range()) {
    for (const Range& r : ranges_)
      if (rules_[r.slot].key == key)
        return "duplicate rule: same input, group range, port and source as rule id " +
               std::to_string(rules_[r.slot].id);
    if (ranges_.size() >= kMaxRangeRules)
      return "too many group-range rules (at most " + std::to_string(kMaxRangeRules) + ")";
  } else {
    Index& index = index_of(key);
    if (index.buckets.empty()) index.init(capacity());  // the first any-port rule
    const Bucket& b = index.buckets[index.bucket_of(probe_of(key))];
    if (b.slot != kEmpty)
      return "duplicate rule: same input, group, port and source as rule id " + std::to_string(rules_[b.slot].id);
  }
  if (free_slots_.empty()) return "rule table full (" + std::to_string(capacity()) + " rules)";
  slot = free_slots_.back();
  free_slots_.pop_back();
  uint32_t generation = rules_[slot].generation + 1;
  rules_[slot] = std::move(rule);
  rules_[slot].generation = generation;
  rules_[slot].live = true;
  by_id_[rules_[slot].id] = slot;
  ++changes_;
  count_priority(rules_[slot], +1);
  const RuleKey& added = rules_[slot].key;
  if (added.is_range()) {
    // After every rule it does not rank before, so equals keep their order.
    auto at = std::find_if(ranges_.begin(), ranges_.end(),
                           [&](const Range& r) { return ranks_before(added, rules_[r.slot].key); });
    ranges_.insert(at, {added.group, added.mask(), added.source, added.ifindex, added.port, added.vlan, slot});
    ++wildcards_;
    return {};
  }
  Index& index = index_of(added);
  index.buckets[index.bucket_of(probe_of(added))] = {probe_of(added), static_cast<int32_t>(slot)};
  count_hashed(added, +1);
  return {};
}

std::string RuleTable::remove(uint32_t id) {
  auto it = by_id_.find(id);
  if (it == by_id_.end()) return "no rule with id " + std::to_string(id);
  uint32_t slot = it->second;
  Rule& rule = rules_[slot];
  if (rule.key.is_range()) {
    ranges_.erase(std::find_if(ranges_.begin(), ranges_.end(), [&](const Range& r) { return r.slot == slot; }));
    --wildcards_;
  } else {
    Index& index = index_of(rule.key);
    index.erase(index.bucket_of(probe_of(rule.key)));
    count_hashed(rule.key, -1);
  }
  count_priority(rule, -1);
  rule.live = false;
  rule.outputs.clear();
  by_id_.erase(it);
  free_slots_.push_back(slot);
  ++changes_;
  return {};
}

void RuleTable::count_priority(const Rule& rule, int delta) {
  if (rule.priority <= 0) return;
  uint32_t n = priority_inputs_[rule.key.ifindex] += delta;
  if (n == 0) priority_inputs_.erase(rule.key.ifindex);
  if (n == 0 || (delta > 0 && n == 1)) ++priority_epoch_;  // the input joined or left the set
}

// The counters that let lookup skip probes no rule could answer.
void RuleTable::count_hashed(const RuleKey& key, int delta) {
  if (key.port != 0) {
    if (key.source != 0) source_specific_ += delta;
    return;
  }
  any_port_ += delta;
  wildcards_ += delta;
  if (key.source != 0) any_port_sources_ += delta;
}

// The rest of the lookup order, after the exact probes missed. Any-port
// rules are one or two probes of their own hash index. Range rules are a
// linear scan, first match wins. That is enough because they are few: one
// per receiver-driven rule (say "239.1.0.0/16 from this input to those
// outputs"), at most kMaxRangeRules of 24 bytes read in order, so even a
// full array is a few KiB of sequential compares (well under a
// microsecond), and only for packets no exact or any-port rule took. A trie
// (as in a FIB) pays off for thousands of prefixes, which these never reach.
Rule* RuleTable::lookup_wildcard(uint32_t ifindex, uint32_t group, uint16_t port, uint32_t source, uint16_t vlan) {
  if (any_port_ > 0) {
    if (any_port_sources_ > 0) {
      if (Rule* r = find(any_port_index_, {ifindex, group, source, 0, vlan})) return r;
    }
    if (Rule* r = find(any_port_index_, {ifindex, group, 0, 0, vlan})) return r;
  }
  for (const Range& r : ranges_) {
    if ((group & r.mask) == r.group && r.ifindex == ifindex && r.vlan == vlan &&
        (r.source == 0 || r.source == source) && (r.port == 0 || r.port == port))
      return &rules_[r.slot];
  }
  return nullptr;
}

std::vector<RuleSpec> RuleTable::specs() const {
  std::vector<RuleSpec> out;
  for (const auto& [id, slot] : by_id_) out.push_back(rules_[slot].spec());
  std::sort(out.begin(), out.end(), [](const RuleSpec& a, const RuleSpec& b) { return a.id < b.id; });
  return out;
}

}  // namespace mcr
