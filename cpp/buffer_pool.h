// Receive buffers: a kernel-provided buffer ring. The kernel picks a buffer
// for each received frame; the engine hands it back once the last send that
// reads from it has completed (a per-buffer reference count gives fan-out
// without copying the payload per output).
#pragma once
#include <liburing.h>

#include <cstdint>
#include <string>
#include <vector>

namespace mcr {

class BufferPool {
 public:
  static constexpr uint16_t kGroup = 0;

  BufferPool(uint32_t count, uint32_t size);  // count: a power of two <= 32768
  ~BufferPool();
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;

  // Registers the ring with io_uring and offers every buffer to the kernel.
  std::string attach(io_uring* ring);

  uint8_t* data(uint16_t bid) { return base_ + static_cast<size_t>(bid) * size_; }
  uint32_t buffer_size() const { return size_; }

  void hold(uint16_t bid, uint16_t refs) { refs_[bid] = refs; }
  void release(uint16_t bid) {
    if (--refs_[bid] == 0) recycle(bid);
  }
  void recycle(uint16_t bid) {
    io_uring_buf_ring_add(ring_, data(bid), size_, bid, mask_, pending_++);
  }
  // Makes the recycled buffers visible to the kernel in one step; returns
  // whether any were.
  bool publish() {
    if (pending_ == 0) return false;
    io_uring_buf_ring_advance(ring_, pending_);
    pending_ = 0;
    return true;
  }

 private:
  uint32_t count_, size_;
  int mask_;
  uint8_t* base_ = nullptr;
  io_uring_buf_ring* ring_ = nullptr;
  size_t ring_bytes_;
  int pending_ = 0;
  std::vector<uint16_t> refs_;
};

}  // namespace mcr
