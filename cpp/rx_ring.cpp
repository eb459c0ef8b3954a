#include "rx_ring.h"

#include <linux/if_packet.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace mcr {
namespace {

tpacket2_hdr* header(uint8_t* frame) { return reinterpret_cast<tpacket2_hdr*>(frame); }

}  // namespace

RxRing::~RxRing() {
  if (map_ != nullptr) munmap(map_, map_len_);
}

std::string RxRing::attach(int fd, uint32_t frames, uint32_t mtu) {
  // The frame sits this far into its slot (tpacket2_hdr, sockaddr_ll, alignment),
  // then up to two VLAN tags beyond the MTU; slots are whole cache lines.
  constexpr uint32_t kRoom = TPACKET_ALIGN(TPACKET2_HDRLEN + 16) + 8;
  frame_size_ = (kRoom + 14 + std::clamp(mtu, 1500u, kMaxMtu) + 63) & ~63u;
  per_block_ = kBlockSize / frame_size_;
  uint32_t blocks = (frames + per_block_ - 1) / per_block_;
  frames_ = blocks * per_block_;
  int version = TPACKET_V2;
  tpacket_req req{kBlockSize, blocks, frame_size_, frames_};
  if (setsockopt(fd, SOL_PACKET, PACKET_VERSION, &version, sizeof(version)) < 0 ||
      setsockopt(fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof(req)) < 0)
    return std::string("PACKET_RX_RING: ") + strerror(errno);
  map_len_ = static_cast<size_t>(kBlockSize) * blocks;
  void* map = mmap(nullptr, map_len_, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (map == MAP_FAILED) return std::string("mmap of the RX ring: ") + strerror(errno);
  map_ = static_cast<uint8_t*>(map);
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
  frame = {slot(next_) + h->tp_mac, h->tp_snaplen, h->tp_len};
  return true;
}

void RxRing::done() {
  __atomic_store_n(&header(slot(next_))->tp_status, static_cast<uint32_t>(TP_STATUS_KERNEL), __ATOMIC_RELEASE);
  next_ = next_ + 1 == frames_ ? 0 : next_ + 1;
}

}  // namespace mcr
