// The event loop and completion dispatch: the engine's hot path.
#include <linux/if_packet.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <ctime>

#include "engine.h"
#include "packet_parser.h"
#include "uring_tag.h"

namespace mcr {
namespace {

// Frames read from one input per pass before the others, the TX ring
// flushes and the completions get their turn.
constexpr uint32_t kPassBudget = 256;
// An input's budget in a pass where a priority input had frames: the core
// goes to priority traffic first, and the others still move (never starved).
constexpr uint32_t kYieldingBudget = kPassBudget / 4;

uint64_t coarse_now_ms() {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
  return static_cast<uint64_t>(now.tv_sec) * 1000 + static_cast<uint64_t>(now.tv_nsec) / 1000000;
}

}  // namespace

std::string Engine::run() {
  if (std::string error = setup_ring(); !error.empty()) return error;
  running_ = true;
  log_.log(LogLevel::Info, "engine running");
  arm_command();
  while (running_) {
    ++passes_;
    bool busy = false;
    if (inputs_epoch_ != ordered_inputs_epoch_ || rules_.priority_epoch() != ordered_priority_epoch_) order_inputs();
    bool priority_busy = false;
    for (uint32_t n = 0; n < priority_inputs_; ++n) priority_busy |= drain(input_order_[n], config_.rx_frames);
    uint32_t budget = priority_busy ? kYieldingBudget : kPassBudget;
    for (uint32_t n = priority_inputs_; n < input_order_.size(); ++n) busy |= drain(input_order_[n], budget);
    busy |= priority_busy;
    busy |= step_control();  // a bounded step of control work left from the last pass
    // A Shutdown (or the client's end) read just now: no completion would come
    // to wake a loop that went to sleep on it.
    if (!running_) break;
    flush_rings();
    // Busy: hand this pass's sends over and collect completions without
    // sleeping. Idle: sleep until a frame, a completion or a command.
    if (!busy) poll_idle_inputs();
    int rc = busy ? io_uring_submit_and_get_events(&ring_) : io_uring_submit_and_wait(&ring_, 1);
    if (rc < 0 && rc != -EINTR && rc != -EBUSY) return std::string("io_uring_submit_and_wait: ") + strerror(-rc);
    now_ms_ = coarse_now_ms();  // after the wait: what it dispatches and the next pass drains is "now"
    unsigned head, seen = 0;
    io_uring_cqe* cqe;
    io_uring_for_each_cqe(&ring_, head, cqe) {
      dispatch(cqe);
      ++seen;
    }
    io_uring_cq_advance(&ring_, seen);
    if (!command_armed_ && running_) arm_command();
  }
  flush_rings();  // frames already counted as sent go out
  io_uring_submit(&ring_);
  log_.log(LogLevel::Info, "engine stopped");
  return {};
}

// Priority inputs first, so that under overload their rings never fill:
// each pass empties them (a ring's worth at most) before the others get
// their budget, a quarter of it while priority traffic flows, and the
// kernel drops what the others' full rings cannot take (counted as their
// kernel drops). Within one input, frames go in
// arrival order: the kernel hands them over so, DSCP unread.
void Engine::order_inputs() {
  input_order_.clear();
  for (uint32_t i = 0; i < inputs_.size(); ++i)
    if (inputs_[i].fd >= 0 && rules_.priority_input(inputs_[i].ifindex)) input_order_.push_back(i);
  priority_inputs_ = static_cast<uint32_t>(input_order_.size());
  for (uint32_t i = 0; i < inputs_.size(); ++i)
    if (inputs_[i].fd >= 0 && !rules_.priority_input(inputs_[i].ifindex)) input_order_.push_back(i);
  ordered_inputs_epoch_ = inputs_epoch_;
  ordered_priority_epoch_ = rules_.priority_epoch();
}

// Relays up to `budget` of the frames waiting in an input's ring; returns
// whether there were any.
bool Engine::drain(uint32_t index, uint32_t budget) {
  RxRing& ring = *inputs_[index].ring;
  RxRing::Frame frame;
  uint32_t n = 0;
  for (; n < budget && ring.next(frame); ++n) {
    relay(index, frame);
    ring.done();
  }
  return n > 0;
}

// Parses, looks up and sends one frame.
void Engine::relay(uint32_t index, const RxRing::Frame& frame) {
  Input& input = inputs_[index];
  ++input.frames;
  input.bytes += frame.wire_len;
  if (frame.len < frame.wire_len) {  // bigger than a ring frame: cut by the kernel
    count(drops_, DropReason::Truncated);
    return;
  }
  ParsedPacket packet;
  DropReason reason;
  bool parsed = frame.bare_ip ? parse_ip_frame(frame.data, frame.len, packet, reason)
                              : parse_frame(frame.data, frame.len, packet, reason);
  if (!parsed) {
    count(drops_, reason);
    return;
  }
  packet.partial_checksum = frame.status & TP_STATUS_CSUMNOTREADY;
  if (frame.status & TP_STATUS_VLAN_VALID) packet.vlan = frame.vlan_tci & 0x0fff;  // the tag the kernel stripped
  forward(input.ifindex, packet, 0);
}

// Looks up and sends one parsed packet that came in on `ifindex` (from
// the DR `dr`, if it came in a Register).
void Engine::forward(uint32_t ifindex, const ParsedPacket& packet, uint32_t dr) {
  Rule* rule = rules_.lookup(ifindex, packet.destination, packet.dst_port, packet.source, packet.vlan);
  if (rule == nullptr) {
    count(drops_, DropReason::NoRule);
    return;
  }
  if (rule->notify) note(*rule, packet, ifindex, dr);
  uint32_t slot = static_cast<uint32_t>(rule - &rules_.at(0));
  // Tracing off, the per-packet cost is this one predicted branch.
  uint16_t outputs = tracer_.active() ? queue_traced(*rule, slot, packet, ifindex)
                                      : egress_.queue(&ring_, *rule, slot, packet, drops_);
  if (outputs == 0 && packet.ttl <= 1) count(drops_, DropReason::TtlExpired);
  if (outputs > 0) {
    ++rule->packets;
    rule->bytes += packet.payload_len;
  }
}

void Engine::dispatch(const io_uring_cqe* cqe) {
  switch (tag_op(cqe->user_data)) {
    case Op::InputReady: on_input_ready(cqe); break;
    case Op::Send: on_send(cqe); break;
    case Op::Command: on_command_ready(cqe); break;
    case Op::CommandWritable: on_command_writable(cqe); break;
    case Op::Flush: on_flush(cqe); break;
    case Op::Cancel: break;  // a removed input's poll, cancelled
    case Op::RegisterRecv: on_register(cqe); break;
    default: count(drops_, DropReason::UnknownCompletion); break;
  }
}

// The frames themselves are read on the next pass. A socket error (e.g.
// ENETDOWN while the link is down) is counted and cleared, or every later
// poll would report it again at once.
void Engine::on_input_ready(const io_uring_cqe* cqe) {
  Input& input = inputs_[tag_index(cqe->user_data)];
  // A removed input's (cancelled) poll: the slot is empty or holds another input now.
  if (input.generation != tag_generation(cqe->user_data)) return;
  input.polling = false;
  if (cqe->res < 0 || (cqe->res & POLLERR)) {
    count(drops_, DropReason::RxError);
    int error = 0;
    socklen_t len = sizeof(error);
    getsockopt(input.fd, SOL_SOCKET, SO_ERROR, &error, &len);
  }
}

void Engine::on_send(const io_uring_cqe* cqe) { egress_.complete(tag_index(cqe->user_data), cqe->res, rules_, drops_); }

// A flush the device refused (ENOBUFS: its queue is full, or it has no
// carrier; the kernel keeps the frame at its head for the next try) is
// tried again next pass, for a few passes (however many of its flushes one
// pass saw refused: see TxRing::refused); any other error, or a refusal
// that lasts, drops the ring's frames, counted by reason and per output.
// So a link that is down costs one failed send per pass with traffic and
// none without, and nothing from the outage is sent late.
void Engine::on_flush(const io_uring_cqe* cqe) {
  PacketEgressSocket& egress = packet_egress_[tag_index(cqe->user_data)];
  // Removed since: the slot is empty (or without a ring) or holds another interface now.
  if (egress.ring == nullptr || egress.generation != tag_generation(cqe->user_data)) return;
  TxRing& ring = *egress.ring;
  if (cqe->res >= 0) {
    ring.sent();
    return;
  }
  bool refused = cqe->res == -ENOBUFS || cqe->res == -EAGAIN;
  if (refused) {
    TxRing::Refusal next = ring.refused(passes_);
    if (next == TxRing::Refusal::NextPass) egress_.count_event(Event::FlushRetry);  // once per ring and pass
    if (next != TxRing::Refusal::GiveUp) return;
  }
  bool down = cqe->res == -ENETDOWN || cqe->res == -ENXIO || cqe->res == -ENODEV;
  Egress::reclaim(ring, rules_, drops_,
                  refused ? DropReason::TxRefused : down ? DropReason::OutputDown : DropReason::SendFailed);
}

// One send per TX ring that got frames in this pass hands them all over:
// the queued rings (frames with a priority) first, so they reach the
// devices first, in the order their inputs were served.
void Engine::flush_rings() {
  for (bool queued : {true, false})
    for (PacketEgressSocket& e : packet_egress_)
      if (e.queued == queued && e.ring != nullptr && e.ring->pending()) egress_.flush(&ring_, *e.ring);
}

}  // namespace mcr
