// pybind11 wrappers for the traffic generator and sink: type translation,
// the GIL released around the blocking runs, nothing else.
#include "traffic_bindings.h"

#include <arpa/inet.h>
#include <pybind11/stl.h>

#include <atomic>
#include <string>
#include <tuple>
#include <vector>

#include "traffic_gen.h"
#include "traffic_probe.h"
#include "traffic_sink.h"

namespace py = pybind11;

namespace mcr::traffic {
namespace {

uint32_t ipv4(const std::string& text) {
  in_addr addr{};
  if (inet_pton(AF_INET, text.c_str(), &addr) != 1) throw py::value_error("not an IPv4 address: '" + text + "'");
  return addr.s_addr;
}

// One configured generator; run() may be called once, stop() from any thread.
struct Generator {
  GenConfig config;
  std::atomic<bool> stopping{false};
};

using StreamTuple = std::tuple<std::string, uint16_t, uint32_t>;  // destination, port, stream id

std::unique_ptr<Generator> make_generator(int fd, const std::vector<StreamTuple>& streams, uint32_t payload_size,
                                          uint64_t count, double duration, double rate, bool raw, uint32_t batch,
                                          const std::string& source, uint16_t source_port,
                                          const py::bytes& source_mac, uint8_t ttl, uint8_t tos) {
  auto g = std::make_unique<Generator>();
  GenConfig& c = g->config;
  c.fd = fd;
  c.raw = raw;
  for (const auto& [dst, port, id] : streams) c.streams.push_back({ipv4(dst), port, id});
  c.payload_size = payload_size;
  c.count = count;
  c.duration = duration;
  c.rate = rate;
  c.batch = batch;
  c.source = source.empty() ? 0 : ipv4(source);
  c.source_port = source_port;
  std::string mac = source_mac;
  if (mac.size() != 6) throw py::value_error("source_mac must be 6 bytes");
  std::copy(mac.begin(), mac.end(), c.source_mac);
  c.ttl = ttl;
  c.tos = tos;
  if (std::string error = check_config(c); !error.empty()) throw py::value_error(error);
  return g;
}

py::dict run_generator(Generator& g) {
  GenResult r;
  {
    py::gil_scoped_release release;
    r = generate(g.config, g.stopping);
  }
  if (!r.error.empty() && r.sent == 0) throw std::runtime_error(r.error);
  return py::dict(py::arg("sent") = r.sent, py::arg("retries") = r.retries, py::arg("elapsed") = r.elapsed,
                  py::arg("error") = r.error);
}

py::dict latency_dict(const LatencyHistogram& h) {
  return py::dict(py::arg("count") = h.count(), py::arg("p50") = h.percentile(0.5),
                  py::arg("p99") = h.percentile(0.99), py::arg("p999") = h.percentile(0.999),
                  py::arg("max") = h.max(), py::arg("mean") = h.mean());
}

py::dict stream_dict(const StreamStats& s) {
  return py::dict(py::arg("id") = s.id, py::arg("received") = s.received, py::arg("unique") = s.unique(),
                  py::arg("lost") = s.lost(), py::arg("duplicates") = s.duplicates,
                  py::arg("reordered") = s.reordered, py::arg("max_seq") = s.max_seq, py::arg("bytes") = s.bytes,
                  py::arg("first_ns") = s.first_ns, py::arg("last_ns") = s.last_ns,
                  py::arg("latency_ns") = latency_dict(s.latency));
}

py::dict run_sink(Sink& sink) {
  SinkResult r;
  {
    py::gil_scoped_release release;
    r = sink.run();
  }
  if (!r.error.empty()) throw std::runtime_error(r.error);
  py::list streams;
  for (const StreamStats& s : r.streams) streams.append(stream_dict(s));
  return py::dict(py::arg("streams") = streams, py::arg("latency_ns") = latency_dict(r.latency),
                  py::arg("invalid") = r.invalid, py::arg("truncated") = r.truncated, py::arg("late") = r.late,
                  py::arg("elapsed") = r.elapsed);
}

std::unique_ptr<Sink> make_sink(const std::vector<int>& fds, double duration, double idle, uint64_t max_packets,
                                uint32_t max_streams, uint32_t batch) {
  if (fds.empty()) throw py::value_error("no socket to receive on");
  if (batch == 0 || batch > 1024) throw py::value_error("batch must be between 1 and 1024");
  if (max_streams == 0 || max_streams > (1u << 20)) throw py::value_error("max_streams must be between 1 and 2^20");
  return std::make_unique<Sink>(SinkConfig{fds, duration, idle, max_packets, max_streams, batch});
}

}  // namespace

void bind_traffic(py::module_& m) {
  py::class_<Generator>(m, "Generator")
      .def(py::init(&make_generator), py::arg("fd"), py::arg("streams"), py::arg("payload_size") = 64,
           py::arg("count") = 0, py::arg("duration") = 1.0, py::arg("rate") = 0.0, py::arg("raw") = false,
           py::arg("batch") = 32, py::arg("source") = "", py::arg("source_port") = 40000,
           py::arg("source_mac") = py::bytes("\x02\x00\x00\x00\x00\x01", 6), py::arg("ttl") = 64,
           py::arg("tos") = 0)
      .def("run", &run_generator)
      .def("stop", [](Generator& g) { g.stopping.store(true); });
  py::class_<Sink>(m, "TrafficSink")
      .def(py::init(&make_sink), py::arg("fds"), py::arg("duration") = 10.0, py::arg("idle") = 1.0,
           py::arg("max_packets") = 0, py::arg("max_streams") = 4096, py::arg("batch") = 64)
      .def("run", &run_sink)
      .def("stop", &Sink::stop)
      .def("end_window", &Sink::end_window, py::arg("monotonic_ns"));
  m.attr("PROBE_SIZE") = kProbeSize;
}

}  // namespace mcr::traffic
