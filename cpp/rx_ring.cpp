#include "rx_ring.h"

#include <linux/if_packet.h>
#include <sys/socket.h>

#include <algorithm>

namespace mcr {
namespace {

tpacket2_hdr* header(uint8_t* frame) { return reinterpret_cast<tpacket2_hdr*>(frame); }

}  // namespace

std::string RxRing::attach(int fd, uint32_t frames, uint32_t mtu) {
  // The frame sits this far into its slot (tpacket2_hdr, sockaddr_ll, alignment),
  // then up to two VLAN tags beyond the MTU; slots are whole cache lines.
  constexpr uint32_t kRoom = TPACKET_ALIGN(TPACKET2_HDRLEN + 16) + 8;
  frame_size_ = (kRoom + 14 + std::clamp(mtu, 1500u, kMaxMtu) + 63) & ~63u;
  per_block_ = kBlockSize / frame_size_;
  uint32_t blocks = (frames + per_block_ - 1) / per_block_;
  frames_ = blocks * per_block_;
  if (std::string error = memory_.map(fd, PACKET_RX_RING, {kBlockSize, blocks, frame_size_, frames_});
      !error.empty())
    return error;
  // Frames queued before the ring existed are never read through it, yet
  // poll() would report them for ever: drop any the kernel did not purge.
  char scratch[1];
  while (recv(fd, scratch, sizeof(scratch), MSG_DONTWAIT | MSG_TRUNC) >= 0) {
  }
  return {};
}

bool RxRing::next(Frame& frame) {
  tpacket2_hdr* h = header(slot(next_));
  if (!(__atomic_load_n(&h->tp_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER)) return false;
  frame = {slot(next_) + h->tp_mac, h->tp_snaplen, h->tp_len, h->tp_status, h->tp_vlan_tci, h->tp_net == h->tp_mac};
  return true;
}

void RxRing::done() {
  __atomic_store_n(&header(slot(next_))->tp_status, static_cast<uint32_t>(TP_STATUS_KERNEL), __ATOMIC_RELEASE);
  next_ = next_ + 1 == frames_ ? 0 : next_ + 1;
}

}  // namespace mcr
