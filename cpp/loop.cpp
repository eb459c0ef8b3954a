// The event loop and completion dispatch: the engine's hot path.
#include <cerrno>
#include <cstring>

#include "engine.h"
#include "packet_parser.h"
#include "uring_tag.h"

namespace mcr {

std::string Engine::run() {
  if (std::string error = setup_ring(); !error.empty()) return error;
  running_ = true;
  log_.log(LogLevel::Info, "engine running");
  arm_command();
  while (running_) {
    int rc = io_uring_submit_and_wait(&ring_, 1);
    if (rc < 0 && rc != -EINTR && rc != -EBUSY) return std::string("io_uring_submit_and_wait: ") + strerror(-rc);
    unsigned head, seen = 0;
    io_uring_cqe* cqe;
    io_uring_for_each_cqe(&ring_, head, cqe) {
      dispatch(cqe);
      ++seen;
    }
    io_uring_cq_advance(&ring_, seen);
    flush_rings();
    // ENOBUFS waits for recycled buffers; any other stop re-arms at once.
    if (buffers_.publish() || rearm_now_) rearm_inputs();
    if (!command_armed_ && running_) arm_command();
  }
  io_uring_submit(&ring_);  // the last pass's flushes: frames already counted as sent go out
  log_.log(LogLevel::Info, "engine stopped");
  return {};
}

void Engine::dispatch(const io_uring_cqe* cqe) {
  switch (tag_op(cqe->user_data)) {
    case Op::Receive: on_receive(cqe); break;
    case Op::Send: on_send(cqe); break;
    case Op::Command: on_command_ready(cqe); break;
    case Op::Flush: on_flush(cqe); break;
    default: count(drops_, DropReason::UnknownCompletion); break;
  }
}

void Engine::on_receive(const io_uring_cqe* cqe) {
  Input& input = inputs_[tag_index(cqe->user_data)];
  if (!(cqe->flags & IORING_CQE_F_MORE)) {
    input.armed = false;
    rearm_now_ |= cqe->res != -ENOBUFS;  // e.g. ENETDOWN when the link went down
  }
  if (cqe->res < 0) {
    count(drops_, cqe->res == -ENOBUFS ? DropReason::NoRxBuffer : DropReason::RxError);
    return;
  }
  uint16_t bid = static_cast<uint16_t>(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
  ++input.frames;
  input.bytes += static_cast<uint64_t>(cqe->res);
  ParsedPacket packet;
  DropReason reason;
  if (!parse_frame(buffers_.data(bid), static_cast<size_t>(cqe->res), packet, reason)) {
    count(drops_, reason);
    buffers_.recycle(bid);
    return;
  }
  Rule* rule = rules_.lookup(input.ifindex, packet.destination, packet.dst_port, packet.source);
  if (rule == nullptr) {
    count(drops_, DropReason::NoRule);
    buffers_.recycle(bid);
    return;
  }
  uint32_t slot = static_cast<uint32_t>(rule - &rules_.at(0));
  Queued queued = egress_.queue(&ring_, *rule, slot, packet, bid, drops_);
  if (queued.outputs == 0 && packet.ttl <= 1) count(drops_, DropReason::TtlExpired);
  if (queued.outputs > 0) {
    ++rule->packets;
    rule->bytes += packet.payload_len;
  }
  if (queued.holding == 0) {
    buffers_.recycle(bid);
  } else {
    buffers_.hold(bid, queued.holding);
  }
}

void Engine::on_send(const io_uring_cqe* cqe) {
  buffers_.release(egress_.complete(tag_index(cqe->user_data), cqe->res, rules_, drops_));
}

// A full socket buffer only delays the ring's frames (flushed again next
// pass); any other error means they will not go: count them per output.
void Engine::on_flush(const io_uring_cqe* cqe) {
  TxRing& ring = *packet_egress_[tag_index(cqe->user_data)].ring;
  if (cqe->res == -EAGAIN || cqe->res == -ENOBUFS) {
    ring.retry();
  } else if (cqe->res < 0) {
    Egress::reclaim(ring, rules_, drops_);
  }
}

// One send per TX ring that got frames in this pass hands them all to the
// kernel. Without MSG_DONTWAIT: io_uring itself tries without blocking and,
// if the socket buffer is full, retries once it drains.
void Engine::flush_rings() {
  for (uint32_t i = 0; i < packet_egress_.size(); ++i) {
    TxRing* ring = packet_egress_[i].ring.get();
    if (ring == nullptr || !ring->pending()) continue;
    io_uring_sqe* sqe = get_sqe();
    io_uring_prep_sendmsg(sqe, ring->fd(), &empty_message_, 0);
    io_uring_sqe_set_data64(sqe, make_tag(Op::Flush, i));
    ring->flushed();
  }
}

void Engine::rearm_inputs() {
  rearm_now_ = false;
  for (uint32_t i = 0; i < inputs_.size(); ++i)
    if (!inputs_[i].armed) arm_input(i);
}

}  // namespace mcr
