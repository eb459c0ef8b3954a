// Standalone tests of the engine's ring side, without Python: io_uring tags
// and the reuse of interface slots, the TX ring's retry budget, and what
// egress does at its limits. Built with ASan/UBSan by
// `make unit-tests`. A check that needs a kernel feature (io_uring, a packet
// socket) probes for it once and is skipped without it; the run then exits
// 77, which ctest reports as skipped.
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <liburing.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <vector>

#include "egress.h"
#include "rx_ring.h"
#include "rule_table.h"
#include "tx_ring.h"
#include "uring_tag.h"

using namespace mcr;

#include "check.h"

static int skipped = 0;

static void skip(const char* what) {
  std::fprintf(stderr, "skipped: %s\n", what);
  ++skipped;
}

// --- tags and interface slots ----------------------------------------------

struct FakeSlot {  // what free_slot and release_slot need of Engine::Input
  int fd = -1;
  uint32_t generation = 0;
  uint32_t ifindex = 0;
};

static void test_tags_and_slots() {
  uint64_t tag = make_tag(Op::Flush, 7, 0x123456);
  CHECK(tag_op(tag) == Op::Flush && tag_index(tag) == 7 && tag_generation(tag) == 0x123456);
  CHECK(tag_generation(make_tag(Op::InputReady, UINT32_MAX, 0x1000001)) == 1);  // 24 bits, never the op's
  CHECK(tag_op(make_tag(Op::InputReady, UINT32_MAX, UINT32_MAX)) == Op::InputReady);

  // Two interfaces, one of them removed and added again 10 000 times (a
  // flapping link): the table keeps two slots, each comeback takes the same
  // slot under a new generation, and the other interface is never disturbed.
  std::vector<FakeSlot> slots;
  uint32_t steady = free_slot(slots);
  slots[steady] = {10, 0, 2};
  uint32_t last = UINT32_MAX;
  for (int flap = 0; flap < 10000; ++flap) {
    uint32_t slot = free_slot(slots);
    CHECK(slot != steady);
    slots[slot].fd = 11;
    slots[slot].ifindex = 3;
    uint64_t old_tag = make_tag(Op::InputReady, slot, slots[slot].generation);
    release_slot(slots[slot]);
    CHECK(slots[slot].fd == -1 && slots[slot].ifindex == 0);
    // A completion still in flight for the removed occupant is stale.
    CHECK(tag_generation(old_tag) != slots[slot].generation);
    CHECK(last == UINT32_MAX || slot == last);
    last = slot;
    if (failures) return;
  }
  CHECK(slots.size() == 2);
  CHECK(slots[steady].fd == 10 && slots[steady].ifindex == 2 && slots[steady].generation == 0);
  // Generations wrap within the tag's 24 bits.
  FakeSlot wrap{5, kGenerationMask, 1};
  release_slot(wrap);
  CHECK(wrap.generation == 0);
}

// --- the TX ring's retry budget ----------------------------------------------

// One pass may flush a ring several times (watermark flushes, then its own)
// and see every one refused: that is one pass of the budget, not several.
static void test_retry_budget_counts_passes() {
  using R = TxRing::Refusal;
  TxRing ring;  // the budget needs no ring memory
  CHECK(ring.refused(1) == R::NextPass);
  for (int flush = 0; flush < 20; ++flush) CHECK(ring.refused(1) == R::SamePass);
  CHECK(ring.pending());  // the refused frames go with the next pass's flush
  for (uint64_t pass = 2; pass <= TxRing::kMaxRetries; ++pass) {
    CHECK(ring.refused(pass) == R::NextPass);
    CHECK(ring.refused(pass) == R::SamePass);
  }
  CHECK(ring.refused(TxRing::kMaxRetries + 1) == R::GiveUp);

  // A flush that goes through ends the run: the budget is whole again.
  TxRing other;
  for (uint64_t pass = 1; pass <= TxRing::kMaxRetries; ++pass) CHECK(other.refused(pass) == R::NextPass);
  other.sent();
  for (uint64_t pass = 10; pass < 10 + TxRing::kMaxRetries; ++pass) CHECK(other.refused(pass) == R::NextPass);
  CHECK(other.refused(10 + TxRing::kMaxRetries) == R::GiveUp);
}

// --- egress at its limits ----------------------------------------------------

// io_uring_get_sqe returns NULL while the submission queue is full, and
// next_sqe's one submit does not always empty it: a disabled ring
// (IORING_SETUP_R_DISABLED) refuses every submission (EBADFD), standing in
// for a kernel that refuses one (EBUSY while completions overflow). A TX
// ring flush then keeps its frames for the next flush; it used to write
// through the NULL SQE.
static void test_flush_with_full_submission_queue() {
  io_uring ring;
  io_uring_params params{};
  params.flags = IORING_SETUP_R_DISABLED;
  if (io_uring_queue_init_params(4, &ring, &params) < 0) {
    skip("a flush with the submission queue full (no io_uring with IORING_SETUP_R_DISABLED)");
    return;
  }
  unsigned queued = 0;
  while (io_uring_sqe* sqe = io_uring_get_sqe(&ring)) {
    io_uring_prep_nop(sqe);
    ++queued;
  }
  Egress egress(4, 2048);
  TxRing tx;  // never attached: the flush below has no frames to send, fd -1
  tx.refused(1);  // its frames wait for a flush
  egress.flush(&ring, tx);
  CHECK(tx.pending());  // still waiting, not lost
  CHECK(egress.events()[static_cast<size_t>(Event::FlushDeferred)] == 1);

  // Once the kernel takes submissions again the next flush is queued.
  // (liburing 2.3 declares io_uring_enable_rings but does not export it.)
  CHECK(syscall(__NR_io_uring_register, ring.ring_fd, IORING_REGISTER_ENABLE_RINGS, nullptr, 0) == 0);
  egress.flush(&ring, tx);
  CHECK(!tx.pending());
  CHECK(egress.events()[static_cast<size_t>(Event::FlushDeferred)] == 1);
  CHECK(io_uring_submit_and_wait(&ring, queued + 1) >= 0);  // next_sqe submitted the nops already
  unsigned head, nops = 0, flushes = 0;
  io_uring_cqe* cqe;
  io_uring_for_each_cqe(&ring, head, cqe) {
    nops += cqe->user_data == 0;
    flushes += tag_op(cqe->user_data) == Op::Flush;
  }
  CHECK(nops == queued && flushes == 1);
  io_uring_queue_exit(&ring);
}

// An output on an interface whose MTU is as large as 16 bits go (veth's
// largest): the largest payload it takes on the packet path leaves with a
// virtio hdr_len, IP total length and UDP length that are all right. A
// datagram socketpair stands in for the packet socket (a TX-ring-less one,
// which sendmsg writes header and payload to). Before the clamp the
// payload limit was MTU - 28, and hdr_len (link header + IP packet) wrapped.
static void test_frame_lengths_at_the_largest_mtu() {
  io_uring ring;
  if (io_uring_queue_init(8, &ring, 0) < 0) {
    skip("frame lengths at the largest MTU (no io_uring)");
    return;
  }
  int pair[2];
  CHECK(socketpair(AF_UNIX, SOCK_DGRAM, 0, pair) == 0);
  int big = 1 << 20;
  setsockopt(pair[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
  setsockopt(pair[1], SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
  Egress egress(4, 0xffff);
  RuleTable table(2);
  std::vector<uint8_t> payload(0xffff, 0x5a), received(0x20000);
  for (uint16_t vlan : {0, 10}) {
    Output out;
    out.spec = {htonl(0xef020202), 6000, 4, -1, -1, false, vlan};
    out.fd = pair[0];
    wire::PacketEgress link{4, htonl(0x0a000001), 0xffff, {2, 0, 0, 0, 0, 1}};
    Egress::use_packet_socket(out, link, pair[0], nullptr);
    CHECK(out.header_len() - kVnetHeader + out.max_payload <= 0xffff);
    CHECK(out.max_payload == 0xffff - out.link_len - 28);  // clamped no more than it must be
    Rule added;
    added.id = 1 + vlan;
    added.key = {1, htonl(0xef010101), 0, 5000, vlan};
    added.outputs.push_back(out);
    uint32_t slot;
    CHECK(table.add(std::move(added), slot).empty());
    Rule& rule = table.at(slot);
    ParsedPacket packet{htonl(0x0a000002), htonl(0xef010101), htons(4000), 5000, 0, 64, 0,
                        payload.data(), out.max_payload, 0, false};
    DropCounters drops{};
    CHECK(egress.queue(&ring, rule, slot, packet, drops) == 1);
    io_uring_cqe* cqe;
    CHECK(io_uring_submit_and_wait(&ring, 1) >= 0 && io_uring_wait_cqe(&ring, &cqe) == 0);
    size_t frame = out.header_len() + out.max_payload;
    CHECK(tag_op(cqe->user_data) == Op::Send && cqe->res == static_cast<int>(frame));
    egress.complete(tag_index(cqe->user_data), cqe->res, table, drops);
    io_uring_cqe_seen(&ring, cqe);
    CHECK(rule.outputs[0].packets == 1 && rule.outputs[0].errors == 0);
    CHECK(recv(pair[1], received.data(), received.size(), 0) == static_cast<ssize_t>(frame));
    uint16_t hdr_len;
    std::memcpy(&hdr_len, received.data() + 2, 2);  // host order, as a legacy virtio header holds it
    const uint8_t* ip = received.data() + kVnetHeader + out.link_len;
    CHECK(hdr_len == frame - kVnetHeader);
    CHECK(static_cast<size_t>(ip[2] << 8 | ip[3]) == frame - kVnetHeader - out.link_len);  // IP total length
    CHECK((ip[24] << 8 | ip[25]) == out.max_payload + 8);  // UDP length
  }
  close(pair[0]);
  close(pair[1]);
  io_uring_queue_exit(&ring);
}

// The same MTU on a TX ring: its frames stay sized for kMaxMtu, the largest
// payload an input delivers. Sized for the MTU alone they were 128 KiB,
// beyond a ring block, and the kernel refused the ring (EINVAL). The packet
// socket is bound to no interface (protocol 0: it receives nothing).
static void test_tx_ring_at_the_largest_mtu() {
  int fd = socket(AF_PACKET, SOCK_RAW, 0);
  if (fd < 0) {
    skip("a TX ring at the largest MTU (no packet socket without CAP_NET_RAW)");
    return;
  }
  {
    TxRing tx;
    std::string error = tx.attach(fd, 0xffff, 3, 1);
    CHECK(error.empty());
    if (!error.empty()) std::fprintf(stderr, "attach: %s\n", error.c_str());
    CHECK(tx.capacity() >= kVnetHeader + 18 + kMaxMtu && tx.capacity() < 2 * (kVnetHeader + 18 + kMaxMtu));
    Output out;
    out.spec = {htonl(0xef020202), 6000, 4, -1, -1, false, 10};
    wire::PacketEgress link{4, htonl(0x0a000001), 0xffff, {2, 0, 0, 0, 0, 1}};
    Egress::use_packet_socket(out, link, fd, &tx);
    CHECK(out.max_payload >= kMaxMtu && out.header_len() + out.max_payload <= tx.capacity());
  }
  close(fd);
}

// --- follow outputs: the packet's own group, port and group MAC --------------

static uint32_t sum16(const uint8_t* p, size_t len, uint32_t sum = 0) {
  for (size_t i = 0; i + 1 < len; i += 2) sum += static_cast<uint32_t>(p[i] << 8 | p[i + 1]);
  if (len & 1) sum += static_cast<uint32_t>(p[len - 1] << 8);
  return sum;
}

static uint16_t fold16(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(sum);
}

// The one's complement sum of the pseudo-header (RFC 768), not complemented.
static uint32_t pseudo_sum(uint32_t source, uint32_t destination, uint16_t udp_len) {
  uint8_t pseudo[12]{};
  std::memcpy(pseudo, &source, 4);
  std::memcpy(pseudo + 4, &destination, 4);
  pseudo[9] = 17;
  pseudo[10] = static_cast<uint8_t>(udp_len >> 8);
  pseudo[11] = static_cast<uint8_t>(udp_len);
  return sum16(pseudo, 12);
}

// A packet as the parser leaves it, with a full UDP checksum (or a partial one).
struct TestPacket {
  std::vector<uint8_t> payload;
  ParsedPacket parsed{};
  TestPacket(uint32_t source, uint32_t group, uint16_t port, size_t size, bool partial) : payload(size) {
    for (size_t i = 0; i < size; ++i) payload[i] = static_cast<uint8_t>(i * 7 + 3);
    uint16_t udp_len = static_cast<uint16_t>(8 + size);
    uint8_t udp[8] = {0x0f, 0xa0, static_cast<uint8_t>(port >> 8), static_cast<uint8_t>(port),
                      static_cast<uint8_t>(udp_len >> 8), static_cast<uint8_t>(udp_len), 0, 0};
    uint16_t sum = partial ? fold16(pseudo_sum(source, group, udp_len))
                           : static_cast<uint16_t>(~fold16(sum16(payload.data(), size, sum16(udp, 8, pseudo_sum(source, group, udp_len)))));
    parsed = {source, group, htons(4000), port, htons(sum), 64, 0x10, payload.data(), static_cast<uint16_t>(size), 0, partial};
  }
};

// The frames a follow output writes: each packet's group (and the group's
// MAC) and UDP port, whatever two packets in a row were sent to; TTL minus
// one; the interface's source unless keep-source; checksums right (a full
// one updated, a partial one left for offload with the right pseudo-header).
// A datagram socketpair stands in for the packet socket, as above.
static void test_follow_output_frames() {
  io_uring ring;
  if (io_uring_queue_init(8, &ring, 0) < 0) {
    skip("follow output frames (no io_uring)");
    return;
  }
  int pair[2];
  CHECK(socketpair(AF_UNIX, SOCK_DGRAM, 0, pair) == 0);
  Egress egress(8, 2048);
  RuleTable table(8);
  std::vector<uint8_t> frame(4096);
  const uint32_t link_source = htonl(0x0a000001), sender = htonl(0x0a000002);
  struct Case {
    uint16_t vlan;
    bool keep_source, partial;
  };
  uint32_t id = 0;
  for (Case c : {Case{0, false, false}, Case{10, true, false}, Case{0, false, true}}) {
    Output out;
    out.spec = {0, 0, 4, -1, -1, c.keep_source, c.vlan, true};
    out.fd = pair[0];
    wire::PacketEgress link{4, link_source, 1500, {2, 0, 0, 0, 0, 1}};
    Egress::use_packet_socket(out, link, pair[0], nullptr);
    Rule added;
    added.id = ++id;
    added.key = {id, htonl(0xef010000), 0, 0, 0, 16};  // 239.1.0.0/16, any port (one input per case)
    added.outputs.push_back(out);
    uint32_t slot;
    CHECK(table.add(std::move(added), slot).empty());
    Rule& rule = table.at(slot);
    for (auto [group, port] : {std::pair{htonl(0xef010709), uint16_t{5123}}, {htonl(0xef01fe02), uint16_t{6000}}}) {
      TestPacket packet(sender, group, port, 101, c.partial);
      DropCounters drops{};
      CHECK(egress.queue(&ring, rule, slot, packet.parsed, drops) == 1);
      io_uring_cqe* cqe;
      CHECK(io_uring_submit_and_wait(&ring, 1) >= 0 && io_uring_wait_cqe(&ring, &cqe) == 0);
      egress.complete(tag_index(cqe->user_data), cqe->res, table, drops);
      io_uring_cqe_seen(&ring, cqe);
      ssize_t n = recv(pair[1], frame.data(), frame.size(), 0);
      CHECK(n == static_cast<ssize_t>(out.header_len() + 101));
      const uint8_t* eth = frame.data() + kVnetHeader;
      uint32_t g = ntohl(group);
      const uint8_t mac[6] = {0x01, 0x00, 0x5e, static_cast<uint8_t>((g >> 16) & 0x7f), static_cast<uint8_t>(g >> 8),
                              static_cast<uint8_t>(g)};
      CHECK(std::memcmp(eth, mac, 6) == 0);
      CHECK(c.vlan == 0 || (eth[12] == 0x81 && eth[15] == c.vlan));
      const uint8_t* ip = eth + out.link_len;
      const uint8_t* udp = ip + 20;
      uint32_t src, dst;
      std::memcpy(&src, ip + 12, 4);
      std::memcpy(&dst, ip + 16, 4);
      CHECK(dst == group && src == (c.keep_source ? sender : link_source));
      CHECK((udp[2] << 8 | udp[3]) == port && (udp[0] << 8 | udp[1]) == 4000);
      CHECK(ip[8] == 63 && ip[1] == 0x10);
      CHECK(fold16(sum16(ip, 20)) == 0xffff);  // IPv4 header checksum
      uint16_t udp_len = static_cast<uint16_t>(udp[4] << 8 | udp[5]);
      CHECK(udp_len == 8 + 101 && std::memcmp(udp + 8, packet.payload.data(), 101) == 0);
      if (c.partial) {  // offload: NEEDS_CSUM, the pseudo-header sum for the packet's own group
        CHECK(frame[0] == 1);
        CHECK((udp[6] << 8 | udp[7]) == fold16(pseudo_sum(src, dst, udp_len)));
      } else {
        CHECK(frame[0] == 0);
        CHECK(fold16(sum16(udp, udp_len, pseudo_sum(src, dst, udp_len))) == 0xffff);
      }
    }
    CHECK(rule.outputs[0].packets == 2 && rule.outputs[0].errors == 0);
  }
  close(pair[0]);
  close(pair[1]);
  io_uring_queue_exit(&ring);
}

// A follow output that takes its UDP socket (no packet path: a payload
// beyond the MTU, a full TX ring) sends to the packet's own destination and
// port. Run in a child in a network namespace of its own, on its loopback
// (the one destination a UDP socket reaches there), so nothing leaves the test.
static int follow_by_udp_socket_in_child() {
  if (unshare(CLONE_NEWNET) != 0) return 77;
  int control = socket(AF_INET, SOCK_DGRAM, 0);
  ifreq lo{};
  std::strcpy(lo.ifr_name, "lo");
  if (ioctl(control, SIOCGIFFLAGS, &lo) != 0) return 2;
  lo.ifr_flags |= IFF_UP;
  if (ioctl(control, SIOCSIFFLAGS, &lo) != 0) return 3;
  io_uring ring;
  if (io_uring_queue_init(8, &ring, 0) < 0) return 77;
  int receiver = socket(AF_INET, SOCK_DGRAM, 0), sender = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in at{};
  at.sin_family = AF_INET;
  at.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(at);
  if (bind(receiver, reinterpret_cast<sockaddr*>(&at), sizeof(at)) != 0 ||
      getsockname(receiver, reinterpret_cast<sockaddr*>(&at), &len) != 0)
    return 4;
  Egress egress(4, 2048);
  RuleTable table(2);
  Output out;
  out.spec = {htonl(0xef090909), 9, 1, -1, -1, false, 0, true};  // destination and port unused
  out.address.sin_family = AF_INET;
  out.address.sin_addr.s_addr = out.spec.destination;
  out.address.sin_port = htons(9);
  out.fd = sender;
  Rule added;
  added.id = 1;
  added.key = {1, 0, 0, 0};
  added.outputs.push_back(out);
  uint32_t slot;
  if (!table.add(std::move(added), slot).empty()) return 5;
  TestPacket packet(htonl(0x0a000002), at.sin_addr.s_addr, ntohs(at.sin_port), 77, false);
  DropCounters drops{};
  if (egress.queue(&ring, table.at(slot), slot, packet.parsed, drops) != 1) return 6;
  io_uring_cqe* cqe;
  if (io_uring_submit_and_wait(&ring, 1) < 0 || io_uring_wait_cqe(&ring, &cqe) != 0 || cqe->res != 77) return 7;
  uint8_t got[256];
  timeval wait{2, 0};
  setsockopt(receiver, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof(wait));
  if (recv(receiver, got, sizeof(got), 0) != 77 || std::memcmp(got, packet.payload.data(), 77) != 0) return 8;
  return 0;
}

static void test_follow_output_by_udp_socket() {
  pid_t child = fork();
  if (child == 0) _exit(follow_by_udp_socket_in_child());
  int status = 0;
  CHECK(child > 0 && waitpid(child, &status, 0) == child && WIFEXITED(status));
  if (WEXITSTATUS(status) == 77) {
    skip("a follow output by its UDP socket (no network namespace of its own without CAP_SYS_ADMIN, or no io_uring)");
    return;
  }
  CHECK(WEXITSTATUS(status) == 0);
  if (WEXITSTATUS(status) != 0) std::fprintf(stderr, "  follow by UDP socket: step %d failed\n", WEXITSTATUS(status));
}

int main() {
  test_tags_and_slots();
  test_retry_budget_counts_passes();
  test_flush_with_full_submission_queue();
  test_frame_lengths_at_the_largest_mtu();
  test_tx_ring_at_the_largest_mtu();
  test_follow_output_frames();
  test_follow_output_by_udp_socket();
  if (failures) {
    std::fprintf(stderr, "%d check(s) failed\n", failures);
    return 1;
  }
  if (skipped) {
    std::fprintf(stderr, "ring units: the rest passed, %d skipped\n", skipped);
    return 77;
  }
  std::puts("ring units: all checks passed");
  return 0;
}
