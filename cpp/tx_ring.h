// A PACKET_TX_RING (TPACKET_V2) on a packet egress socket. Frames are
// written straight into memory shared with the kernel, and one send per
// loop pass hands every written frame over, instead of one sendmsg per
// frame: the per-packet cost of a send becomes a header copy and a memcpy.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "ring_memory.h"

namespace mcr {

// Which output a frame in the ring was written for, to account it if the
// kernel refuses the frame.
struct FrameOwner {
  uint32_t rule_slot = 0, generation = 0;
  uint16_t output = 0, payload_len = 0;
};

class TxRing {
 public:
  // Turns the packet socket `fd` into a TX ring for frames up to mtu + 14 bytes.
  std::string attach(int fd, uint16_t mtu);

  // The data area of the next free frame, or nullptr while the kernel still
  // holds every frame (the caller then sends another way).
  uint8_t* acquire();
  // Marks the acquired frame, `len` bytes long, ready to send.
  void commit(uint32_t len, const FrameOwner& owner);
  // After a failed flush: takes back every frame the kernel did not send and
  // reports each one's owner.
  template <typename F>
  void reclaim(F&& on_frame);
  bool pending() const { return pending_; }
  void flushed() { pending_ = false; }
  void retry() { pending_ = true; }
  int fd() const { return fd_; }

 private:
  uint8_t* frame(uint32_t index) const { return memory_.data() + static_cast<size_t>(index) * frame_size_; }

  int fd_ = -1;
  RingMemory memory_;
  uint32_t frame_size_ = 0, frames_ = 0, next_ = 0;
  bool pending_ = false;
  std::vector<FrameOwner> owners_;
};

template <typename F>
void TxRing::reclaim(F&& on_frame) {
  for (uint32_t i = 0; i < frames_; ++i) {
    uint32_t* status = reinterpret_cast<uint32_t*>(frame(i));  // tp_status leads tpacket2_hdr
    if (__atomic_load_n(status, __ATOMIC_ACQUIRE) != 1) continue;  // TP_STATUS_SEND_REQUEST
    on_frame(owners_[i]);
    __atomic_store_n(status, 0u, __ATOMIC_RELEASE);  // TP_STATUS_AVAILABLE
  }
}

}  // namespace mcr
