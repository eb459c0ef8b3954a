// A PACKET_RX_RING (TPACKET_V2) on an input socket. The kernel copies every
// frame that passes the socket filter straight into memory shared with the
// engine and flips the frame's status; the engine parses frames in place,
// with no syscall, no completion and no buffer hand-off per packet, and gives
// each frame back by flipping its status again before it reads the next one
// (nothing reads a frame after that: see buffer_pool.h). A full ring is the
// kernel's counted drop (PACKET_STATISTICS), never a stall of the engine.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "ring_memory.h"

namespace mcr {

// Ring frames are sized for the input's MTU, up to this; bigger frames are
// cut to fit and counted as truncated.
constexpr uint32_t kMaxMtu = 9216;

class RxRing {
 public:
  struct Frame {
    const uint8_t* data;  // the Ethernet header
    uint32_t len;         // bytes in the ring
    uint32_t wire_len;    // bytes on the wire (more than len: the frame did not fit)
    uint32_t status;      // tp_status: TP_STATUS_CSUMNOTREADY, TP_STATUS_VLAN_VALID, ...
    uint16_t vlan_tci;    // the 802.1Q tag the kernel stripped, if TP_STATUS_VLAN_VALID
    bool bare_ip;         // no link-layer header: the frame is the IP packet (tun, WireGuard, GRE)
  };

  // Turns the packet socket `fd` into a ring of `frames` frames, each big
  // enough for the interface's `mtu` (1500 to kMaxMtu) plus two VLAN tags,
  // and discards what the socket queued before it had the ring.
  std::string attach(int fd, uint32_t frames, uint32_t mtu);

  // The next frame the kernel has filled, if any; frames come in ring order.
  bool next(Frame& frame);
  // Gives the frame next() returned back to the kernel and moves past it.
  void done();

 private:
  uint8_t* slot(uint32_t index) const {
    return memory_.data() + static_cast<size_t>(index / per_block_) * kBlockSize +
           static_cast<size_t>(index % per_block_) * frame_size_;
  }

  RingMemory memory_;
  // Blocks are allocated by the kernel as 2^n pages: 64 KiB wastes at most
  // one frame's worth per block and is an allocation the kernel can usually find.
  static constexpr uint32_t kBlockSize = 1 << 16;

  uint32_t frames_ = 0, frame_size_ = 0, per_block_ = 0, next_ = 0;
};

}  // namespace mcr
