// The engine: one io_uring loop that relays multicast UDP from AF_PACKET
// inputs (each read through an RX ring), and from PIM Registers (at the RP),
// to its outputs. It opens no privileged socket itself: every
// socket arrives over the command channel (see wire.h), which is also how
// rules, stats requests and shutdown arrive.
#pragma once
#include <liburing.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "counters.h"
#include "egress.h"
#include "log.h"
#include "notify_table.h"
#include "register_input.h"
#include "rule_table.h"
#include "rx_ring.h"
#include "trace.h"
#include "tx_ring.h"
#include "wire.h"

namespace mcr {

struct EngineConfig {
  uint32_t worker_id = 0;
  LogLevel log_level = LogLevel::Info;
  uint32_t max_rules = 16384;
  uint32_t rx_frames = 2048;  // per input; power of two
  uint32_t send_slots = 8192;
  uint32_t ring_entries = 4096;
  uint32_t max_inputs = 256;
  uint32_t notify_pending = 1024;  // notifications held until the supervisor takes them
};

class Engine {
 public:
  Engine(int command_fd, const EngineConfig& config);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Runs until a Shutdown command or the channel closes. Returns an empty
  // string on a clean stop, else why the engine could not run.
  std::string run();

 private:
  // Completions name inputs and packet egress sockets by slot index and
  // generation: a removed one leaves its slot free (fd -1, no ring) for the
  // next one added, under a new generation (see free_slot in uring_tag.h).
  struct Input {
    uint32_t ifindex = 0;
    int fd = -1;
    uint32_t generation = 0;
    std::unique_ptr<RxRing> ring;
    bool polling = false;  // a readiness poll is queued
    uint64_t frames = 0, bytes = 0, kernel_packets = 0, kernel_drops = 0;
  };
  struct EgressSocket {
    uint32_t ifindex;
    int fd;
  };
  struct PacketEgressSocket {
    wire::PacketEgress link;
    int fd = -1;
    bool queued = false;  // without PACKET_QDISC_BYPASS: for outputs with a priority
    uint32_t generation = 0;
    std::unique_ptr<TxRing> ring;  // null if the socket could not take one
  };

  struct StatsJob;  // a GetStats reply being written (engine_stats.cpp, where it is complete)
  struct StatsJobDeleter {
    void operator()(StatsJob* job) const;
  };
  struct SyncJob;  // a rule sync being applied (rule_sync.cpp, where it is complete)
  struct SyncJobDeleter {
    void operator()(SyncJob* job) const;
  };

  // Setup and the control path (engine.cpp).
  std::string setup_ring();
  void arm_command();
  void poll_idle_inputs();
  void execute(const wire::Command& command, int fd);
  std::string add_input(uint32_t ifindex, int fd);
  std::string add_egress(uint32_t ifindex, int fd);
  std::string add_packet_egress(const wire::PacketEgress& link, int fd, bool queued);
  std::string update_link(const wire::PacketEgress& link);
  std::string remove_interface(uint32_t ifindex);
  void use_packet_egress(Output& out) const;
  std::string build_rule(const RuleSpec& spec, Rule& rule) const;
  std::string add_rule(const RuleSpec& spec);

  // GetStats in bounded steps, one per loop pass (engine_stats.cpp).
  void begin_stats(uint32_t seq);
  void step_stats();

  // The command channel itself: parts in, replies out (command_io.cpp).
  void on_command_ready(const io_uring_cqe* cqe);
  void read_commands();
  bool step_control();
  bool peer_closed() const;
  void reply(const std::vector<uint8_t>& message);
  void flush_replies();
  void on_command_writable(const io_uring_cqe* cqe);

  // Rule sync in bounded steps, one per loop pass (rule_sync.cpp).
  void begin_sync(std::vector<uint8_t>&& message);
  void step_sync();
  void check_synced_rules(uint32_t budget);
  void remove_unwanted_rules(uint32_t budget);
  void add_synced_rules(uint32_t budget);
  void end_sync(const std::string& error);

  // PIM's data plane: Register sockets and notifications (engine_pim.cpp).
  std::string add_register_egress(int fd);
  std::string add_register_input(int fd);
  bool build_register_output(const OutputSpec& spec, Output& out, std::string& error) const;
  void on_register(const io_uring_cqe* cqe);
  void note(const Rule& rule, const ParsedPacket& packet, uint32_t ifindex, uint32_t dr);

  // Packet tracing on demand (engine_trace.cpp).
  std::string start_trace(const wire::Command& command);
  wire::TraceTaken take_trace();
  uint16_t queue_traced(Rule& rule, uint32_t slot, const ParsedPacket& packet, uint32_t ifindex);

  // The data path (loop.cpp).
  void order_inputs();
  bool drain(uint32_t index, uint32_t budget);
  void relay(uint32_t index, const RxRing::Frame& frame);
  void forward(uint32_t ifindex, const ParsedPacket& packet, uint32_t dr);
  void dispatch(const io_uring_cqe* cqe);
  void on_input_ready(const io_uring_cqe* cqe);
  void on_send(const io_uring_cqe* cqe);
  void flush_rings();
  void on_flush(const io_uring_cqe* cqe);

  EngineConfig config_;
  Logger log_;
  int command_fd_;
  bool running_ = false;
  uint64_t passes_ = 0;  // loop passes so far: the TX rings' retry budget counts them
  bool command_armed_ = false;
  io_uring ring_{};
  bool ring_ready_ = false;
  Egress egress_;
  RuleTable rules_;
  DropCounters drops_{};
  std::vector<Input> inputs_;
  // The order a pass reads the inputs in: first those with a rule of fixed
  // priority (QoS), each to its whole ring, then the rest, a budget each.
  // Rebuilt when inputs come or go (inputs_epoch_) or an input joins or
  // leaves the priority set (RuleTable::priority_epoch).
  std::vector<uint32_t> input_order_;
  uint32_t priority_inputs_ = 0;  // how many of input_order_ come first
  uint64_t inputs_epoch_ = 0, ordered_inputs_epoch_ = ~0ull, ordered_priority_epoch_ = ~0ull;
  std::vector<EgressSocket> egress_sockets_;
  std::vector<PacketEgressSocket> packet_egress_;
  std::vector<uint8_t> command_buffer_;  // one part of a command
  wire::Assembler assembler_;
  bool commands_waiting_ = false;  // the last read stopped at its budget or for a sync: read on next pass
  std::unique_ptr<SyncJob, SyncJobDeleter> sync_;  // while set, no other command is read
  std::unique_ptr<StatsJob, StatsJobDeleter> stats_;  // likewise
  std::deque<std::vector<uint8_t>> outbox_;  // reply parts the channel could not take yet
  size_t outbox_bytes_ = 0;
  bool reply_poll_armed_ = false;  // a POLLOUT poll on the channel is queued
  uint64_t hashed_changes_ = ~0ull;  // the rule table's change count when ruleset_hash_ was computed
  uint64_t ruleset_hash_ = 0;
  int register_egress_fd_ = -1;                     // raw IPPROTO_PIM socket for register outputs
  std::unique_ptr<RegisterInput> register_input_;   // Registers in, at the RP
  NotifyTable notify_;
  Tracer tracer_;  // off (no trace running) unless the supervisor starts one
  uint64_t now_ms_ = 0;  // CLOCK_MONOTONIC_COARSE, read once per loop pass: the notify window's clock
};

}  // namespace mcr
