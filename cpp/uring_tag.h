// What the loop and egress share about io_uring: the user_data tag (which
// kind of operation completed, and for which input, send slot or TX ring;
// one encode, two decodes) and how to get an SQE when the queue is full.
#pragma once
#include <liburing.h>

#include <cstdint>

namespace mcr {

enum class Op : uint8_t { Command = 1, InputReady = 2, Send = 3, Flush = 4, Cancel = 5 };

inline uint64_t make_tag(Op op, uint32_t index) { return static_cast<uint64_t>(op) << 56 | index; }
inline Op tag_op(uint64_t tag) { return static_cast<Op>(tag >> 56); }
inline uint32_t tag_index(uint64_t tag) { return static_cast<uint32_t>(tag); }

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
