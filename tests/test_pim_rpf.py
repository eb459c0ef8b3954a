"""RpfTable: synchronous RPF answers from a cache that asynchronous lookups fill.

The lookups here are a dict standing in for netlink (NetworkMonitor.route_to
is tested against the kernel in test_netlink.py); what is tested is the
caching, refreshing and change reporting."""

from __future__ import annotations

import asyncio

from mcr.netlink import UnicastRoute
from mcr.protocols.pim_rpf import REGISTER_VIF, Rpf, RpfTable


def make(routes: dict, changes: list, clock=lambda: 0.0) -> RpfTable:
    async def lookup(address):
        if isinstance(routes.get(address), Exception):
            raise routes[address]
        return routes.get(address)
    names = {3: "eth0", 4: "eth1"}
    return RpfTable(lookup, names.get, lambda a: a == "10.0.0.1", lambda: changes.append(1), clock)


def test_first_answer_is_unreachable_then_filled_and_reported() -> None:
    async def scenario():
        changes: list = []
        table = make({"10.9.0.1": UnicastRoute(3, "10.1.0.2", 20, 4, 16)}, changes)
        assert table.rpf("10.9.0.1") is None
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert table.rpf("10.9.0.1") == Rpf("eth0", "10.1.0.2", 1, 20)
        assert changes == [1]
        assert table.lookups == 1  # cached: asked twice, looked up once
    asyncio.run(scenario())


def test_connected_own_and_unreachable() -> None:
    async def scenario():
        changes: list = []
        table = make({"10.1.0.9": UnicastRoute(4, None, 0, 2, 24)}, changes)
        assert table.rpf("10.0.0.1") == Rpf(REGISTER_VIF, None)  # we are the RP
        table.rpf("10.1.0.9")
        table.rpf("192.0.2.1")
        for _ in range(3):
            await asyncio.sleep(0)
        assert table.rpf("10.1.0.9") == Rpf("eth1", None, 0, 0)
        assert table.rpf("192.0.2.1") is None
        assert changes == [1]  # only the reachable answer is news
    asyncio.run(scenario())


def test_refresh_reports_only_moves_and_failures_read_unreachable() -> None:
    async def scenario():
        changes: list = []
        routes = {"10.9.0.1": UnicastRoute(3, "10.1.0.2", 0, 4, 16)}
        table = make(routes, changes)
        table.rpf("10.9.0.1")
        for _ in range(3):
            await asyncio.sleep(0)
        changes.clear()
        await table.refresh()
        assert changes == []
        routes["10.9.0.1"] = UnicastRoute(4, "10.2.0.2", 0, 4, 16)
        await table.refresh()
        assert changes == [1] and table.rpf("10.9.0.1") == Rpf("eth1", "10.2.0.2", 1, 0)
        routes["10.9.0.1"] = RuntimeError("netlink went away")
        await table.refresh()
        assert table.rpf("10.9.0.1") is None and table.failures == 1 and changes == [1, 1]
    asyncio.run(scenario())


def test_addresses_not_asked_for_are_forgotten() -> None:
    async def scenario():
        now = [0.0]
        table = make({"10.9.0.1": UnicastRoute(3, "10.1.0.2", 0, 4, 16)}, [], clock=lambda: now[0])
        table.rpf("10.9.0.1")
        for _ in range(3):
            await asyncio.sleep(0)
        now[0] = 1000.0
        await table.refresh()
        assert table.describe() == []
    asyncio.run(scenario())
