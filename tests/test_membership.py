"""IGMP host side without the IP-level join: the sans-IO core's messages,
cross-checked with scapy's dissectors."""

from __future__ import annotations

import asyncio

from scapy.layers.igmp import IGMP
from scapy.contrib.igmpv3 import IGMPv3, IGMPv3mq

from mcr.membership import (ALLOW_NEW, BLOCK_OLD, MODE_IS_EXCLUDE, MODE_IS_INCLUDE, TO_EXCLUDE, TO_INCLUDE,
                            AsyncMembershipService, Membership, Send, parse_query, v2_message, v3_report)


def records(payload: bytes) -> list[tuple[int, str, list[str]]]:
    report = IGMPv3(payload)
    assert report.type == 0x22
    return [(r.rtype, r.maddr, list(r.srcaddrs)) for r in report.records]


def test_v3_report_matches_scapy_and_checksum():
    payload = v3_report([(TO_EXCLUDE, "239.1.1.1", []), (ALLOW_NEW, "232.1.1.1", ["10.0.0.2", "10.0.0.3"])])
    assert records(payload) == [(TO_EXCLUDE, "239.1.1.1", []), (ALLOW_NEW, "232.1.1.1", ["10.0.0.2", "10.0.0.3"])]
    rebuilt = IGMPv3(payload)
    del rebuilt.chksum
    assert bytes(rebuilt) == payload  # scapy computes the same checksum


def test_v2_messages_match_scapy():
    report = IGMP(v2_message(0x16, "239.1.1.1"))
    assert (report.type, report.gaddr) == (0x16, "239.1.1.1")
    del report.chksum
    assert bytes(report) == v2_message(0x16, "239.1.1.1")


def test_parse_queries_built_by_scapy():
    v3 = bytes(IGMPv3mq(type=0x11, mrcode=20, gaddr="239.1.1.1"))
    assert parse_query(v3).version == 3 and parse_query(v3).group == "239.1.1.1"
    assert parse_query(v3).max_response == 2.0
    big = bytes(IGMPv3mq(type=0x11, mrcode=138))  # scapy encodes 138 tenths as float code 0x81: 136 tenths
    assert big[1] == 0x81 and parse_query(big).max_response == 13.6
    v2 = bytes(IGMP(type=0x11, mrcode=10, gaddr="0.0.0.0"))
    assert parse_query(v2).version == 2 and parse_query(v2).max_response == 1.0
    assert parse_query(v2[:-1] + bytes([v2[-1] ^ 1])) is None  # bad checksum
    assert parse_query(v2_message(0x16, "239.1.1.1")) is None  # a report is not a query


def test_join_leave_and_query_answers():
    m = Membership()
    first = m.join("eth0", "239.1.1.1", None, now=0.0)
    assert [s.delay for s in first] == [0.0, 1.0]  # unsolicited report, repeated once
    assert records(first[0].payload) == [(TO_EXCLUDE, "239.1.1.1", [])]
    assert m.join("eth0", "239.1.1.1", None, now=0.0) == []  # a second rule: no new report
    assert records(m.join("eth0", "232.1.1.1", "10.0.0.2", now=0.0)[0].payload) == [
        (ALLOW_NEW, "232.1.1.1", ["10.0.0.2"])]

    answer = m.on_query("eth0", parse_query(bytes(IGMPv3mq(type=0x11, mrcode=10))), now=5.0)
    assert len(answer) == 1 and 0 <= answer[0].delay <= 1.0
    assert records(answer[0].payload) == [(MODE_IS_INCLUDE, "232.1.1.1", ["10.0.0.2"]),
                                          (MODE_IS_EXCLUDE, "239.1.1.1", [])]
    assert m.on_query("eth1", parse_query(bytes(IGMPv3mq(type=0x11))), now=5.0) == []

    assert m.leave("eth0", "239.1.1.1", None, now=6.0) == []  # still one user
    leave = m.leave("eth0", "239.1.1.1", None, now=6.0)
    assert [records(s.payload) for s in leave] == [[(TO_INCLUDE, "239.1.1.1", [])]] * 2  # RFC 3376 5.1: twice
    assert [s.delay for s in leave] == [0.0, 1.0]
    assert records(m.leave("eth0", "232.1.1.1", "10.0.0.2", now=6.0)[0].payload) == [
        (BLOCK_OLD, "232.1.1.1", ["10.0.0.2"])]


def test_falls_back_to_v2_when_a_v2_querier_is_heard():
    m = Membership()
    m.join("eth0", "239.1.1.1", None, now=0.0)
    answer = m.on_query("eth0", parse_query(bytes(IGMP(type=0x11, mrcode=10, gaddr="239.1.1.1"))), now=1.0)
    report = IGMP(answer[0].payload)
    assert (report.type, report.gaddr, answer[0].destination) == (0x16, "239.1.1.1", "239.1.1.1")
    leave = m.leave("eth0", "239.1.1.1", None, now=2.0)
    assert (IGMP(leave[0].payload).type, leave[0].destination) == (0x17, "224.0.0.2")
    m.join("eth0", "239.1.1.2", None, now=500.0)  # the v2 querier is long gone: v3 again
    assert m.join("eth0", "239.1.1.3", None, now=500.0)[0].destination == "224.0.0.22"


def test_leave_all_when_stopping():
    m = Membership()
    m.join("eth0", "239.1.1.1", None, now=0.0)
    m.join("eth0", "239.1.1.1", None, now=0.0)  # two rules, one group
    m.join("eth1", "232.1.1.1", "10.0.0.2", now=0.0)
    sends = m.leave_all(now=1.0)
    assert sorted((s.interface, records(s.payload)[0][0]) for s in sends) == [("eth0", TO_INCLUDE), ("eth1", BLOCK_OLD)]
    assert m.leave_all(now=2.0) == []


def test_a_leave_cancels_the_joins_retransmission():
    """A join is reported twice (RFC 3376 5.1); leaving before the second
    went out must not send it after the leave, which would join again."""
    from mcr.membership import _MembershipSockets

    service = _MembershipSockets()
    service._open = lambda interface: None  # no sockets: only what gets scheduled
    service._link_filter = lambda *args: None
    service.join("eth0", "239.1.1.1", None)
    service.leave("eth0", "239.1.1.1", None)
    pending = [records(send.payload)[0][0] for send in service.pending()]
    assert pending == [TO_INCLUDE, TO_INCLUDE], "a TO_EXCLUDE (join) was still due after the leave"


def test_a_failing_report_timer_is_counted_and_armed_again(caplog):
    """On the daemon's loop a timer callback that raises must not end the
    reports: the failure is logged and counted, and the timer runs again."""

    async def scenario() -> tuple[int, list, int]:
        service = AsyncMembershipService()
        real, calls = service._send_due, []

        def failing_once(now: float) -> None:
            calls.append(now)
            if len(calls) == 1:
                raise RuntimeError("injected")
            real(now)

        service._send_due = failing_once
        service._schedule([Send("nowhere", "224.0.0.22", b"", delay=0.01), Send("nowhere", "224.0.0.22", b"", 0.05)])
        await asyncio.sleep(0.3)
        try:
            return service.faults, list(service._timers), len(calls)
        finally:
            service.close()

    faults, pending, calls = asyncio.run(scenario())
    assert faults == 1 and pending == [] and calls >= 2
    assert "IGMP membership: _fire failed" in caplog.text
