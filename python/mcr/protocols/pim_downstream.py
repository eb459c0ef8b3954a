"""PIM-SM downstream per-interface state machines (RFC 7761 4.5.2 (*,G),
4.5.3 (S,G) and 4.5.4 (S,G,rpt)): what the Join/Prune messages addressed
to us on one interface want, with its Expiry Timer (ET) and Prune-Pending
Timer (PPT).

A machine only holds state and deadlines; `step` applies one event through
the machine's table. The tree (mcr.protocols.pim_tree) feeds the events,
arms the deadlines in its timer heap and sends the PruneEchoes.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, Flag, auto

from .pim_tree_types import Kind


class JoinState(Enum):
    """DownstreamJPState(*,G,I) and (S,G,I): 4.5.2, 4.5.3."""

    NO_INFO = "NoInfo"
    JOIN = "Join"
    PRUNE_PENDING = "Prune-Pending"


class RptState(Enum):
    """DownstreamJPState(S,G,rpt,I): 4.5.4. The Tmp states live only while
    one message is processed: a Join(*,G) puts Prune state there and a
    Prune(S,G,rpt) in the same message brings it back."""

    NO_INFO = "NoInfo"
    PRUNE = "Prune"
    PRUNE_PENDING = "Prune-Pending"
    PRUNE_TMP = "PruneTmp"
    PRUNE_PENDING_TMP = "Prune-Pending-Tmp"


class Event(Enum):
    JOIN = auto()  # Receive Join(*,G) or Join(S,G), for the machine of that kind
    PRUNE = auto()  # Receive Prune(*,G) or Prune(S,G)
    JOIN_STAR = auto()  # (S,G,rpt): Receive Join(*,G)
    JOIN_RPT = auto()  # (S,G,rpt): Receive Join(S,G,rpt)
    PRUNE_RPT = auto()  # (S,G,rpt): Receive Prune(S,G,rpt)
    END_OF_MESSAGE = auto()  # (S,G,rpt): the message's group has been read
    PRUNE_PENDING_EXPIRED = auto()
    EXPIRED = auto()


class Act(Flag):
    NONE = 0
    START_EXPIRY = auto()  # ET = holdtime of the message
    EXTEND_EXPIRY = auto()  # ET = max(ET, holdtime)
    CANCEL_EXPIRY = auto()
    START_PRUNE_PENDING = auto()  # PPT = J/P_Override_Interval(I), or 0 with a single neighbor
    CANCEL_PRUNE_PENDING = auto()
    PRUNE_ECHO = auto()  # a Prune addressed to ourselves, so LAN routers that suppressed a Join override


_J, _JNI, _JPP = JoinState.JOIN, JoinState.NO_INFO, JoinState.PRUNE_PENDING
_CLEAR = Act.CANCEL_EXPIRY | Act.CANCEL_PRUNE_PENDING

# 4.5.2 / 4.5.3 (the two tables are the same): (state, event) -> (next, actions).
# A pair that is missing leaves the machine as it is.
State = JoinState | RptState
Table = dict[tuple[State, Event], tuple[State, Act]]

JOIN_TABLE: Table = {
    (_JNI, Event.JOIN): (_J, Act.START_EXPIRY),
    (_J, Event.JOIN): (_J, Act.EXTEND_EXPIRY),
    (_JPP, Event.JOIN): (_J, Act.CANCEL_PRUNE_PENDING | Act.EXTEND_EXPIRY),
    (_J, Event.PRUNE): (_JPP, Act.START_PRUNE_PENDING),
    # "A PruneEcho need not be sent on an interface that contains only a
    # single PIM neighbor": the tree drops it there.
    (_JPP, Event.PRUNE_PENDING_EXPIRED): (_JNI, _CLEAR | Act.PRUNE_ECHO),
    (_J, Event.EXPIRED): (_JNI, _CLEAR),
    (_JPP, Event.EXPIRED): (_JNI, _CLEAR),
}

_P, _PP, _PT, _PPT, _RNI = (RptState.PRUNE, RptState.PRUNE_PENDING, RptState.PRUNE_TMP,
                            RptState.PRUNE_PENDING_TMP, RptState.NO_INFO)

# 4.5.4: (state, event) -> (next, actions).
RPT_TABLE: Table = {
    (_RNI, Event.PRUNE_RPT): (_PP, Act.START_EXPIRY | Act.START_PRUNE_PENDING),
    (_P, Event.PRUNE_RPT): (_P, Act.EXTEND_EXPIRY),
    (_PP, Event.PRUNE_RPT): (_PP, Act.EXTEND_EXPIRY),
    # back from Tmp, the ET restarts at the new message's HoldTime (as FRR does too)
    (_PT, Event.PRUNE_RPT): (_P, Act.START_EXPIRY),
    (_PPT, Event.PRUNE_RPT): (_PP, Act.START_EXPIRY),
    (_P, Event.JOIN_STAR): (_PT, Act.NONE),
    (_PP, Event.JOIN_STAR): (_PPT, Act.NONE),
    (_P, Event.JOIN_RPT): (_RNI, _CLEAR),
    (_PP, Event.JOIN_RPT): (_RNI, _CLEAR),
    (_PT, Event.JOIN_RPT): (_RNI, _CLEAR),
    (_PPT, Event.JOIN_RPT): (_RNI, _CLEAR),
    (_PP, Event.PRUNE_PENDING_EXPIRED): (_P, Act.CANCEL_PRUNE_PENDING),
    (_P, Event.EXPIRED): (_RNI, _CLEAR),
    (_PP, Event.EXPIRED): (_RNI, _CLEAR),
    (_PT, Event.END_OF_MESSAGE): (_RNI, _CLEAR),
    (_PPT, Event.END_OF_MESSAGE): (_RNI, _CLEAR),
}

# What each state counts as in the 4.1.6 macros.
JOINED = frozenset({JoinState.JOIN, JoinState.PRUNE_PENDING})  # joins(*,G), joins(S,G)
PRUNED = frozenset({RptState.PRUNE, RptState.PRUNE_TMP})  # prunes(S,G,rpt)


@dataclass
class Downstream:
    """One downstream machine: (kind, source, group) on one interface."""

    kind: Kind
    state: State
    expires_at: float | None = None
    prune_pending_at: float | None = None

    @classmethod
    def new(cls, kind: Kind) -> Downstream:
        return cls(kind, RptState.NO_INFO if kind is Kind.SG_RPT else JoinState.NO_INFO)

    def no_info(self) -> bool:
        return self.state in (JoinState.NO_INFO, RptState.NO_INFO)

    def describe(self, now: float) -> dict:
        return {"kind": self.kind.value, "state": self.state.value,
                "expiry_left": None if self.expires_at is None else max(0.0, self.expires_at - now),
                "prune_pending_left": None if self.prune_pending_at is None
                else max(0.0, self.prune_pending_at - now)}


def step(machine: Downstream, event: Event, now: float, holdtime: float = 0.0,
         prune_pending_delay: float = 0.0) -> Act:
    """Apply `event` to `machine`; `holdtime` is the message's, and
    `prune_pending_delay` what the PPT runs for on this interface. Returns
    the actions taken (the caller arms the new deadlines and sends a
    PruneEcho when asked)."""
    table = RPT_TABLE if machine.kind is Kind.SG_RPT else JOIN_TABLE
    transition = table.get((machine.state, event))
    if transition is None:
        return Act.NONE
    machine.state, act = transition
    if Act.START_EXPIRY in act:
        machine.expires_at = now + holdtime
    if Act.EXTEND_EXPIRY in act:
        machine.expires_at = max(machine.expires_at or now, now + holdtime)
    if Act.CANCEL_EXPIRY in act:
        machine.expires_at = None
    if Act.START_PRUNE_PENDING in act:
        machine.prune_pending_at = now + prune_pending_delay
    if Act.CANCEL_PRUNE_PENDING in act:
        machine.prune_pending_at = None
    return act
