#include "buffer_pool.h"

#include <sys/mman.h>

#include <new>

namespace mcr {

// Reserved, not populated: only buffers that sends actually wait on get pages.
BufferPool::BufferPool(uint32_t count, uint32_t size) : size_(size), count_(count), readers_(count) {
  void* base = mmap(nullptr, count_ * size_, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  if (base == MAP_FAILED) throw std::bad_alloc();
  base_ = static_cast<uint8_t*>(base);
  free_.reserve(count);
  for (uint32_t id = count; id > 0; --id) free_.push_back(id - 1);
}

BufferPool::~BufferPool() { munmap(base_, count_ * size_); }

}  // namespace mcr
