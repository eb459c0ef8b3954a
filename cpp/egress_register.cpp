// Egress's register outputs (see egress.h): the whole IPv4 packet behind
// the Register header, to the RP on the raw PIM socket.
#include <netinet/in.h>

#include <cstring>

#include "egress.h"
#include "pim_register.h"
#include "uring_tag.h"

namespace mcr {

// The packet as received goes to the RP (its TTL unchanged, as Linux's
// pimreg does), but a partial UDP checksum (a sender on this host, or over
// veth) would reach the RP's receivers as a wrong one: it is finished in the
// copy. The field holds the pseudo-header sum, so summing the datagram as it
// stands and complementing gives the full checksum (RFC 1071).
int Egress::prepare_register(Slot& s, Output& out, const ParsedPacket& packet, uint8_t* copy) {
  if (packet.partial_checksum) {
    uint8_t* udp = copy + (packet.payload - 8 - packet.ip);
    uint16_t udp_len = static_cast<uint16_t>(8 + packet.payload_len);
    uint16_t sum = static_cast<uint16_t>(~ones_sum(udp, udp_len));
    sum = sum == 0 ? 0xffff : sum;  // 0 would mean "no checksum" (RFC 768)
    udp[6] = static_cast<uint8_t>(sum >> 8);
    udp[7] = static_cast<uint8_t>(sum);
  }
  s.address = out.address;
  s.msg.msg_name = &s.address;
  s.msg.msg_namelen = sizeof(sockaddr_in);
  s.msg.msg_control = nullptr;
  s.msg.msg_controllen = 0;
  if (out.spec.register_source != 0) {  // IP_PKTINFO's spec_dst is a raw socket's source address
    s.msg.msg_control = s.pktinfo;
    s.msg.msg_controllen = sizeof(s.pktinfo);
    cmsghdr* c = CMSG_FIRSTHDR(&s.msg);
    c->cmsg_level = IPPROTO_IP;
    c->cmsg_type = IP_PKTINFO;
    c->cmsg_len = CMSG_LEN(sizeof(in_pktinfo));
    in_pktinfo info{};
    info.ipi_spec_dst.s_addr = out.spec.register_source;
    std::memcpy(CMSG_DATA(c), &info, sizeof(info));
  }
  s.msg.msg_iovlen = 2;
  s.iov[0] = {const_cast<uint8_t*>(kRegisterHeaderBytes), kRegisterHeader};
  s.iov[1] = {copy, packet.ip_len};
  return out.fd;
}

// One copy of the whole IP packet per register output (a rule has one RP).
bool Egress::queue_register(io_uring* ring, Output& out, const FrameOwner& owner, const ParsedPacket& packet,
                            DropCounters& drops) {
  uint32_t copy = free_.empty() ? BufferPool::kNone : payloads_.copy(packet.ip, packet.ip_len);
  io_uring_sqe* sqe = copy == BufferPool::kNone ? nullptr : next_sqe(ring);
  if (sqe == nullptr) {
    if (copy != BufferPool::kNone) payloads_.hold(copy, 0);
    count(drops, DropReason::NoSendSlot);
    return false;
  }
  uint32_t index = free_.back();
  free_.pop_back();
  Slot& s = slots_[index];
  int fd = prepare_register(s, out, packet, payloads_.data(copy));
  s.rule_slot = owner.rule_slot;
  s.generation = owner.generation;
  s.output = owner.output;
  s.payload = copy;
  s.payload_len = packet.payload_len;
  payloads_.hold(copy, 1);
  io_uring_prep_sendmsg(sqe, fd, &s.msg, 0);
  io_uring_sqe_set_data64(sqe, make_tag(Op::Send, index));
  return true;
}

}  // namespace mcr
