"""IGMP router side (mcr.protocols.igmp): the querier and the membership
table driven by a fake clock (plain floats), every query we encode read back
by scapy's dissectors, and reports built by scapy fed to our parser.

scapy.layers.igmp holds the classes scapy.contrib.igmp / igmpv3 re-export
under their deprecated names (IGMPv3mq = IGMPv3_MQ, IGMPv3mr = IGMPv3_MR,
IGMPv3gr = IGMPv3_MR_Group).
"""

from __future__ import annotations

import bisect
import json
import struct

import pytest
from hypothesis import given, settings as hypothesis_settings, strategies as st
from scapy.config import conf
from scapy.layers.igmp import IGMP, IGMPv3_MQ, IGMPv3_MR, IGMPv3_MR_Group

from mcr.membership import (ALLOW_NEW, BLOCK_OLD, MODE_IS_EXCLUDE, MODE_IS_INCLUDE, TO_EXCLUDE, TO_INCLUDE,
                            inet_checksum, v2_message, v3_report)
from mcr.protocols.igmp import FilterMode, MembershipChanged, Querier, SendQuery, Settings
from mcr.protocols.igmp_groups import TABLE
from mcr.protocols.igmp_wire import (ALL_SYSTEMS, ANY_GROUP, MAX_CODE_VALUE, Query, decode_code, encode_code,
                                     encode_query, parse_message)

LOWEST, LOWER, ME, HIGHER = "10.0.0.1", "10.0.0.3", "10.0.0.5", "10.0.0.7"
HOST = "10.0.0.50"
G, G2, SSM = "239.1.1.1", "239.2.2.2", "232.1.1.1"
A, B, C, D, E = (f"192.0.2.{i}" for i in range(1, 6))
NAMES = {A: "a", B: "b", C: "c", D: "d", E: "e"}


# --- helpers ---

def started(version: int = 3, address: str = ME, **timers) -> Querier:
    querier = Querier(Settings(version=version, **timers), address)
    querier.start(0.0)
    return querier


def report(q: Querier, now: float, *records: tuple[int, str, list[str]]) -> list:
    return q.receive(now, HOST, "224.0.0.22", v3_report(list(records)))


def old_report(q: Querier, now: float, kind: int, group: str) -> list:
    """A v1 (0x12) or v2 (0x16) report, or a v2 leave (0x17), built by scapy."""
    destination = "224.0.0.2" if kind == 0x17 else group
    return q.receive(now, HOST, destination, bytes(IGMP(type=kind, gaddr=group)))


def heard(q: Querier, now: float, source: str, query: Query) -> list:
    destination = ALL_SYSTEMS if query.group == ANY_GROUP else query.group
    return q.receive(now, source, destination, encode_query(query))


def queries(outputs: list) -> list[SendQuery]:
    return [o for o in outputs if isinstance(o, SendQuery)]


def changed(outputs: list) -> list[str]:
    return [o.group for o in outputs if isinstance(o, MembershipChanged)]


def dissect(send: SendQuery):
    """scapy's reading of a query we sent, once scapy agrees on its checksum."""
    packet = IGMP(send.payload)
    assert packet.type == 0x11
    rebuilt = packet.copy()
    del rebuilt.chksum
    assert bytes(rebuilt) == send.payload
    assert send.destination == (ALL_SYSTEMS if packet.gaddr == ANY_GROUP else packet.gaddr)  # RFC 3376 4.1.12
    return packet


def specific(send: SendQuery) -> tuple[bool, list[str]]:
    """(S flag, sources) of a v3 specific query for G with LMQI 1 s, checked with scapy."""
    packet = dissect(send)
    assert isinstance(packet, IGMPv3_MQ) and packet.gaddr == G and packet.getfieldval("mrcode") == 10
    assert (packet.qrv, packet.qqic) == (2, 125)
    return bool(packet.s), [NAMES.get(s, s) for s in packet.srcaddrs]


def timers(q: Querier, group: str = G) -> dict[str, float | None]:
    return {NAMES.get(s, s): t for s, t in q.groups()[group].sources.items()}


def checksummed(message: bytes) -> bytes:
    message = message[:2] + b"\0\0" + message[4:]
    return message[:2] + struct.pack("!H", inet_checksum(message)) + message[4:]


# --- wire: codes, settings ---

def test_max_resp_code_and_qqic_round_trip():
    representable = sorted({decode_code(code) for code in range(256)})
    assert len(representable) == 256 and representable[-1] == MAX_CODE_VALUE
    assert all(encode_code(decode_code(code)) == code for code in range(256))
    for value in range(MAX_CODE_VALUE + 1):  # rounded down to the nearest value the code holds
        assert decode_code(encode_code(value)) == representable[bisect.bisect_right(representable, value) - 1]
    for tenths in (0, 1, 127, 128, 129, 255, 1000, 3000, 31743, MAX_CODE_VALUE):
        assert bytes(IGMPv3_MQ(mrcode=tenths))[1] == encode_code(tenths)  # scapy's encoder agrees
    assert (encode_code(128), encode_code(MAX_CODE_VALUE), decode_code(0x81)) == (0x80, 0xFF, 136)
    for bad in (-1, MAX_CODE_VALUE + 1):
        with pytest.raises(ValueError):
            encode_code(bad)
    with pytest.raises(ValueError, match="IGMPv2"):
        encode_query(Query(2, max_response=30.0))  # one byte of tenths


def test_settings_defaults_follow_rfc_3376_section_8():
    s = Settings()
    assert (s.version, s.robustness, s.query_interval, s.query_response_interval) == (3, 2, 125.0, 10.0)
    assert (s.last_member_query_interval, s.last_member_query_count) == (1.0, 2)
    assert (s.startup_query_interval, s.startup_query_count) == (31.25, 2)
    assert (s.group_membership_interval, s.other_querier_present_interval) == (260.0, 255.0)
    assert (s.older_host_present_interval, s.last_member_query_time) == (260.0, 2.0)
    tuned = Settings(robustness=3, query_interval=60, startup_query_count=1)
    assert (tuned.last_member_query_count, tuned.startup_query_count, tuned.startup_query_interval) == (3, 1, 15.0)
    assert tuned.group_membership_interval == 190.0


@pytest.mark.parametrize("fields, complaint", [
    ({"version": 4}, "version"),
    ({"robustness": 0}, "robustness"),
    ({"robustness": True}, "robustness"),
    ({"query_interval": 0}, "query_interval"),
    ({"query_interval": 40000}, "query_interval"),
    ({"query_interval": float("nan")}, "query_interval"),
    ({"query_response_interval": 125}, "less than query_interval"),
    ({"query_response_interval": 0}, "query_response_interval"),
    ({"version": 2, "query_response_interval": 30}, "query_response_interval"),
    ({"version": 2, "last_member_query_interval": 26}, "last_member_query_interval"),
    ({"last_member_query_interval": 0.05}, "last_member_query_interval"),
    ({"last_member_query_count": -1}, "last_member_query_count"),
    ({"startup_query_count": 1.5}, "startup_query_count"),
    ({"startup_query_interval": -1}, "startup_query_interval"),
])
def test_settings_reject_nonsense(fields, complaint):
    with pytest.raises(ValueError, match=complaint):
        Settings(**fields)


# --- querier: startup, periodic queries, election ---

def run_until(q: Querier, end: float) -> list[tuple[float, SendQuery]]:
    sent = []
    while (deadline := q.next_deadline()) is not None and deadline <= end:
        sent += [(deadline, s) for s in queries(q.expire(deadline))]
    return sent


def test_startup_queries_then_general_query_period():
    q = Querier(Settings(), ME)
    first = q.start(0.0)
    sent = [(0.0, first[0])] + run_until(q, 500.0)
    assert [t for t, _ in sent] == [0.0, 31.25, 156.25, 281.25, 406.25]
    for _, send in sent:
        packet = dissect(send)
        assert isinstance(packet, IGMPv3_MQ) and send.destination == ALL_SYSTEMS
        fields = (packet.getfieldval("mrcode"), packet.s, packet.qrv, packet.qqic, packet.srcaddrs)
        assert fields == (100, 0, 2, 125, [])
    q3 = Querier(Settings(robustness=3), ME)
    q3.start(0.0)
    assert [t for t, _ in run_until(q3, 200.0)] == [31.25, 62.5, 187.5]
    assert q.start(500.0) == []  # already running


def test_v2_and_v1_interfaces_send_their_versions_queries():
    v2 = Querier(Settings(version=2), ME).start(0.0)[0]
    packet = dissect(v2)
    assert len(v2.payload) == 8 and (packet.getfieldval("mrcode"), packet.gaddr) == (100, ANY_GROUP)
    assert parse_message(v2.payload) == Query(2, ANY_GROUP, 10.0)
    v1 = Querier(Settings(version=1), ME).start(0.0)[0]
    assert len(v1.payload) == 8 and dissect(v1).getfieldval("mrcode") == 0  # RFC 3376 7.3.1
    assert parse_message(v1.payload).version == 1


def test_robustness_above_seven_is_sent_as_qrv_zero():
    packet = dissect(Querier(Settings(robustness=8), ME).start(0.0)[0])
    assert packet.qrv == 0  # RFC 3376 4.1.6


def test_lower_address_takes_over_until_other_querier_present_expires():
    q = started()
    assert heard(q, 10.0, LOWER, Query(3)) == []
    assert not q.querier and q.describe(10.0)["querier_address"] == LOWER
    assert q.describe(10.0)["other_querier_present"] == 255.0 and q.describe(10.0)["next_general_query"] is None
    assert q.next_deadline() == 265.0  # no startup query at 31.25 any more
    assert q.expire(264.9) == []
    takeover = q.expire(265.0)
    assert len(takeover) == 1 and dissect(takeover[0]).gaddr == ANY_GROUP
    assert q.querier and q.describe(265.0)["querier_address"] == ME
    assert q.next_deadline() == 390.0  # periodic from here


def test_other_querier_present_is_refreshed_by_each_query():
    q = started()
    heard(q, 10.0, LOWER, Query(3))
    heard(q, 135.0, LOWER, Query(3))
    assert q.expire(265.0) == [] and q.next_deadline() == 390.0


def test_higher_address_does_not_win():
    q = started()
    assert heard(q, 10.0, HIGHER, Query(3)) == []
    assert q.querier and q.next_deadline() == 31.25


def test_own_and_unspecified_queries_take_no_part_in_the_election():
    q = started()
    heard(q, 1.0, ME, Query(3))
    heard(q, 1.0, "0.0.0.0", Query(3))
    assert q.querier
    assert q.counters["own_query"] == 1 and q.counters["query_from_unspecified"] == 1


def test_non_querier_adopts_qrv_and_qqi_of_the_querier():
    q = started()
    heard(q, 10.0, LOWER, Query(3, robustness=3, query_interval=60))
    described = q.describe(10.0)
    assert (described["robustness"], described["query_interval"]) == (3, 60)
    assert described["other_querier_present"] == 3 * 60 + 5
    report(q, 20.0, (MODE_IS_INCLUDE, G, [A]))
    assert timers(q) == {"a": 20.0 + 3 * 60 + 10}  # GMI with the querier's values
    q.expire(195.0)  # the querier fell silent: our own values again
    assert q.querier and (q.active.robustness, q.active.query_interval) == (2, 125)


def test_unusable_or_unset_querier_values():
    q = started()
    heard(q, 10.0, LOWER, Query(3, robustness=0, query_interval=0))  # 0: keep ours
    assert (q.active.robustness, q.active.query_interval) == (2, 125)
    heard(q, 11.0, LOWER, Query(3, robustness=2, query_interval=5))  # below our 10 s response interval
    assert q.counters["querier_values_unusable"] == 1 and q.active.query_interval == 125


def test_query_of_another_version_is_counted():
    q = started()
    heard(q, 1.0, LOWER, Query(2))
    assert q.counters["query_version_mismatch"] == 1 and not q.querier


def test_set_address_holds_the_election_again():
    q = started()
    heard(q, 10.0, LOWER, Query(3))
    assert q.set_address(20.0, HIGHER) == [] and not q.querier
    won = q.set_address(30.0, LOWEST)
    assert len(won) == 1 and dissect(won[0]).gaddr == ANY_GROUP
    assert q.querier and q.describe(30.0)["querier_address"] == LOWEST
    q.set_address(40.0, HIGHER)  # still querier until a lower address is heard
    assert q.querier and q.querier_address == HIGHER
    heard(q, 41.0, ME, Query(3))
    assert not q.querier
    with pytest.raises(ValueError):
        q.set_address(50.0, "not an address")


# --- the membership table, RFC 3376 6.4.1 and 6.4.2 ---

def setup(mode: FilterMode) -> Querier:
    """INCLUDE ({a,b}) or EXCLUDE ({a,b}, {c,d}), every timer set at 0 (GMI 260)."""
    q = started()
    if mode is FilterMode.INCLUDE:
        report(q, 0.0, (MODE_IS_INCLUDE, G, [A, B]))
    else:
        report(q, 0.0, (MODE_IS_EXCLUDE, G, [C, D]), (ALLOW_NEW, G, [A, B]))
    return q


I, X = FilterMode.INCLUDE, FilterMode.EXCLUDE
# The record {b,c,e} arrives at 10: GMI ends at 270, LMQT (2 s) at 12. The
# expected timers are deadlines, None for timer 0 (excluded).
ROWS = {
    (I, MODE_IS_INCLUDE): (I, {"a": 260, "b": 270, "c": 270, "e": 270}, None, []),
    (I, MODE_IS_EXCLUDE): (X, {"b": 260, "c": None, "e": None}, 270, []),
    (I, ALLOW_NEW): (I, {"a": 260, "b": 270, "c": 270, "e": 270}, None, []),
    (I, BLOCK_OLD): (I, {"a": 260, "b": 12}, None, [(False, ["b"])]),
    (I, TO_EXCLUDE): (X, {"b": 12, "c": None, "e": None}, 270, [(False, ["b"])]),
    (I, TO_INCLUDE): (I, {"a": 12, "b": 270, "c": 270, "e": 270}, None, [(False, ["a"])]),
    (X, MODE_IS_INCLUDE): (X, {"a": 260, "b": 270, "c": 270, "d": None, "e": 270}, 260, []),
    (X, MODE_IS_EXCLUDE): (X, {"b": 260, "c": None, "e": 270}, 270, []),
    (X, ALLOW_NEW): (X, {"a": 260, "b": 270, "c": 270, "d": None, "e": 270}, 260, []),
    (X, BLOCK_OLD): (X, {"a": 260, "b": 12, "c": None, "d": None, "e": 12}, 260, [(False, ["b", "e"])]),
    (X, TO_EXCLUDE): (X, {"b": 12, "c": None, "e": 12}, 270, [(False, ["b", "e"])]),
    (X, TO_INCLUDE): (X, {"a": 12, "b": 270, "c": 270, "d": None, "e": 270}, 12, [(False, ["a"]), (False, [])]),
}


@pytest.mark.parametrize("row", sorted(ROWS, key=lambda r: (r[0].value, r[1])), ids=lambda r: f"{r[0].value}-{r[1]}")
def test_router_state_table(row):
    mode, kind = row
    q = setup(mode)
    out = report(q, 10.0, (kind, G, [B, C, E]))
    new_mode, expected_timers, group_timer, expected_queries = ROWS[row]
    state = q.groups()[G]
    assert (state.mode, timers(q), state.group_timer) == (new_mode, expected_timers, group_timer)
    assert [specific(s) for s in queries(out)] == expected_queries
    assert changed(out) == ([] if state.forwarding() == setup(mode).groups()[G].forwarding() else [G])


def rfc_sets(expression: str, sets: dict[str, frozenset[str]]) -> frozenset[str]:
    """A set expression of the RFC's new-state column ("X+(A-Y)") in Python's operators."""
    return eval(expression.replace("+", "|").replace("*", "&"), {"__builtins__": {}}, dict(sets))


@hypothesis_settings(max_examples=300, deadline=None)
@given(row=st.sampled_from(sorted(TABLE, key=lambda r: (r[0].value, r[1]))),
       x=st.frozensets(st.sampled_from([A, B, C, D, E])), y=st.frozensets(st.sampled_from([A, B, C, D, E])),
       r=st.frozensets(st.sampled_from([A, B, C, D, E])))
def test_actions_give_the_new_state_column(row, x, y, r):
    """Whatever the sets, the table's actions leave the state its new-state column names."""
    mode, kind = row
    y -= x
    q = started()
    if mode is FilterMode.INCLUDE:
        report(q, 0.0, (MODE_IS_INCLUDE, G, sorted(x)))
        sets = {"A": x, "B": r}
    else:
        report(q, 0.0, (MODE_IS_EXCLUDE, G, sorted(y)), (ALLOW_NEW, G, sorted(x)))
        sets = {"X": x, "Y": y, "A": r}
    report(q, 10.0, (kind, G, sorted(r)))
    new_state = TABLE[row][0]
    word, lists = new_state.split(" ", 1)
    expected = [rfc_sets(e, sets) for e in lists[1:-1].split(",")] + [frozenset()]
    state = q.groups().get(G)
    if state is None:
        assert (word, expected[0]) == ("INCLUDE", frozenset())
        return
    running = frozenset(s for s, t in state.sources.items() if t is not None)
    assert (state.mode.value, running, frozenset(state.sources) - running) == (word, expected[0], expected[1])


# --- RFC 3376 6.5: the group timer ---

def test_group_timer_expiry_keeps_sources_that_still_run():
    q = started()
    report(q, 0.0, (MODE_IS_EXCLUDE, G, [C]))
    report(q, 100.0, (ALLOW_NEW, G, [A]))
    assert q.forwards(G, "198.51.100.1") and not q.forwards(G, C)
    assert changed(q.expire(260.0)) == [G]
    state = q.groups()[G]
    assert (state.mode, timers(q), state.group_timer) == (FilterMode.INCLUDE, {"a": 360.0}, None)
    assert q.forwards(G, A) and not q.forwards(G, C) and not q.forwards(G, "198.51.100.1")
    assert changed(q.expire(360.0)) == [G] and G not in q.groups() and not q.forwards(G, A)


def test_group_timer_expiry_without_sources_deletes_the_group():
    q = started()
    report(q, 0.0, (MODE_IS_EXCLUDE, G, []))
    assert changed(q.expire(259.9)) == []
    assert changed(q.expire(260.0)) == [G] and q.groups() == {}


def test_source_timer_expiry_in_exclude_mode_excludes_the_source():
    q = started()
    report(q, 0.0, (MODE_IS_EXCLUDE, G, []), (ALLOW_NEW, G, [A]))
    report(q, 100.0, (MODE_IS_EXCLUDE, G, [A]))  # a keeps its timer (260), the group timer goes to 360
    assert q.forwards(G, A)
    assert changed(q.expire(260.0)) == [G]  # RFC 3376 6.3: a now has timer 0
    assert timers(q) == {"a": None} and not q.forwards(G, A) and q.forwards(G, B)
    assert changed(q.expire(360.0)) == [G] and q.groups() == {}


def test_sources_given_the_group_timer_go_with_it():
    q = started()
    heard(q, 1.0, LOWER, Query(3))  # a non-querier: BLOCK sends nothing and lowers nothing
    report(q, 1.0, (MODE_IS_EXCLUDE, G, []))
    report(q, 10.0, (BLOCK_OLD, G, [A]))  # (A-X-Y)=Group Timer
    assert timers(q) == {"a": 261.0}
    assert changed(q.expire(261.0)) == [G] and q.groups() == {}  # one change, no INCLUDE ({a}) in between


# --- leaves and specific queries (RFC 2236 3, RFC 3376 6.6.3) ---

@pytest.mark.parametrize("version", [3, 2])
def test_v2_leave_queries_the_group_then_deletes_it(version):
    q = started(version)
    assert changed(old_report(q, 0.0, 0x16, G)) == [G]
    first = queries(old_report(q, 10.0, 0x17, G))
    assert q.groups()[G].group_timer == 12.0  # lowered to LMQT
    again = queries(q.expire(11.0))
    for send in first + again:
        packet = dissect(send)
        assert (send.destination, packet.gaddr, packet.getfieldval("mrcode")) == (G, G, 10)
        assert len(send.payload) == (12 if version == 3 else 8)
        assert version == 2 or packet.s == 0
    assert len(first) == len(again) == 1
    assert changed(q.expire(12.0)) == [G] and G not in q.groups()
    assert q.next_deadline() == 31.25  # nothing but the next general query


def test_report_during_leave_sets_the_s_flag_and_keeps_the_group():
    q = started()
    old_report(q, 0.0, 0x16, G)
    old_report(q, 10.0, 0x17, G)
    old_report(q, 10.5, 0x16, G)
    again = queries(q.expire(11.0))
    assert [specific(s) for s in again] == [(True, [])]  # RFC 3376 6.6.3.1: group timer above LMQT
    assert q.expire(12.0) == [] and q.groups()[G].group_timer == 270.5


def test_block_queries_sources_with_the_s_flag_split():
    q = started()
    report(q, 0.0, (MODE_IS_INCLUDE, G, [A, B]))
    assert [specific(s) for s in queries(report(q, 10.0, (BLOCK_OLD, G, [A, B])))] == [(False, ["a", "b"])]
    report(q, 10.5, (MODE_IS_INCLUDE, G, [A]))  # a is still wanted
    # RFC 3376 6.6.3.2: sources whose timers rose above LMQT with S set, the rest without.
    assert [specific(s) for s in queries(q.expire(11.0))] == [(True, ["a"]), (False, ["b"])]
    assert changed(q.expire(12.0)) == [G]
    assert q.forwards(G, A) and not q.forwards(G, B) and q.next_deadline() == 31.25


def test_long_source_lists_are_split_to_fit_the_link(monkeypatch):
    monkeypatch.setattr(conf, "max_list_count", 1000)  # scapy reads at most 100 sources by default
    q = started()
    sources = [f"198.51.{i // 250}.{i % 250 + 1}" for i in range(400)]
    report(q, 0.0, (MODE_IS_INCLUDE, G, sources))
    sent = queries(report(q, 1.0, (BLOCK_OLD, G, sources)))
    assert [len(dissect(s).srcaddrs) for s in sent] == [366, 34]
    assert sorted(source for send in sent for source in dissect(send).srcaddrs) == sorted(sources)


def test_non_querier_waits_for_the_queriers_queries():
    q = started()
    heard(q, 5.0, LOWER, Query(3))
    report(q, 6.0, (MODE_IS_INCLUDE, G, [A, B]))
    assert report(q, 10.0, (BLOCK_OLD, G, [A, B])) == []  # RFC 3376 6.6.1: only the querier queries
    assert timers(q) == {"a": 266.0, "b": 266.0}
    # The querier's own queries, built by scapy: S clear lowers a, S set leaves b alone.
    q.receive(10.1, LOWER, G, bytes(IGMPv3_MQ(gaddr=G, mrcode=10, qrv=2, qqic=125, srcaddrs=[A])))
    q.receive(10.1, LOWER, G, bytes(IGMPv3_MQ(gaddr=G, mrcode=10, qrv=2, qqic=125, s=1, srcaddrs=[B])))
    assert timers(q) == {"a": 12.1, "b": 266.0}
    assert changed(q.expire(12.1)) == [G] and timers(q) == {"b": 266.0}
    report(q, 20.0, (MODE_IS_EXCLUDE, G2, [C]))
    q.receive(20.0, LOWER, G2, bytes(IGMPv3_MQ(gaddr=G2, mrcode=10, qrv=2, qqic=125)))
    assert q.groups()[G2].group_timer == 22.0
    heard(q, 20.5, LOWER, Query(3, G2, 1.0, sources=(C, D)))  # c is at 0 and d unknown: nothing to lower
    heard(q, 20.5, LOWER, Query(3, G, 1.0))  # an INCLUDE group has no group timer to lower
    assert timers(q, G2) == {"c": None} and q.groups()[G].group_timer is None


def test_specific_queries_under_way_outlive_a_lost_election():
    q = started()
    old_report(q, 0.0, 0x16, G)
    old_report(q, 10.0, 0x17, G)
    heard(q, 10.5, LOWER, Query(3))
    assert len(queries(q.expire(11.0))) == 1  # RFC 2236 3: the same router keeps sending them


# --- compatibility with older hosts (RFC 3376 7.3.2) ---

def test_v1_host_present_ignores_leaves():
    q = started()
    old_report(q, 0.0, 0x12, G)
    assert q.groups()[G].describe(0.0)["compatibility"] == 1
    assert old_report(q, 10.0, 0x17, G) == [] and q.counters["leave_in_v1_compatibility_mode"] == 1
    assert q.groups()[G].group_timer == 260.0
    report(q, 200.0, (MODE_IS_EXCLUDE, G, []))
    q.expire(261.0)
    assert q.groups()[G].compatibility(261.0) == 3  # the v1 host went quiet
    assert len(queries(old_report(q, 300.0, 0x17, G))) == 1


def test_v2_host_present_ignores_block_and_source_lists_of_to_ex():
    q = started()
    old_report(q, 0.0, 0x16, G)
    state = q.groups()[G]
    assert (state.compatibility(0.0), state.last_reporter, state.last_version) == (2, HOST, 2)
    assert report(q, 10.0, (BLOCK_OLD, G, [A])) == [] and q.counters["block_in_compatibility_mode"] == 1
    report(q, 11.0, (TO_EXCLUDE, G, [A]))
    assert q.forwards(G, A) and timers(q) == {}  # TO_EX({a}) taken as TO_EX({})
    assert q.groups()[G].last_version == 3
    plain = started()
    report(plain, 11.0, (TO_EXCLUDE, G, [A]))
    assert not plain.forwards(G, A)


def test_v2_interface_is_an_rfc_2236_router():
    q = started(2)
    assert report(q, 1.0, (MODE_IS_INCLUDE, G, [A])) == [] and q.counters["newer_than_interface"] == 1
    old_report(q, 2.0, 0x16, G)
    assert q.groups()[G].mode is FilterMode.EXCLUDE and q.groups()[G].sources == {}
    v1 = started(1)
    assert old_report(v1, 1.0, 0x16, G) == [] and old_report(v1, 1.0, 0x17, G) == []
    assert v1.counters["newer_than_interface"] == 2
    assert changed(old_report(v1, 2.0, 0x12, G)) == [G]


# --- source-specific multicast (RFC 4604) ---

def test_ssm_groups_are_never_in_exclude_mode():
    q = started()
    assert report(q, 1.0, (MODE_IS_EXCLUDE, SSM, []), (TO_EXCLUDE, SSM, [A])) == []
    assert q.counters["ssm_exclude"] == 2
    for kind in (0x12, 0x16, 0x17):
        assert old_report(q, 1.0, kind, SSM) == []
    assert q.counters["ssm_old_version"] == 3 and q.groups() == {}
    assert changed(report(q, 2.0, (MODE_IS_INCLUDE, SSM, [A]))) == [SSM]
    assert q.groups()[SSM].mode is FilterMode.INCLUDE
    assert q.forwards(SSM, A) and not q.forwards(SSM, B)


# --- bad input ---

def v3_query_bytes(sources_claimed: int, sources_present: int) -> bytes:
    return checksummed(struct.pack("!BBH4sBBH", 0x11, 10, 0, bytes([239, 1, 1, 1]), 2, 125, sources_claimed)
                       + bytes(4 * sources_present))


def report_bytes(records_claimed: int, body: bytes) -> bytes:
    return checksummed(struct.pack("!BBHHH", 0x22, 0, 0, 0, records_claimed) + body)


RECORD = struct.pack("!BBH4s", MODE_IS_INCLUDE, 0, 1, bytes([239, 1, 1, 1])) + bytes([192, 0, 2, 1])

MALFORMED = [
    (b"", "too_short"),
    (b"\x11\x00\x00", "too_short"),
    (v2_message(0x16, G)[:-1] + b"\x02", "bad_checksum"),
    (v3_report([(MODE_IS_INCLUDE, G, [A])])[:-1] + b"\x02", "bad_checksum"),
    (checksummed(struct.pack("!BBH4sH", 0x11, 10, 0, bytes(4), 0)), "bad_query_length"),  # 10 octets: RFC 3376 7.1
    (v3_query_bytes(2, 1), "truncated"),
    (report_bytes(2, RECORD), "truncated"),
    (report_bytes(1, RECORD[:-2]), "truncated"),
    (report_bytes(1, RECORD[:1] + b"\x01" + RECORD[2:]), "truncated"),  # auxiliary data that is not there
    (report_bytes(1, RECORD[:4]), "truncated"),
    (checksummed(struct.pack("!BBH4s", 0x13, 0, 0, bytes(4))), "unknown_type"),  # DVMRP
]


@pytest.mark.parametrize("payload, reason", MALFORMED)
def test_malformed_input_is_counted_never_raised(payload, reason):
    q = started()
    report(q, 0.0, (MODE_IS_INCLUDE, G, [A]))
    before = q.describe(0.5)
    assert q.receive(300.0, HOST, "224.0.0.22", payload) == []  # not even the timers run
    assert q.counters == {reason: 1}
    assert q.describe(0.5) == {**before, "counters": {reason: 1}}


def test_records_and_messages_that_are_ignored():
    q = started()
    out = report(q, 1.0, (7, G, [A]), (MODE_IS_INCLUDE, "10.1.1.1", [A]), (MODE_IS_INCLUDE, "224.0.0.5", [A]),
                 (MODE_IS_INCLUDE, G2, [A]))
    assert changed(out) == [G2]  # RFC 3376 4.2.12: the rest of the report still counts
    assert q.counters == {"unknown_record_type": 1, "not_multicast": 1, "link_local_group": 1}
    assert q.receive(2.0, HOST, "10.0.0.99", v3_report([(MODE_IS_INCLUDE, G, [A])])) == []
    assert q.receive(2.0, HOST, ME, v3_report([(MODE_IS_INCLUDE, G, [A])])) != []  # unicast to us is fine
    assert q.counters["not_for_us"] == 1
    q.stop(3.0)
    assert q.receive(4.0, HOST, "224.0.0.22", v3_report([(MODE_IS_INCLUDE, G, [A])])) == []
    assert q.counters["not_running"] == 1


# --- scapy-built messages, describe, stop ---

def test_reports_built_by_scapy():
    message = bytes(IGMPv3_MR(records=[IGMPv3_MR_Group(rtype=MODE_IS_INCLUDE, maddr=G, srcaddrs=[A, B]),
                                       IGMPv3_MR_Group(rtype=TO_EXCLUDE, maddr=G2, srcaddrs=[C])]))
    parsed = parse_message(message)
    assert [(r.kind, r.group, r.sources) for r in parsed.records] == [(1, G, (A, B)), (4, G2, (C,))]
    q = started()
    assert sorted(changed(q.receive(1.0, HOST, "224.0.0.22", message))) == [G, G2]
    assert q.forwards(G, A) and q.forwards(G, B) and not q.forwards(G, C)
    assert q.forwards(G2, A) and not q.forwards(G2, C)
    assert parse_message(bytes(IGMP(type=0x16, gaddr=G))).group == G


def test_describe_is_json_with_the_timers_left():
    q = started()
    report(q, 0.0, (MODE_IS_EXCLUDE, G, [C]), (ALLOW_NEW, G, [A]))
    described = json.loads(json.dumps(q.describe(10.0)))
    assert {k: described[k] for k in ("address", "version", "querier", "querier_address")} == {
        "address": ME, "version": 3, "querier": True, "querier_address": ME}
    assert (described["next_general_query"], described["other_querier_present"]) == (21.25, None)
    assert described["groups"] == [{
        "group": G, "mode": "EXCLUDE", "group_timer": 250.0, "compatibility": 3,
        "sources": [{"source": A, "timer": 250.0}, {"source": C, "timer": 0.0}],
        "last_reporter": HOST, "last_version": 3}]


def test_stop_ends_every_groups_forwarding():
    q = started()
    report(q, 0.0, (MODE_IS_INCLUDE, G2, [A]), (MODE_IS_EXCLUDE, G, []))
    assert changed(q.stop(1.0)) == [G, G2]
    assert q.groups() == {} and q.next_deadline() is None and not q.forwards(G, A) and not q.querier
    assert len(q.start(2.0)) == 1  # and it can start again


# --- properties: random input never raises, and state stays consistent ---

SOURCES = [A, B, C]
STRANGER = "198.51.100.1"  # a source no report names
GROUPS = [G, G2, SSM]
records = st.tuples(st.integers(0, 7), st.sampled_from(GROUPS), st.lists(st.sampled_from(SOURCES), max_size=3))
events = st.one_of(
    st.lists(records, min_size=1, max_size=3).map(lambda rs: ("message", HOST, v3_report(rs))),
    st.tuples(st.sampled_from([0x12, 0x16, 0x17]), st.sampled_from(GROUPS)).map(
        lambda m: ("message", HOST, v2_message(*m))),
    st.builds(Query, version=st.sampled_from([1, 2, 3]), group=st.sampled_from(GROUPS + [ANY_GROUP]),
              max_response=st.sampled_from([1.0, 10.0]), suppress=st.booleans(), robustness=st.integers(0, 7),
              query_interval=st.sampled_from([0, 5, 60, 125]),
              sources=st.lists(st.sampled_from(SOURCES), max_size=2).map(tuple)).flatmap(
        lambda query: st.tuples(st.just("message"), st.sampled_from([LOWER, HIGHER]), st.just(encode_query(query)))),
    st.binary(max_size=24).map(lambda data: ("message", HOST, data)),
    st.sampled_from([LOWEST, ME, HIGHER]).map(lambda address: ("address", address, b"")),
)


def forwarding(q: Querier) -> dict[str, frozenset[str]]:
    return {g: frozenset(s for s in SOURCES + [STRANGER] if q.forwards(g, s)) for g in GROUPS}


def check_consistent(q: Querier, now: float) -> None:
    deadline = q.next_deadline()
    assert deadline is None or deadline > now
    described = json.loads(json.dumps(q.describe(now)))
    listed = {g["group"] for g in described["groups"]}
    assert all(not q.forwards(g, s) for g in set(GROUPS) - listed for s in SOURCES)
    for group in described["groups"]:
        name, mode = group["group"], group["mode"]
        if mode == "INCLUDE":
            assert group["sources"] and group["group_timer"] is None
        else:
            assert group["group_timer"] > 0 and name != SSM  # RFC 4604: no EXCLUDE in the SSM range
        for source in group["sources"]:  # RFC 3376 6.3
            assert q.forwards(name, source["source"]) == (source["timer"] > 0)
        assert q.forwards(name, STRANGER) == (mode == "EXCLUDE")


@hypothesis_settings(max_examples=150, deadline=None)
@given(version=st.sampled_from([1, 2, 3]),
       steps=st.lists(st.tuples(st.floats(0, 150, allow_nan=False), events), max_size=30))
def test_random_input_never_raises_and_forwarding_matches_the_state(version, steps):
    q = started(version)
    now = 0.0
    for delay, (kind, source, payload) in steps:
        now += delay
        before = forwarding(q)
        if kind == "address":
            out = q.set_address(now, source)
        else:
            out = q.receive(now, source, "224.0.0.22", payload)
        out += q.expire(now)
        for send in queries(out):
            query = parse_message(send.payload)
            assert isinstance(query, Query) and query.version == version
            assert send.destination == (ALL_SYSTEMS if query.group == ANY_GROUP else query.group)
        after = forwarding(q)
        assert {g for g in GROUPS if before[g] != after[g]} <= set(changed(out))
        check_consistent(q, now)
