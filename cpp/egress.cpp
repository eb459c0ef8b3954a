#include "egress.h"

#include <netinet/in.h>

#include <algorithm>
#include <cstring>

#include "tx_ring.h"
#include "uring_tag.h"

namespace mcr {
namespace {

void set_int(cmsghdr* c, int value) { std::memcpy(CMSG_DATA(c), &value, sizeof(int)); }

void put16(uint8_t* p, uint16_t host) {
  p[0] = static_cast<uint8_t>(host >> 8);
  p[1] = static_cast<uint8_t>(host);
}

uint32_t add_words(uint32_t sum, uint32_t value) { return sum + (value >> 16) + (value & 0xffff); }

uint16_t fold(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(sum);
}

uint16_t ipv4_checksum(const uint8_t* header) {
  uint32_t sum = 0;
  for (int i = 0; i < 20; i += 2) sum += static_cast<uint32_t>(header[i] << 8 | header[i + 1]);
  return static_cast<uint16_t>(~fold(sum));
}

// RFC 1624 incremental update of the UDP checksum for the changed pseudo-header
// addresses and destination port; the payload is not read again. 0 stays 0
// (no checksum), and a computed 0 is sent as 0xffff (RFC 768).
uint16_t udp_checksum(const ParsedPacket& in, uint32_t source, uint32_t destination, uint16_t port) {
  if (in.udp_checksum == 0) return 0;
  uint32_t sum = static_cast<uint16_t>(~ntohs(in.udp_checksum));
  sum = add_words(sum, ~ntohl(in.source));
  sum = add_words(sum, ~ntohl(in.destination));
  sum += static_cast<uint16_t>(~in.dst_port);
  sum = add_words(sum, ntohl(source));
  sum = add_words(sum, ntohl(destination));
  sum += port;
  uint16_t result = static_cast<uint16_t>(~fold(sum));
  return result == 0 ? 0xffff : result;
}

// Ethernet address of an IPv4 multicast group (RFC 1112 6.4): 01:00:5e and its low 23 bits.
void put_group_mac(uint8_t* at, uint32_t group) {
  uint32_t g = ntohl(group);
  const uint8_t mac[6] = {0x01, 0x00, 0x5e, static_cast<uint8_t>((g >> 16) & 0x7f), static_cast<uint8_t>(g >> 8),
                          static_cast<uint8_t>(g)};
  std::memcpy(at, mac, 6);
}

uint8_t out_ttl(const Output& out, const ParsedPacket& packet) {
  return static_cast<uint8_t>(out.spec.ttl < 0 ? packet.ttl - 1 : out.spec.ttl);
}

uint8_t out_tos(const Output& out, const ParsedPacket& packet) {
  return static_cast<uint8_t>(out.spec.dscp < 0 ? packet.tos : (out.spec.dscp << 2 | (packet.tos & 3)));
}

// A packet's priority at an output whose resolved priority is not 0: the
// fixed one, or the class of the DSCP it arrived with (DSCP >> 3: CS1-CS5
// give 1-5, AF4x 4, EF 5; CS6 and CS7 give 6, the most a worker may set).
uint32_t packet_priority(const Output& out, const ParsedPacket& packet) {
  if (out.priority != kDscpPriority) return static_cast<uint32_t>(out.priority);
  return std::min<uint32_t>(packet.tos >> 5, kMaxPriority);
}

// The folded pseudo-header sum (RFC 768) of a datagram of `udp_len` bytes,
// not complemented: what a UDP checksum field holds for the device (or the
// kernel) to finish over the UDP header and payload (CHECKSUM_PARTIAL).
uint16_t pseudo_header_sum(uint32_t source, uint32_t destination, uint16_t udp_len) {
  uint32_t sum = add_words(0, ntohl(source));
  sum = add_words(sum, ntohl(destination));
  return fold(sum + 17 + udp_len);
}

// virtio_net_hdr (legacy, host byte order): flags, gso_type, hdr_len,
// gso_size, csum_start, csum_offset.
constexpr uint8_t kNeedsChecksum = 1;  // VIRTIO_NET_HDR_F_NEEDS_CSUM
constexpr uint16_t kUdpChecksumOffset = 6;

// Header from the output's template (MACs, addresses, protocol, ports),
// then what changes per packet: the virtio header's hdr_len, TOS, lengths,
// TTL, checksums. hdr_len covering the whole frame makes the
// kernel copy a TX ring frame into one linear buffer instead of attaching
// ring pages, which veth (and any path into a local socket) would have to
// copy again into freshly allocated pages.
//
// UDP checksum: a full one that arrived is updated for the new addresses
// and port (RFC 1624, the payload is not read). A partial one (a sender on
// this host or a VM/container over veth, virtio or tap handed the frame
// over before any checksum was computed) cannot be updated: the frame asks
// for checksum offload instead (NEEDS_CSUM with the new pseudo-header sum),
// which the device completes, or the kernel in software before a device
// without it, the same as for the kernel's own UDP sends.
//
// A follow output's template has no destination: the packet's own group
// (and its MAC) and UDP port are written here.
void fill_header(uint8_t* h, const Output& out, const ParsedPacket& packet) {
  // A constant-size copy (the tagged size) is a few moves; the payload,
  // written right after the real header, overwrites what is past it.
  std::memcpy(h, out.frame, kMaxFrameHeader);
  uint16_t frame_len = static_cast<uint16_t>(out.header_len() - kVnetHeader + packet.payload_len);
  std::memcpy(h + 2, &frame_len, 2);  // host order: what a legacy virtio header holds
  uint8_t* ip = h + kVnetHeader + out.link_len;
  uint8_t* udp = ip + 20;
  uint32_t source = out.spec.keep_source ? packet.source : out.source;
  uint32_t destination = out.spec.destination;
  uint16_t port = out.spec.port;
  if (out.spec.keep_source) std::memcpy(ip + 12, &packet.source, 4);
  if (out.spec.follow) {
    destination = packet.destination;
    port = packet.dst_port;
    put_group_mac(h + kVnetHeader, destination);
    std::memcpy(ip + 16, &destination, 4);
    put16(udp + 2, port);
  }
  ip[1] = out_tos(out, packet);
  put16(ip + 2, static_cast<uint16_t>(28 + packet.payload_len));
  ip[8] = out_ttl(out, packet);
  put16(ip + 10, ipv4_checksum(ip));
  std::memcpy(udp, &packet.src_port, 2);
  uint16_t udp_len = static_cast<uint16_t>(8 + packet.payload_len);
  put16(udp + 4, udp_len);
  if (packet.partial_checksum) {
    h[0] = kNeedsChecksum;
    uint16_t start = static_cast<uint16_t>(out.link_len + 20);
    std::memcpy(h + 6, &start, 2);
    std::memcpy(h + 8, &kUdpChecksumOffset, 2);
    put16(udp + 6, pseudo_header_sum(source, destination, udp_len));
  } else {
    put16(udp + 6, udp_checksum(packet, source, destination, port));
  }
}

}  // namespace

// The template: a virtio_net_hdr (zero but for hdr_len, set per packet),
// Ethernet to the group's MAC, IPv4 with DF from the interface's address,
// UDP to the output port (for a follow output, fill_header writes the
// packet's group and port over these).
void Egress::use_packet_socket(Output& out, const wire::PacketEgress& link, int fd, TxRing* tx) {
  uint8_t* f = out.frame + kVnetHeader;
  put_group_mac(f, out.spec.destination);
  std::memcpy(f + 6, link.mac, 6);
  out.link_len = out.spec.vlan != 0 ? 18 : 14;
  if (out.spec.vlan != 0) {  // 802.1Q: TPID, then PCP 0, DEI 0 and the VLAN id
    f[12] = 0x81;
    f[13] = 0x00;
    put16(f + 14, out.spec.vlan);
  }
  f[out.link_len - 2] = 0x08;
  f[out.link_len - 1] = 0x00;
  uint8_t* ip = f + out.link_len;
  ip[0] = 0x45;
  ip[6] = 0x40;  // DF: the packet path never fragments; bigger payloads take the UDP socket
  ip[9] = 17;
  std::memcpy(ip + 12, &link.source, 4);
  std::memcpy(ip + 16, &out.spec.destination, 4);
  put16(ip + 22, out.spec.port);
  out.source = link.source;
  // Nothing beyond the MTU: with a virtio header the kernel does not check.
  // Nor beyond what 16 bits can say: the IP total length and the virtio
  // header's hdr_len (link header + IP packet, see fill_header) are 16-bit
  // fields, and an MTU near 65,535 (veth's largest) would let a payload
  // wrap hdr_len. (Today no input delivers one that big: RX ring frames end
  // at kMaxMtu; this keeps the frame lengths right by construction.)
  uint32_t fits = std::min<uint32_t>(link.mtu, 0xffffu - out.link_len);
  if (tx != nullptr) fits = std::min<uint32_t>(fits, tx->capacity() - out.header_len() + 28);
  out.max_payload = static_cast<uint16_t>(fits - 28);
  out.packet_fd = fd;
  out.tx = tx;
}

Egress::Egress(uint32_t slots, uint32_t payload_size) : slots_(slots), payloads_(slots, payload_size) {
  for (uint32_t i = slots; i > 0; --i) free_.push_back(i - 1);
  // The control messages' headers never change: IP_TTL, IP_TOS, then
  // SO_PRIORITY, sent only with a priority (see prepare_udp).
  for (Slot& s : slots_) {
    s.msg.msg_iov = s.iov;
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
    cmsghdr* priority = CMSG_NXTHDR(&s.msg, tos);
    priority->cmsg_level = SOL_SOCKET;
    priority->cmsg_type = SO_PRIORITY;
    priority->cmsg_len = CMSG_LEN(sizeof(int));
  }
}

uint16_t Egress::queue(io_uring* ring, Rule& rule, uint32_t rule_slot, const ParsedPacket& packet,
                       DropCounters& drops) {
  return queue_outputs<false>(ring, rule, rule_slot, packet, drops, nullptr);
}

uint16_t Egress::queue_traced(io_uring* ring, Rule& rule, uint32_t rule_slot, const ParsedPacket& packet,
                              DropCounters& drops, TraceRecord& record) {
  record.outputs = static_cast<uint16_t>(rule.outputs.size());
  return queue_outputs<true>(ring, rule, rule_slot, packet, drops, &record);
}

template <bool kTraced>
uint16_t Egress::queue_outputs(io_uring* ring, Rule& rule, uint32_t rule_slot, const ParsedPacket& packet,
                               DropCounters& drops, TraceRecord* record) {
  // What became of the packet at output i, for a traced packet only.
  auto note = [record](uint16_t i, TraceOutcome outcome) {
    if constexpr (kTraced) record->note(i, outcome);
  };
  uint16_t outputs = 0, readers = 0;
  uint32_t copy = BufferPool::kNone;  // made for the first output that needs a sendmsg
  for (uint16_t i = 0; i < rule.outputs.size(); ++i) {
    Output& out = rule.outputs[i];
    // RFC 1812 5.3.1: a router does not forward a packet whose TTL expires.
    // Nor register it (its TTL 1 would expire at the RP; Linux's pimreg vif
    // has the same threshold), though a Register carries the TTL as received.
    if (out.spec.ttl < 0 && packet.ttl <= 1) {
      note(i, TraceOutcome::SkippedTtl);
      continue;
    }
    if (out.spec.pim_register) {
      bool sent = queue_register(ring, out, {rule_slot, rule.generation, i, packet.payload_len}, packet, drops);
      note(i, sent ? TraceOutcome::SentRegister : TraceOutcome::SkippedNoSlot);
      outputs += sent;
      continue;
    }
    // A packet with a priority takes the queued TX ring, whose frames pass the
    // qdisc, or else the UDP socket: the packet path's own ring bypasses it.
    uint32_t priority = out.priority == 0 ? 0 : packet_priority(out, packet);
    bool fits = out.packet_fd >= 0 && packet.payload_len <= out.max_payload;
    TxRing* tx = priority == 0 ? out.tx : out.queued_tx;
    if (fits && tx != nullptr) {
      if (write_to_ring(ring, out, *tx, {rule_slot, rule.generation, i, packet.payload_len}, packet, priority)) {
        note(i, TraceOutcome::SentRing);
        ++outputs;
        continue;
      }
      count(events_, Event::TxRingFull);
    }
    // A packet socket with a TX ring sends only what its ring holds (sendmsg
    // ignores the message), so when that ring is full the UDP socket sends,
    // unless the output keeps the source, which only the packet path can do.
    bool as_frame = fits && out.tx == nullptr && priority == 0;
    if (out.needs_frame() && !as_frame) {
      count(drops, fits ? DropReason::SendFailed : DropReason::TooBig);
      ++out.errors;
      note(i, fits                  ? TraceOutcome::SkippedRingFull
              : out.packet_fd >= 0 ? TraceOutcome::SkippedMtu
                                   : TraceOutcome::SkippedError);
      continue;
    }
    if (copy == BufferPool::kNone) copy = payloads_.copy(packet.payload, packet.payload_len);
    io_uring_sqe* sqe = copy == BufferPool::kNone || free_.empty() ? nullptr : next_sqe(ring);
    if (sqe == nullptr) {
      count(drops, DropReason::NoSendSlot);
      note(i, TraceOutcome::SkippedNoSlot);
      continue;
    }
    uint32_t index = free_.back();
    free_.pop_back();
    Slot& s = slots_[index];
    uint8_t* payload = payloads_.data(copy);
    int fd = as_frame ? prepare_frame(s, out, packet, payload) : prepare_udp(s, out, packet, payload, priority);
    s.rule_slot = rule_slot;
    s.generation = rule.generation;
    s.output = i;
    s.payload = copy;
    s.payload_len = packet.payload_len;
    io_uring_prep_sendmsg(sqe, fd, &s.msg, 0);
    io_uring_sqe_set_data64(sqe, make_tag(Op::Send, index));
    note(i, TraceOutcome::SentSocket);
    ++outputs;
    ++readers;
  }
  if (copy != BufferPool::kNone) payloads_.hold(copy, readers);
  return outputs;
}

// One send hands the kernel every frame the ring holds. Without
// MSG_DONTWAIT: io_uring itself tries without blocking and, if the socket
// buffer is full, retries once it drains.
//
// Never with IOSQE_ASYNC. Without it io_uring issues the send inline, in
// this thread, inside the io_uring_enter that submits it (and a retry
// after a full socket buffer runs as task work, which DEFER_TASKRUN keeps
// inside our own io_uring_enter calls too). Two things rest on that:
// - the watermark flush in write_to_ring counts on the kernel having
//   taken the frames when io_uring_submit returns, so that the rest of the
//   pass finds them free. IOSQE_ASYNC hands the send to an io-wq worker
//   thread that runs it later: probed with 50 outputs on one veth (2,000
//   packets at 20 kpps), over half the frames then found the ring full and
//   took sendmsg (tx_ring_full), about 2 % were dropped (no_send_slot),
//   and 5 to 8 iou-wrk threads appeared; inline, none of that;
// - reclaim (after a refused flush) flips frames still marked for sending
//   back to free and moves our write position to the kernel's head, which
//   is sound only while no send reads the ring at the same moment. A
//   worker's tpacket_snd would run concurrently with it and could send a
//   frame reclaim has just counted as dropped, or one being rewritten.
// (Frame order is not the reason: tpacket_snd sends in ring order under
// the socket's pg_vec_lock, from whichever thread.)
void Egress::flush(io_uring* ring, TxRing& tx) {
  static msghdr empty{};  // a flush sends what the TX ring holds, nothing from here
  // next_sqe has submitted the queue once already if it was full; if it is
  // full still (the kernel refused the submission: EBUSY while completions
  // overflow, say), the frames stay marked and the ring pending, so the
  // next flush, at the latest next pass, sends them. Nothing is dropped.
  io_uring_sqe* sqe = next_sqe(ring);
  if (sqe == nullptr) {
    count(events_, Event::FlushDeferred);
    return;
  }
  io_uring_prep_sendmsg(sqe, tx.fd(), &empty, 0);
  io_uring_sqe_set_data64(sqe, make_tag(Op::Flush, tx.index(), tx.generation()));
  tx.flushed();
}

// SO_PRIORITY as a control message (Linux 6.14 and later) sets the one
// packet's priority; older kernels refuse the send (EINVAL), counted as a
// send failure of the output. (Without CAP_NET_ADMIN the kernel takes
// 0-6 only, hence kMaxPriority.)
int Egress::prepare_udp(Slot& s, Output& out, const ParsedPacket& packet, uint8_t* payload, uint32_t priority) {
  s.msg.msg_name = &out.address;
  if (out.spec.follow) {  // to the packet's own group and port
    s.address = {};
    s.address.sin_family = AF_INET;
    s.address.sin_port = htons(packet.dst_port);
    s.address.sin_addr.s_addr = packet.destination;
    s.msg.msg_name = &s.address;
  }
  s.msg.msg_namelen = sizeof(sockaddr_in);
  s.msg.msg_control = s.control;
  s.msg.msg_controllen = sizeof(s.control);  // all three, so that CMSG_NXTHDR finds the third
  s.msg.msg_iovlen = 1;
  s.iov[0] = {payload, packet.payload_len};
  cmsghdr* ttl = CMSG_FIRSTHDR(&s.msg);
  cmsghdr* tos = CMSG_NXTHDR(&s.msg, ttl);
  set_int(ttl, out_ttl(out, packet));
  set_int(tos, out_tos(out, packet));
  if (priority != 0)
    set_int(CMSG_NXTHDR(&s.msg, tos), static_cast<int>(priority));
  else
    s.msg.msg_controllen = 2 * CMSG_SPACE(sizeof(int));
  return out.fd;
}

// The frame goes out on the next flush of the ring, or at once when the
// ring fills faster than loop passes flush it (fan-out). Counted now, since
// no per-frame completion comes back (a failed flush takes the count back).
// A flush sends every frame with the socket's priority, so a frame of
// another priority first sends what the ring holds (inline, see flush) and
// then sets the socket's: one setsockopt per change of priority, none for
// a stream of one. (Frames a full socket buffer held back go out with the
// priority set next.)
bool Egress::write_to_ring(io_uring* ring, Output& out, TxRing& tx, const FrameOwner& owner,
                           const ParsedPacket& packet, uint32_t priority) {
  if (tx.priority() != priority) {
    if (tx.pending()) {
      flush(ring, tx);
      io_uring_submit(ring);
    }
    int value = static_cast<int>(priority);
    if (setsockopt(tx.fd(), SOL_SOCKET, SO_PRIORITY, &value, sizeof(value)) != 0) return false;
    tx.set_priority(priority);
  }
  uint8_t* data = tx.acquire();
  if (data == nullptr) return false;  // ring full
  fill_header(data, out, packet);
  std::memcpy(data + out.header_len(), packet.payload, packet.payload_len);
  tx.commit(out.header_len() + packet.payload_len, owner);
  ++out.packets;
  out.bytes += packet.payload_len;
  if (tx.above_watermark()) {
    flush(ring, tx);
    io_uring_submit(ring);  // the send runs now, inside this call, and frees the frames (see flush)
  }
  return true;
}

int Egress::prepare_frame(Slot& s, Output& out, const ParsedPacket& packet, uint8_t* payload) {
  fill_header(s.header, out, packet);
  s.msg.msg_name = nullptr;  // the packet socket is bound to the output interface
  s.msg.msg_namelen = 0;
  s.msg.msg_control = nullptr;
  s.msg.msg_controllen = 0;
  s.msg.msg_iovlen = 2;
  s.iov[0] = {s.header, out.header_len()};
  s.iov[1] = {payload, packet.payload_len};
  return out.packet_fd;
}

void Egress::reclaim(TxRing& ring, RuleTable& rules, DropCounters& drops, DropReason why) {
  ring.reclaim([&](const FrameOwner& owner) {
    count(drops, why);
    Rule& rule = rules.at(owner.rule_slot);
    if (!rule.live || rule.generation != owner.generation) return;
    Output& out = rule.outputs[owner.output];  // counted when written: take it back
    --out.packets;
    out.bytes -= owner.payload_len;
    ++out.errors;
  });
}

void Egress::complete(uint32_t slot, int result, RuleTable& rules, DropCounters& drops) {
  Slot& s = slots_[slot];
  free_.push_back(slot);
  payloads_.release(s.payload);
  Rule& rule = rules.at(s.rule_slot);
  bool same_rule = rule.live && rule.generation == s.generation;  // the rule may be gone
  if (result < 0) {
    count(drops, DropReason::SendFailed);
    if (same_rule) ++rule.outputs[s.output].errors;
  } else if (same_rule) {
    ++rule.outputs[s.output].packets;
    rule.outputs[s.output].bytes += s.payload_len;  // UDP payload, whichever path sent it
  }
}

}  // namespace mcr
