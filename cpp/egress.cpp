#include "egress.h"

#include <netinet/in.h>

#include <cstring>

#include "uring_tag.h"

namespace mcr {
namespace {

void set_int(cmsghdr* c, int value) { std::memcpy(CMSG_DATA(c), &value, sizeof(int)); }

}  // namespace

Egress::Egress(uint32_t slots) : slots_(slots) {
  for (uint32_t i = slots; i > 0; --i) free_.push_back(i - 1);
  // Each slot's message layout never changes: iovec, then IP_TTL and IP_TOS.
  for (Slot& s : slots_) {
    s.msg.msg_iov = &s.iov;
    s.msg.msg_iovlen = 1;
    s.msg.msg_namelen = sizeof(sockaddr_in);
    s.msg.msg_control = s.control;
    s.msg.msg_controllen = sizeof(s.control);
    cmsghdr* ttl = CMSG_FIRSTHDR(&s.msg);
    ttl->cmsg_level = IPPROTO_IP;
    ttl->cmsg_type = IP_TTL;
    ttl->cmsg_len = CMSG_LEN(sizeof(int));
    cmsghdr* tos = CMSG_NXTHDR(&s.msg, ttl);
    tos->cmsg_level = IPPROTO_IP;
    tos->cmsg_type = IP_TOS;
    tos->cmsg_len = CMSG_LEN(sizeof(int));
  }
}

io_uring_sqe* Egress::get_sqe(io_uring* ring) {
  io_uring_sqe* sqe = io_uring_get_sqe(ring);
  if (sqe == nullptr) {
    io_uring_submit(ring);  // SQ full: flush this batch and carry on
    sqe = io_uring_get_sqe(ring);
  }
  return sqe;
}

uint16_t Egress::queue(io_uring* ring, Rule& rule, uint32_t rule_slot, const ParsedPacket& packet, uint16_t bid,
                       DropCounters& drops) {
  uint16_t queued = 0;
  for (uint16_t i = 0; i < rule.outputs.size(); ++i) {
    Output& out = rule.outputs[i];
    // RFC 1812 5.3.1: a router does not forward a packet whose TTL expires.
    if (out.spec.ttl < 0 && packet.ttl <= 1) continue;
    if (free_.empty()) {
      count(drops, DropReason::NoSendSlot);
      continue;
    }
    io_uring_sqe* sqe = get_sqe(ring);
    if (sqe == nullptr) {
      count(drops, DropReason::NoSendSlot);
      continue;
    }
    uint32_t index = free_.back();
    free_.pop_back();
    Slot& s = slots_[index];
    s.msg.msg_name = &out.address;
    s.iov.iov_base = const_cast<uint8_t*>(packet.payload);
    s.iov.iov_len = packet.payload_len;
    cmsghdr* ttl = CMSG_FIRSTHDR(&s.msg);
    set_int(ttl, out.spec.ttl < 0 ? packet.ttl - 1 : out.spec.ttl);
    set_int(CMSG_NXTHDR(&s.msg, ttl), out.spec.dscp < 0 ? packet.tos : (out.spec.dscp << 2 | (packet.tos & 3)));
    s.rule_slot = rule_slot;
    s.generation = rule.generation;
    s.output = i;
    s.bid = bid;
    io_uring_prep_sendmsg(sqe, out.fd, &s.msg, 0);
    io_uring_sqe_set_data64(sqe, make_tag(Op::Send, index));
    ++queued;
  }
  return queued;
}

uint16_t Egress::complete(uint32_t slot, int result, RuleTable& rules, DropCounters& drops) {
  Slot& s = slots_[slot];
  free_.push_back(slot);
  Rule& rule = rules.at(s.rule_slot);
  bool same_rule = rule.live && rule.generation == s.generation;  // the rule may be gone
  if (result < 0) {
    count(drops, DropReason::SendFailed);
    if (same_rule) ++rule.outputs[s.output].errors;
  } else if (same_rule) {
    ++rule.outputs[s.output].packets;
    rule.outputs[s.output].bytes += static_cast<uint64_t>(result);
  }
  return s.bid;
}

}  // namespace mcr
