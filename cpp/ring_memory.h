// The memory a TPACKET_V2 ring (PACKET_RX_RING or PACKET_TX_RING) shares
// with the kernel: set up on a packet socket, unmapped on destruction.
#pragma once
#include <linux/if_packet.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace mcr {

class RingMemory {
 public:
  RingMemory() = default;
  ~RingMemory();
  RingMemory(const RingMemory&) = delete;
  RingMemory& operator=(const RingMemory&) = delete;

  // Sets TPACKET_V2 and the ring `option` described by `request` on `fd`,
  // then maps the ring. Options the kernel takes only before a ring exists
  // (PACKET_LOSS) must be set before this.
  std::string map(int fd, int option, const tpacket_req& request);
  uint8_t* data() const { return data_; }

 private:
  uint8_t* data_ = nullptr;
  size_t len_ = 0;
};

}  // namespace mcr
