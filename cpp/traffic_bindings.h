// The Python surface of the traffic generator and sink (mcr._engine.Generator,
// mcr._engine.TrafficSink): type translation only, see traffic_bindings.cpp.
#pragma once
#include <pybind11/pybind11.h>

namespace mcr::traffic {

void bind_traffic(pybind11::module_& m);

}  // namespace mcr::traffic
