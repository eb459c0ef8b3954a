// A PACKET_RX_RING (TPACKET_V2) on an input socket. The kernel copies every
// frame that passes the socket filter straight into memory shared with the
// engine and flips the frame's status; the engine parses frames in place,
// with no syscall, no completion and no buffer hand-off per packet, and gives
// each frame back by flipping its status again. This is also the receive
// buffer pool: a full ring is the kernel's counted drop (PACKET_STATISTICS),
// never a stall of the engine.
//
// A frame that a queued send still reads (unicast and oversized outputs are
// sent by sendmsg from the frame) is held until the last of those sends
// completes; the kernel then waits at that frame, as at a full ring.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace mcr {

class RxRing {
 public:
  struct Frame {
    uint32_t index;
    const uint8_t* data;  // the Ethernet header
    uint32_t len;         // bytes in the ring
    uint32_t wire_len;    // bytes on the wire (more than len: the frame did not fit)
  };

  RxRing() = default;
  ~RxRing();
  RxRing(const RxRing&) = delete;
  RxRing& operator=(const RxRing&) = delete;

  // Turns the packet socket `fd` into a ring of `frames` frames, each big
  // enough for the interface's `mtu` (at least 1500) plus two VLAN tags, and
  // discards what the socket queued before it had the ring.
  std::string attach(int fd, uint32_t frames, uint32_t mtu);

  // The next frame the kernel has filled, if any. Frames come in ring order;
  // each one returned must be passed to consume() before the next call.
  bool next(Frame& frame);
  // Done with the frame next() returned: it goes back to the kernel now, or,
  // when `holds` sends still read it, after that many release() calls.
  void consume(uint32_t index, uint16_t holds);
  void release(uint32_t index);

 private:
  uint8_t* slot(uint32_t index) const {
    return map_ + static_cast<size_t>(index / per_block_) * block_size_ +
           static_cast<size_t>(index % per_block_) * frame_size_;
  }
  void give_back(uint32_t index);

  uint8_t* map_ = nullptr;
  size_t map_len_ = 0;
  uint32_t frames_ = 0, frame_size_ = 0, block_size_ = 0, per_block_ = 0, next_ = 0;
  std::vector<uint16_t> holds_;
};

}  // namespace mcr
