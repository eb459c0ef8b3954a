"""Network-namespace lab for testing MCR end to end without touching the host."""

from .gen import Generator, Sink, generate, probe_payload, read_probe, streams
from .netns import (
    Chain,
    Lab,
    LabError,
    chain,
    in_netns,
    interface_index,
    interface_mac,
    open_socket,
)
from .traffic import (
    Capture,
    FrameSender,
    Received,
    UdpSink,
    multicast_mac,
    numbered_payloads,
    payload_intact,
    payload_seq,
    udp_frame,
    udp_packets,
)

__all__ = [
    "Capture",
    "Chain",
    "FrameSender",
    "Generator",
    "Lab",
    "LabError",
    "Received",
    "Sink",
    "UdpSink",
    "chain",
    "generate",
    "in_netns",
    "interface_index",
    "interface_mac",
    "multicast_mac",
    "numbered_payloads",
    "open_socket",
    "payload_intact",
    "payload_seq",
    "probe_payload",
    "read_probe",
    "streams",
    "udp_frame",
    "udp_packets",
]
