"""PIM-SM Assert (RFC 7761 4.6): the (S,G,I) and (*,G,I) state machines,
assert metrics and the `lost_assert` / `assert_winner` queries the tree
reads to prune forwarders that lost.

Sans-IO like pim.PimInterface: the adapter hands in received Asserts
(`receive`), data seen on an outgoing interface (`data_arrived`), changes
the tree reports (`reevaluate`, `neighbor_gone`, `join_received`) and the
time (`expire` at `next_deadline`); it gets back Asserts to send and state
changes. What this module needs from the tree comes through `AssertView`.

Keys: (source, group, interface), with source None for (*,G).
"""

from __future__ import annotations

import heapq
import itertools
import socket
from collections import Counter
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from .pim_wire_more import ASSERT_INFINITE_METRIC, ASSERT_INFINITE_PREFERENCE, Assert, encode_assert

ASSERT_TIME = 180.0  # RFC 7761 4.11 Assert_Time
ASSERT_OVERRIDE_INTERVAL = 3.0  # 4.11 Assert_Override_Interval
ANY_SOURCE = "0.0.0.0"  # the Source field of a (*,G) Assert (FRR sends this too)

Key = tuple[str | None, str, str]  # (S or None for (*,G), G, interface)


class RouteMetric(Protocol):
    """The unicast route toward an address (pimtree's `Rpf` has these)."""

    interface: str
    preference: int
    metric: int


class AssertView(Protocol):
    """What the Assert machines read from the tree (RFC 7761 4.6.5 macros).
    `source` None means the (*,G) form."""

    def could_assert(self, source: str | None, group: str, interface: str) -> bool: ...

    def assert_tracking_desired(self, source: str | None, group: str, interface: str) -> bool: ...

    def rp(self, group: str) -> str | None: ...

    def rpf(self, address: str) -> RouteMetric | None: ...

    def interface_address(self, interface: str) -> str: ...


@dataclass(frozen=True)
class AssertMetric:
    """4.6.3 assert_metric. `rank` orders them: the smaller rank is the
    better metric (RPT bit clear beats set, then lower preference, then
    lower metric, then the higher address)."""

    rpt: bool
    preference: int
    metric: int
    address: str

    def rank(self) -> tuple[int, int, int, int]:
        return (int(self.rpt), self.preference, self.metric, -int.from_bytes(socket.inet_aton(self.address), "big"))

    def better_than(self, other: AssertMetric) -> bool:
        return self.rank() < other.rank()


INFINITE_METRIC = AssertMetric(True, ASSERT_INFINITE_PREFERENCE, ASSERT_INFINITE_METRIC, "0.0.0.0")  # 4.6.3


class AssertState(Enum):
    NO_INFO = "NoInfo"
    WINNER = "I am Assert Winner"
    LOSER = "I am Assert Loser"


@dataclass(frozen=True)
class SendAssert:
    """Send `payload` (PIM bytes) out of `interface` to 224.0.0.13, TTL 1."""

    interface: str
    payload: bytes


@dataclass(frozen=True)
class AssertChanged:
    """The assert state of (source, group, interface) changed: the tree
    recomputes the olists that read lost_assert."""

    source: str | None
    group: str
    interface: str
    state: AssertState


Output = SendAssert | AssertChanged


@dataclass
class _Entry:
    state: AssertState
    winner: str
    winner_metric: AssertMetric
    timer_at: float
    on_rpf_interface: bool = False  # a loser tracking the winner upstream, on RPF_interface (4.6.1)


class AssertMachines:
    """Every (S,G,I) and (*,G,I) Assert machine of this router."""

    def __init__(self, view: AssertView, assert_time: float = ASSERT_TIME,
                 override_interval: float = ASSERT_OVERRIDE_INTERVAL) -> None:
        if not 0 < override_interval < assert_time:
            raise ValueError(f"assert override interval {override_interval} must be above 0 and below "
                             f"the assert time {assert_time}")
        self.view = view
        self.assert_time = assert_time
        self.override_interval = override_interval
        self.counters: Counter[str] = Counter()
        self._entries: dict[Key, _Entry] = {}  # only machines not in NoInfo
        self._timers: list[tuple[float, int, Key]] = []  # stale when the entry's timer_at differs
        self._order = itertools.count()

    # --- queries the tree reads (4.6.5, 4.1.x) ---

    def state(self, source: str | None, group: str, interface: str) -> AssertState:
        entry = self._entries.get((source, group, interface))
        return AssertState.NO_INFO if entry is None else entry.state

    def assert_winner(self, source: str | None, group: str, interface: str) -> str | None:
        """AssertWinner(S,G,I) / AssertWinner(*,G,I); None in NoInfo."""
        entry = self._entries.get((source, group, interface))
        return None if entry is None else entry.winner

    def lost_assert(self, source: str | None, group: str, interface: str) -> bool:
        """4.6.5 lost_assert(S,G,I) and lost_assert(*,G,I): never on the
        RPF interface itself; otherwise someone else won."""
        if self._is_rpf_interface(source, group, interface):
            return False
        entry = self._entries.get((source, group, interface))
        if entry is None or entry.winner == self.view.interface_address(interface):
            return False
        if source is None:
            return True
        spt = self.spt_assert_metric(source, interface)
        return spt is None or entry.winner_metric.better_than(spt)

    # --- metrics (4.6.3) ---

    def spt_assert_metric(self, source: str, interface: str) -> AssertMetric | None:
        route = self.view.rpf(source)
        if route is None:
            return None
        return AssertMetric(False, route.preference, route.metric, self.view.interface_address(interface))

    def rpt_assert_metric(self, group: str, interface: str) -> AssertMetric | None:
        rp = self.view.rp(group)
        route = None if rp is None else self.view.rpf(rp)
        if route is None:
            return None
        return AssertMetric(True, route.preference, route.metric, self.view.interface_address(interface))

    def my_assert_metric(self, source: str | None, group: str, interface: str) -> AssertMetric:
        """4.6.3 my_assert_metric(S,G,I); for (*,G) the rpt metric when
        CouldAssert(*,G,I), else infinite."""
        if source is not None and self.view.could_assert(source, group, interface):
            return self.spt_assert_metric(source, interface) or INFINITE_METRIC
        if self.view.could_assert(None, group, interface):
            return self.rpt_assert_metric(group, interface) or INFINITE_METRIC
        return INFINITE_METRIC

    # --- inputs ---

    def receive(self, now: float, interface: str, sender: str, message: Assert) -> list[Output]:
        """An Assert from neighbor `sender` on `interface`. RPT bit clear:
        the (S,G) machine. RPT bit set: the (S,G) machine of its source
        (if any: 4.6.1 "Receive Assert with RPTbit set"), then (*,G)."""
        out = self.expire(now)
        metric = AssertMetric(message.rpt, message.preference, message.metric, sender)
        source = None if message.source == ANY_SOURCE else message.source
        if source is not None:
            out += self._receive_one(now, (source, message.group, interface), metric)
        if message.rpt:
            out += self._receive_one(now, (None, message.group, interface), metric)
        return out

    def data_arrived(self, now: float, source: str, group: str, interface: str) -> list[Output]:
        """Data for (S,G) arrived on `interface`, one of its outgoing ones:
        another forwarder is on the LAN (4.6.1, 4.6.2). The data plane
        reports this rate-limited, never per packet."""
        out = self.expire(now)
        for key in ((source, group, interface), (None, group, interface)):
            entry = self._entries.get(key)
            if entry is None and self.view.could_assert(key[0], group, interface):
                return out + self._become_winner(now, key)  # 4.6.1/4.6.2 NoInfo -> Winner (A1)
            if entry is not None:
                # Winner: A3. Loser: the winner's data, nothing to do; and an
                # (S,G) machine in either state speaks for the source.
                return out + (self._send_and_rearm(now, key, entry) if entry.state is AssertState.WINNER else [])
        return out

    def reevaluate(self, now: float, source: str | None, group: str, interface: str) -> list[Output]:
        """CouldAssert, AssertTrackingDesired, the RPF interface or a metric
        changed for this machine (the tree calls this)."""
        key = (source, group, interface)
        entry = self._entries.get(key)
        if entry is None:
            return []
        if entry.state is AssertState.WINNER:
            if not self.view.could_assert(source, group, interface):
                return self._cancel(key)  # 4.6.1 A4: CouldAssert -> FALSE
            return []
        if not self.view.assert_tracking_desired(source, group, interface):
            return self._forget(key)  # A5: AssertTrackingDesired -> FALSE
        if entry.on_rpf_interface and not self._is_rpf_interface(source, group, interface):
            return self._forget(key)  # A5: RPF_interface stopped being I
        if self.my_assert_metric(source, group, interface).better_than(entry.winner_metric):
            return self._forget(key)  # A5: my metric became better than the winner's
        return []

    def neighbor_gone(self, interface: str, neighbor: str) -> list[Output]:
        """The winner's Neighbor Liveness Timer expired or its GenID changed:
        every machine it won on `interface` forgets it (A5)."""
        out: list[Output] = []
        for key, entry in list(self._entries.items()):
            if key[2] == interface and entry.state is AssertState.LOSER and entry.winner == neighbor:
                out += self._forget(key)
        return out

    def join_received(self, source: str | None, group: str, interface: str) -> list[Output]:
        """A Join(S,G) or Join(*,G) for us arrived on `interface`: a loser
        there forgets the winner so it asserts afresh (4.6.1, 4.6.2 A5)."""
        entry = self._entries.get((source, group, interface))
        if entry is None or entry.state is not AssertState.LOSER:
            return []
        return self._forget((source, group, interface))

    def expire(self, now: float) -> list[Output]:
        out: list[Output] = []
        while self._timers and self._timers[0][0] <= now:
            deadline, _, key = heapq.heappop(self._timers)
            entry = self._entries.get(key)
            if entry is not None and entry.timer_at == deadline:
                out += self._on_assert_timer(now, key, entry)
        return out

    def next_deadline(self) -> float | None:
        while self._timers:
            deadline, _, key = self._timers[0]
            entry = self._entries.get(key)
            if entry is not None and entry.timer_at == deadline:
                return deadline
            heapq.heappop(self._timers)
        return None

    def keys(self) -> list[Key]:
        """Every machine not in NoInfo."""
        return list(self._entries)

    def describe(self, now: float) -> list[dict]:
        return [{"source": key[0], "group": key[1], "interface": key[2], "state": entry.state.value,
                 "winner": entry.winner, "winner_metric": {"rpt": entry.winner_metric.rpt,
                                                           "preference": entry.winner_metric.preference,
                                                           "metric": entry.winner_metric.metric},
                 "timer": max(0.0, entry.timer_at - now)} for key, entry in sorted(self._entries.items(),
                                                                                   key=lambda kv: str(kv[0]))]

    # --- the machine for one received Assert (4.6.1, 4.6.2) ---

    def _receive_one(self, now: float, key: Key, metric: AssertMetric) -> list[Output]:
        source, group, interface = key
        entry = self._entries.get(key)
        mine = self.my_assert_metric(source, group, interface)
        if entry is None:
            return self._receive_in_no_info(now, key, metric, mine)
        if entry.state is AssertState.WINNER:
            if metric.better_than(entry.winner_metric):
                return self._become_loser(now, key, metric)  # A2: a preferred Assert
            if mine.better_than(metric):
                return self._send_and_rearm(now, key, entry)  # A3: an inferior Assert
            return []
        if metric.address == entry.winner:
            if _is_cancel(metric) or mine.better_than(metric):
                return self._forget(key)  # A5: an inferior Assert or AssertCancel from the winner
            if metric.rpt == (source is None):
                return self._become_loser(now, key, metric)  # A2: an acceptable one from the winner
            return []
        if metric.better_than(entry.winner_metric):
            return self._become_loser(now, key, metric)  # A2: a preferred Assert from another router
        return []

    def _receive_in_no_info(self, now: float, key: Key, metric: AssertMetric,
                            mine: AssertMetric) -> list[Output]:
        source, group, interface = key
        spt_machine = source is not None
        if spt_machine and metric.rpt:
            # 4.6.1: an RPT Assert while we could forward S on the SPT, whose
            # metric always beats it: we win.
            return self._become_winner(now, key) if self.view.could_assert(*key) else []
        if mine.better_than(metric):
            return self._become_winner(now, key) if self.view.could_assert(*key) else []  # A1: inferior
        if metric.rpt != spt_machine and self.view.assert_tracking_desired(*key):
            return self._become_loser(now, key, metric)  # A6: acceptable, and we track asserts here
        self.counters["assert_ignored"] += 1
        return []

    # --- actions (named as in 4.6.1) ---

    def _become_winner(self, now: float, key: Key) -> list[Output]:
        """A1: send Assert, AT = Assert_Time - Assert_Override_Interval,
        store ourselves and our metric as the winner."""
        source, group, interface = key
        mine = self.my_assert_metric(source, group, interface)
        entry = _Entry(AssertState.WINNER, self.view.interface_address(interface), mine, 0.0)
        self._entries[key] = entry
        return self._send_and_rearm(now, key, entry) + [AssertChanged(*key, AssertState.WINNER)]

    def _send_and_rearm(self, now: float, key: Key, entry: _Entry) -> list[Output]:
        """A3: send Assert and set AT to Assert_Time - Assert_Override_Interval."""
        self._arm(key, entry, now + self.assert_time - self.override_interval)
        return [SendAssert(key[2], self._encode(key, entry.winner_metric))]

    def _become_loser(self, now: float, key: Key, metric: AssertMetric) -> list[Output]:
        """A2/A6: store the winner and its metric, AT = Assert_Time."""
        previous = self._entries.get(key)
        entry = _Entry(AssertState.LOSER, metric.address, metric, 0.0, self._is_rpf_interface(*key))
        self._entries[key] = entry
        self._arm(key, entry, now + self.assert_time)
        changed = previous is None or previous.state is not AssertState.LOSER
        return [AssertChanged(*key, AssertState.LOSER)] if changed else []

    def _cancel(self, key: Key) -> list[Output]:
        """A4: send AssertCancel (the infinite metric, RPT bit set), forget."""
        payload = self._encode(key, INFINITE_METRIC)
        return [SendAssert(key[2], payload), *self._forget(key)]

    def _forget(self, key: Key) -> list[Output]:
        """A5: delete the winner and its metric; back to NoInfo."""
        del self._entries[key]
        return [AssertChanged(*key, AssertState.NO_INFO)]

    def _on_assert_timer(self, now: float, key: Key, entry: _Entry) -> list[Output]:
        if entry.state is AssertState.WINNER:
            return self._send_and_rearm(now, key, entry)  # A3: refresh our win
        return self._forget(key)  # A5: the winner went quiet

    # --- helpers ---

    def _is_rpf_interface(self, source: str | None, group: str, interface: str) -> bool:
        """RPF_interface(S) (or RPF_interface(RP(G)) for (*,G)) is `interface`."""
        toward = source if source is not None else self.view.rp(group)
        route = None if toward is None else self.view.rpf(toward)
        return route is not None and route.interface == interface

    def _arm(self, key: Key, entry: _Entry, deadline: float) -> None:
        entry.timer_at = deadline
        heapq.heappush(self._timers, (deadline, next(self._order), key))

    @staticmethod
    def _encode(key: Key, metric: AssertMetric) -> bytes:
        source = ANY_SOURCE if key[0] is None else key[0]
        return encode_assert(Assert(key[1], source, metric.rpt, metric.preference, metric.metric))


def _is_cancel(metric: AssertMetric) -> bool:
    """4.6.1: an AssertCancel carries the infinite metric with the RPT bit."""
    return metric.rpt and metric.preference == ASSERT_INFINITE_PREFERENCE and metric.metric == ASSERT_INFINITE_METRIC
