"""IGMP router side, one `Querier` per interface: querier election, general
and specific queries, and the membership table (RFC 2236, RFC 3376 section 6,
RFC 4604 for the SSM range).

Sans-IO: the adapter hands in messages (`receive`) and the time (`expire`,
whenever `next_deadline` passes) and gets back what to do: queries to send
(`SendQuery`, IGMP bytes only) and groups whose forwarding changed
(`MembershipChanged`, for the MRIB, which asks `forwards`). Times are plain
floats of seconds on the adapter's monotonic clock.

An interface configured as version 2 or 1 is an RFC 2236 or RFC 1112 router:
the same table with every group held in IGMPv2 (or v1) compatibility mode
(RFC 3376 7.3.2), so groups have no sources and a v2 leave turns into
group-specific queries.
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter
from dataclasses import dataclass, replace
from enum import Enum, auto
from ipaddress import IPv4Address

from mcr.membership import BLOCK_OLD, MODE_IS_EXCLUDE, MODE_IS_INCLUDE, TO_EXCLUDE, TO_INCLUDE

from .igmp_groups import (EXCLUDE, INCLUDE, TRANSITIONS, Act, FilterMode, GroupState, _address_key, _evaluate,
                          _remaining)
from .igmp_settings import LINK_LOCAL, MULTICAST, SSM_RANGE, Settings
from .igmp_wire import (ALL_SYSTEMS, ANY_GROUP, MAX_QUERY_SOURCES, Leave, Malformed, OldReport, Query, V3Report,
                        encode_query, parse_message)


@dataclass(frozen=True)
class SendQuery:
    """Send `payload` (IGMP only) to `destination` out of this interface."""

    destination: str
    payload: bytes


@dataclass(frozen=True)
class MembershipChanged:
    """What should be forwarded to this interface for `group` changed."""

    group: str


Output = SendQuery | MembershipChanged


class Timer(Enum):
    """Every timer a querier runs."""

    GENERAL_QUERY = auto()  # the next general query, startup or periodic, while querier
    OTHER_QUERIER_PRESENT = auto()  # RFC 3376 6.6.2: a lower address is querying
    GROUP = auto()  # 6.2.2 / 6.5: an EXCLUDE-mode group's timer
    SOURCE = auto()  # 6.2.3: a source record's timer
    RETRANSMIT = auto()  # 6.6.3: a group's next specific-query retransmission


class Querier:
    """The IGMP router side of one interface whose address is `address`."""

    def __init__(self, settings: Settings, address: str) -> None:
        IPv4Address(address)  # a clear ValueError for a bad one
        self.settings = settings  # as configured
        # What the timers use: the configuration, or, while another router
        # is querier, its QRV and QQI (RFC 3376 4.1.6, 4.1.7).
        self.active = settings
        self.address = address
        self.counters: Counter[str] = Counter()  # dropped or ignored input, by reason
        self.running = False
        self.querier = False
        self.querier_address: str | None = None
        self._groups: dict[str, GroupState] = {}
        self._general_query_at: float | None = None
        self._other_querier_until: float | None = None
        self._startup_left = 0
        # (deadline, order, kind, group, source). An entry whose deadline no
        # longer matches its timer's (re-armed or cancelled) is stale: skipped.
        self._timers: list[tuple[float, int, Timer, str, str]] = []
        self._order = itertools.count()

    # --- the adapter's interface ---

    def start(self, now: float) -> list[Output]:
        """RFC 3376 6.6.2: a router starts as querier, with startup queries."""
        if self.running:
            return []
        self.running = True
        self._startup_left = self.settings.startup_query_count
        self.querier, self.querier_address = True, self.address
        return [self._send_general_query(now)]

    def stop(self, now: float) -> list[Output]:
        """Forget everything; every group's forwarding ends."""
        changed: list[Output] = [MembershipChanged(g) for g in sorted(self._groups, key=_address_key)]
        self._groups.clear()
        self._timers.clear()
        self.running = self.querier = False
        self.querier_address = self._general_query_at = self._other_querier_until = None
        self._startup_left = 0
        self.active = self.settings
        return changed

    def receive(self, now: float, source: str, destination: str, payload: bytes) -> list[Output]:
        """One IGMP message (the IP payload) from `source` to `destination`.
        Timers already due run first, so the message meets the state at `now`;
        a message that is dropped is counted and changes nothing, timers included."""
        if not self.running:
            return self._drop("not_running")
        if destination != self.address and not IPv4Address(destination).is_multicast:
            return self._drop("not_for_us")  # a unicast to another host, seen by a promiscuous socket
        try:
            message = parse_message(payload)
        except Malformed as error:
            return self._drop(error.reason)
        out = self.expire(now)
        match message:
            case Query():
                self._receive_query(now, source, message)
            case V3Report(records) if self.settings.version == 3:
                for record in records:
                    out += self._receive_record(now, source, 3, record.kind, record.group, frozenset(record.sources))
            case OldReport(version, group) if version <= self.settings.version:
                out += self._receive_record(now, source, version, MODE_IS_EXCLUDE, group, frozenset())  # 7.3.2
            case Leave(group) if self.settings.version >= 2:
                out += self._receive_record(now, source, 2, TO_INCLUDE, group, frozenset())  # 7.3.2
            case _:
                self.counters["newer_than_interface"] += 1  # a version this interface is not configured for
        return out

    def expire(self, now: float) -> list[Output]:
        """Run every timer due by `now`, in deadline order."""
        out: list[Output] = []
        while self._timers and self._timers[0][0] <= now:
            deadline, _, kind, group, source = heapq.heappop(self._timers)
            if self._armed(kind, group, source) == deadline:
                out += self._fire(now, kind, group, source)
        return out

    def next_deadline(self) -> float | None:
        """When `expire` has something to do next."""
        while self._timers and self._armed(*self._timers[0][2:]) != self._timers[0][0]:
            heapq.heappop(self._timers)
        return self._timers[0][0] if self._timers else None

    def set_address(self, now: float, address: str) -> list[Output]:
        """The interface was re-addressed: hold the election again."""
        IPv4Address(address)
        out = self.expire(now) if self.running else []
        self.address = address
        if self.querier:
            self.querier_address = address
        elif self.running and _address_key(address) < _address_key(self.querier_address or address):
            out += self._become_querier(now)  # we win now; the other router defers when it hears us
        return out

    def forwards(self, group: str, source: str) -> bool:
        """Whether traffic from `source` to `group` is wanted on this interface."""
        state = self._groups.get(group)
        return state is not None and state.forwards(source)

    def groups(self) -> dict[str, GroupState]:
        """The group records by group (live: read them, don't change them)."""
        return dict(self._groups)

    def describe(self, now: float) -> dict:
        return {"address": self.address, "version": self.settings.version, "querier": self.querier,
                "querier_address": self.querier_address, "robustness": self.active.robustness,
                "query_interval": self.active.query_interval,
                "next_general_query": _remaining(self._general_query_at, now),
                "other_querier_present": _remaining(self._other_querier_until, now),
                "groups": [self._groups[g].describe(now) for g in sorted(self._groups, key=_address_key)],
                "counters": dict(self.counters)}

    # --- timers ---

    def _arm(self, kind: Timer, deadline: float, group: str = "", source: str = "") -> None:
        heapq.heappush(self._timers, (deadline, next(self._order), kind, group, source))

    def _armed(self, kind: Timer, group: str, source: str) -> float | None:
        """The deadline `kind` is armed for now, if any."""
        if kind is Timer.GENERAL_QUERY:
            return self._general_query_at
        if kind is Timer.OTHER_QUERIER_PRESENT:
            return self._other_querier_until
        state = self._groups.get(group)
        if state is None:
            return None
        if kind is Timer.GROUP:
            return state.group_timer
        if kind is Timer.SOURCE:
            return state.sources.get(source)
        return state.retransmit_at

    def _fire(self, now: float, kind: Timer, group: str, source: str) -> list[Output]:
        match kind:
            case Timer.GENERAL_QUERY:
                return [self._send_general_query(now)]
            case Timer.OTHER_QUERIER_PRESENT:
                return self._become_querier(now)
            case Timer.GROUP:
                return self._on_group_timer(now, self._groups[group])
            case Timer.SOURCE:
                return self._on_source_timer(self._groups[group], source)
            case Timer.RETRANSMIT:
                return self._on_retransmit_timer(now, self._groups[group])

    def _on_group_timer(self, now: float, state: GroupState) -> list[Output]:
        """RFC 3376 6.5: EXCLUDE turns into INCLUDE of the sources whose timers
        still run; the excluded ones go. Nothing left: the group goes."""
        before = state.forwarding()
        state.mode, state.group_timer, state.group_retransmissions = INCLUDE, None, 0
        state.sources = {s: t for s, t in state.sources.items() if t is not None and t > now}
        # Retransmission state belongs to listed sources only (6.6.3.2).
        state.source_retransmissions = {s: n for s, n in state.source_retransmissions.items() if s in state.sources}
        return self._settle(state, before)

    def _on_source_timer(self, state: GroupState, source: str) -> list[Output]:
        """RFC 3376 6.3: in INCLUDE mode the source goes; in EXCLUDE mode it
        stays with timer 0, excluded."""
        before = state.forwarding()
        state.source_retransmissions.pop(source, None)
        if state.mode is INCLUDE:
            del state.sources[source]
        else:
            state.sources[source] = None
        return self._settle(state, before)

    def _on_retransmit_timer(self, now: float, state: GroupState) -> list[Output]:
        state.retransmit_at = None
        out: list[Output] = []
        if state.group_retransmissions:
            state.group_retransmissions -= 1
            out.append(self._group_query(now, state))
        out += self._source_queries(now, state)
        self._arm_retransmit(now, state)
        return out

    def _arm_retransmit(self, now: float, state: GroupState) -> None:
        if state.retransmit_at is None and (state.group_retransmissions or state.source_retransmissions):
            state.retransmit_at = now + self.settings.last_member_query_interval
            self._arm(Timer.RETRANSMIT, state.retransmit_at, state.group)

    # --- querier election (RFC 2236 3, RFC 3376 6.6.2) ---

    def _receive_query(self, now: float, source: str, query: Query) -> None:
        if source == self.address:
            self.counters["own_query"] += 1  # our own, looped back
            return
        if source == "0.0.0.0":
            # Snooping switches' proxy queries (RFC 4541 2.1.1) would win every election.
            self.counters["query_from_unspecified"] += 1
            return
        if query.version != self.settings.version:
            self.counters["query_version_mismatch"] += 1  # RFC 3376 7.3.1: the administrator's to fix
        if _address_key(source) < _address_key(self.address):
            self._defer_to(now, source, query)
        if not query.suppress and query.group != ANY_GROUP:
            self._lower_timers(now, query)

    def _defer_to(self, now: float, source: str, query: Query) -> None:
        """A lower address queries: stop querying until it falls silent. Specific
        queries already under way still go out (RFC 2236 3)."""
        self.querier, self.querier_address = False, source
        self._general_query_at, self._startup_left = None, 0
        self._adopt(query)
        self._other_querier_until = now + self.active.other_querier_present_interval
        self._arm(Timer.OTHER_QUERIER_PRESENT, self._other_querier_until)

    def _adopt(self, query: Query) -> None:
        """RFC 3376 4.1.6, 4.1.7: a non-querier takes the querier's QRV and QQI;
        0 (and v1/v2 queries, which carry neither) means ours."""
        robustness = query.robustness or self.settings.robustness
        interval = query.query_interval or self.settings.query_interval
        if (robustness, interval) == (self.active.robustness, self.active.query_interval):
            return
        try:
            self.active = replace(self.settings, robustness=robustness, query_interval=interval)
        except ValueError:
            self.counters["querier_values_unusable"] += 1  # e.g. a QQI below our response interval

    def _become_querier(self, now: float) -> list[Output]:
        self.querier, self.querier_address = True, self.address
        self.active, self._other_querier_until = self.settings, None
        return [self._send_general_query(now)]

    def _lower_timers(self, now: float, query: Query) -> None:
        """RFC 3376 6.6.1: a specific query with S clear, heard from another
        router, lowers the group timer (Q(G)) or the queried sources' timers
        (Q(G,A)) to LMQT. Our own queries do it as we send them (6.6.3)."""
        state = self._groups.get(query.group)
        if state is None:
            return
        lmqt = now + self.active.last_member_query_time
        if not query.sources:
            self._lower_group_timer(state, lmqt)
        for source in query.sources:
            self._lower_source_timer(state, source, lmqt)

    def _lower_group_timer(self, state: GroupState, deadline: float) -> None:
        if state.group_timer is not None and state.group_timer > deadline:
            state.group_timer = deadline
            self._arm(Timer.GROUP, deadline, state.group)

    def _lower_source_timer(self, state: GroupState, source: str, deadline: float) -> bool:
        timer = state.sources.get(source)
        if timer is None or timer <= deadline:
            return False
        state.sources[source] = deadline
        self._arm(Timer.SOURCE, deadline, state.group, source)
        return True

    # --- sending queries ---

    def _send_general_query(self, now: float) -> SendQuery:
        if self._startup_left:
            self._startup_left -= 1
        interval = self.settings.startup_query_interval if self._startup_left else self.settings.query_interval
        self._general_query_at = now + interval
        self._arm(Timer.GENERAL_QUERY, self._general_query_at)
        return self._query(ANY_GROUP)

    def _query(self, group: str, suppress: bool = False, sources: tuple[str, ...] = ()) -> SendQuery:
        s = self.settings
        general = group == ANY_GROUP
        query = Query(s.version, group, s.query_response_interval if general else s.last_member_query_interval,
                      suppress, s.robustness, int(s.query_interval), sources)  # QQIC holds whole seconds
        return SendQuery(ALL_SYSTEMS if general else group, encode_query(query))

    def _group_query(self, now: float, state: GroupState) -> SendQuery:
        """RFC 3376 6.6.3.1: S set while the group timer is above LMQT (a report came back)."""
        lmqt = now + self.settings.last_member_query_time
        return self._query(state.group, state.group_timer is not None and state.group_timer > lmqt)

    def _source_queries(self, now: float, state: GroupState) -> list[Output]:
        """RFC 3376 6.6.3.2: the sources with retransmissions left, those whose
        timers are above LMQT with S set, the rest with S clear; one
        retransmission each is spent."""
        lmqt = now + self.settings.last_member_query_time
        pending = sorted(state.source_retransmissions, key=_address_key)
        high = tuple(s for s in pending if (state.sources[s] or 0.0) > lmqt)
        low = tuple(s for s in pending if s not in high)
        for source in pending:
            state.source_retransmissions[source] -= 1
            if not state.source_retransmissions[source]:
                del state.source_retransmissions[source]
        return [self._query(state.group, suppress, chunk[i:i + MAX_QUERY_SOURCES])
                for suppress, chunk in ((True, high), (False, low)) for i in range(0, len(chunk), MAX_QUERY_SOURCES)]

    def _start_group_queries(self, now: float, state: GroupState) -> list[Output]:
        """Send Q(G), RFC 3376 6.6.3.1: lower the group timer to LMQT, query now,
        and [Last Member Query Count] - 1 times more."""
        self._lower_group_timer(state, now + self.active.last_member_query_time)
        state.group_retransmissions = self.settings.last_member_query_count - 1
        self._arm_retransmit(now, state)
        return [self._group_query(now, state)]

    def _start_source_queries(self, now: float, state: GroupState, sources: frozenset[str]) -> list[Output]:
        """Send Q(G,X), RFC 3376 6.6.3.2: each source of X whose timer is above
        LMQT has it lowered and gets [Last Member Query Count] retransmissions."""
        lmqt = now + self.active.last_member_query_time
        chosen = [s for s in sources if self._lower_source_timer(state, s, lmqt)]
        if not chosen:
            return []
        state.source_retransmissions.update(dict.fromkeys(chosen, self.settings.last_member_query_count))
        out = self._source_queries(now, state)
        self._arm_retransmit(now, state)
        return out

    # --- the membership table (RFC 3376 6.4, 7.3.2, RFC 4604) ---

    def _receive_record(self, now: float, reporter: str, version: int, kind: int, group: str,
                        sources: frozenset[str]) -> list[Output]:
        """One group record; v1/v2 messages arrive here translated (RFC 3376
        7.3.2: report -> IS_EX({}), leave -> TO_IN({}))."""
        problem = _record_problem(version, kind, group)
        if problem:
            return self._drop(problem)
        state = self._groups.get(group)
        compatibility = state.compatibility(now) if state else self.settings.version
        if compatibility < 3 and kind == BLOCK_OLD:
            return self._drop("block_in_compatibility_mode")
        if compatibility == 1 and version == 2 and kind == TO_INCLUDE:
            return self._drop("leave_in_v1_compatibility_mode")
        if compatibility < 3 and kind == TO_EXCLUDE:
            sources = frozenset()  # TO_EX(x) is taken as TO_EX({})
        before = state.forwarding() if state else None
        if state is None:
            state = self._groups[group] = GroupState(group, self.settings.version)
        if version < 3 and kind == MODE_IS_EXCLUDE:
            state.older_hosts[version] = now + self.active.older_host_present_interval
        state.last_reporter, state.last_version = reporter, version
        out = self._transition(now, state, kind, sources)
        return out + self._settle(state, before)

    def _transition(self, now: float, state: GroupState, kind: int, sources: frozenset[str]) -> list[Output]:
        """Apply the TRANSITIONS row for (state.mode, kind)."""
        new_mode, steps = TRANSITIONS[state.mode, kind]
        running = frozenset(s for s, t in state.sources.items() if t is not None)
        sets = ({"A": running, "B": sources} if state.mode is INCLUDE
                else {"X": running, "Y": frozenset(state.sources) - running, "A": sources})
        gmi = now + self.active.group_membership_interval
        out: list[Output] = []
        for act, expression in steps:
            targets = _evaluate(expression, sets) if expression else frozenset()
            if act is Act.SET_GMI:
                self._set_source_timers(state, targets, gmi)
            elif act is Act.SET_GROUP_TIMER:
                self._set_source_timers(state, targets, state.group_timer)
            elif act is Act.SET_ZERO:
                self._set_source_timers(state, targets, None)
            elif act is Act.DELETE:
                for source in targets:
                    del state.sources[source]
                    state.source_retransmissions.pop(source, None)
            elif act is Act.GROUP_TIMER_GMI:
                state.group_timer = gmi
                self._arm(Timer.GROUP, gmi, state.group)
            elif not self.querier:
                continue  # 6.6.1: only the querier queries; the others lower timers when they hear it
            elif act is Act.QUERY_SOURCES:
                out += self._start_source_queries(now, state, targets)
            else:
                out += self._start_group_queries(now, state)
        state.mode = new_mode
        return out

    def _set_source_timers(self, state: GroupState, sources: frozenset[str], deadline: float | None) -> None:
        """Set the sources' timers to `deadline`; None is the RFC's timer 0."""
        for source in sources:
            state.sources[source] = deadline
            if deadline is not None:
                self._arm(Timer.SOURCE, deadline, state.group, source)

    def _settle(self, state: GroupState, before: tuple[FilterMode, frozenset[str]] | None) -> list[Output]:
        """Drop a group with nothing left (INCLUDE {}), and say if its forwarding changed."""
        after = None
        if state.mode is EXCLUDE or state.sources:
            after = state.forwarding()
        else:
            del self._groups[state.group]
        return [MembershipChanged(state.group)] if after != before else []

    def _drop(self, reason: str) -> list[Output]:
        self.counters[reason] += 1
        return []


def _record_problem(version: int, kind: int, group: str) -> str | None:
    """Why a record is ignored, if it is."""
    address = IPv4Address(group)
    if address not in MULTICAST:
        return "not_multicast"
    if address in LINK_LOCAL:
        return "link_local_group"
    if not MODE_IS_INCLUDE <= kind <= BLOCK_OLD:
        return "unknown_record_type"  # RFC 3376 4.2.12: ignored
    if address in SSM_RANGE and version < 3:
        return "ssm_old_version"  # RFC 4604 2.2.1: v1/v2 cannot say which source
    if address in SSM_RANGE and kind in (MODE_IS_EXCLUDE, TO_EXCLUDE):
        return "ssm_exclude"  # RFC 4604 2.2.1: no EXCLUDE mode in the SSM range
    return None
