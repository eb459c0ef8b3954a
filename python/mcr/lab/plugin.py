"""pytest fixtures for testing multicast networks with MCR: `pytest -p mcr.lab`.

Installed, mcr registers this plugin through a `pytest11` entry point named
"mcr.lab" (that entry point loads mcr.lab, whose `pytest_plugins` loads this
module), so the fixtures are there in every run; `-p mcr.lab` names the same
plugin and loads it once, and `-p no:mcr.lab` turns it off.

Every fixture is a factory: call it in the test with what you want, and all
it made is removed after the test, also when the test fails. Every name
starts with `mcr_`, so the plugin never shadows a project's own fixtures.

    mcr_topology(links)        -> Topology: namespaces by role, veth links, addresses
    mcr_relay(ns, *rules)      -> mcr.engine.Engine running in `ns` with those rules
    mcr_daemon(ns, config)     -> LabDaemon: `mcr daemon` in `ns`, answering `mcr ping`
    mcr_sender(ns, ifname)     -> UdpSender: a kernel UDP socket sending multicast out of ifname
    mcr_receiver(ns, group, port, ifname) -> UdpSink: a kernel UDP socket joined to group on ifname
    mcr_frame_sender(ns, ifname) -> FrameSender: raw frames (e.g. built with scapy) onto a link
    mcr_capture(ns, ifname)    -> Capture: every frame that arrives on a link, in a thread

Namespaces need root; without it the fixtures skip the test and say why.
Everything else depends on mcr_topology, so pytest tears the relays,
daemons and sockets down before it deletes the namespaces they live in.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import pytest

from .daemon import LabDaemon
from .topology import LinkSpec, Topology, topology
from .traffic import Capture, FrameSender, UdpSender, UdpSink

PREFIX = "mcru"  # namespaces: mcru-<role>-<4 hex digits>, unique among those that exist

T = TypeVar("T")


def _closing(close: Callable[[Any], object]) -> tuple[Callable[[T], T], Callable[[], None]]:
    """A `keep` that records a made object, and a `close_all` that closes every one (newest
    first), even when one fails; the first failure is raised after the rest are closed."""
    made: list = []

    def keep(thing: T) -> T:
        made.append(thing)
        return thing

    def close_all() -> None:
        first: BaseException | None = None
        for thing in reversed(made):
            try:
                close(thing)
            except Exception as error:
                first = first or error
        if first is not None:
            raise first

    return keep, close_all


@pytest.fixture
def mcr_topology() -> Iterator[Callable[..., Topology]]:
    """mcr_topology([("src", "relay"), ("relay", "rcv")], mtu=1500) -> Topology.

    Link i is 10.100.i.0/24, .1 on its first role and .2 on its second, or
    (a, b, "cidr_a", "cidr_b") gives the addresses. `topo.ns[role]` is the
    namespace, `topo.interface(role, peer)` and `topo.address(role, peer)`
    the link ends; `topo.link(...)` adds links later.
    """
    if os.geteuid() != 0:
        pytest.skip("mcr.lab fixtures need root (network namespaces, raw sockets)")
    keep, close_all = _closing(Topology.close)

    def make(links: list[LinkSpec] | tuple[LinkSpec, ...] = (), mtu: int = 1500) -> Topology:
        return keep(topology(links, prefix=PREFIX, mtu=mtu))

    yield make
    close_all()


@pytest.fixture
def mcr_relay(mcr_topology: Callable[..., Topology]) -> Iterator[Callable[..., Any]]:
    """mcr_relay(ns, *rules, **engine_options) -> mcr.engine.Engine, running in namespace `ns`.

    Rules are mcr.rules.Rule objects or their text form
    ("in=IF group=G:PORT out=G2:PORT2:IF2"); more can be added with
    engine.add_rule(). engine.stats() has the counters. Engine options are
    Engine's keyword arguments (rx_frames, max_rules, ...).
    """
    # Imported here: the engine is a compiled extension, and a plugin loaded
    # in every pytest run must not need it until a test asks for a relay.
    from ..engine import Engine
    from ..rules import Rule

    keep, close_all = _closing(Engine.close)

    def make(ns: str, *rules: Rule | str, **options: Any) -> Engine:
        engine = keep(Engine(ns, **options))
        for rule in rules:
            engine.add_rule(Rule.parse(rule) if isinstance(rule, str) else rule)
        return engine

    yield make
    close_all()


@pytest.fixture
def mcr_daemon(mcr_topology: Callable[..., Topology]) -> Iterator[Callable[..., LabDaemon]]:
    """mcr_daemon(ns, config=None, workers=1, args=()) -> LabDaemon, answering `mcr ping`.

    `config` is the daemon's config as a dict (written to a file for it) or
    a path to a JSON file. `daemon.mcr("rules", "list", "--json")` runs the
    CLI against it, `daemon.client()` gives an mcr.api.Client,
    `daemon.log_text()` its log. Stopped by its PID (SIGTERM) after the test.
    """
    keep, close_all = _closing(LabDaemon.stop)

    def make(ns: str, config: dict[str, Any] | str | Path | None = None, workers: int = 1,
             args: tuple[str, ...] = ()) -> LabDaemon:
        return keep(LabDaemon(ns, config, workers=workers, args=tuple(args)))

    yield make
    close_all()


@pytest.fixture
def mcr_sender(mcr_topology: Callable[..., Topology]) -> Iterator[Callable[..., UdpSender]]:
    """mcr_sender(ns, ifname, ttl=64, tos=0) -> UdpSender: `.send(payloads, group, port, rate_pps=...)`."""
    keep, close_all = _closing(UdpSender.close)

    def make(ns: str, ifname: str, **options: Any) -> UdpSender:
        return keep(UdpSender(ns, ifname, **options))

    yield make
    close_all()


@pytest.fixture
def mcr_receiver(mcr_topology: Callable[..., Topology]) -> Iterator[Callable[..., UdpSink]]:
    """mcr_receiver(ns, group, port, ifname) -> UdpSink, joined to `group` on `ifname`.

    `len(rx.receive(count, timeout=5))` counts what arrived: it returns
    after `count` datagrams, `timeout` seconds, or one idle second after
    traffic started. Each item has `.payload` and `.src`.
    """
    keep, close_all = _closing(UdpSink.close)

    def make(ns: str, group: str, port: int, ifname: str | None = None) -> UdpSink:
        return keep(UdpSink(ns, group, port, ifname))

    yield make
    close_all()


@pytest.fixture
def mcr_frame_sender(mcr_topology: Callable[..., Topology]) -> Iterator[Callable[..., FrameSender]]:
    """mcr_frame_sender(ns, ifname) -> FrameSender: `.send([bytes(scapy_packet), ...], rate_pps=...)`."""
    keep, close_all = _closing(FrameSender.close)

    def make(ns: str, ifname: str) -> FrameSender:
        return keep(FrameSender(ns, ifname))

    yield make
    close_all()


@pytest.fixture
def mcr_capture(mcr_topology: Callable[..., Topology]) -> Iterator[Callable[..., Capture]]:
    """mcr_capture(ns, ifname, max_seconds=10, max_frames=10000) -> Capture of frames arriving there.

    `cap.stop()` returns the frames; mcr.lab.udp_packets(frames, dst=, dport=)
    turns them into scapy IP packets to check field by field.
    """
    keep, close_all = _closing(Capture.stop)

    def make(ns: str, ifname: str, max_seconds: float = 10.0, max_frames: int = 10000) -> Capture:
        return keep(Capture(ns, ifname, max_seconds, max_frames))

    yield make
    close_all()
