"""IGMP's membership table (RFC 3376 section 6): one `GroupState` per
group, and the router's state transitions of 6.4 as the RFC writes them.

The Querier (mcr.protocols.igmp) owns the timers and the queries; this is
what a group's record holds and how a report changes it.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass, field
from enum import Enum

from mcr.membership import ALLOW_NEW, BLOCK_OLD, MODE_IS_EXCLUDE, MODE_IS_INCLUDE, TO_EXCLUDE, TO_INCLUDE


class FilterMode(Enum):
    INCLUDE = "INCLUDE"
    EXCLUDE = "EXCLUDE"


def _remaining(deadline: float | None, now: float) -> float | None:
    return None if deadline is None else max(0.0, deadline - now)


def _address_key(address: str) -> bytes:
    return socket.inet_aton(address)


@dataclass
class GroupState:
    """One group's record (RFC 3376 6.2.1). In EXCLUDE mode a source with a
    running timer is in the "requested" list X, one whose timer is None
    (the RFC's timer 0) in the "exclude" list Y; in INCLUDE mode every
    source's timer runs. Timers are deadlines."""

    group: str
    version: int  # the interface's: the group's compatibility mode never exceeds it
    mode: FilterMode = FilterMode.INCLUDE
    group_timer: float | None = None
    sources: dict[str, float | None] = field(default_factory=dict)
    last_reporter: str | None = None
    last_version: int | None = None
    older_hosts: dict[int, float] = field(default_factory=dict)  # 7.3.2: version -> Older Host Present deadline
    group_retransmissions: int = 0  # 6.6.3.1: group-specific queries still to send
    source_retransmissions: dict[str, int] = field(default_factory=dict)  # 6.6.3.2, only counts above 0
    retransmit_at: float | None = None

    def forwards(self, source: str) -> bool:
        """RFC 3376 6.3: INCLUDE forwards the listed sources; EXCLUDE forwards
        everything but the sources whose timers are 0."""
        if self.mode is FilterMode.INCLUDE:
            return source in self.sources
        return source not in self.sources or self.sources[source] is not None

    def forwarding(self) -> tuple[FilterMode, frozenset[str]]:
        """What `forwards` depends on: the included, or the excluded, sources."""
        if self.mode is FilterMode.INCLUDE:
            return self.mode, frozenset(self.sources)
        return self.mode, frozenset(s for s, t in self.sources.items() if t is None)

    def compatibility(self, now: float) -> int:
        """RFC 3376 7.3.2: the oldest version whose hosts were heard lately."""
        return min([self.version, *(v for v, until in self.older_hosts.items() if until > now)])

    def describe(self, now: float) -> dict:
        return {"group": self.group, "mode": self.mode.value,
                "group_timer": _remaining(self.group_timer, now),
                "sources": [{"source": s, "timer": _remaining(self.sources[s], now) or 0.0}
                            for s in sorted(self.sources, key=_address_key)],
                "compatibility": self.compatibility(now),
                "last_reporter": self.last_reporter, "last_version": self.last_version}


class Act(Enum):
    """The actions of the RFC 3376 6.4 tables, as the RFC writes them."""

    SET_GMI = r"\((.+)\)=GMI"
    SET_ZERO = r"\((.+)\)=0"
    SET_GROUP_TIMER = r"\((.+)\)=Group Timer"
    DELETE = r"Delete \((.+)\)"
    GROUP_TIMER_GMI = r"Group Timer=GMI"
    QUERY_SOURCES = r"Send Q\(G,(.+)\)"
    QUERY_GROUP = r"Send Q\(G\)"


INCLUDE, EXCLUDE = FilterMode.INCLUDE, FilterMode.EXCLUDE

# RFC 3376 6.4.1 (current-state records) and 6.4.2 (filter-mode and
# source-list changes), verbatim: (router mode, record type) -> (new state,
# actions). In INCLUDE rows A is the router's source list and B the
# record's; in EXCLUDE rows X holds the sources with running timers, Y those
# at 0, and A is the record's. The actions alone make the new state (a
# source with a running timer is in X, one at 0 in Y), so only its mode is
# read here; the tests hold the implementation to the rest of that column.
TABLE: dict[tuple[FilterMode, int], tuple[str, str]] = {
    (INCLUDE, MODE_IS_INCLUDE): ("INCLUDE (A+B)", "(B)=GMI"),
    (INCLUDE, MODE_IS_EXCLUDE): ("EXCLUDE (A*B,B-A)", "(B-A)=0, Delete (A-B), Group Timer=GMI"),
    (EXCLUDE, MODE_IS_INCLUDE): ("EXCLUDE (X+A,Y-A)", "(A)=GMI"),
    (EXCLUDE, MODE_IS_EXCLUDE): ("EXCLUDE (A-Y,Y*A)", "(A-X-Y)=GMI, Delete (X-A), Delete (Y-A), Group Timer=GMI"),
    (INCLUDE, ALLOW_NEW): ("INCLUDE (A+B)", "(B)=GMI"),
    (INCLUDE, BLOCK_OLD): ("INCLUDE (A)", "Send Q(G,A*B)"),
    (INCLUDE, TO_EXCLUDE): ("EXCLUDE (A*B,B-A)", "(B-A)=0, Delete (A-B), Send Q(G,A*B), Group Timer=GMI"),
    (INCLUDE, TO_INCLUDE): ("INCLUDE (A+B)", "(B)=GMI, Send Q(G,A-B)"),
    (EXCLUDE, ALLOW_NEW): ("EXCLUDE (X+A,Y-A)", "(A)=GMI"),
    (EXCLUDE, BLOCK_OLD): ("EXCLUDE (X+(A-Y),Y)", "(A-X-Y)=Group Timer, Send Q(G,A-Y)"),
    (EXCLUDE, TO_EXCLUDE): ("EXCLUDE (A-Y,Y*A)",
                            "(A-X-Y)=Group Timer, Delete (X-A), Delete (Y-A), Send Q(G,A-Y), Group Timer=GMI"),
    (EXCLUDE, TO_INCLUDE): ("EXCLUDE (X+A,Y-A)", "(A)=GMI, Send Q(G,X-A), Send Q(G)"),
}
_OPERATORS = {"+": frozenset.union, "-": frozenset.difference, "*": frozenset.intersection}


def _evaluate(expression: str, sets: dict[str, frozenset[str]]) -> frozenset[str]:
    """A set expression of the table's actions ("A-X-Y"), left to right."""
    value = sets[expression[0]]
    for operator, name in zip(expression[1::2], expression[2::2]):
        value = _OPERATORS[operator](value, sets[name])
    return value


def _steps(actions: str) -> tuple[tuple[Act, str], ...]:
    """The actions column as (action, set expression or ""), in order."""
    steps = []
    for action in actions.split(", "):
        act, match = next((a, m) for a in Act if (m := re.fullmatch(a.value, action)))
        steps.append((act, match.group(1) if match.groups() else ""))
    return tuple(steps)


TRANSITIONS = {key: (FilterMode[new_state.split()[0]], _steps(actions)) for key, (new_state, actions) in TABLE.items()}
