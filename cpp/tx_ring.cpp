#include "tx_ring.h"

#include <linux/if_packet.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>

#include "rule_table.h"
#include "rx_ring.h"

namespace mcr {

static_assert(TP_STATUS_SEND_REQUEST == 1 && TP_STATUS_AVAILABLE == 0, "tx_ring.h reclaim() relies on these");
static_assert(offsetof(tpacket2_hdr, tp_status) == 0, "tx_ring.h reclaim() relies on this");
namespace {

constexpr uint32_t kBlockSize = 1 << 16;
constexpr uint32_t kBlocks = 64;

tpacket2_hdr* header(uint8_t* frame) { return reinterpret_cast<tpacket2_hdr*>(frame); }

}  // namespace

// TPACKET_V2 without PACKET_TX_HAS_OFF: a frame's data starts kDataOffset in.
// Frames are sized for the MTU up to kMaxMtu, as the RX rings' are: no
// input delivers a bigger payload (and the sendmsg path's copies are no
// bigger either), and the power-of-two frame leaves room to spare. Sized
// for the MTU alone, an MTU above 65,476 (veth takes up to 65,535, dummy
// devices any) asked for frames larger than a block, which the kernel
// refuses (EINVAL): the socket then sent every frame with its own sendmsg.
std::string TxRing::attach(int fd, uint16_t mtu, uint32_t index, uint32_t generation) {
  index_ = index;
  generation_ = generation;
  frame_size_ = 2048;
  uint32_t largest = std::min<uint32_t>(mtu, kMaxMtu);
  while (frame_size_ < kDataOffset + kVnetHeader + 18u + largest) frame_size_ <<= 1;
  int loss = 1;  // skip, never stall on, a bad frame
  if (setsockopt(fd, SOL_PACKET, PACKET_LOSS, &loss, sizeof(loss)) < 0)
    return std::string("PACKET_LOSS: ") + strerror(errno);
  tpacket_req req{kBlockSize, kBlocks, frame_size_, kBlockSize / frame_size_ * kBlocks};
  if (std::string error = memory_.map(fd, PACKET_TX_RING, req); !error.empty()) return error;
  frames_ = req.tp_frame_nr;
  owners_.resize(frames_);
  fd_ = fd;
  return {};
}

uint8_t* TxRing::acquire() {
  uint32_t status = __atomic_load_n(&header(frame(next_))->tp_status, __ATOMIC_ACQUIRE);
  if (status != TP_STATUS_AVAILABLE && status != TP_STATUS_WRONG_FORMAT) return nullptr;
  return frame(next_) + kDataOffset;
}

void TxRing::commit(uint32_t len, const FrameOwner& owner) {
  owners_[next_] = owner;
  tpacket2_hdr* h = header(frame(next_));
  h->tp_len = len;
  __atomic_store_n(&h->tp_status, TP_STATUS_SEND_REQUEST, __ATOMIC_RELEASE);
  next_ = next_ + 1 == frames_ ? 0 : next_ + 1;
  ++unflushed_;
}

}  // namespace mcr
