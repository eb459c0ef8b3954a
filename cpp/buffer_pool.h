// Payload copies for the sendmsg path (unicast outputs, payloads beyond the
// output's MTU, a full TX ring). Such a send completes later, and the input's
// RX ring must not wait for it: a ring frame still in use stops the kernel at
// that frame, which would stall every rule on the input behind one slow
// output. So the payload is copied once per packet, however many of its
// outputs take this path, into a fixed buffer that the sends read; the
// buffer is free again when the last of them completes. Exhaustion is a
// counted drop (no_send_slot), never an allocation.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace mcr {

class BufferPool {
 public:
  static constexpr uint32_t kNone = UINT32_MAX;

  BufferPool(uint32_t count, uint32_t size);
  ~BufferPool();
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;

  // A free buffer holding a copy of `len` bytes at `data`, or kNone.
  uint32_t copy(const uint8_t* data, uint32_t len) {
    if (free_.empty() || len > size_) return kNone;
    uint32_t id = free_.back();
    free_.pop_back();
    __builtin_memcpy(this->data(id), data, len);
    return id;
  }
  uint8_t* data(uint32_t id) const { return base_ + static_cast<size_t>(id) * size_; }
  // `readers` sends read the buffer; it is free after as many release()s (at once if 0).
  void hold(uint32_t id, uint16_t readers) {
    readers_[id] = readers;
    if (readers == 0) free_.push_back(id);
  }
  void release(uint32_t id) {
    if (--readers_[id] == 0) free_.push_back(id);
  }

 private:
  uint8_t* base_;
  size_t size_, count_;
  std::vector<uint16_t> readers_;
  std::vector<uint32_t> free_;  // most recently freed last: the pages in use stay few and warm
};

}  // namespace mcr
