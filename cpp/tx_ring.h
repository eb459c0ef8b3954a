// A PACKET_TX_RING (TPACKET_V2) on a packet egress socket. Frames are
// written straight into memory shared with the kernel, and one send per
// loop pass hands every written frame over, instead of one sendmsg per
// frame: the per-packet cost of a send becomes a header copy and a memcpy.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <linux/if_packet.h>
#include <sys/socket.h>

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
  // Turns the packet socket `fd` into a TX ring for frames up to mtu + 18
  // bytes (an 802.1Q tag included), the MTU taken up to kMaxMtu (see
  // tx_ring.cpp); its engine slot, `index` and `generation`, names it in
  // flush completions.
  std::string attach(int fd, uint16_t mtu, uint32_t index, uint32_t generation);

  // The data area of the next free frame, or nullptr while the kernel still
  // holds every frame (the caller then sends another way).
  uint8_t* acquire();
  // Marks the acquired frame, `len` bytes long, ready to send.
  void commit(uint32_t len, const FrameOwner& owner);
  // After a failed flush: takes back every frame the kernel did not send,
  // reports each one's owner, and starts writing again where the kernel
  // will next read (see reclaim below).
  template <typename F>
  void reclaim(F&& on_frame);

  bool pending() const { return unflushed_ > 0 || retry_; }
  // So many frames written since the last flush: flush now, before the
  // ring fills within one loop pass (fan-out writes many frames per packet).
  bool above_watermark() const { return unflushed_ >= frames_ / 4; }
  void flushed() {
    unflushed_ = 0;
    retry_ = false;
  }

  // What a flush the device refused for now (ENOBUFS) leads to: its frames
  // stay marked and are flushed again next pass, until a refusal in the
  // (kMaxRetries + 1)th pass in a row gives up on them.
  enum class Refusal {
    NextPass,  // the first refusal of this pass: one retry of the budget spent
    SamePass,  // this pass was already counted: no budget spent
    GiveUp,    // refused kMaxRetries passes in a row already: drop the frames
  };
  // The budget counts loop passes, not refused flushes: one pass can flush
  // a ring several times (at the watermark, then at its end), and with
  // fan-out every one of them is refused alike; counting those would spend
  // the whole budget within a single pass, before the device had any time
  // to drain. `pass` numbers the loop pass that saw the refusal.
  Refusal refused(uint64_t pass) {
    retry_ = true;
    if (pass == refused_pass_) return Refusal::SamePass;
    refused_pass_ = pass;
    if (++retries_ <= kMaxRetries) return Refusal::NextPass;
    retries_ = 0;
    return Refusal::GiveUp;
  }
  // A flush went through: the next refusal starts a new run of passes.
  void sent() {
    retries_ = 0;
    refused_pass_ = kNoPass;
  }
  int fd() const { return fd_; }
  // The socket's SO_PRIORITY, which every frame a flush sends takes (the
  // queued ring's, for outputs with a priority: see Egress::write_to_ring).
  uint32_t priority() const { return priority_; }
  void set_priority(uint32_t priority) { priority_ = priority; }
  uint32_t index() const { return index_; }
  uint32_t generation() const { return generation_; }
  // The largest frame one ring slot holds (the vnet header included).
  uint32_t capacity() const { return frame_size_ - kDataOffset; }

  static constexpr uint32_t kDataOffset = TPACKET2_HDRLEN - sizeof(sockaddr_ll);
  static constexpr uint32_t kMaxRetries = 4;  // loop passes

 private:
  uint8_t* frame(uint32_t index) const { return memory_.data() + static_cast<size_t>(index) * frame_size_; }

  int fd_ = -1;
  uint32_t index_ = 0, generation_ = 0;
  RingMemory memory_;
  static constexpr uint64_t kNoPass = UINT64_MAX;
  uint32_t frame_size_ = 0, frames_ = 0, next_ = 0, unflushed_ = 0, retries_ = 0, priority_ = 0;
  uint64_t refused_pass_ = kNoPass;
  bool retry_ = false;
  std::vector<FrameOwner> owners_;
};

template <typename F>
void TxRing::reclaim(F&& on_frame) {
  // The kernel reads frames in ring order from its own head and stops at
  // the first one not marked for sending; after a refused flush its head is
  // the oldest frame still marked. Writing on from our position instead
  // would leave a free frame at its head: it would send nothing until we
  // wrapped round to it, and then everything written since in one burst.
  uint32_t head = UINT32_MAX;
  for (uint32_t n = 0; n < frames_; ++n) {
    uint32_t i = next_ + n < frames_ ? next_ + n : next_ + n - frames_;  // oldest first
    uint32_t* status = reinterpret_cast<uint32_t*>(frame(i));  // tp_status leads tpacket2_hdr
    if (__atomic_load_n(status, __ATOMIC_ACQUIRE) != 1) continue;  // TP_STATUS_SEND_REQUEST
    if (head == UINT32_MAX) head = i;
    on_frame(owners_[i]);
    __atomic_store_n(status, 0u, __ATOMIC_RELEASE);  // TP_STATUS_AVAILABLE
  }
  if (head != UINT32_MAX) next_ = head;
  flushed();
  retries_ = 0;  // refused_pass_ stays: a later refusal in this pass spends nothing
}

}  // namespace mcr
