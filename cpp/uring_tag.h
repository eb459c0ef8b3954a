// The io_uring user_data tag: which kind of operation completed, and for
// which input, send slot or channel. One encode, two decodes.
#pragma once
#include <cstdint>

namespace mcr {

enum class Op : uint8_t { Command = 1, InputReady = 2, Send = 3, Flush = 4 };

inline uint64_t make_tag(Op op, uint32_t index) { return static_cast<uint64_t>(op) << 56 | index; }
inline Op tag_op(uint64_t tag) { return static_cast<Op>(tag >> 56); }
inline uint32_t tag_index(uint64_t tag) { return static_cast<uint32_t>(tag); }

}  // namespace mcr
