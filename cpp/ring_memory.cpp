#include "ring_memory.h"

#include <sys/mman.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace mcr {

RingMemory::~RingMemory() {
  if (data_ != nullptr) munmap(data_, len_);
}

std::string RingMemory::map(int fd, int option, const tpacket_req& request) {
  const char* name = option == PACKET_RX_RING ? "RX ring" : "TX ring";
  int version = TPACKET_V2;
  if (setsockopt(fd, SOL_PACKET, PACKET_VERSION, &version, sizeof(version)) < 0 ||
      setsockopt(fd, SOL_PACKET, option, &request, sizeof(request)) < 0)
    return std::string(name) + ": " + strerror(errno);
  size_t len = static_cast<size_t>(request.tp_block_size) * request.tp_block_nr;
  void* map = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (map == MAP_FAILED) return std::string("mmap of the ") + name + ": " + strerror(errno);
  data_ = static_cast<uint8_t*>(map);
  len_ = len;
  return {};
}

}  // namespace mcr
