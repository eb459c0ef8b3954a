"""The supervisor's IGMP side: where MCR is querier, what listeners want
(which the MRIB reads), and static joins (`mcr igmp join`).

A part of Supervisor (a mixin, for a file per concern): it works on the
supervisor's state, on its loop, under its `_changing` lock like the rest.
"""

from __future__ import annotations

import logging

from .. import mrib
from ..protocols.igmp_settings import Settings as IgmpSettings
from ..rules import Join
from . import following
from .commands import CommandError

log = logging.getLogger("mcr.supervisor")


class Listening:
    """IGMP for the Supervisor: queriers, listeners, static joins."""

    def _listeners(self) -> mrib.Listeners:
        """What IGMP's listeners want, per interface and group."""
        return self.igmp.listeners() if self.igmp else {}

    def igmp_wanted(self) -> dict[str, IgmpSettings]:
        """Where MCR is querier: the configured interfaces, and every members
        interface of a rule (with RFC defaults unless configured)."""
        wanted = {name: IgmpSettings() for rule in self.rules.values() for name in rule.members}
        return wanted | self.config.igmp

    def sync_igmp(self) -> None:
        """A querier on each wanted interface that exists with an IPv4 address, none elsewhere."""
        self.igmp.follow(self.igmp_wanted(), self.network.primary_address)

    def _membership_changed(self, interface: str, group: str) -> None:
        """Listeners changed: recompute the routes once for a burst of changes."""
        if not self._membership_pending:
            self._membership_pending = True
            self._spawn("membership", self._apply_membership, forever=False)

    async def _apply_membership(self) -> None:
        async with self._changing:
            self._membership_pending = False
            await following.apply_routes(self)

    def _sync_joins(self) -> None:
        for join, change in self.joins.sync(self._holds.membership, self._interface_table()):
            log.info("static join %s: %s", join, change)
            self.events.publish("join", change=change, interface=join.interface, group=join.group,
                                source=join.source)

    def _set_joins(self, wanted: set[Join]) -> None:
        self.joins.wanted = set(wanted)
        self._sync_joins()
        self._persist()

    async def add_join(self, join: Join) -> str:
        async with self._changing:
            if join in self.joins.wanted:
                raise CommandError("conflict", f"already joined: {join}")
            try:
                self._set_joins(self.joins.wanted | {join})
            except OSError as error:
                self.joins.wanted.discard(join)
                raise CommandError("engine", f"cannot join {join}: {error.strerror or error}") from None
            return self.joins.state(join)

    async def remove_join(self, join: Join) -> None:
        async with self._changing:
            if join not in self.joins.wanted:
                raise CommandError("not_found", f"no static join {join}")
            self._set_joins(self.joins.wanted - {join})

    def list_joins(self) -> list[dict]:
        return [{"interface": j.interface, "group": j.group, "source": j.source, "state": self.joins.state(j)}
                for j in sorted(self.joins.wanted, key=str)]
