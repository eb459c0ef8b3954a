#include "register_input.h"

#include <sys/socket.h>
#include <unistd.h>

#include "uring_tag.h"

namespace mcr {

RegisterInput::RegisterInput(int fd)
    : fd_(fd), buffers_(static_cast<size_t>(kSlots) * kBufferSize), armed_(kSlots, false) {}

RegisterInput::~RegisterInput() { close(fd_); }

bool RegisterInput::arm(io_uring* ring, uint32_t slot) {
  io_uring_sqe* sqe = next_sqe(ring);
  if (sqe == nullptr) return false;
  io_uring_prep_recv(sqe, fd_, buffer(slot), kBufferSize, MSG_TRUNC);
  io_uring_sqe_set_data64(sqe, make_tag(Op::RegisterRecv, slot));
  armed_[slot] = true;
  return true;
}

void RegisterInput::arm_idle(io_uring* ring) {
  for (uint32_t slot = 0; slot < kSlots; ++slot)
    if (!armed_[slot] && !arm(ring, slot)) return;
}

}  // namespace mcr
