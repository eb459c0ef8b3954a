"""PIM-SM Register (RFC 7761 4.4): the DR's per-(S,G) Register state
machine (4.4.1, `RegisterSender`) and the RP's handling of Registers
(4.4.2, `RegisterReceiver`).

Sans-IO: inputs with `now`, outputs as dataclasses. Encapsulating data is
per packet and belongs to the engine: the sender only says when a flow's
encapsulation starts and stops (`Encapsulate`).
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections import Counter
from dataclasses import dataclass
from enum import Enum
from ipaddress import IPv4Address
from typing import Callable, Protocol

from .pim_wire_more import Register, RegisterStop, encode_register, encode_register_stop, null_register_packet

REGISTER_SUPPRESSION_TIME = 60.0  # RFC 7761 4.11 Register_Suppression_Time
REGISTER_PROBE_TIME = 5.0  # 4.11 Register_Probe_Time
KEEPALIVE_PERIOD = 210.0  # 4.11 Keepalive_Period
RP_KEEPALIVE_PERIOD = 3 * REGISTER_SUPPRESSION_TIME + REGISTER_PROBE_TIME  # 4.11 RP_Keepalive_Period
REGISTER_STOP_INTERVAL = 1.0  # at most one Register-Stop per (DR, S, G) this often (4.4.2: rate-limited)
ANY = "0.0.0.0"  # a Register-Stop's wildcard source (4.4.1)


class RegisterState(Enum):
    NO_INFO = "NoInfo"
    JOIN = "Join"
    JOIN_PENDING = "Join-Pending"
    PRUNE = "Prune"


@dataclass(frozen=True)
class Encapsulate:
    """Start (on) or stop Register-encapsulating (source, group) to `rp`."""

    source: str
    group: str
    rp: str
    on: bool


@dataclass(frozen=True)
class SendNullRegister:
    """Unicast `payload` (PIM bytes of a Null-Register) to `rp`."""

    rp: str
    payload: bytes


SenderOutput = Encapsulate | SendNullRegister


@dataclass
class _Flow:
    state: RegisterState
    rp: str
    timer_at: float | None = None  # the Register-Stop Timer


class RegisterEvent(Enum):
    TIMER_EXPIRES = "Register-Stop Timer expires"
    COULD_REGISTER = "CouldRegister -> TRUE"
    COULD_NOT_REGISTER = "CouldRegister -> FALSE"
    REGISTER_STOP = "Register-Stop received"
    RP_CHANGED = "RP changed"


_NI, _J, _JP, _P = RegisterState.NO_INFO, RegisterState.JOIN, RegisterState.JOIN_PENDING, RegisterState.PRUNE
_E = RegisterEvent
# RFC 7761 4.4.1, the per-(S,G) register state machine at a DR: (state,
# event) -> (next state, actions in order). Pairs not listed change nothing.
# "retarget" takes the new RP between taking the tunnel down and up.
TRANSITIONS: dict[tuple[RegisterState, RegisterEvent], tuple[RegisterState, tuple[str, ...]]] = {
    (_NI, _E.COULD_REGISTER): (_J, ("add_tunnel",)),
    (_J, _E.COULD_NOT_REGISTER): (_NI, ("remove_tunnel",)),
    (_JP, _E.COULD_NOT_REGISTER): (_NI, ()),
    (_P, _E.COULD_NOT_REGISTER): (_NI, ()),
    (_J, _E.REGISTER_STOP): (_P, ("remove_tunnel", "suppress")),
    (_JP, _E.REGISTER_STOP): (_P, ("suppress",)),
    (_P, _E.TIMER_EXPIRES): (_JP, ("probe",)),
    (_JP, _E.TIMER_EXPIRES): (_J, ("add_tunnel",)),
    (_J, _E.RP_CHANGED): (_J, ("remove_tunnel", "retarget", "add_tunnel")),
    (_JP, _E.RP_CHANGED): (_J, ("cancel_timer", "retarget", "add_tunnel")),
    (_P, _E.RP_CHANGED): (_J, ("cancel_timer", "retarget", "add_tunnel")),
}


class RegisterSender:
    """4.4.1 at the DR of directly connected sources, one machine per (S,G).
    CouldRegister(S,G) (I_am_DR on RPF_interface(S), KAT running, S
    directly connected) is the caller's to compute; so is not registering
    when this router is the RP itself."""

    def __init__(self, suppression_time: float = REGISTER_SUPPRESSION_TIME,
                 probe_time: float = REGISTER_PROBE_TIME, rng: random.Random | None = None) -> None:
        if not 0 < probe_time < suppression_time / 2:
            raise ValueError(f"register probe time {probe_time} must be above 0 and below half the "
                             f"suppression time {suppression_time}")
        self.suppression_time = suppression_time
        self.probe_time = probe_time
        self.counters: Counter[str] = Counter()
        self._rng = rng or random.Random()
        self._flows: dict[tuple[str, str], _Flow] = {}  # NoInfo flows are absent
        self._timers: list[tuple[float, int, tuple[str, str]]] = []
        self._order = itertools.count()

    def state(self, source: str, group: str) -> RegisterState:
        flow = self._flows.get((source, group))
        return RegisterState.NO_INFO if flow is None else flow.state

    def could_register(self, now: float, source: str, group: str, could: bool, rp: str | None) -> list[SenderOutput]:
        """CouldRegister(S,G) is now `could`, with RP(G) `rp` (None: no RP
        known, which is as good as not registering)."""
        out = self.expire(now)
        key = (source, group)
        if not could or rp is None:
            return out + self._step(now, key, _E.COULD_NOT_REGISTER)
        flow = self._flows.get(key)
        if flow is None:
            return out + self._step(now, key, _E.COULD_REGISTER, rp)
        return out + (self._step(now, key, _E.RP_CHANGED, rp) if rp != flow.rp else [])

    def receive_register_stop(self, now: float, message: RegisterStop) -> list[SenderOutput]:
        """A Register-Stop; source 0.0.0.0 stops every source of the group."""
        out = self.expire(now)
        keys = [k for k in self._flows if k[1] == message.group and message.source in (ANY, k[0])]
        if not keys:
            self.counters["register_stop_unknown"] += 1
        for key in keys:
            out += self._step(now, key, _E.REGISTER_STOP)
        return out

    def rp_changed(self, now: float, rp_for: Callable[[str], str | None]) -> list[SenderOutput]:
        """The RP mapping changed: every flow whose RP(G) moved goes to J
        toward the new one (4.4.1 "RP changed"), or NI if none is left."""
        out = self.expire(now)
        for (source, group), flow in list(self._flows.items()):
            rp = rp_for(group)
            if rp != flow.rp:
                out += self.could_register(now, source, group, rp is not None, rp)
        return out

    def expire(self, now: float) -> list[SenderOutput]:
        out: list[SenderOutput] = []
        while self._timers and self._timers[0][0] <= now:
            deadline, _, key = heapq.heappop(self._timers)
            flow = self._flows.get(key)
            if flow is not None and flow.timer_at == deadline:
                out += self._step(now, key, _E.TIMER_EXPIRES)
        return out

    def next_deadline(self) -> float | None:
        while self._timers:
            deadline, _, key = self._timers[0]
            flow = self._flows.get(key)
            if flow is not None and flow.timer_at == deadline:
                return deadline
            heapq.heappop(self._timers)
        return None

    def describe(self, now: float) -> list[dict]:
        return [{"source": s, "group": g, "state": f.state.value, "rp": f.rp,
                 "register_stop_timer": None if f.timer_at is None else max(0.0, f.timer_at - now)}
                for (s, g), f in sorted(self._flows.items())]

    # --- the machine ---

    def _step(self, now: float, key: tuple[str, str], event: RegisterEvent, rp: str = "") -> list[SenderOutput]:
        """Run `event` through TRANSITIONS for one (S,G)."""
        flow = self._flows.get(key) or _Flow(RegisterState.NO_INFO, rp)
        transition = TRANSITIONS.get((flow.state, event))
        if transition is None:
            return []
        flow.state, actions = transition
        out: list[SenderOutput] = []
        for action in actions:
            out += self._act(now, key, flow, action, rp)
        if flow.state is RegisterState.NO_INFO:
            self._flows.pop(key, None)
        else:
            self._flows[key] = flow
        return out

    def _act(self, now: float, key: tuple[str, str], flow: _Flow, action: str, rp: str) -> list[SenderOutput]:
        match action:
            case "add_tunnel":
                flow.timer_at = None
                return [Encapsulate(*key, flow.rp, True)]
            case "remove_tunnel":
                return [Encapsulate(*key, flow.rp, False)]
            case "retarget":
                flow.rp = rp
            case "cancel_timer":
                flow.timer_at = None
            case "suppress":
                # rand(0.5, 1.5) x Register_Suppression_Time, less the probe time
                self._arm(key, flow, now + self._rng.uniform(0.5, 1.5) * self.suppression_time - self.probe_time)
            case "probe":
                # Wait Register_Probe_Time for a Register-Stop after the Null-Register.
                self._arm(key, flow, now + self.probe_time)
                payload = encode_register(Register(null_register_packet(*key), null=True))
                return [SendNullRegister(flow.rp, payload)]
        return []

    def _arm(self, key: tuple[str, str], flow: _Flow, deadline: float) -> None:
        flow.timer_at = deadline
        heapq.heappush(self._timers, (deadline, next(self._order), key))


# --- at the RP (4.4.2) ---

class RegisterView(Protocol):
    """What the RP's Register handling reads from the tree and the RP map."""

    def i_am_rp(self, group: str, address: str) -> bool:
        """Is `address` (the Register's outer destination, one of ours) RP(G)?"""
        ...

    def spt_bit(self, source: str, group: str) -> bool: ...

    def switch_to_spt_desired(self, source: str, group: str) -> bool: ...

    def has_receivers(self, source: str, group: str) -> bool:
        """inherited_olist(S,G) is not empty."""
        ...


@dataclass(frozen=True)
class SendRegisterStop:
    """Unicast `payload` (PIM bytes) to `to`, the DR that registered."""

    to: str
    payload: bytes


@dataclass(frozen=True)
class RegisterReceived:
    """Set KeepaliveTimer(S,G) to `keepalive` seconds (4.4.2)."""

    source: str
    group: str
    keepalive: float


@dataclass(frozen=True)
class ForwardDecapsulated:
    """Forward the inner `packet` of (S,G) down inherited_olist(S,G,rpt)."""

    source: str
    group: str
    packet: bytes


ReceiverOutput = SendRegisterStop | RegisterReceived | ForwardDecapsulated


class RegisterReceiver:
    """4.4.2 `packet_arrives_on_rp_tunnel`. The caller has checked that the
    outer destination is one of this router's addresses."""

    def __init__(self, view: RegisterView, stop_interval: float = REGISTER_STOP_INTERVAL,
                 max_tracked: int = 4096) -> None:
        if stop_interval < 0 or max_tracked < 1:
            raise ValueError("register stop interval must be at least 0 and max_tracked at least 1")
        self.view = view
        self.stop_interval = stop_interval
        self.max_tracked = max_tracked
        self.counters: Counter[str] = Counter()
        self._last_stop: dict[tuple[str, str, str], float] = {}  # (DR, S, G) -> when we last sent one

    def receive(self, now: float, outer_source: str, outer_destination: str,
                message: Register) -> list[ReceiverOutput]:
        source, group = message.source, message.group
        if not IPv4Address(group).is_multicast:
            self.counters["register_not_multicast"] += 1
            return []
        if not self.view.i_am_rp(group, outer_destination):
            return self._stop(now, outer_source, source, group)  # 4.4.2 Note (*): not the RP for G
        spt = self.view.spt_bit(source, group)
        switch = self.view.switch_to_spt_desired(source, group)
        out: list[ReceiverOutput] = []
        stopped = False
        if spt or (switch and not self.view.has_receivers(source, group)):
            out += self._stop(now, outer_source, source, group)
            stopped = True
        if spt or switch:
            out.append(RegisterReceived(source, group, RP_KEEPALIVE_PERIOD if stopped else KEEPALIVE_PERIOD))
        if not spt and not message.null:
            out.append(ForwardDecapsulated(source, group, message.packet))
        return out

    def _stop(self, now: float, dr: str, source: str, group: str) -> list[ReceiverOutput]:
        """A Register-Stop to `dr`, unless one went for the same (S,G) less
        than stop_interval ago (the DR keeps registering until it arrives,
        so one lost is repaired by the next Register)."""
        key = (dr, source, group)
        last = self._last_stop.get(key)
        if last is not None and now - last < self.stop_interval:
            self.counters["register_stop_rate_limited"] += 1
            return []
        if len(self._last_stop) >= self.max_tracked:
            self._last_stop = {k: t for k, t in self._last_stop.items() if now - t < self.stop_interval}
            if len(self._last_stop) >= self.max_tracked:
                self._last_stop.clear()  # all recent: forgetting them costs at most one extra stop each
        self._last_stop[key] = now
        return [SendRegisterStop(dr, encode_register_stop(RegisterStop(group, source)))]
