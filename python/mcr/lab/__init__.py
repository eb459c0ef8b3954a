"""Network-namespace lab for testing MCR end to end without touching the host.

Also a pytest plugin: `pytest -p mcr.lab` (or just installing mcr, which
registers it as the `pytest11` entry point "mcr.lab") loads the fixtures in
mcr.lab.plugin through `pytest_plugins` below. Only the name is listed, so
importing mcr.lab outside pytest never imports pytest.
"""

from .daemon import DaemonError, LabDaemon
from .gen import Generator, Sink, generate, probe_payload, read_probe, streams
from .netns import (
    Chain,
    Lab,
    LabError,
    chain,
    in_netns,
    interface_index,
    interface_mac,
    nft,
    open_socket,
)
from .topology import Link, Topology, TopologyError, topology
from .traffic import (
    Capture,
    FrameSender,
    Received,
    UdpSender,
    UdpSink,
    multicast_mac,
    numbered_payloads,
    payload_intact,
    payload_seq,
    udp_counters,
    udp_frame,
    udp_packets,
)

pytest_plugins = ["mcr.lab.plugin"]

__all__ = [
    "Capture",
    "Chain",
    "DaemonError",
    "FrameSender",
    "Generator",
    "Lab",
    "LabDaemon",
    "LabError",
    "Link",
    "Received",
    "Sink",
    "Topology",
    "TopologyError",
    "UdpSender",
    "UdpSink",
    "chain",
    "generate",
    "in_netns",
    "interface_index",
    "interface_mac",
    "multicast_mac",
    "nft",
    "numbered_payloads",
    "open_socket",
    "payload_intact",
    "payload_seq",
    "probe_payload",
    "read_probe",
    "streams",
    "topology",
    "udp_counters",
    "udp_frame",
    "udp_packets",
]
