"""PIM-SM upstream state machines (RFC 7761 4.5.6 (*,G), 4.5.7 (S,G),
4.5.8 (S,G,rpt)): whether this router is joined toward RPF', with the
Join Timer (JT) and the (S,G,rpt) Override Timer (OT).

A machine holds state and deadlines; `step` and `step_rpt` apply one event
through the machine's table and return the actions for the tree (which
owns the messages, the macros and the timer heap) to carry out.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, Flag, auto


class UpState(Enum):
    """UpstreamJPState(*,G) and (S,G): 4.5.6, 4.5.7."""

    NOT_JOINED = "NotJoined"
    JOINED = "Joined"


class RptUpState(Enum):
    """Upstream (S,G,rpt) state: 4.5.8."""

    RPT_NOT_JOINED = "RPTNotJoined"
    PRUNED = "Pruned"
    NOT_PRUNED = "NotPruned"


class UpEvent(Enum):
    JOIN_DESIRED = auto()  # JoinDesired -> True
    JOIN_NOT_DESIRED = auto()  # JoinDesired -> False
    TIMER = auto()  # JT expires
    SEE_JOIN = auto()  # another router's Join to our RPF' on the LAN
    SEE_PRUNE = auto()  # another router's Prune to our RPF' ((*,G), (S,G) or (S,G,rpt) for (S,G))
    RPF_CHANGED = auto()  # RPF' changed, not because of an Assert
    RPF_CHANGED_BY_ASSERT = auto()
    GENID_CHANGED = auto()  # RPF' restarted (new Generation ID)


class UpAct(Flag):
    NONE = 0
    SEND_JOIN = auto()  # to the current RPF'
    SEND_PRUNE = auto()  # to the RPF' we were joined to (before a change)
    JT_PERIODIC = auto()  # JT = t_periodic
    JT_CANCEL = auto()
    JT_SUPPRESS = auto()  # increase JT to t_joinsuppress
    JT_OVERRIDE = auto()  # decrease JT to t_override
    CLEAR_SPT = auto()  # 4.5.7: leaving the SPT clears SPTbit(S,G)


_NJ, _J = UpState.NOT_JOINED, UpState.JOINED

# 4.5.6 and 4.5.7 (the (S,G) one adds CLEAR_SPT, which the tree ignores for
# (*,G)). A missing pair changes nothing.
UP_TABLE: dict[tuple[UpState, UpEvent], tuple[UpState, UpAct]] = {
    (_NJ, UpEvent.JOIN_DESIRED): (_J, UpAct.SEND_JOIN | UpAct.JT_PERIODIC),
    (_J, UpEvent.JOIN_NOT_DESIRED): (_NJ, UpAct.SEND_PRUNE | UpAct.JT_CANCEL | UpAct.CLEAR_SPT),
    (_J, UpEvent.TIMER): (_J, UpAct.SEND_JOIN | UpAct.JT_PERIODIC),
    (_J, UpEvent.SEE_JOIN): (_J, UpAct.JT_SUPPRESS),
    (_J, UpEvent.SEE_PRUNE): (_J, UpAct.JT_OVERRIDE),
    (_J, UpEvent.RPF_CHANGED): (_J, UpAct.SEND_PRUNE | UpAct.SEND_JOIN | UpAct.JT_PERIODIC),
    (_J, UpEvent.RPF_CHANGED_BY_ASSERT): (_J, UpAct.JT_OVERRIDE),
    (_J, UpEvent.GENID_CHANGED): (_J, UpAct.JT_OVERRIDE),
}


class RptEvent(Enum):
    TO_PRUNED = auto()  # RPTJoinDesired(G) and PruneDesired(S,G,rpt)
    TO_NOT_PRUNED = auto()  # RPTJoinDesired(G) and not PruneDesired(S,G,rpt)
    RPT_NOT_DESIRED = auto()  # RPTJoinDesired(G) -> False
    OVERRIDE_TIMER = auto()  # OT expires
    SEE_PRUNE = auto()  # Prune(S,G,rpt) or Prune(S,G) to RPF'(S,G,rpt), or RPF'(S,G,rpt) changed
    SEE_JOIN = auto()  # Join(S,G,rpt) to RPF'(S,G,rpt)


class RptAct(Flag):
    NONE = 0
    SEND_JOIN = auto()  # Join(S,G,rpt) to RPF'(S,G,rpt)
    SEND_PRUNE = auto()  # Prune(S,G,rpt) to RPF'(S,G,rpt)
    OT_OVERRIDE = auto()  # OT = min(OT, t_override)
    OT_CANCEL = auto()


_RNJ, _P, _NP = RptUpState.RPT_NOT_JOINED, RptUpState.PRUNED, RptUpState.NOT_PRUNED

# 4.5.8.
RPT_UP_TABLE: dict[tuple[RptUpState, RptEvent], tuple[RptUpState, RptAct]] = {
    # 4.5.8 sends nothing here: the Join(*,G) carries the prune (4.5.9). We
    # start every source in RPTNotJoined, so this is also a new source under
    # a joined (*,G), implicitly NotPruned, which must send its prune; and
    # where (*,G) has just joined, the prune rides in the same message as
    # the triggered Join(*,G) (JoinBatch), as 4.5.9 wants.
    (_RNJ, RptEvent.TO_PRUNED): (_P, RptAct.SEND_PRUNE),
    (_RNJ, RptEvent.TO_NOT_PRUNED): (_NP, RptAct.NONE),
    (_P, RptEvent.TO_NOT_PRUNED): (_NP, RptAct.SEND_JOIN),
    (_P, RptEvent.RPT_NOT_DESIRED): (_RNJ, RptAct.NONE),
    (_NP, RptEvent.TO_PRUNED): (_P, RptAct.SEND_PRUNE | RptAct.OT_CANCEL),
    (_NP, RptEvent.RPT_NOT_DESIRED): (_RNJ, RptAct.OT_CANCEL),
    (_NP, RptEvent.OVERRIDE_TIMER): (_NP, RptAct.SEND_JOIN | RptAct.OT_CANCEL),
    (_NP, RptEvent.SEE_PRUNE): (_NP, RptAct.OT_OVERRIDE),
    (_NP, RptEvent.SEE_JOIN): (_NP, RptAct.OT_CANCEL),
}


@dataclass(frozen=True)
class Hop:
    """Where an entry's Join/Prunes go: an interface and the neighbor on it
    (None: directly connected, or we are the RP: nothing to send)."""

    interface: str
    neighbor: str | None


@dataclass
class Upstream:
    """Upstream (*,G) or (S,G) state."""

    state: UpState = UpState.NOT_JOINED
    join_at: float | None = None  # the Join Timer
    mrib: Hop | None = None  # what the unicast table said last: a change here is not the Assert's doing
    rpf: Hop | None = None  # RPF' last evaluated: where we are joined

    def describe(self, now: float) -> dict:
        return {"state": self.state.value,
                "rpf_interface": None if self.rpf is None else self.rpf.interface,
                "rpf_neighbor": None if self.rpf is None else self.rpf.neighbor,
                "join_timer_left": None if self.join_at is None else max(0.0, self.join_at - now)}


@dataclass
class RptUpstream:
    """Upstream (S,G,rpt) state."""

    state: RptUpState = RptUpState.RPT_NOT_JOINED
    override_at: float | None = None  # the Override Timer
    rpf: Hop | None = None  # RPF'(S,G,rpt) last evaluated

    def describe(self, now: float) -> dict:
        return {"state": self.state.value,
                "rpf_interface": None if self.rpf is None else self.rpf.interface,
                "rpf_neighbor": None if self.rpf is None else self.rpf.neighbor,
                "override_timer_left": None if self.override_at is None else max(0.0, self.override_at - now)}


def step(machine: Upstream, event: UpEvent, now: float, periodic: float, suppress: float,
         override: float) -> UpAct:
    """Apply `event`; the three durations are t_periodic, t_joinsuppress and
    t_override for this machine's interface. Returns the actions taken, so
    the tree sends the messages."""
    transition = UP_TABLE.get((machine.state, event))
    if transition is None:
        return UpAct.NONE
    machine.state, act = transition
    if UpAct.JT_PERIODIC in act:
        machine.join_at = now + periodic
    if UpAct.JT_CANCEL in act:
        machine.join_at = None
    if UpAct.JT_SUPPRESS in act and machine.join_at is not None:
        machine.join_at = max(machine.join_at, now + suppress)
    if UpAct.JT_OVERRIDE in act and machine.join_at is not None:
        machine.join_at = min(machine.join_at, now + override)
    return act


def step_rpt(machine: RptUpstream, event: RptEvent, now: float, override: float) -> RptAct:
    """Apply `event`; `override` is t_override on RPF'(S,G,rpt)'s interface."""
    transition = RPT_UP_TABLE.get((machine.state, event))
    if transition is None:
        return RptAct.NONE
    machine.state, act = transition
    if RptAct.OT_CANCEL in act:
        machine.override_at = None
    if RptAct.OT_OVERRIDE in act:
        at = now + override
        machine.override_at = at if machine.override_at is None else min(machine.override_at, at)
    return act
