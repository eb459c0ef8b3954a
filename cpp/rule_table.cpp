#include "rule_table.h"

#include <algorithm>

namespace mcr {

RuleTable::RuleTable(uint32_t capacity) : rules_(capacity) {
  size_t buckets = 16;
  while (buckets < 2 * static_cast<size_t>(capacity)) buckets <<= 1;
  buckets_.resize(buckets);
  mask_ = buckets - 1;
  for (uint32_t slot = capacity; slot > 0; --slot) free_slots_.push_back(slot - 1);
}

size_t RuleTable::hash(const RuleKey& key) const {
  uint64_t h = (static_cast<uint64_t>(key.group) << 32 | key.source) * 0x9e3779b97f4a7c15ull;
  h ^= (static_cast<uint64_t>(key.ifindex) << 32 | static_cast<uint32_t>(key.vlan) << 16 | key.port) * 0xc2b2ae3d27d4eb4full;
  return static_cast<size_t>(h ^ (h >> 29));
}

size_t RuleTable::bucket_of(const RuleKey& key) const {
  size_t i = hash(key) & mask_;
  while (buckets_[i].slot != kEmpty && !(buckets_[i].key == key)) i = (i + 1) & mask_;
  return i;
}

std::string RuleTable::add(Rule&& rule, uint32_t& slot) {
  if (by_id_.count(rule.id)) return "duplicate rule id " + std::to_string(rule.id);
  size_t bucket = bucket_of(rule.key);
  if (buckets_[bucket].slot != kEmpty)
    return "duplicate rule: same input, group, port and source as rule id " +
           std::to_string(rules_[buckets_[bucket].slot].id);
  if (free_slots_.empty()) return "rule table full (" + std::to_string(capacity()) + " rules)";
  slot = free_slots_.back();
  free_slots_.pop_back();
  uint32_t generation = rules_[slot].generation + 1;
  rules_[slot] = std::move(rule);
  rules_[slot].generation = generation;
  rules_[slot].live = true;
  buckets_[bucket] = {rules_[slot].key, static_cast<int32_t>(slot)};
  by_id_[rules_[slot].id] = slot;
  if (rules_[slot].key.source != 0) ++source_specific_;
  return {};
}

std::string RuleTable::remove(uint32_t id) {
  auto it = by_id_.find(id);
  if (it == by_id_.end()) return "no rule with id " + std::to_string(id);
  uint32_t slot = it->second;
  Rule& rule = rules_[slot];
  erase_bucket(bucket_of(rule.key));
  if (rule.key.source != 0) --source_specific_;
  rule.live = false;
  rule.outputs.clear();
  by_id_.erase(it);
  free_slots_.push_back(slot);
  return {};
}

// Backward-shift deletion keeps probe chains intact without tombstones.
void RuleTable::erase_bucket(size_t index) {
  size_t hole = index;
  for (size_t i = (hole + 1) & mask_; buckets_[i].slot != kEmpty; i = (i + 1) & mask_) {
    size_t home = hash(buckets_[i].key) & mask_;
    // Move the entry back if its home is not cyclically within (hole, i].
    bool stays = hole <= i ? (home > hole && home <= i) : (home > hole || home <= i);
    if (!stays) {
      buckets_[hole] = buckets_[i];
      hole = i;
    }
  }
  buckets_[hole] = Bucket{};
}

}  // namespace mcr

namespace mcr {

std::vector<RuleSpec> RuleTable::specs() const {
  std::vector<RuleSpec> out;
  for (const auto& [id, slot] : by_id_) out.push_back(rules_[slot].spec());
  std::sort(out.begin(), out.end(), [](const RuleSpec& a, const RuleSpec& b) { return a.id < b.id; });
  return out;
}

}  // namespace mcr
