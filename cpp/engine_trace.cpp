// Packet tracing on demand: the commands that start and drain a trace, and
// the traced packet's way out (the data path calls it only while a trace runs).
#include "engine.h"

namespace mcr {

std::string Engine::start_trace(const wire::Command& command) {
  if (command.trace.count > 0 && rules_.by_id(command.rule_id) == nullptr)
    return "TraceRule: no rule " + std::to_string(command.rule_id);
  tracer_.start(command.rule_id, command.trace.count, command.trace.sample, now_ms_ + command.trace.timeout_ms);
  return {};
}

wire::TraceTaken Engine::take_trace() {
  tracer_.expire(now_ms_);  // a trace whose rule saw no packet since its deadline ends here
  return {tracer_.remaining(), tracer_.missed(), tracer_.take()};
}

// A packet that the running trace may take: its headers and each output's
// fate go into a record when it does.
uint16_t Engine::queue_traced(Rule& rule, uint32_t slot, const ParsedPacket& packet, uint32_t ifindex) {
  TraceRecord* record = tracer_.begin(rule.id, now_ms_);
  if (record == nullptr) return egress_.queue(&ring_, rule, slot, packet, drops_);
  record->ifindex = ifindex;
  record->source = packet.source;
  record->destination = packet.destination;
  record->src_port = ntohs(packet.src_port);
  record->dst_port = packet.dst_port;
  record->ip_len = packet.ip_len;
  record->vlan = packet.vlan;
  record->ttl = packet.ttl;
  record->tos = packet.tos;
  return egress_.queue_traced(&ring_, rule, slot, packet, drops_, *record);
}

}  // namespace mcr
