// The register input: Registers (RFC 7761 4.4) read from a raw IPPROTO_PIM
// socket the supervisor passes in, at the RP. A ring of kSlots receives,
// each with its own preallocated buffer, stays queued on the socket; a
// completion's buffer is parsed and relayed in the same dispatch, then its
// receive is queued again. A burst of Registers completes as one batch of
// completions, read in one pass. MSG_TRUNC makes the kernel report a
// Register's whole length, so one cut to fit the buffer is seen (and
// counted as truncated), never relayed half.
//
// The supervisor reads its own copy of every PIM message on its own raw
// socket (the kernel gives each raw socket one), so null-Registers and
// everything else the engine refuses here are only counted.
#pragma once
#include <liburing.h>

#include <cstdint>
#include <vector>

namespace mcr {

class RegisterInput {
 public:
  static constexpr uint32_t kSlots = 64;
  // An IPv4 header with options, the Register header and a jumbo inner packet.
  static constexpr uint32_t kBufferSize = 9216 + 60 + 8;

  explicit RegisterInput(int fd);
  ~RegisterInput();
  RegisterInput(const RegisterInput&) = delete;
  RegisterInput& operator=(const RegisterInput&) = delete;

  int fd() const { return fd_; }
  uint8_t* buffer(uint32_t slot) { return buffers_.data() + static_cast<size_t>(slot) * kBufferSize; }

  // Queues the receive of `slot` (all of them, at first); false if the
  // submission queue stayed full, and `slot` is queued on a later pass.
  bool arm(io_uring* ring, uint32_t slot);
  void arm_idle(io_uring* ring);  // every slot whose receive is not queued
  void completed(uint32_t slot) { armed_[slot] = false; }

  uint64_t registers = 0, bytes = 0;  // received, whatever became of them

 private:
  int fd_;
  std::vector<uint8_t> buffers_;
  std::vector<bool> armed_;
};

}  // namespace mcr
