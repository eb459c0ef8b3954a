"""Throw-away network namespaces and veth links for lab tests.

Everything here works on namespaces the Lab itself created; nothing is ever
configured in the root namespace, so tests cannot disturb the host network.
"""

from __future__ import annotations

import atexit
import json
import os
import secrets
import socket
import subprocess
from dataclasses import dataclass, field

from ..netns import NETNS_DIR, in_netns


class LabError(RuntimeError):
    """A namespace or link could not be set up or torn down."""


def open_socket(ns: str, family: int, kind: int, proto: int = 0) -> socket.socket:
    """Create a socket that lives in namespace `ns`."""
    with in_netns(ns):
        return socket.socket(family, kind, proto)


def interface_index(ns: str, ifname: str) -> int:
    """ifindex of `ifname` as seen inside `ns` (indexes are per namespace)."""
    with in_netns(ns):
        return socket.if_nametoindex(ifname)


def _ip(*args: str) -> str:
    """Run `ip` and turn a failure into a LabError that shows ip's stderr."""
    cmd = ["ip", *args]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise LabError(f"{' '.join(cmd)} failed: {result.stderr.strip()}")
    return result.stdout


def nft(ns: str, *args: str) -> str:
    """Run nftables' `nft` in `ns` (e.g. a counter to judge traffic by); a failure is a LabError."""
    cmd = ["ip", "netns", "exec", ns, "nft", *args]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise LabError(f"{' '.join(cmd)} failed: {result.stderr.strip()}")
    return result.stdout


def interface_mac(ns: str, ifname: str) -> str:
    """MAC address of `ifname` in `ns`, needed to address unicast frames."""
    (link,) = json.loads(_ip("-n", ns, "-j", "link", "show", "dev", ifname))
    return link["address"]


def _unused_suffix() -> str:
    """A 4-hex-digit tag that no existing namespace name ends with."""
    existing = os.listdir(NETNS_DIR) if os.path.isdir(NETNS_DIR) else []
    for _ in range(64):
        suffix = secrets.token_hex(2)
        if not any(name.endswith("-" + suffix) for name in existing):
            return suffix
    raise LabError("could not find an unused namespace suffix")


class Lab:
    """Creates namespaces and veth links, and removes all of them on close."""

    def __init__(self, prefix: str = "mcr") -> None:
        self.prefix = prefix
        self.suffix = _unused_suffix()
        self.namespaces: list[str] = []
        self._links = 0
        atexit.register(self.close)

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add_namespace(self, role: str) -> str:
        name = f"{self.prefix}-{role}-{self.suffix}"
        if name in self.namespaces:
            raise ValueError(f"namespace role {role!r} already exists in this lab")
        _ip("netns", "add", name)
        # Registered before any further step so close() removes it even if
        # the configuration below fails.
        self.namespaces.append(name)
        _ip("-n", name, "link", "set", "lo", "up")
        # Multicast sources in tests are often not reachable back through the
        # receiving interface; reverse-path filtering would silently drop them.
        self.set_sysctl(name, "net.ipv4.conf.all.rp_filter", "0")
        self.set_sysctl(name, "net.ipv4.conf.default.rp_filter", "0")
        return name

    def _require_own(self, ns: str) -> None:
        # Guard against ever configuring the root or a foreign namespace.
        if ns not in self.namespaces:
            raise ValueError(f"{ns!r} is not a namespace of this lab")

    def add_link(
        self,
        ns_a: str,
        ns_b: str,
        addr_a: str | None,
        addr_b: str | None,
        mtu: int = 1500,
    ) -> tuple[str, str]:
        """Connect two lab namespaces with a veth pair; returns (if_a, if_b).

        Addresses are CIDR strings ('10.9.1.1/24') or None for no address.
        """
        self._require_own(ns_a)
        self._require_own(ns_b)
        index = self._links
        self._links += 1
        # Short names: Linux caps interface names at 15 characters.
        if_a = f"{self.prefix[:1]}{self.suffix}-{index}a"
        if_b = f"{self.prefix[:1]}{self.suffix}-{index}b"
        # Created directly inside ns_a with the peer inside ns_b, so the pair
        # never appears in the root namespace.
        _ip("-n", ns_a, "link", "add", if_a, "mtu", str(mtu), "type", "veth",
            "peer", "name", if_b, "mtu", str(mtu), "netns", ns_b)
        for ns, ifname, addr in ((ns_a, if_a, addr_a), (ns_b, if_b, addr_b)):
            if addr is not None:
                _ip("-n", ns, "addr", "add", addr, "dev", ifname)
            _ip("-n", ns, "link", "set", ifname, "up")
        return if_a, if_b

    def add_bridge(self, ns: str, ports: list[str], **options: int) -> str:
        """A Linux bridge "br0" in `ns` over `ports` (interfaces already there),
        up, without an address; `options` are `ip link ... type bridge`
        settings, e.g. mcast_snooping=1, mcast_querier=0."""
        self._require_own(ns)
        settings = [str(x) for item in options.items() for x in item]
        _ip("-n", ns, "link", "add", "br0", "type", "bridge", *settings)
        for port in ports:
            _ip("-n", ns, "link", "set", port, "master", "br0")
        _ip("-n", ns, "link", "set", "br0", "up")
        return "br0"

    def add_route(self, ns: str, prefix: str, dev: str) -> None:
        self._require_own(ns)
        _ip("-n", ns, "route", "add", prefix, "dev", dev)

    def set_sysctl(self, ns: str, key: str, value: str | int) -> None:
        """Write sysctl `key` (dotted, e.g. net.ipv4.conf.all.rp_filter) in `ns`.

        /proc/sys/net resolves against the network namespace of the task that
        opens the file, so opening it from inside in_netns hits the right one.
        """
        self._require_own(ns)
        path = "/proc/sys/" + key.replace(".", "/")
        with in_netns(ns), open(path, "w") as f:
            f.write(str(value))

    def close(self) -> None:
        """Delete every namespace (which also destroys its veth ends). Idempotent."""
        failures = []
        while self.namespaces:
            name = self.namespaces.pop()
            try:
                _ip("netns", "del", name)
            except LabError as exc:
                failures.append(str(exc))
        atexit.unregister(self.close)
        if failures:
            raise LabError("; ".join(failures))


def _ip_only(cidr: str) -> str:
    return cidr.split("/", 1)[0]


@dataclass
class Chain:
    """source -> relay -> sinks topology; see chain()."""

    lab: Lab
    source_ns: str
    relay_ns: str
    source_if: str
    relay_in: str
    source_addr: str
    relay_in_addr: str
    sink_ns: list[str] = field(default_factory=list)
    relay_out: list[str] = field(default_factory=list)
    sink_if: list[str] = field(default_factory=list)
    relay_out_addr: list[str] = field(default_factory=list)
    sink_addr: list[str] = field(default_factory=list)

    def __enter__(self) -> Chain:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.lab.close()


MULTICAST_NET = "224.0.0.0/4"


def chain(n_sinks: int = 1, mtu: int = 1500, prefix: str = "mcr") -> Chain:
    """Build source --10.200.0.0/24-- relay --10.200.<i+1>.0/24-- sink i.

    The relay owns .1 on every link, the other end .2. Source and sinks get
    a multicast route on their link so sockets there can send and join
    groups without a default route.
    """
    if not 1 <= n_sinks <= 254:
        raise ValueError("n_sinks must be between 1 and 254")
    lab = Lab(prefix)
    try:
        return _build_chain(lab, n_sinks, mtu)
    except BaseException:
        lab.close()
        raise


def _build_chain(lab: Lab, n_sinks: int, mtu: int) -> Chain:
    source = lab.add_namespace("src")
    relay = lab.add_namespace("relay")
    src_cidr, relay_cidr = "10.200.0.2/24", "10.200.0.1/24"
    source_if, relay_in = lab.add_link(source, relay, src_cidr, relay_cidr, mtu)
    lab.add_route(source, MULTICAST_NET, source_if)
    result = Chain(lab, source, relay, source_if, relay_in,
                   _ip_only(src_cidr), _ip_only(relay_cidr))
    for i in range(n_sinks):
        sink = lab.add_namespace(f"sink{i}")
        out_cidr, sink_cidr = f"10.200.{i + 1}.1/24", f"10.200.{i + 1}.2/24"
        relay_out, sink_if = lab.add_link(relay, sink, out_cidr, sink_cidr, mtu)
        lab.add_route(sink, MULTICAST_NET, sink_if)
        result.sink_ns.append(sink)
        result.relay_out.append(relay_out)
        result.sink_if.append(sink_if)
        result.relay_out_addr.append(_ip_only(out_cidr))
        result.sink_addr.append(_ip_only(sink_cidr))
    return result
