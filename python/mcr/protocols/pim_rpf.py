"""RPF for PIM: which interface and neighbor lead toward an address
(RFC 7761 4.1.6 RPF_interface, MRIB.next_hop), from the kernel's unicast
routing table.

The tree state asks synchronously (`rpf(address)`); netlink answers
asynchronously. So answers come from a cache: an address asked for the
first time is looked up in the background and reads as unreachable until
the answer is in, and then `on_change` runs so the tree asks again. A route
change anywhere refreshes every cached address (`refresh`); only answers
that differ call `on_change`. Addresses nobody asked for in a while are
forgotten at the next refresh.

Metrics for Assert (RFC 7761 4.6.1): the preference is 0 for a connected
subnet and 1 for any other route of the kernel's table (MCR has no
protocol distances of its own; FRR's static routes also have distance 1),
the metric is the route's kernel metric.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Awaitable, Callable

from ..netlink import UnicastRoute
from ..rules import REGISTER_INTERFACE

# The RPF interface toward our own address as RP: decapsulated Registers
# come from it (the engine's register input, mcr.rules.REGISTER_INTERFACE).
REGISTER_VIF = REGISTER_INTERFACE
FORGET_AFTER = 600.0  # seconds: a cached address no one asked for since is dropped at a refresh

log = logging.getLogger("mcr.pim")


@dataclass(frozen=True)
class Rpf:
    """What the unicast routing table says about an address."""

    interface: str  # RPF interface toward it; REGISTER_VIF when it is one of our own addresses
    neighbor: str | None  # next-hop router on it; None when the address is directly connected
    preference: int = 0  # Assert metric preference
    metric: int = 0  # Assert metric


Lookup = Callable[[str], Awaitable[UnicastRoute | None]]


class RpfTable:
    """Cached RPF answers, filled and refreshed through `lookup` (NetworkMonitor.route_to)."""

    def __init__(self, lookup: Lookup, interface_name: Callable[[int], str | None],
                 own_address: Callable[[str], bool], on_change: Callable[[], None],
                 clock: Callable[[], float]) -> None:
        self._lookup = lookup
        self._name = interface_name
        self._own = own_address
        self._on_change = on_change
        self._clock = clock
        self._answers: dict[str, Rpf | None] = {}
        self._asked: dict[str, float] = {}  # address -> when last asked
        self._pending: set[str] = set()
        self._tasks: set[asyncio.Task] = set()
        self.lookups = 0
        self.failures = 0  # lookups that raised: logged, counted, answered as unreachable

    def rpf(self, address: str) -> Rpf | None:
        """The cached answer; None (unreachable) until the first lookup is in."""
        self._asked[address] = self._clock()
        if self._own(address):
            return Rpf(REGISTER_VIF, None)
        if address not in self._answers and address not in self._pending:
            self._pending.add(address)
            task = asyncio.get_running_loop().create_task(self._fill(address))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return self._answers.get(address)

    async def refresh(self) -> None:
        """Look every remembered address up again (a route changed); `on_change` if any answer moved."""
        now = self._clock()
        for address in [a for a, t in self._asked.items() if now - t > FORGET_AFTER]:
            self._asked.pop(address)
            self._answers.pop(address, None)
        changed = False
        for address in list(self._answers):
            answer = await self._resolve(address)
            if address in self._answers and self._answers[address] != answer:
                self._answers[address] = answer
                changed = True
        if changed:
            self._on_change()

    def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    def describe(self) -> list[dict]:
        return [{"address": a, "interface": r.interface if r else None, "neighbor": r.neighbor if r else None,
                 "preference": r.preference if r else None, "metric": r.metric if r else None}
                for a, r in sorted(self._answers.items())]

    async def _fill(self, address: str) -> None:
        try:
            answer = await self._resolve(address)
        finally:
            self._pending.discard(address)
        self._answers[address] = answer
        if answer is not None:
            self._on_change()

    async def _resolve(self, address: str) -> Rpf | None:
        self.lookups += 1
        try:
            route = await self._lookup(address)
        except Exception:  # noqa: BLE001 - a failed lookup reads as unreachable, never kills the caller
            self.failures += 1
            log.exception("RPF lookup of %s failed", address)
            return None
        if route is None:
            return None
        name = self._name(route.ifindex)
        if name is None:
            return None
        connected = route.gateway is None
        return Rpf(name, route.gateway, 0 if connected else 1, route.metric)
