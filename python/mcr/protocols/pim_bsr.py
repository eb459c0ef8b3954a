"""The BSR mechanism as a listener (RFC 5059): accepting Bootstrap messages,
choosing the preferred BSR, assembling fragments into the RP-set, expiring
it, and forwarding what was accepted. This router is neither a candidate
BSR nor a candidate RP (both optional; the codecs in pim_wire_more can
build their messages for when they are).

One scope zone: the global one. Group ranges with the admin-scope bit are
counted and left out (RFC 5059 3.2 makes them a zone of their own).

State (RFC 5059 3.1.2, non-candidate BSR, per zone): Accept Any until a
Bootstrap is accepted, then Accept Preferred until the Bootstrap Timer
(BS_Timeout) ends without a Bootstrap from the BSR or a better one.
"""

from __future__ import annotations

import socket
from collections import Counter
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

from .pim_rp import CandidateRp
from .pim_wire import ALL_PIM_ROUTERS
from .pim_wire_more import Bootstrap, BsrGroup, encode_bootstrap

BS_PERIOD = 60.0  # RFC 5059 5 BS_Period
BS_TIMEOUT = 2 * BS_PERIOD + 10  # 5059 5 BS_Timeout: 130 s

RangeKey = tuple[str, int]  # (group, mask length)


class BsrState(Enum):
    ACCEPT_ANY = "Accept Any"
    ACCEPT_PREFERRED = "Accept Preferred"


class RouteToBsr(Protocol):
    """The unicast route toward an address (pim_rpf's `Rpf` has these)."""

    interface: str
    neighbor: str | None  # None: directly connected


class BsrView(Protocol):
    """What the listener reads from the rest of the router."""

    def rpf(self, address: str) -> RouteToBsr | None: ...

    def is_neighbor(self, interface: str, address: str) -> bool: ...

    def pim_interfaces(self) -> list[str]: ...

    def my_addresses(self) -> set[str]: ...


@dataclass(frozen=True)
class ForwardBootstrap:
    """Send `payload` (PIM bytes, as received) out of `interface` to 224.0.0.13, TTL 1."""

    interface: str
    payload: bytes


@dataclass(frozen=True)
class SendBootstrap:
    """Unicast `payload` (PIM bytes, No-Forward set) to a new neighbor (5059 3.5)."""

    interface: str
    to: str
    payload: bytes


@dataclass(frozen=True)
class RpSetChanged:
    """The BSR RP-set is now `rp_set`; hand it to RpMapping.set_bsr_rp_set."""

    rp_set: dict[RangeKey, tuple[CandidateRp, ...]]
    hash_mask_len: int


Output = ForwardBootstrap | SendBootstrap | RpSetChanged


@dataclass
class _LearnedRp:
    address: str
    priority: int
    expires_at: float  # its RP holdtime from the last Bootstrap that carried it


@dataclass
class _Pending:
    """A group range being assembled from the fragments of one tag."""

    rp_count: int
    rps: dict[str, _LearnedRp] = field(default_factory=dict)


def _weight(priority: int, address: str) -> tuple[int, bytes]:
    """RFC 5059 3.1.1: the higher priority, then the higher address, is preferred."""
    return priority, socket.inet_aton(address)


class BsrListener:
    """The Bootstrap side of a non-candidate-BSR router."""

    def __init__(self, view: BsrView, bs_timeout: float = BS_TIMEOUT) -> None:
        if bs_timeout <= 0:
            raise ValueError(f"bootstrap timeout must be above 0, not {bs_timeout!r}")
        self.view = view
        self.bs_timeout = bs_timeout
        self.counters: Counter[str] = Counter()
        self.state = BsrState.ACCEPT_ANY
        self.bsr: str | None = None
        self.bsr_priority = 0
        self.hash_mask_len = 30
        self._bootstrap_at: float | None = None
        self._rp_set: dict[RangeKey, dict[str, _LearnedRp]] = {}
        self._tag: int | None = None  # the fragment tag being assembled
        self._pending: dict[RangeKey, _Pending] = {}
        self._last: list[Bootstrap] = []  # the accepted fragments of the current tag, to send on

    # --- inputs ---

    def receive(self, now: float, interface: str, source: str, destination: str,
                message: Bootstrap, payload: bytes) -> list[Output]:
        """A Bootstrap from `source` on `interface`, sent to `destination`;
        `payload` its PIM bytes, forwarded as they are."""
        out = self.expire(now)
        problem = self._acceptance_problem(interface, source, destination, message)
        if problem is not None:
            self.counters[problem] += 1
            return out
        self._accept_bsr(now, message)
        out += self._store(now, message)
        if not message.no_forward:
            # 5059 3.3: forward out of every other PIM interface (a unicast
            # one too, as FRR does, unless it says No-Forward).
            out += [ForwardBootstrap(i, payload) for i in self.view.pim_interfaces() if i != interface]
        return out

    def new_neighbor(self, interface: str, neighbor: str) -> list[Output]:
        """5059 3.5: a new or restarted neighbor gets the current Bootstrap
        unicast, No-Forward set, so it need not wait for the next one."""
        if self.state is not BsrState.ACCEPT_PREFERRED:
            return []
        return [SendBootstrap(interface, neighbor, encode_bootstrap(_no_forward(m)))
                for m in self._last]

    def expire(self, now: float) -> list[Output]:
        out: list[Output] = []
        if self._bootstrap_at is not None and self._bootstrap_at <= now:
            self._on_bootstrap_timer()
        expired = False
        for key in list(self._rp_set):
            live = {a: rp for a, rp in self._rp_set[key].items() if rp.expires_at > now}
            if len(live) != len(self._rp_set[key]):
                expired = True
                if live:
                    self._rp_set[key] = live
                else:
                    del self._rp_set[key]
        if expired:
            out.append(self._changed())
        return out

    def next_deadline(self) -> float | None:
        deadlines = [rp.expires_at for rps in self._rp_set.values() for rp in rps.values()]
        if self._bootstrap_at is not None:
            deadlines.append(self._bootstrap_at)
        return min(deadlines, default=None)

    def rp_set(self) -> dict[RangeKey, tuple[CandidateRp, ...]]:
        return {key: tuple(CandidateRp(rp.address, rp.priority) for rp in rps.values())
                for key, rps in self._rp_set.items()}

    def describe(self, now: float) -> dict:
        return {"state": self.state.value, "bsr": self.bsr, "bsr_priority": self.bsr_priority,
                "hash_mask_len": self.hash_mask_len,
                "bootstrap_timer": None if self._bootstrap_at is None else max(0.0, self._bootstrap_at - now),
                "rp_set": [{"group": f"{g}/{m}", "rps": [{"rp": rp.address, "priority": rp.priority,
                                                          "holdtime_left": max(0.0, rp.expires_at - now)}
                                                         for rp in rps.values()]}
                           for (g, m), rps in sorted(self._rp_set.items())],
                "counters": dict(self.counters)}

    # --- acceptance (5059 3.1.3) ---

    def _acceptance_problem(self, interface: str, source: str, destination: str,
                            message: Bootstrap) -> str | None:
        if message.bsr_address in self.view.my_addresses():
            return "bootstrap_own"
        if destination not in self.view.my_addresses() and destination != ALL_PIM_ROUTERS:
            return "bootstrap_bad_destination"
        if message.no_forward or destination != ALL_PIM_ROUTERS:
            # 5059 3.5: a neighbor's copy for a router that just came up, sent
            # unicast, or with No-Forward to 224.0.0.13 (FRR without
            # unicast-bsm): only from a PIM neighbor.
            if not self.view.is_neighbor(interface, source):
                return "bootstrap_not_from_neighbor"
        elif not self._from_rpf_neighbor(interface, source, message.bsr_address):
            return "bootstrap_not_from_rpf_neighbor"
        if message.no_forward and self.state is BsrState.ACCEPT_PREFERRED and message.fragment_tag != self._tag:
            # As FRR: a No-Forward copy only while we know no BSR, or when it
            # repeats the fragment tag we hold; a stale copy must not undo
            # what the BSR itself sent since.
            return "bootstrap_no_forward_refused"
        if self.state is BsrState.ACCEPT_PREFERRED and not self._preferred(message):
            return "bootstrap_not_preferred"
        return None

    def _from_rpf_neighbor(self, interface: str, source: str, bsr: str) -> bool:
        """5059 3.1.3: a multicast Bootstrap only from the RPF neighbor toward
        the BSR, on the RPF interface (the BSR itself when directly connected)."""
        route = self.view.rpf(bsr)
        return route is not None and route.interface == interface and (route.neighbor or bsr) == source

    def _preferred(self, message: Bootstrap) -> bool:
        """From the current BSR, or from one at least as good."""
        if message.bsr_address == self.bsr:
            return True
        return _weight(message.bsr_priority, message.bsr_address) > _weight(self.bsr_priority, self.bsr or "0.0.0.0")

    def _accept_bsr(self, now: float, message: Bootstrap) -> None:
        if message.bsr_address != self.bsr:
            # A new BSR: its RP-set replaces the old one range by range as
            # its fragments complete; what it never mentions times out.
            self._tag = None
        self.state = BsrState.ACCEPT_PREFERRED
        self.bsr, self.bsr_priority = message.bsr_address, message.bsr_priority
        self.hash_mask_len = message.hash_mask_len
        self._bootstrap_at = now + self.bs_timeout

    # --- the RP-set (5059 3.1.3, 3.4) ---

    def _store(self, now: float, message: Bootstrap) -> list[Output]:
        if message.fragment_tag != self._tag:
            self._tag, self._pending, self._last = message.fragment_tag, {}, []
        self._last.append(message)
        changed = False
        for group in message.groups:
            if group.admin_scope:
                self.counters["bootstrap_admin_scope_ignored"] += 1
                continue
            changed |= self._store_range(now, group)
        return [self._changed()] if changed else []

    def _store_range(self, now: float, group: BsrGroup) -> bool:
        """Add one fragment's RPs of a range; when every RP of the range
        has arrived (its RP count), it replaces the range in the RP-set. A
        count of 0 removes the range."""
        key = (group.group, group.mask_len)
        pending = self._pending.get(key)
        if pending is None or pending.rp_count != group.rp_count:
            pending = self._pending[key] = _Pending(group.rp_count)
        for rp in group.rps:
            pending.rps[rp.address] = _LearnedRp(rp.address, rp.priority, now + rp.holdtime)
        if len(pending.rps) < pending.rp_count:
            return False
        live = {a: rp for a, rp in pending.rps.items() if rp.expires_at > now}  # holdtime 0: withdrawn
        before = self._rp_set.get(key)
        if live:
            self._rp_set[key] = live
        else:
            self._rp_set.pop(key, None)
        return _summary(before) != _summary(live or None)

    def _on_bootstrap_timer(self) -> None:
        """5059 3.1.2: the BSR went quiet; accept any BSR. The RP-set stays
        until its holdtimes end."""
        self.state = BsrState.ACCEPT_ANY
        self._bootstrap_at = None
        self._tag, self._pending, self._last = None, {}, []

    def _changed(self) -> RpSetChanged:
        return RpSetChanged(self.rp_set(), self.hash_mask_len)


def _summary(rps: dict[str, _LearnedRp] | None) -> set[tuple[str, int]] | None:
    return None if rps is None else {(rp.address, rp.priority) for rp in rps.values()}


def _no_forward(message: Bootstrap) -> Bootstrap:
    return Bootstrap(message.fragment_tag, message.hash_mask_len, message.bsr_priority, message.bsr_address,
                     message.groups, no_forward=True)
