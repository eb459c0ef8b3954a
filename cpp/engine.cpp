#include "engine.h"

#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "pim_register.h"
#include "uring_tag.h"

namespace mcr {
namespace {

// The MTU of interface `ifindex`, asked through `fd` so that it is looked up
// in the socket's network namespace; a jumbo MTU if the kernel will not say.
// Read once, when the input is added: frames beyond a later, larger MTU are
// cut to fit the ring and counted as truncated.
uint32_t interface_mtu(int fd, uint32_t ifindex) {
  ifreq request{};
  request.ifr_ifindex = static_cast<int>(ifindex);
  if (ioctl(fd, SIOCGIFNAME, &request) < 0 || ioctl(fd, SIOCGIFMTU, &request) < 0) return 9000;
  return static_cast<uint32_t>(request.ifr_mtu);
}

}  // namespace

Engine::Engine(int command_fd, const EngineConfig& config)
    : config_(config),
      log_(config.worker_id, config.log_level),
      command_fd_(command_fd),
      egress_(config.send_slots, kMaxMtu),
      rules_(config.max_rules),
      command_buffer_(wire::kMaxPart + 1),
      notify_(config.notify_pending) {}

Engine::~Engine() {
  if (ring_ready_) io_uring_queue_exit(&ring_);
  for (const Input& in : inputs_)
    if (in.fd >= 0) close(in.fd);
  for (const EgressSocket& e : egress_sockets_) close(e.fd);
  for (const PacketEgressSocket& e : packet_egress_)
    if (e.fd >= 0) close(e.fd);
  if (register_egress_fd_ >= 0) close(register_egress_fd_);
  close(command_fd_);
}

std::string Engine::setup_ring() {
  io_uring_params params{};
  params.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
  params.cq_entries = config_.ring_entries * 4;
  int rc = io_uring_queue_init_params(config_.ring_entries, &ring_, &params);
  if (rc == -EINVAL) {  // kernels before 6.1 lack DEFER_TASKRUN
    params = {};
    params.flags = IORING_SETUP_CQSIZE;
    params.cq_entries = config_.ring_entries * 4;
    rc = io_uring_queue_init_params(config_.ring_entries, &ring_, &params);
  }
  if (rc < 0) return std::string("io_uring_queue_init failed: ") + strerror(-rc);
  ring_ready_ = true;
  return {};
}

// With the submission queue full even after submitting it, the loop tries
// again next pass (command_armed_ stays false).
void Engine::arm_command() {
  io_uring_sqe* sqe = next_sqe(&ring_);
  if (sqe == nullptr) return;
  io_uring_prep_poll_multishot(sqe, command_fd_, POLLIN);
  io_uring_sqe_set_data64(sqe, make_tag(Op::Command, 0));
  command_armed_ = true;
}

// Before the loop sleeps: one oneshot poll per input whose ring is empty.
// io_uring checks readiness when it queues the poll, so a frame that arrived
// since the ring was read still wakes the loop. Only while the engine is idle
// does the kernel wake anyone per received frame. With the submission queue
// full even after submitting it, the rest are polled next pass (what is
// queued completes and wakes the loop).
void Engine::poll_idle_inputs() {
  if (register_input_ != nullptr) register_input_->arm_idle(&ring_);  // receives a full queue left unarmed
  for (uint32_t i = 0; i < inputs_.size(); ++i) {
    if (inputs_[i].polling || inputs_[i].fd < 0) continue;
    io_uring_sqe* sqe = next_sqe(&ring_);
    if (sqe == nullptr) return;
    io_uring_prep_poll_add(sqe, inputs_[i].fd, POLLIN);
    io_uring_sqe_set_data64(sqe, make_tag(Op::InputReady, i, inputs_[i].generation));
    inputs_[i].polling = true;
  }
}

void Engine::execute(const wire::Command& command, int fd) {
  bool takes_socket = command.type == wire::Type::AddInput || command.type == wire::Type::AddEgress ||
                      command.type == wire::Type::AddPacketEgress || command.type == wire::Type::AddQueuedEgress ||
                      command.type == wire::Type::AddRegisterEgress ||
                      command.type == wire::Type::AddRegisterInput;
  if (!takes_socket && fd >= 0) close(fd);
  if (takes_socket && fd < 0) {
    reply(wire::encode_error(command.seq, "this command needs a socket passed with SCM_RIGHTS"));
    return;
  }
  std::string error;
  switch (command.type) {
    case wire::Type::AddInput: error = add_input(command.ifindex, fd); break;
    case wire::Type::AddEgress: error = add_egress(command.ifindex, fd); break;
    case wire::Type::AddPacketEgress: error = add_packet_egress(command.packet_egress, fd, false); break;
    case wire::Type::AddQueuedEgress: error = add_packet_egress(command.packet_egress, fd, true); break;
    case wire::Type::UpdateLink: error = update_link(command.packet_egress); break;
    case wire::Type::RemoveInterface: error = remove_interface(command.ifindex); break;
    case wire::Type::AddRule: error = add_rule(command.rule); break;
    case wire::Type::RemoveRule: error = rules_.remove(command.rule_id); break;
    case wire::Type::SetLogLevel: log_.set_level(static_cast<LogLevel>(command.log_level)); break;
    case wire::Type::GetStats: begin_stats(command.seq); return;
    case wire::Type::AddRegisterEgress: error = add_register_egress(fd); break;
    case wire::Type::AddRegisterInput: error = add_register_input(fd); break;
    case wire::Type::TakeNotifications: reply(wire::encode_notifications(command.seq, notify_.take())); return;
    case wire::Type::SetNotifyWindow: notify_.set_window(command.notify_window_ms); break;
    case wire::Type::TraceRule: error = start_trace(command); break;
    case wire::Type::TakeTrace: reply(wire::encode_trace(command.seq, take_trace())); return;
    case wire::Type::Shutdown: running_ = false; break;
    case wire::Type::Initialize: error = "already initialized"; break;
    default: error = "not a command"; break;
  }
  if (error.empty()) {
    log_.log(LogLevel::Debug, "command " + std::to_string(static_cast<int>(command.type)) + " done");
    reply(wire::encode_ok(command.seq));
  } else {
    log_.log(LogLevel::Warning, "command " + std::to_string(static_cast<int>(command.type)) + " refused: " + error);
    reply(wire::encode_error(command.seq, error));
  }
}

std::string Engine::add_input(uint32_t ifindex, int fd) {
  uint32_t open = 0;
  for (const Input& in : inputs_) {
    if (in.fd >= 0 && in.ifindex == ifindex) {
      close(fd);
      return "input interface " + std::to_string(ifindex) + " already has a socket";
    }
    open += in.fd >= 0;
  }
  if (open >= config_.max_inputs) {
    close(fd);
    return "too many input interfaces (at most " + std::to_string(config_.max_inputs) + ")";
  }
  auto ring = std::make_unique<RxRing>();
  if (std::string error = ring->attach(fd, config_.rx_frames, interface_mtu(fd, ifindex)); !error.empty()) {
    close(fd);
    return "input interface " + std::to_string(ifindex) + ": " + error;
  }
  uint32_t slot = free_slot(inputs_);
  Input& input = inputs_[slot];
  input.ifindex = ifindex;
  input.fd = fd;
  input.ring = std::move(ring);
  ++inputs_epoch_;
  log_.log(LogLevel::Debug, "input interface " + std::to_string(ifindex) + " in slot " + std::to_string(slot) +
                                " (generation " + std::to_string(input.generation) + ")");
  return {};
}

std::string Engine::add_egress(uint32_t ifindex, int fd) {
  for (const EgressSocket& e : egress_sockets_) {
    if (e.ifindex == ifindex) {
      close(fd);
      return "output interface " + std::to_string(ifindex) + " already has a socket";
    }
  }
  egress_sockets_.push_back({ifindex, fd});
  return {};
}

// Validates `spec` against the engine's sockets and builds the rule; no change.
std::string Engine::build_rule(const RuleSpec& spec, Rule& rule) const {
  bool has_input = spec.key.ifindex == kRegisterIfindex && register_input_ != nullptr;
  for (const Input& in : inputs_) has_input |= in.fd >= 0 && in.ifindex == spec.key.ifindex;
  if (!has_input && spec.key.ifindex == kRegisterIfindex) return "no register input socket (AddRegisterInput)";
  if (!has_input) return "no input socket for interface " + std::to_string(spec.key.ifindex);
  rule.id = spec.id;
  rule.key = spec.key;
  rule.notify = spec.notify;
  rule.priority = spec.priority;
  bool multicast = (ntohl(spec.key.group) >> 28) == 0xe;
  for (const OutputSpec& o : spec.outputs) {
    if (o.pim_register) {
      Output out;
      std::string error;
      if (!build_register_output(o, out, error)) return error;
      rule.outputs.push_back(out);
      continue;
    }
    if (o.follow && !multicast)
      return "a follow output needs a multicast group (it sends to the packet's own destination)";
    // A follow output keeps group and port: on the input's own interface and VLAN it sends the packet back.
    if (o.follow && o.ifindex == spec.key.ifindex && o.vlan == spec.key.vlan)
      return "a follow output on the rule's input interface (and VLAN) would loop";
    if (!o.follow && o.ifindex == spec.key.ifindex && spec.key.covers(o.destination, o.port))
      return "an output equals the rule's input (interface, group and port): it would loop";
    Output out;
    out.spec = o;
    out.priority = o.priority == kRulePriority ? spec.priority : o.priority;
    if (out.priority != 0 && out.spec.needs_frame_path())
      return "a keep-source or VLAN-tagged output cannot carry a priority (the packet path bypasses the qdiscs)";
    out.address.sin_family = AF_INET;
    out.address.sin_port = htons(o.port);
    out.address.sin_addr.s_addr = o.destination;
    for (const EgressSocket& e : egress_sockets_)
      if (e.ifindex == o.ifindex) out.fd = e.fd;
    if (out.fd < 0) return "no egress socket for interface " + std::to_string(o.ifindex);
    use_packet_egress(out);
    if (out.spec.vlan != 0 && out.packet_fd < 0)
      return "a VLAN-tagged output needs the packet path: a multicast destination on an interface with an IPv4 address";
    rule.outputs.push_back(out);
  }
  return {};
}

std::string Engine::add_packet_egress(const wire::PacketEgress& link, int fd, bool queued) {
  for (const PacketEgressSocket& e : packet_egress_) {
    if (e.fd >= 0 && e.link.ifindex == link.ifindex && e.queued == queued) {
      close(fd);
      return "output interface " + std::to_string(link.ifindex) + " already has a " +
             (queued ? "queued" : "packet") + " socket";
    }
  }
  uint32_t slot = free_slot(packet_egress_);
  PacketEgressSocket& e = packet_egress_[slot];
  auto ring = std::make_unique<TxRing>();
  std::string error = ring->attach(fd, link.mtu, slot, e.generation);
  if (!error.empty()) {  // still usable, one sendmsg per frame
    log_.log(LogLevel::Warning, "interface " + std::to_string(link.ifindex) + ": " + error);
    ring.reset();
  }
  e.link = link;
  e.fd = fd;
  e.queued = queued;
  e.ring = std::move(ring);
  log_.log(LogLevel::Debug, "packet egress interface " + std::to_string(link.ifindex) + " in slot " +
                                std::to_string(slot) + " (generation " + std::to_string(e.generation) + ")");
  return {};
}

// The interface's address, MTU or MAC changed: its outputs' header
// templates are rewritten in place, so no rule is rebuilt and no counter or
// frame in flight is lost. A larger MTU than the TX ring's frames hold is
// capped by them (bigger payloads take the UDP socket, which fragments).
std::string Engine::update_link(const wire::PacketEgress& link) {
  bool found = false;
  for (PacketEgressSocket& e : packet_egress_) {
    if (e.fd < 0 || e.link.ifindex != link.ifindex) continue;
    e.link = link;
    found = true;
    if (e.queued) continue;  // its frames take the header templates of the other one's outputs
    for (Rule& rule : rules_.mutable_rules()) {
      if (!rule.live) continue;
      for (Output& out : rule.outputs)
        if (out.packet_fd == e.fd) Egress::use_packet_socket(out, e.link, e.fd, e.ring.get());
    }
  }
  return found ? std::string() : "output interface " + std::to_string(link.ifindex) + " has no packet socket";
}

// Closes every socket of an interface no rule uses any more and unmaps its
// rings; their slots are free for the next interface added. A readiness poll
// still queued on the input is cancelled first (it holds the socket open);
// its completion, and any flush completion still in flight, carry the old
// generation and are ignored, whoever holds the slot by then.
std::string Engine::remove_interface(uint32_t ifindex) {
  for (const Rule& rule : rules_.rules()) {
    if (!rule.live) continue;
    bool uses = rule.key.ifindex == ifindex;
    for (const Output& o : rule.outputs) uses |= o.spec.ifindex == ifindex;
    if (uses) return "interface " + std::to_string(ifindex) + " is still used by rule " + std::to_string(rule.id);
  }
  bool found = false;
  for (uint32_t i = 0; i < inputs_.size(); ++i) {
    Input& in = inputs_[i];
    if (in.fd < 0 || in.ifindex != ifindex) continue;
    // Without an SQE for the cancel the poll completes on its own, holding
    // the closed socket until then; its completion is stale all the same.
    io_uring_sqe* sqe = in.polling ? next_sqe(&ring_) : nullptr;
    if (sqe != nullptr) {
      io_uring_prep_cancel64(sqe, make_tag(Op::InputReady, i, in.generation), 0);
      io_uring_sqe_set_data64(sqe, make_tag(Op::Cancel, i));
    }
    close(in.fd);
    release_slot(in);
    ++inputs_epoch_;
    found = true;
  }
  for (PacketEgressSocket& e : packet_egress_) {
    if (e.fd < 0 || e.link.ifindex != ifindex) continue;
    close(e.fd);
    release_slot(e);
    found = true;
  }
  for (auto it = egress_sockets_.begin(); it != egress_sockets_.end();) {
    if (it->ifindex != ifindex) {
      ++it;
      continue;
    }
    close(it->fd);
    it = egress_sockets_.erase(it);
    found = true;
  }
  return found ? std::string() : "no socket for interface " + std::to_string(ifindex);
}

// Multicast outputs take the packet path on an interface with a packet
// socket (and an IPv4 address for the frames' source); so do follow
// outputs, whose rules match multicast groups only.
void Engine::use_packet_egress(Output& out) const {
  if (!out.spec.follow && (ntohl(out.spec.destination) >> 28) != 0xe) return;
  for (const PacketEgressSocket& e : packet_egress_)
    if (e.fd >= 0 && !e.queued && e.link.ifindex == out.spec.ifindex && e.link.source != 0)
      Egress::use_packet_socket(out, e.link, e.fd, e.ring.get());
  if (out.priority == 0 || out.packet_fd < 0) return;
  for (const PacketEgressSocket& e : packet_egress_)  // a priority's frames go through the qdisc
    if (e.fd >= 0 && e.queued && e.link.ifindex == out.spec.ifindex) out.queued_tx = e.ring.get();
}

std::string Engine::add_rule(const RuleSpec& spec) {
  Rule rule;
  std::string error = build_rule(spec, rule);
  uint32_t slot;
  return error.empty() ? rules_.add(std::move(rule), slot) : error;
}

}  // namespace mcr
