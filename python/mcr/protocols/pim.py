"""PIM-SM Hello, neighbors and DR election, one `PimInterface` per
interface (RFC 7761 4.3: 4.3.1 neighbor discovery, 4.3.2 DR election,
4.3.3 the LAN Prune Delay values the Join/Prune machinery will read).

Sans-IO: the adapter hands in PIM messages (`receive`) and the time
(`expire`, whenever `next_deadline` passes) and gets back what to do:
Hellos to send (`SendHello`, PIM bytes only, to 224.0.0.13 with TTL 1) and
changes to report (`NeighborChanged`, `DrChanged`). Times are plain floats
of seconds on the adapter's monotonic clock.
"""

from __future__ import annotations

import heapq
import itertools
import random
import socket
from collections import Counter
from dataclasses import dataclass, field
from enum import Enum, auto
from ipaddress import IPv4Address
from typing import Literal

from .pim_wire import (HOLDTIME_FOREVER, MAX_PROPAGATION_DELAY_MS, Hello, LanPruneDelay, Malformed, encode_hello,
                       parse_message)

MAX_U32 = 0xFFFFFFFF
DEFAULT_PROPAGATION_DELAY_MS = 500  # RFC 7761 4.11 Propagation_delay_default
DEFAULT_OVERRIDE_INTERVAL_MS = 2500  # 4.11 t_override_default


def _number(name: str, value: float, least: float, most: float, whole: bool = False) -> None:
    kinds = (int,) if whole else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not least <= value <= most:
        kind = "a whole number" if whole else "a number"
        raise ValueError(f"{name} must be {kind} between {least} and {most}, not {value!r}")


@dataclass(frozen=True)
class Settings:
    """One interface's Hello timers and options, with the RFC 7761 4.11
    defaults. A hello_holdtime of 0 takes its default, 3.5 x hello_period."""

    hello_period: float = 30.0  # 4.11 Hello_Period
    hello_holdtime: int = 0  # 4.11 Default_Hello_Holdtime: 3.5 * Hello_Period
    dr_priority: int = 1  # 4.3.2: the default a router SHOULD use
    propagation_delay_ms: int = DEFAULT_PROPAGATION_DELAY_MS
    override_interval_ms: int = DEFAULT_OVERRIDE_INTERVAL_MS
    triggered_hello_delay: float = 5.0  # 4.11 Triggered_Hello_Delay

    def __post_init__(self) -> None:
        _number("hello_period", self.hello_period, 1, 18724)  # so 3.5 x period fits the 16-bit Holdtime
        _number("hello_holdtime", self.hello_holdtime, 0, HOLDTIME_FOREVER, whole=True)
        _number("dr_priority", self.dr_priority, 0, MAX_U32, whole=True)
        _number("propagation_delay_ms", self.propagation_delay_ms, 0, MAX_PROPAGATION_DELAY_MS, whole=True)
        _number("override_interval_ms", self.override_interval_ms, 0, 0xFFFF, whole=True)
        _number("triggered_hello_delay", self.triggered_hello_delay, 0, self.hello_period)
        if not self.hello_holdtime:
            object.__setattr__(self, "hello_holdtime", round(3.5 * self.hello_period))


@dataclass(frozen=True)
class SendHello:
    """Send `payload` (PIM only) to 224.0.0.13 with TTL 1. `source` is the
    address to send from when it is not the interface's own: the goodbye
    Hello after a re-addressing goes from the old one (RFC 7761 4.3.1)."""

    payload: bytes
    source: str | None = None


@dataclass(frozen=True)
class NeighborChanged:
    address: str
    change: Literal["up", "down", "restarted"]


@dataclass(frozen=True)
class DrChanged:
    dr: str


Output = SendHello | NeighborChanged | DrChanged


class Timer(Enum):
    """Every timer an interface runs (RFC 7761 4.3.1)."""

    HELLO = auto()  # the next Hello, periodic or triggered
    NEIGHBOR_LIVENESS = auto()  # one per neighbor: its Holdtime


@dataclass
class Neighbor:
    """What the last Hello from a neighbor said (RFC 7761 4.3.1)."""

    address: str
    holdtime: int
    expires_at: float | None  # None: Holdtime 0xFFFF, never times out
    up_since: float
    dr_priority: int | None = None
    generation_id: int | None = None
    lan_prune_delay: LanPruneDelay | None = None
    secondary: tuple[str, ...] = field(default_factory=tuple)

    def describe(self, now: float) -> dict:
        lpd = self.lan_prune_delay
        return {"address": self.address,
                "holdtime_left": None if self.expires_at is None else max(0.0, self.expires_at - now),
                "dr_priority": self.dr_priority, "generation_id": self.generation_id,
                "uptime": now - self.up_since, "secondary_addresses": list(self.secondary),
                "lan_prune_delay": None if lpd is None else {"tracking": lpd.tracking,
                                                             "propagation_delay_ms": lpd.propagation_delay_ms,
                                                             "override_interval_ms": lpd.override_interval_ms}}


def _address_key(address: str) -> bytes:
    return socket.inet_aton(address)


def elect_dr(address: str, priority: int, neighbors: dict[str, Neighbor]) -> str:
    """RFC 7761 4.3.2 dr(I): start from ourselves and take each neighbor that
    dr_is_better. If any neighbor omits the DR Priority option, priorities
    are not comparable and only addresses count."""
    addresses_only = any(n.dr_priority is None for n in neighbors.values())

    def rank(candidate: tuple[str, int]) -> tuple[int, bytes]:
        return (0 if addresses_only else candidate[1], _address_key(candidate[0]))

    candidates = [(address, priority)] + [(n.address, n.dr_priority or 0) for n in neighbors.values()]
    return max(candidates, key=rank)[0]


class PimInterface:
    """PIM Hello and neighbors on one interface whose address is `address`."""

    def __init__(self, settings: Settings, address: str, generation_id: int,
                 rng: random.Random | None = None) -> None:
        IPv4Address(address)  # a clear ValueError for a bad one
        _number("generation_id", generation_id, 0, MAX_U32, whole=True)
        self.settings = settings
        self.address = address
        self.generation_id = generation_id
        self.counters: Counter[str] = Counter()  # dropped or ignored input, by reason
        self.running = False
        self._rng = rng or random.Random()
        self._neighbors: dict[str, Neighbor] = {}
        self._dr = address
        self._hello_at: float | None = None
        self.hello_triggered = False  # a triggered Hello is pending: it goes before any other message
        # (deadline, order, kind, neighbor). An entry whose deadline no longer
        # matches its timer's (re-armed or cancelled) is stale: skipped.
        self._timers: list[tuple[float, int, Timer, str]] = []
        self._order = itertools.count()

    # --- the adapter's interface ---

    def start(self, now: float) -> list[Output]:
        """RFC 7761 4.3.1: the first Hello goes after a random delay in
        [0, Triggered_Hello_Delay], so routers booted together spread out."""
        if self.running:
            return []
        self.running = True
        self._dr = self.address
        self._arm_hello(now + self._rng.uniform(0, self.settings.triggered_hello_delay))
        return [DrChanged(self.address), *self.expire(now)]

    def stop(self, now: float) -> list[Output]:
        """RFC 7761 4.3.1: before an interface goes down, a Hello with Holdtime
        0 goes at once, so neighbors drop us without waiting. Every neighbor
        is forgotten."""
        if not self.running:
            return []
        out: list[Output] = [SendHello(self._hello(holdtime=0))]
        out += [NeighborChanged(a, "down") for a in sorted(self._neighbors, key=_address_key)]
        self._neighbors.clear()
        self._timers.clear()
        self._hello_at = None
        self.running = False
        self._dr = self.address
        return out

    def receive(self, now: float, source: str, payload: bytes) -> list[Output]:
        """One PIM message (the IP payload) from `source`. Timers already due
        run first, so the message meets the state at `now`; a message that is
        dropped is counted and changes nothing."""
        if not self.running:
            return self._drop("not_running")
        if source == self.address:
            return self._drop("own_hello")  # looped back
        try:
            if IPv4Address(source).is_unspecified or IPv4Address(source).is_multicast:
                return self._drop("bad_source")
        except ValueError:
            return self._drop("bad_source")
        try:
            message = parse_message(payload)
        except Malformed as error:
            return self._drop(error.reason)
        if not isinstance(message, Hello):
            return self._drop("not_hello")  # Join/Prune and the rest are other modules' business
        out = self.expire(now)
        return out + self.receive_hello(now, source, message)

    def expire(self, now: float) -> list[Output]:
        """Run every timer due by `now`, in deadline order."""
        out: list[Output] = []
        while self._timers and self._timers[0][0] <= now:
            deadline, _, kind, neighbor = heapq.heappop(self._timers)
            if self._armed(kind, neighbor) == deadline:
                out += self._fire(now, kind, neighbor)
        return out

    def next_deadline(self) -> float | None:
        """When `expire` has something to do next."""
        while self._timers and self._armed(self._timers[0][2], self._timers[0][3]) != self._timers[0][0]:
            heapq.heappop(self._timers)
        return self._timers[0][0] if self._timers else None

    def set_address(self, now: float, address: str) -> list[Output]:
        """The interface was re-addressed. RFC 7761 4.3.1: a Hello with
        Holdtime 0 goes at once from the old address, so neighbors forget
        it; a Hello from the new one follows at once too, and the DR is
        elected again."""
        IPv4Address(address)
        if address == self.address:
            return []
        out = self.expire(now) if self.running else []
        old, self.address = self.address, address
        self._neighbors.pop(address, None)  # a neighbor cannot share our address
        if not self.running:
            self._dr = address
            return out
        out.append(SendHello(self._hello(holdtime=0), source=old))
        out += self.send_hello(now)
        return out + self._elect()

    def neighbors(self) -> dict[str, Neighbor]:
        """The neighbor table by primary address (live: read, don't change)."""
        return dict(self._neighbors)

    def dr(self) -> str:
        return self._dr

    def lan_delay_enabled(self) -> bool:
        """RFC 7761 4.3.3: only when every neighbor sent LAN Prune Delay."""
        return all(n.lan_prune_delay is not None for n in self._neighbors.values())

    def effective_propagation_delay_ms(self) -> int:
        """RFC 7761 4.3.3 Effective_Propagation_Delay(I)."""
        return self._effective("propagation_delay_ms", self.settings.propagation_delay_ms,
                               DEFAULT_PROPAGATION_DELAY_MS)

    def effective_override_interval_ms(self) -> int:
        """RFC 7761 4.3.3 Effective_Override_Interval(I)."""
        return self._effective("override_interval_ms", self.settings.override_interval_ms,
                               DEFAULT_OVERRIDE_INTERVAL_MS)

    def describe(self, now: float) -> dict:
        return {"address": self.address, "running": self.running, "dr": self._dr,
                "dr_priority": self.settings.dr_priority, "generation_id": self.generation_id,
                "hello_period": self.settings.hello_period, "hello_holdtime": self.settings.hello_holdtime,
                "next_hello": None if self._hello_at is None else max(0.0, self._hello_at - now),
                "lan_delay_enabled": self.lan_delay_enabled(),
                "effective_propagation_delay_ms": self.effective_propagation_delay_ms(),
                "effective_override_interval_ms": self.effective_override_interval_ms(),
                "neighbors": [self._neighbors[a].describe(now) for a in sorted(self._neighbors, key=_address_key)],
                "counters": dict(self.counters)}

    # --- Hello in and out (RFC 7761 4.3.1) ---

    def receive_hello(self, now: float, source: str, hello: Hello) -> list[Output]:
        """A parsed Hello from `source`, a neighbor."""
        known = self._neighbors.get(source)
        if hello.holdtime == 0:
            # 4.3.1: Holdtime 0 means the neighbor is leaving: drop it at once.
            if known is None:
                return []
            del self._neighbors[source]
            return [NeighborChanged(source, "down"), *self._elect()]
        out: list[Output] = []
        if known is None:
            out.append(NeighborChanged(source, "up"))
            self._trigger_hello(now)  # 4.3.1: a new neighbor hears from us soon
        elif hello.generation_id != known.generation_id:
            # 4.3.1: a new GenID means the neighbor restarted and lost its
            # state; a triggered Hello lets it learn us again (Join/Prune
            # state is resent by whoever owns it, on NeighborChanged).
            out.append(NeighborChanged(source, "restarted"))
            self._trigger_hello(now)
        up_since = now if known is None or hello.generation_id != known.generation_id else known.up_since
        expires_at = None if hello.holdtime == HOLDTIME_FOREVER else now + hello.holdtime
        self._neighbors[source] = Neighbor(source, hello.holdtime, expires_at, up_since, hello.dr_priority,
                                           hello.generation_id, hello.lan_prune_delay, hello.addresses)
        if expires_at is not None:
            self._arm(Timer.NEIGHBOR_LIVENESS, expires_at, source)
        return out + self._elect()

    def send_hello(self, now: float) -> list[Output]:
        """A Hello now; the next one a Hello_Period later (4.3.1)."""
        self.hello_triggered = False
        self._arm_hello(now + self.settings.hello_period)
        return [SendHello(self._hello(self.settings.hello_holdtime))]

    def _hello(self, holdtime: int) -> bytes:
        # T bit clear: this router does not promise to disable Join
        # suppression (4.3.3), since it does no Join suppression tracking yet.
        lpd = LanPruneDelay(False, self.settings.propagation_delay_ms, self.settings.override_interval_ms)
        return encode_hello(Hello(holdtime, self.settings.dr_priority, self.generation_id, lpd))

    def _trigger_hello(self, now: float) -> None:
        """4.3.1: a Hello within a random [0, Triggered_Hello_Delay]. Brought
        forward only: the timer already due sooner stays as it is."""
        at = now + self._rng.uniform(0, self.settings.triggered_hello_delay)
        if self._hello_at is None or at < self._hello_at:
            self._arm_hello(at)
        # A neighbor that just came up or restarted must hear our Hello before
        # anything else of ours (it drops Join/Prunes from routers it does not know).
        self.hello_triggered = True

    # --- timers ---

    def _arm(self, kind: Timer, deadline: float, neighbor: str = "") -> None:
        heapq.heappush(self._timers, (deadline, next(self._order), kind, neighbor))

    def _arm_hello(self, deadline: float) -> None:
        self._hello_at = deadline
        self._arm(Timer.HELLO, deadline)

    def _armed(self, kind: Timer, neighbor: str) -> float | None:
        if kind is Timer.HELLO:
            return self._hello_at
        known = self._neighbors.get(neighbor)
        return None if known is None else known.expires_at

    def _fire(self, now: float, kind: Timer, neighbor: str) -> list[Output]:
        match kind:
            case Timer.HELLO:
                return self.send_hello(now)
            case Timer.NEIGHBOR_LIVENESS:
                return self._on_neighbor_liveness_timer(neighbor)

    def _on_neighbor_liveness_timer(self, neighbor: str) -> list[Output]:
        """4.3.1: a neighbor silent for its Holdtime is gone."""
        del self._neighbors[neighbor]
        return [NeighborChanged(neighbor, "down"), *self._elect()]

    # --- DR election and LAN delay (4.3.2, 4.3.3) ---

    def _elect(self) -> list[Output]:
        dr = elect_dr(self.address, self.settings.dr_priority, self._neighbors)
        if dr == self._dr:
            return []
        self._dr = dr
        return [DrChanged(dr)]

    def _effective(self, name: str, ours: int, default: int) -> int:
        # 4.3.3: our own value and every neighbor's, largest wins; the 4.11
        # default when some neighbor did not send the option.
        if not self.lan_delay_enabled():
            return default
        values = [getattr(n.lan_prune_delay, name) for n in self._neighbors.values()]
        return max([ours, *values])

    def _drop(self, reason: str) -> list[Output]:
        self.counters[reason] += 1
        return []
