// What the loop and egress share about io_uring: the user_data tag (which
// kind of operation completed, and for which input, send slot or TX ring;
// one encode, three decodes), how the engine's interface slots are reused,
// and how to get an SQE when the queue is full.
#pragma once
#include <liburing.h>

#include <cstdint>
#include <vector>

namespace mcr {

enum class Op : uint8_t { Command = 1, InputReady = 2, Send = 3, Flush = 4, Cancel = 5, RegisterRecv = 6,
                          CommandWritable = 7 };

// op (8 bits) | generation (24 bits) | index (32 bits).
constexpr uint32_t kGenerationMask = 0xffffff;

inline uint64_t make_tag(Op op, uint32_t index, uint32_t generation = 0) {
  return static_cast<uint64_t>(op) << 56 | static_cast<uint64_t>(generation & kGenerationMask) << 32 | index;
}
inline Op tag_op(uint64_t tag) { return static_cast<Op>(tag >> 56); }
inline uint32_t tag_index(uint64_t tag) { return static_cast<uint32_t>(tag); }
inline uint32_t tag_generation(uint64_t tag) { return static_cast<uint32_t>(tag >> 32) & kGenerationMask; }

// Interface slots (the engine's inputs and packet egress sockets, each
// with an `fd` and a `generation`) are named by index in tags. A removed
// interface leaves its slot free (fd -1) under the next generation, and the
// next interface added takes the first free slot: a link that is removed
// and added again for ever grows neither the table nor the loop's scan of
// it. A completion still in flight for the slot's former occupant (its
// cancelled poll, its last flush) carries the old generation: the engine
// tells it from the new occupant's and ignores it. Control path only.
template <typename Slot>
uint32_t free_slot(std::vector<Slot>& slots) {
  for (uint32_t i = 0; i < slots.size(); ++i)
    if (slots[i].fd < 0) return i;
  slots.emplace_back();
  return static_cast<uint32_t>(slots.size() - 1);
}

// Frees `slot` for the next interface (empty, fd -1) under a new generation.
template <typename Slot>
void release_slot(Slot& slot) {
  uint32_t generation = (slot.generation + 1) & kGenerationMask;
  slot = Slot{};
  slot.generation = generation;
}

// An SQE; when the submission queue is full, submits this batch first.
inline io_uring_sqe* next_sqe(io_uring* ring) {
  io_uring_sqe* sqe = io_uring_get_sqe(ring);
  if (sqe == nullptr) {
    io_uring_submit(ring);
    sqe = io_uring_get_sqe(ring);
  }
  return sqe;
}

}  // namespace mcr
