"""The supervisor's PIM side: the PIM adapter configured and following its
interfaces, its tree's forwarding entries in the MRIB, and the data
plane's reports (new sources, arrivals, packet counts) carried back to it.

A part of Supervisor (a mixin, for a file per concern), on its loop.
"""

from __future__ import annotations

import asyncio
import logging
import time

from .. import _engine, mrib
from ..protocols.pim_rpf import REGISTER_VIF, RpfTable
from .workers import WorkerError

NOTIFY_INTERVAL = 0.2  # s between polls of the workers' notifications while PIM runs
PIM_IDS = 3 << 30  # engine ids of PIM routes: above rule ids and derived ids

log = logging.getLogger("mcr.supervisor")


class PimRouting:
    """PIM for the Supervisor."""

    def _start_pim(self) -> None:
        interfaces = self.network.interfaces
        self._rpf = RpfTable(self.network.route_to, lambda index: getattr(interfaces().get(index), "name", None),
                             self._own_address, self._rpf_changed, time.monotonic)
        self._pim_ids: dict[tuple, int] = {}
        self._next_pim_id = PIM_IDS
        self._pim_pending = False
        self._packets_seen: dict[tuple[str, str], int] = {}  # (S,G) -> packets counted at the last check
        self._spawn("pim-notifications", self._pim_notifications)

    def sync_pim(self) -> None:
        """PIM on each configured interface that exists with an IPv4 address,
        none elsewhere; the router-wide state for the configured settings."""
        self.pim.follow(self.config.pim.interfaces, self.network.primary_address)
        if self.config.pim.interfaces:
            self.pim.configure(self.config.pim, self._rpf, self._pim_changed)
            self.pim.router.set_listeners(time.monotonic(), self._listeners())

    def _own_address(self, address: str) -> bool:
        return any(a.split("/")[0] == address for i in self.network.interfaces().values() for a in i.addresses)

    def _rpf_changed(self) -> None:
        if self.pim.router is not None:
            self.pim.router.routing_changed(time.monotonic())
            self.pim._arm()

    def _pim_changed(self) -> None:
        """The tree's forwarding changed (or an RPF answer came in): recompute once for a burst."""
        if not self._pim_pending:
            self._pim_pending = True
            self._spawn("pim-routes", self._apply_pim, forever=False)

    async def _apply_pim(self) -> None:
        from . import following

        async with self._changing:
            self._pim_pending = False
            await following.apply_routes(self)

    def _learned_routes(self) -> dict[int, mrib.Route]:
        """The PIM tree's forwarding entries as routes (none without PIM)."""
        router = self.pim.router if self.pim else None
        if router is None:
            return {}
        table = self._interface_table() | {REGISTER_VIF: _engine.REGISTER_IFINDEX}
        routes = mrib.protocol_routes("pim", router.forwarding(), table, self._pim_id)
        live = {(r.rule.input_interface, r.group, r.source) for r in routes.values()}
        self._pim_ids = {k: v for k, v in self._pim_ids.items() if k[1:] in live}
        return routes

    def _pim_id(self, key: tuple) -> int:
        """A stable engine id for a PIM entry while it exists; never reused."""
        if key not in self._pim_ids:
            self._pim_ids[key] = self._next_pim_id
            self._next_pim_id += 1
        return self._pim_ids[key]

    async def _route_changes_to_rpf(self) -> None:
        """A unicast route changed: RPF answers may have moved."""
        await self._rpf.refresh()

    async def _pim_notifications(self) -> None:
        """Carry the workers' reports of new sources and arrivals to the tree, and (S,G) packet counts as
        keepalives (RFC 7761 4.1.3: the Keepalive Timer restarts while data flows)."""
        while True:
            await asyncio.sleep(NOTIFY_INTERVAL)
            router = self.pim.router if self.pim else None
            if router is None:
                continue
            now = time.monotonic()
            names = {i.index: i.name for i in self.network.interfaces().values()}
            names[_engine.REGISTER_IFINDEX] = REGISTER_VIF
            for worker in self._running():
                try:
                    reply = await worker.call(_engine.encode_take_notifications)
                except WorkerError as error:
                    log.debug("notifications of worker %d: %s", worker.id, error)
                    continue
                for note in reply.get("notifications", []):
                    interface = names.get(note["ifindex"])
                    if interface is not None:
                        router.data_arrived(now, note["source"], note["group"], interface)
            self._keepalives(router, now)
            self._msdp_local_sources()

    def _keepalives(self, router, now: float) -> None:
        """Every (S,G) route whose packet count grew since the last look keeps its tree state alive."""
        counts: dict[tuple[str, str], int] = {}
        for worker in self.pool:
            for engine_id, counters in worker.last.get("rules", {}).items():
                route = self.routes.get(int(engine_id))
                if route is not None and route.protocol == "pim" and route.source:
                    key = (route.source, route.group)
                    counts[key] = counts.get(key, 0) + counters.get("packets", 0)
        for key, packets in counts.items():
            if packets > self._packets_seen.get(key, 0):
                router.keepalive(now, *key)
        self._packets_seen = counts
