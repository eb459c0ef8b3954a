#include "buffer_pool.h"

#include <sys/mman.h>

#include <cstring>
#include <new>

namespace mcr {

BufferPool::BufferPool(uint32_t count, uint32_t size)
    : count_(count), size_(size), mask_(io_uring_buf_ring_mask(count)), refs_(count) {
  ring_bytes_ = count * sizeof(io_uring_buf);
  void* ring = mmap(nullptr, ring_bytes_, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  void* base = mmap(nullptr, static_cast<size_t>(count) * size, PROT_READ | PROT_WRITE,
                    MAP_ANONYMOUS | MAP_PRIVATE | MAP_POPULATE, -1, 0);
  if (ring == MAP_FAILED || base == MAP_FAILED) throw std::bad_alloc();
  ring_ = static_cast<io_uring_buf_ring*>(ring);
  base_ = static_cast<uint8_t*>(base);
}

BufferPool::~BufferPool() {
  munmap(ring_, ring_bytes_);
  munmap(base_, static_cast<size_t>(count_) * size_);
}

std::string BufferPool::attach(io_uring* ring) {
  io_uring_buf_ring_init(ring_);
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<uint64_t>(ring_);
  reg.ring_entries = count_;
  reg.bgid = kGroup;
  int rc = io_uring_register_buf_ring(ring, &reg, 0);
  if (rc < 0) return std::string("cannot register provided buffers (kernel >= 5.19 needed): ") + strerror(-rc);
  for (uint32_t bid = 0; bid < count_; ++bid) recycle(static_cast<uint16_t>(bid));
  publish();
  return {};
}

}  // namespace mcr
