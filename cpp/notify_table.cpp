#include "notify_table.h"

namespace mcr {

NotifyTable::NotifyTable(uint32_t pending) : capacity_(pending) {
  uint64_t size = 16;
  while (size < 4ull * pending) size <<= 1;
  entries_.assign(size, Entry{});
  mask_ = size - 1;
  pending_.reserve(pending);
}

// The same mix as the rule table's (MurmurHash3 fmix64): groups differ in their high bytes.
uint64_t NotifyTable::hash(uint32_t rule_id, uint32_t source, uint32_t group) {
  uint64_t h = (static_cast<uint64_t>(group) << 32 | source) * 0x9e3779b97f4a7c15ull;
  h ^= rule_id * 0xc2b2ae3d27d4eb4full;
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  return h ^ (h >> 33);
}

NotifyTable::Result NotifyTable::record(const Notification& n, uint64_t now_ms) {
  Entry* free = nullptr;
  uint64_t i = hash(n.rule_id, n.source, n.group);
  for (uint32_t probe = 0; probe < kMaxProbe; ++probe, ++i) {
    Entry& e = entries_[i & mask_];
    bool expired = now_ms - e.at_ms >= window_ms_;
    if (e.used && e.rule_id == n.rule_id && e.source == n.source && e.group == n.group) {
      if (!expired) return Result::Suppressed;
      free = &e;
      break;
    }
    if (free == nullptr && (!e.used || expired)) free = &e;
    if (!e.used) break;  // the key is not further along: it would have taken this entry
  }
  if (free == nullptr || pending_.size() >= capacity_) return Result::Overflow;
  *free = {n.rule_id, n.source, n.group, true, now_ms};
  pending_.push_back(n);
  return Result::Recorded;
}

std::vector<Notification> NotifyTable::take() {
  std::vector<Notification> out(pending_.begin(), pending_.end());
  pending_.clear();
  return out;
}

}  // namespace mcr
