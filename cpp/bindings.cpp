// The only wall between the engine and Python: type translation, nothing else.
#include <arpa/inet.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <tuple>
#include <variant>

#include "engine.h"
#include "pim_register.h"
#include "traffic_bindings.h"
#include "wire.h"

namespace py = pybind11;
using namespace mcr;

namespace {

uint32_t ipv4(const std::string& text) {
  in_addr addr{};
  if (inet_pton(AF_INET, text.c_str(), &addr) != 1) throw py::value_error("not an IPv4 address: '" + text + "'");
  return addr.s_addr;
}

py::bytes to_bytes(const std::vector<uint8_t>& v) { return py::bytes(reinterpret_cast<const char*>(v.data()), v.size()); }

py::bytes encode(wire::Type type, uint32_t seq, uint32_t ifindex = 0, uint32_t rule_id = 0) {
  wire::Command c;
  c.type = type;
  c.seq = seq;
  c.ifindex = ifindex;
  c.rule_id = rule_id;
  return to_bytes(wire::encode_command(c));
}

// The tuples' trailing fields are optional (a variant of each length), so
// callers from before any-port and range rules, or PIM, keep working unchanged.
// outputs: (destination, port, ifindex, ttl or -1, dscp or -1, keep_source, vlan or 0
//           [, follow=False[, register=False, register_source="" (the kernel's choice)
//           [, priority=-1 (the rule's)]]])
//   a register output sends PIM Registers to the RP at `destination` (port and ifindex unused)
using Output7 = std::tuple<std::string, uint16_t, uint32_t, int16_t, int16_t, bool, uint16_t>;
using Output8 = decltype(std::tuple_cat(Output7{}, std::tuple<bool>{}));
using Output10 = decltype(std::tuple_cat(Output8{}, std::tuple<bool, std::string>{}));
using Output11 = decltype(std::tuple_cat(Output10{}, std::tuple<int64_t>{}));
using OutputTuple = std::variant<Output7, Output8, Output10, Output11>;
// rules: (id, ifindex, group, port or 0 (any), source or "", outputs, vlan or 0
//         [, group_prefix_len=32[, notify=False[, priority=0 (-2: by DSCP)]]])
using Rule7 = std::tuple<uint32_t, uint32_t, std::string, uint16_t, std::string, std::vector<OutputTuple>, uint16_t>;
using Rule8 = decltype(std::tuple_cat(Rule7{}, std::tuple<uint8_t>{}));
using Rule9 = decltype(std::tuple_cat(Rule8{}, std::tuple<bool>{}));
using Rule10 = decltype(std::tuple_cat(Rule9{}, std::tuple<int64_t>{}));
using RuleTuple = std::variant<Rule7, Rule8, Rule9, Rule10>;

template <typename T>
constexpr size_t size_of = std::tuple_size_v<std::decay_t<T>>;

OutputSpec to_output(const OutputTuple& output) {
  return std::visit([](const auto& o) {
    OutputSpec out{ipv4(std::get<0>(o)), std::get<1>(o), std::get<2>(o), std::get<3>(o), std::get<4>(o),
                   std::get<5>(o), std::get<6>(o)};
    if constexpr (size_of<decltype(o)> >= 8) out.follow = std::get<7>(o);
    if constexpr (size_of<decltype(o)> >= 10) {
      out.pim_register = std::get<8>(o);
      out.register_source = std::get<9>(o).empty() ? 0 : ipv4(std::get<9>(o));
    }
    if constexpr (size_of<decltype(o)> >= 11) out.priority = std::get<10>(o);
    return out;
  }, output);
}

RuleSpec to_spec(const RuleTuple& rule) {
  return std::visit([](const auto& t) {
    const std::string& source = std::get<4>(t);
    RuleSpec spec{std::get<0>(t),
                  {std::get<1>(t), ipv4(std::get<2>(t)), source.empty() ? 0 : ipv4(source), std::get<3>(t), std::get<6>(t)},
                  {}};
    if constexpr (size_of<decltype(t)> >= 8) spec.key.prefix_len = std::get<7>(t);
    if constexpr (size_of<decltype(t)> >= 9) spec.notify = std::get<8>(t);
    if constexpr (size_of<decltype(t)> >= 10) spec.priority = std::get<9>(t);
    for (const OutputTuple& output : std::get<5>(t)) spec.outputs.push_back(to_output(output));
    return spec;
  }, rule);
}

std::vector<RuleSpec> to_specs(const std::vector<RuleTuple>& rules) {
  std::vector<RuleSpec> specs;
  for (const RuleTuple& t : rules) specs.push_back(to_spec(t));
  std::sort(specs.begin(), specs.end(), [](const RuleSpec& a, const RuleSpec& b) { return a.id < b.id; });
  return specs;
}

py::bytes encode_add_rule(uint32_t seq, uint32_t id, uint32_t ifindex, const std::string& group, uint16_t port,
                          const std::string& source, const std::vector<OutputTuple>& outputs, uint16_t vlan,
                          uint8_t group_prefix_len, bool notify, int64_t priority) {
  wire::Command c;
  c.type = wire::Type::AddRule;
  c.seq = seq;
  c.rule = to_spec(Rule10{id, ifindex, group, port, source, outputs, vlan, group_prefix_len, notify, priority});
  return to_bytes(wire::encode_command(c));
}

py::bytes encode_sync_rules(uint32_t seq, const std::vector<RuleTuple>& rules) {
  wire::Command c;
  c.type = wire::Type::SyncRules;
  c.seq = seq;
  c.rules = to_specs(rules);
  return to_bytes(wire::encode_command(c));
}

py::bytes encode_initialize(uint32_t seq, uint32_t worker_id, int32_t core, uint8_t log_level, uint32_t max_rules,
                            uint32_t rx_frames, uint32_t send_slots) {
  wire::Command c;
  c.type = wire::Type::Initialize;
  c.seq = seq;
  c.init = {worker_id, core, log_level, max_rules, rx_frames, send_slots};
  return to_bytes(wire::encode_command(c));
}

py::dict decode_initialize(const py::bytes& data) {
  std::string raw = data;
  wire::Command c;
  std::string error = wire::decode_command(reinterpret_cast<const uint8_t*>(raw.data()), raw.size(), c);
  if (error.empty() && c.type != wire::Type::Initialize) error = "expected Initialize first";
  if (!error.empty()) throw py::value_error(error);
  return py::dict(py::arg("worker_id") = c.init.worker_id, py::arg("core") = c.init.core,
                  py::arg("log_level") = c.init.log_level, py::arg("max_rules") = c.init.max_rules,
                  py::arg("rx_frames") = c.init.rx_frames, py::arg("send_slots") = c.init.send_slots);
}

py::dict stats_dict(const wire::Stats& s) {
  py::dict drops;
  for (size_t i = 0; i < s.drops.size(); ++i) drops[kDropNames[i]] = s.drops[i];
  py::dict events;
  for (size_t i = 0; i < s.events.size(); ++i) events[kEventNames[i]] = s.events[i];
  py::list inputs, rules;
  for (const auto& i : s.inputs)
    inputs.append(py::dict(py::arg("ifindex") = i.ifindex, py::arg("frames") = i.frames, py::arg("bytes") = i.bytes,
                           py::arg("kernel_packets") = i.kernel_packets, py::arg("kernel_drops") = i.kernel_drops));
  // Tens of thousands of rules and outputs: dicts built with the keys made
  // once (pybind11's keyword dicts took 0.2 s for 100,000 outputs).
  py::str id_key("id"), packets_key("packets"), bytes_key("bytes"), errors_key("errors"), outputs_key("outputs");
  auto counters = [&](py::dict d, uint64_t packets, uint64_t bytes) {
    PyDict_SetItem(d.ptr(), packets_key.ptr(), py::int_(packets).ptr());
    PyDict_SetItem(d.ptr(), bytes_key.ptr(), py::int_(bytes).ptr());
    return d;
  };
  for (const auto& r : s.rules) {
    py::list outputs(r.outputs.size());
    for (size_t i = 0; i < r.outputs.size(); ++i) {
      py::dict o = counters(py::dict(), r.outputs[i].packets, r.outputs[i].bytes);
      PyDict_SetItem(o.ptr(), errors_key.ptr(), py::int_(r.outputs[i].errors).ptr());
      PyList_SET_ITEM(outputs.ptr(), i, o.release().ptr());
    }
    py::dict rule;
    PyDict_SetItem(rule.ptr(), id_key.ptr(), py::int_(r.id).ptr());
    counters(rule, r.packets, r.bytes);
    PyDict_SetItem(rule.ptr(), outputs_key.ptr(), outputs.ptr());
    rules.append(rule);
  }
  return py::dict(py::arg("ruleset_hash") = s.ruleset_hash, py::arg("drops") = drops, py::arg("events") = events, py::arg("inputs") = inputs,
                  py::arg("rules") = rules);
}

std::string dotted(uint32_t address) {
  char text[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &address, text, sizeof(text));
  return text;
}

py::list notifications_list(const std::vector<Notification>& notifications) {
  py::list out;
  for (const Notification& n : notifications)
    out.append(py::dict(py::arg("rule_id") = n.rule_id, py::arg("source") = dotted(n.source),
                        py::arg("group") = dotted(n.group), py::arg("ifindex") = n.ifindex,
                        py::arg("dr") = n.dr == 0 ? py::object(py::none()) : py::cast(dotted(n.dr))));
  return out;
}

py::dict trace_dict(const wire::TraceTaken& trace) {
  py::list records;
  for (const TraceRecord& t : trace.records) {
    py::list outcomes;
    for (uint16_t i = 0; i < std::min(t.outputs, kTraceOutputs); ++i)
      outcomes.append(kTraceOutcomeNames[static_cast<size_t>(t.outcomes[i])]);
    records.append(py::dict(py::arg("time_ns") = t.time_ns, py::arg("rule_id") = t.rule_id,
                            py::arg("ifindex") = t.ifindex, py::arg("source") = dotted(t.source),
                            py::arg("destination") = dotted(t.destination), py::arg("src_port") = t.src_port,
                            py::arg("dst_port") = t.dst_port, py::arg("ip_len") = t.ip_len, py::arg("vlan") = t.vlan,
                            py::arg("ttl") = t.ttl, py::arg("tos") = t.tos, py::arg("outputs") = t.outputs,
                            py::arg("outcomes") = outcomes));
  }
  return py::dict(py::arg("remaining") = trace.remaining, py::arg("missed") = trace.missed,
                  py::arg("records") = records);
}

py::dict decode_reply(const py::bytes& data) {
  std::string raw = data;
  wire::Reply reply;
  std::string error = wire::decode_reply(reinterpret_cast<const uint8_t*>(raw.data()), raw.size(), reply);
  if (!error.empty()) throw py::value_error("bad reply from engine: " + error);
  py::dict out(py::arg("seq") = reply.seq, py::arg("ok") = reply.type != wire::Type::ReplyError);
  if (reply.type == wire::Type::ReplyError) out["error"] = reply.error;
  if (reply.type == wire::Type::ReplyStats) out["stats"] = stats_dict(reply.stats);
  if (reply.type == wire::Type::ReplyNotifications) out["notifications"] = notifications_list(reply.notifications);
  if (reply.type == wire::Type::ReplyTrace) out["trace"] = trace_dict(reply.trace);
  return out;
}

}  // namespace

PYBIND11_MODULE(_engine, m) {
  m.doc() = "MCR's io_uring relay engine (private: use mcr.engine)";

  py::class_<Engine>(m, "Engine")
      .def(py::init([](int command_fd, uint32_t max_rules, uint32_t rx_frames, uint32_t send_slots,
                       uint32_t worker_id, uint8_t log_level, uint32_t notify_pending) {
             if (rx_frames == 0 || (rx_frames & (rx_frames - 1)) || rx_frames > 32768)
               throw py::value_error("rx_frames must be a power of two <= 32768");
             if (log_level > 3) throw py::value_error("log_level must be 0..3");
             // All of them must fit one Notifications reply (20 bytes each, within MAX_MESSAGE).
             if (notify_pending == 0 || notify_pending > 32768)
               throw py::value_error("notify_pending must be 1..32768");
             EngineConfig config;
             config.worker_id = worker_id;
             config.log_level = static_cast<LogLevel>(log_level);
             config.max_rules = max_rules;
             config.rx_frames = rx_frames;
             config.send_slots = send_slots;
             config.notify_pending = notify_pending;
             return std::make_unique<Engine>(command_fd, config);
           }),
           py::arg("command_fd"), py::arg("max_rules") = 16384, py::arg("rx_frames") = 2048,
           py::arg("send_slots") = 8192, py::arg("worker_id") = 0, py::arg("log_level") = 2,
           py::arg("notify_pending") = 1024)
      .def("run", [](Engine& engine) {
        std::string error;
        {
          py::gil_scoped_release release;
          error = engine.run();
        }
        if (!error.empty()) throw std::runtime_error(error);
      });

  m.def("encode_add_input", [](uint32_t seq, uint32_t ifindex) { return encode(wire::Type::AddInput, seq, ifindex); });
  m.def("encode_add_egress", [](uint32_t seq, uint32_t ifindex) { return encode(wire::Type::AddEgress, seq, ifindex); });
  m.def("encode_remove_interface",
        [](uint32_t seq, uint32_t ifindex) { return encode(wire::Type::RemoveInterface, seq, ifindex); });
  m.def("encode_add_rule", &encode_add_rule, py::arg("seq"), py::arg("id"), py::arg("ifindex"), py::arg("group"),
        py::arg("port"), py::arg("source"), py::arg("outputs"), py::arg("vlan") = 0, py::arg("group_prefix_len") = 32,
        py::arg("notify") = false, py::arg("priority") = 0);
  m.def("encode_remove_rule", [](uint32_t seq, uint32_t id) { return encode(wire::Type::RemoveRule, seq, 0, id); });
  m.def("encode_get_stats", [](uint32_t seq) { return encode(wire::Type::GetStats, seq); });
  m.def("encode_shutdown", [](uint32_t seq) { return encode(wire::Type::Shutdown, seq); });
  m.def("encode_add_register_egress", [](uint32_t seq) { return encode(wire::Type::AddRegisterEgress, seq); });
  m.def("encode_add_register_input", [](uint32_t seq) { return encode(wire::Type::AddRegisterInput, seq); });
  m.def("encode_take_notifications", [](uint32_t seq) { return encode(wire::Type::TakeNotifications, seq); });
  m.def("encode_set_notify_window", [](uint32_t seq, uint32_t window_ms) {
    wire::Command c;
    c.type = wire::Type::SetNotifyWindow;
    c.seq = seq;
    c.notify_window_ms = window_ms;
    return to_bytes(wire::encode_command(c));
  });
  m.def("encode_trace_rule", [](uint32_t seq, uint32_t rule_id, uint32_t count, uint32_t sample, uint32_t timeout_ms) {
    wire::Command c;
    c.type = wire::Type::TraceRule;
    c.seq = seq;
    c.rule_id = rule_id;
    c.trace = {count, sample, timeout_ms};
    return to_bytes(wire::encode_command(c));
  }, py::arg("seq"), py::arg("rule_id"), py::arg("count"), py::arg("sample"), py::arg("timeout_ms"));
  m.def("encode_take_trace", [](uint32_t seq) { return encode(wire::Type::TakeTrace, seq); });
  m.def("encode_sync_rules", &encode_sync_rules, py::arg("seq"), py::arg("rules"));
  m.def("encode_set_log_level", [](uint32_t seq, uint8_t level) {
    wire::Command c;
    c.type = wire::Type::SetLogLevel;
    c.seq = seq;
    c.log_level = level;
    return to_bytes(wire::encode_command(c));
  });
  m.def("encode_initialize", &encode_initialize, py::arg("seq"), py::arg("worker_id"), py::arg("core"),
        py::arg("log_level"), py::arg("max_rules"), py::arg("rx_frames"), py::arg("send_slots"));
  m.def("decode_initialize", &decode_initialize);
  auto encode_link = [](wire::Type type) {
    // The wire's MTU is 16 bits: a larger one (dummy devices take any) means the same
    // to the packet path, whose IP packets end at 65,535 bytes (a uint16_t argument would
    // make pybind11 refuse it with a TypeError, and the whole output with it).
    return [type](uint32_t seq, uint32_t ifindex, const std::string& source, uint32_t mtu, const py::bytes& mac) {
      std::string raw = mac;
      if (raw.size() != 6) throw py::value_error("mac must be 6 bytes");
      wire::Command c;
      c.type = type;
      c.seq = seq;
      c.packet_egress.ifindex = ifindex;
      c.packet_egress.source = ipv4(source);
      c.packet_egress.mtu = static_cast<uint16_t>(std::min<uint32_t>(mtu, 0xffff));
      std::memcpy(c.packet_egress.mac, raw.data(), 6);
      return to_bytes(wire::encode_command(c));
    };
  };
  m.def("encode_add_packet_egress", encode_link(wire::Type::AddPacketEgress), py::arg("seq"), py::arg("ifindex"),
        py::arg("source"), py::arg("mtu"), py::arg("mac"));
  m.def("encode_add_queued_egress", encode_link(wire::Type::AddQueuedEgress), py::arg("seq"), py::arg("ifindex"),
        py::arg("source"), py::arg("mtu"), py::arg("mac"));
  m.def("encode_update_link", encode_link(wire::Type::UpdateLink), py::arg("seq"), py::arg("ifindex"),
        py::arg("source"), py::arg("mtu"), py::arg("mac"));
  m.def("ruleset_hash", [](const std::vector<RuleTuple>& rules) { return wire::ruleset_hash(to_specs(rules)); },
        "The hash an engine reports for this rule set (rules as encode_sync_rules takes them)");
  m.def("decode_reply", &decode_reply);
  m.attr("DROP_REASONS") = py::cast(std::vector<std::string>(kDropNames.begin(), kDropNames.end()));
  m.attr("EVENTS") = py::cast(std::vector<std::string>(kEventNames.begin(), kEventNames.end()));
  m.attr("TRACE_OUTCOMES") = py::cast(std::vector<std::string>(kTraceOutcomeNames.begin(), kTraceOutcomeNames.end()));
  m.attr("TRACE_CAPACITY") = Tracer::kCapacity;
  m.attr("MAX_MESSAGE") = wire::kMaxMessage;
  m.attr("REGISTER_IFINDEX") = kRegisterIfindex;
  m.attr("DSCP_PRIORITY") = kDscpPriority;  // a rule priority: each packet's DSCP class (DSCP >> 3)
  m.attr("MAX_PART") = wire::kMaxPart;
  m.def("split_message", [](const py::bytes& message) {
    std::string raw = message;
    if (raw.size() < wire::kHeaderSize) throw py::value_error("a message starts with its 8-byte header");
    py::list parts;
    for (const auto& part : wire::split(std::vector<uint8_t>(raw.begin(), raw.end()))) parts.append(to_bytes(part));
    return parts;
  }, "The datagrams that carry one encoded message (see wire_framing.h)");
  py::class_<wire::Assembler>(m, "Assembler", "Joins reply parts into whole messages")
      .def(py::init<>())
      .def("add", [](wire::Assembler& a, const py::bytes& part) -> py::object {
        std::string raw = part;
        if (!a.add(reinterpret_cast<const uint8_t*>(raw.data()), raw.size())) return py::none();
        return to_bytes(a.message());
      }, "One datagram; the whole message when it was the last part, else None")
      .def("take_errors", &wire::Assembler::take_errors, "(seq, reason) for each message refused since");
  traffic::bind_traffic(m);  // mcr._engine.Generator and TrafficSink
}
