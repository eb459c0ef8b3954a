// Data-plane notifications for the PIM control plane: the first packets of
// an (S,G) under a rule flagged `notify` (a new source under a (*,G) rule,
// a group with no rule at a source's DR, an arrival on the wrong interface
// for Assert). The kernel tells pimd the same with upcalls.
//
// Per packet of a notify rule: one probe sequence of a preallocated
// open-addressing table keyed (rule id, source, group). A key recorded
// within the last `window` is suppressed, so a steady stream costs one
// entry per window, never one per packet; otherwise the key's time is
// refreshed and a copy goes to the pending list, which the supervisor
// takes (and so clears) with TakeNotifications. Entries older than the
// window are reused in place (no deletion, so probe chains stay whole).
// A full pending list, or a probe sequence without a free or expired
// entry, is a counted drop (notify_overflow); the key is not marked, so
// the next packet tries again. Nothing allocates after construction.
#pragma once
#include <cstdint>
#include <vector>

namespace mcr {

struct Notification {
  uint32_t rule_id = 0;
  uint32_t source = 0, group = 0;  // network byte order
  uint32_t ifindex = 0;            // the input the packet came in on (kRegisterIfindex: inside a Register)
  uint32_t dr = 0;                 // for a Register: its outer source, the DR; else 0
};

class NotifyTable {
 public:
  static constexpr uint32_t kDefaultWindowMs = 5000;

  // `pending` notifications held until taken; the hash table has 4x that many entries.
  explicit NotifyTable(uint32_t pending);

  enum class Result { Recorded, Suppressed, Overflow };
  Result record(const Notification& n, uint64_t now_ms);

  // The pending notifications, oldest first; clears them. Control path.
  std::vector<Notification> take();

  void set_window(uint32_t ms) { window_ms_ = ms; }
  uint32_t window_ms() const { return window_ms_; }

 private:
  static constexpr uint32_t kMaxProbe = 16;
  struct Entry {
    uint32_t rule_id, source, group;
    bool used;
    uint64_t at_ms;  // when it was last recorded
  };
  static uint64_t hash(uint32_t rule_id, uint32_t source, uint32_t group);

  std::vector<Entry> entries_;
  uint64_t mask_;
  std::vector<Notification> pending_;  // capacity reserved up front; push_back never reallocates
  uint32_t capacity_;
  uint32_t window_ms_ = kDefaultWindowMs;
};

}  // namespace mcr
