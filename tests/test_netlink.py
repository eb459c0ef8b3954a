"""NetworkMonitor against a real kernel (needs root for network namespaces).

Each test builds a namespace "a" with a veth link to a namespace "b"
(a.1 = 10.77.0.1/24 <-> b.2 = 10.77.0.2/24), starts a monitor in "a",
drives one kind of change with `ip`, and checks both the Change batch and
the table, which must equal what `ip -j` reports for the namespace.

The `ip` commands run while the event loop is blocked, so the kernel
queues the events on the monitor's socket, just as a busy daemon would.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass

import pytest

if os.geteuid() != 0:
    pytest.skip("netlink tests need root (network namespaces)", allow_module_level=True)

from mcr.lab import Lab, interface_index
from mcr.netlink import FIELDS, Change, Interface, NetworkMonitor, UnicastRoute

TIMEOUT = 2.0


@dataclass
class Topology:
    lab: Lab
    ns: str  # where the monitor runs
    peer_ns: str
    link: str  # in ns
    peer: str  # in peer_ns


@pytest.fixture
def topo() -> Iterator[Topology]:
    lab = Lab(prefix="mcrn")
    try:
        ns, peer_ns = lab.add_namespace("a"), lab.add_namespace("b")
        link, peer = lab.add_link(ns, peer_ns, "10.77.0.1/24", "10.77.0.2/24")
        yield Topology(lab, ns, peer_ns, link, peer)
    finally:
        names = list(lab.namespaces)
        lab.close()
        assert not set(names) & set(os.listdir("/run/netns"))


def ip(ns: str, *args: str, commands: str | None = None) -> str:
    """Run `ip -n ns args`; `commands` feeds `ip -batch -` its lines."""
    return subprocess.run(["ip", "-n", ns, *args], input=commands, check=True,
                          capture_output=True, text=True, timeout=10).stdout


def kernel_table(ns: str) -> dict[int, Interface]:
    """The table as `ip -j` sees it, to compare the monitor's against."""
    addresses: dict[int, tuple[str, ...]] = {
        entry["ifindex"]: tuple(f"{a['local']}/{a['prefixlen']}" for a in entry["addr_info"])
        for entry in json.loads(ip(ns, "-j", "-4", "addr", "show"))
    }
    return {
        link["ifindex"]: Interface(
            index=link["ifindex"],
            name=link["ifname"],
            up="UP" in link["flags"],
            carrier="LOWER_UP" in link["flags"],
            mtu=link["mtu"],
            mac=link.get("address", ""),
            ethernet=link["link_type"] == "ether",
            addresses=addresses.get(link["ifindex"], ()),
        )
        for link in json.loads(ip(ns, "-j", "link", "show"))
    }


async def until(monitor: NetworkMonitor, stream: AsyncIterator[list[Change]],
                done: Callable[[], bool]) -> list[Change]:
    """Consume batches until `done()` holds, within TIMEOUT; all changes seen."""
    seen: list[Change] = []

    async def consume() -> None:
        while not done():
            seen.extend(await anext(stream))

    await asyncio.wait_for(consume(), TIMEOUT)
    return seen


async def until_kernel(monitor: NetworkMonitor, stream: AsyncIterator[list[Change]],
                       ns: str) -> list[Change]:
    """Consume batches until the monitor's table equals the kernel's."""
    expected = kernel_table(ns)
    return await until(monitor, stream, lambda: monitor.interfaces() == expected)


def of(changes: list[Change], index: int) -> list[Change]:
    return [c for c in changes if c.index == index]


def run(topo: Topology, scenario: Callable[..., Awaitable[None]], **options) -> None:
    """asyncio.run(scenario(monitor, stream, topo)) with a started monitor."""
    async def main() -> None:
        monitor = NetworkMonitor(topo.ns, **options)
        await monitor.start()
        try:
            await scenario(monitor, monitor.changes(), topo)
        finally:
            monitor.close()
    asyncio.run(main())


def test_start_reads_the_namespace(topo: Topology) -> None:
    async def scenario(monitor, stream, topo):
        assert monitor.interfaces() == kernel_table(topo.ns)
        link = monitor.by_name(topo.link)
        assert link == Interface(
            index=interface_index(topo.ns, topo.link), name=topo.link, up=True, carrier=True,
            mtu=1500, mac=link.mac, ethernet=True, addresses=("10.77.0.1/24",))
        assert len(link.mac) == 17
        lo = monitor.by_name("lo")
        assert lo.index == 1 and not lo.ethernet and lo.addresses == ("127.0.0.1/8",)
        assert monitor.by_name(topo.peer) is None  # lives in the other namespace
    run(topo, scenario)


def test_no_thread_is_started(topo: Topology) -> None:
    before = threading.enumerate()

    async def scenario(monitor, stream, topo):
        ip(topo.ns, "link", "set", topo.link, "mtu", "1400")
        await until(monitor, stream, lambda: monitor.by_name(topo.link).mtu == 1400)
        assert await monitor.route_to("10.77.0.2") is not None
        assert threading.enumerate() == before
    run(topo, scenario)
    assert threading.enumerate() == before


def test_link_added_and_deleted(topo: Topology) -> None:
    async def scenario(monitor, stream, topo):
        ip(topo.ns, "link", "add", "nl0", "type", "veth", "peer", "name", "nl1")
        changes = await until_kernel(monitor, stream, topo.ns)
        added = {c.after.name: c for c in changes if c.kind == "added"}
        assert set(added) == {"nl0", "nl1"} and len(changes) == 2
        assert added["nl0"].before is None and added["nl0"].what == FIELDS
        assert not added["nl0"].after.up and added["nl0"].after.ethernet

        gone = monitor.by_name("nl0")
        ip(topo.ns, "link", "del", "nl0")  # takes its peer with it
        changes = await until_kernel(monitor, stream, topo.ns)
        assert {(c.kind, c.before.name) for c in changes} == {("removed", "nl0"), ("removed", "nl1")}
        assert of(changes, gone.index)[0].before == gone and of(changes, gone.index)[0].after is None
        assert monitor.by_name("nl0") is None
    run(topo, scenario)


def test_recreated_link_is_removed_then_added(topo: Topology) -> None:
    async def scenario(monitor, stream, topo):
        old = monitor.by_name(topo.link)
        ip(topo.ns, "link", "del", topo.link)
        ip(topo.ns, "link", "add", topo.link, "type", "veth", "peer", "name", "nl1")
        changes = await until_kernel(monitor, stream, topo.ns)
        new = monitor.by_name(topo.link)
        assert new.index != old.index and new.addresses == ()
        # An up link is first reported down and stripped of its addresses.
        assert of(changes, old.index)[-1].kind == "removed"
        assert [c.kind for c in of(changes, new.index)] == ["added"]
        assert old.index not in monitor.interfaces()
    run(topo, scenario)


def test_rename_keeps_the_index(topo: Topology) -> None:
    async def scenario(monitor, stream, topo):
        old = monitor.by_name(topo.link)
        ip(topo.ns, "link", "set", topo.link, "name", "renamed0")
        changes = await until_kernel(monitor, stream, topo.ns)
        assert [(c.kind, c.what) for c in changes] == [("changed", frozenset({"name"}))]
        assert changes[0].before == old and changes[0].after.name == "renamed0"
        assert monitor.by_name("renamed0").index == old.index
        assert monitor.by_name(topo.link) is None
    run(topo, scenario)


def test_admin_down_and_up(topo: Topology) -> None:
    async def scenario(monitor, stream, topo):
        index = monitor.by_name(topo.link).index
        ip(topo.ns, "link", "set", topo.link, "down")
        changes = await until_kernel(monitor, stream, topo.ns)
        assert frozenset.union(*(c.what for c in changes)) == {"up", "carrier"}
        assert monitor.interfaces()[index].addresses == ("10.77.0.1/24",)  # kept while down

        ip(topo.ns, "link", "set", topo.link, "up")
        changes = await until_kernel(monitor, stream, topo.ns)
        assert frozenset.union(*(c.what for c in changes)) == {"up", "carrier"}
        assert monitor.interfaces()[index].up and monitor.interfaces()[index].carrier
    run(topo, scenario)


def test_carrier_follows_the_veth_peer(topo: Topology) -> None:
    async def scenario(monitor, stream, topo):
        ip(topo.peer_ns, "link", "set", topo.peer, "down")
        changes = await until_kernel(monitor, stream, topo.ns)
        assert [c.what for c in changes] == [frozenset({"carrier"})]
        assert changes[0].after.up and not changes[0].after.carrier

        ip(topo.peer_ns, "link", "set", topo.peer, "up")
        changes = await until_kernel(monitor, stream, topo.ns)
        assert [c.what for c in changes] == [frozenset({"carrier"})]
        assert changes[0].after.carrier
    run(topo, scenario)


def test_mtu_and_mac_changes(topo: Topology) -> None:
    async def scenario(monitor, stream, topo):
        ip(topo.ns, "link", "set", topo.link, "mtu", "1400")
        changes = await until_kernel(monitor, stream, topo.ns)
        assert [c.what for c in changes] == [frozenset({"mtu"})]
        assert (changes[0].before.mtu, changes[0].after.mtu) == (1500, 1400)

        ip(topo.ns, "link", "set", topo.link, "address", "02:00:00:77:00:01")
        changes = await until_kernel(monitor, stream, topo.ns)
        assert [c.what for c in changes] == [frozenset({"mac"})]
        assert monitor.by_name(topo.link).mac == "02:00:00:77:00:01"
    run(topo, scenario)


def test_addresses_follow_kernel_order(topo: Topology) -> None:
    async def scenario(monitor, stream, topo):
        link = topo.link

        def addr() -> tuple[str, ...]:
            return monitor.by_name(link).addresses

        ip(topo.ns, "addr", "add", "10.77.0.9/24", "dev", link)  # a secondary
        ip(topo.ns, "addr", "add", "10.88.0.1/24", "dev", link)  # a primary: before it
        changes = await until_kernel(monitor, stream, topo.ns)
        assert {c.what for c in changes} == {frozenset({"addresses"})}
        assert addr() == ("10.77.0.1/24", "10.88.0.1/24", "10.77.0.9/24")

        # Replacing an address with itself changes nothing: the next batch
        # is the one for the MTU change that follows.
        ip(topo.ns, "addr", "replace", "10.88.0.1/24", "dev", link)
        ip(topo.ns, "link", "set", link, "mtu", "1400")
        changes = await until_kernel(monitor, stream, topo.ns)
        assert [c.what for c in changes] == [frozenset({"mtu"})]

        # With promotion, deleting a primary makes its secondary primary.
        topo.lab.set_sysctl(topo.ns, f"net.ipv4.conf.{link}.promote_secondaries", 1)
        ip(topo.ns, "addr", "del", "10.77.0.1/24", "dev", link)
        changes = await until_kernel(monitor, stream, topo.ns)
        assert addr() == ("10.88.0.1/24", "10.77.0.9/24")
        assert changes[0].before.addresses == ("10.77.0.1/24", "10.88.0.1/24", "10.77.0.9/24")

        ip(topo.ns, "addr", "flush", "dev", link)
        await until_kernel(monitor, stream, topo.ns)
        assert addr() == ()
    run(topo, scenario)


def test_tun_has_no_mac(topo: Topology) -> None:
    async def scenario(monitor, stream, topo):
        ip(topo.ns, "tuntap", "add", "mode", "tun", "name", "nltun0")
        changes = await until_kernel(monitor, stream, topo.ns)
        (added,) = changes
        assert added.kind == "added" and added.after.mac == "" and not added.after.ethernet
    run(topo, scenario)


def test_overflow_is_recovered_by_a_redump(topo: Topology) -> None:
    count = 200

    async def scenario(monitor, stream, topo):
        # Far more events than a tiny receive buffer holds, while the loop
        # is blocked: the kernel drops some and flags ENOBUFS.
        ip(topo.ns, "-batch", "-",
           commands="".join(f"addr add 10.66.{i}.1/24 dev {topo.link}\n" for i in range(count)))
        changes = await until_kernel(monitor, stream, topo.ns)
        assert monitor.overflows >= 1
        assert len(monitor.by_name(topo.link).addresses) == count + 1
        assert changes and {c.what for c in changes} == {frozenset({"addresses"})}

        # The new socket carries on.
        ip(topo.ns, "link", "set", topo.link, "mtu", "1400")
        changes = await until_kernel(monitor, stream, topo.ns)
        assert [c.what for c in changes] == [frozenset({"mtu"})]
    run(topo, scenario, rcvbuf=4096)


def test_route_to(topo: Topology) -> None:
    async def scenario(monitor, stream, topo):
        index = monitor.by_name(topo.link).index
        ip(topo.ns, "route", "add", "10.99.0.0/16", "via", "10.77.0.2")
        ip(topo.ns, "route", "add", "blackhole", "10.98.0.0/16")
        ip(topo.ns, "route", "add", "unreachable", "10.97.0.0/16")
        ip(topo.ns, "route", "add", "10.96.0.0/16", "via", "10.77.0.2", "metric", "20")
        assert await monitor.route_to("10.99.1.1") == UnicastRoute(index, "10.77.0.2", 0, 3, 16)  # 3: boot (ip's default)
        assert await monitor.route_to("10.96.1.1") == UnicastRoute(index, "10.77.0.2", 20, 3, 16)
        connected = await monitor.route_to("10.77.0.2")
        assert (connected.ifindex, connected.gateway, connected.protocol) == (index, None, 2)  # kernel's own
        assert await monitor.route_to("192.0.2.1") is None  # no default route
        assert await monitor.route_to("10.98.0.1") is None
        assert await monitor.route_to("10.97.0.1") is None
        with pytest.raises(ValueError):
            await monitor.route_to("not-an-address")
    run(topo, scenario)


def test_close_ends_changes_and_frees_sockets(topo: Topology) -> None:
    async def main() -> None:
        fds = len(os.listdir("/proc/self/fd"))
        monitor = NetworkMonitor(topo.ns)
        await monitor.start()

        async def follow() -> list[list[Change]]:
            return [batch async for batch in monitor.changes()]

        task = asyncio.create_task(follow())
        await asyncio.sleep(0.05)
        monitor.close()
        assert await asyncio.wait_for(task, TIMEOUT) == []
        monitor.close()  # idempotent
        await asyncio.sleep(0)  # let the transports finish closing
        assert len(os.listdir("/proc/self/fd")) == fds
    asyncio.run(main())


def test_route_changes(topo: Topology) -> None:
    from mcr.netlink import RouteChange

    async def scenario(monitor, stream, topo):
        index = monitor.by_name(topo.link).index
        routes = monitor.route_changes()
        first = asyncio.ensure_future(anext(routes))
        await asyncio.sleep(0.1)  # subscribed before the change
        ip(topo.ns, "route", "add", "10.99.0.0/16", "via", "10.77.0.2")
        seen = await asyncio.wait_for(first, TIMEOUT)
        assert seen == [RouteChange("added", "10.99.0.0/16", 254, "unicast", index, "10.77.0.2")]
        ip(topo.ns, "route", "add", "blackhole", "default")
        ip(topo.ns, "route", "del", "10.99.0.0/16")
        seen = []
        while len(seen) < 2:
            seen += await asyncio.wait_for(anext(routes), TIMEOUT)
        assert seen == [RouteChange("added", "0.0.0.0/0", 254, "blackhole", None, None),
                        RouteChange("removed", "10.99.0.0/16", 254, "unicast", index, "10.77.0.2")]
        # An address's local-table routes are not route changes (addresses have their own).
        ip(topo.ns, "addr", "add", "10.55.0.1/32", "dev", topo.link)
        ip(topo.ns, "route", "add", "10.98.0.0/16", "dev", topo.link)
        seen = await asyncio.wait_for(anext(routes), TIMEOUT)
        assert [c.destination for c in seen] == ["10.98.0.0/16"], seen
    run(topo, scenario)
