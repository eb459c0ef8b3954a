"""The MSDP session (mcr.protocols.msdp_peer) driven with explicit times:
role by address order, connect and listen, establishment with a Keepalive,
keepalive pacing, hold expiry, retry backoff (growth, cap, reset), decode
errors, TLVs split across reads and refused connections; and any sequence
of events keeps the machine consistent. No sockets."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcr.protocols.msdp_peer import (Close, Connect, Down, Established, Listen, MsdpSession, PeerState, Received,
                                     Send, SessionTimers)
from mcr.protocols.msdp_wire import KEEPALIVE_BYTES, SourceActive, encode

LOW, HIGH = "10.0.0.1", "10.0.0.2"
SA = SourceActive("10.9.9.9", (("192.168.1.10", "239.1.2.3"),))


class FixedJitter(random.Random):
    """uniform() always returns the same factor, so delays are exact."""

    def __init__(self, factor: float = 1.0) -> None:
        super().__init__(0)
        self.factor = factor

    def uniform(self, a: float, b: float) -> float:
        assert (a, b) == (0.9, 1.1)
        return self.factor


def active(**timers) -> MsdpSession:
    return MsdpSession(HIGH, LOW, SessionTimers(**timers), FixedJitter())


def passive(**timers) -> MsdpSession:
    return MsdpSession(LOW, HIGH, SessionTimers(**timers), FixedJitter())


def up_active(now: float = 0.0, **timers) -> MsdpSession:
    session = active(**timers)
    session.start(now)
    session.connected(now)
    return session


# --- timers and roles ----------------------------------------------------------

def test_the_default_timers_are_the_rfcs() -> None:
    assert SessionTimers() == SessionTimers(60.0, 75.0, 30.0, 240.0)


@pytest.mark.parametrize("timers, says", [
    ({"keepalive": 0}, "keepalive must be above 0"),
    ({"hold": -1}, "hold must be above 0"),
    ({"keepalive": 75}, "shorter than hold"),
    ({"connect_retry": 300}, "must not exceed max_connect_retry"),
    ({"max_connect_retry": 0}, "max_connect_retry must be above 0"),
])
def test_bad_timers_are_refused(timers: dict, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        SessionTimers(**timers)


def test_the_lower_address_connects_and_the_higher_listens() -> None:
    assert active().role == "active" and passive().role == "passive"
    # Numeric order, not text order: "10.0.0.9" < "10.0.0.10".
    assert MsdpSession("10.0.0.10", "10.0.0.9").role == "active"


@pytest.mark.parametrize("peer, local, says", [
    ("10.0.0.1", "10.0.0.1", "our own local address"),
    ("10.0.0.256", "10.0.0.1", "peer address"),
    ("10.0.0.1", "fe80::1", "local address"),
])
def test_bad_addresses_are_refused(peer: str, local: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        MsdpSession(peer, local)


# --- start, connect, accept ------------------------------------------------------

def test_the_active_side_connects_at_once_and_comes_up_with_a_keepalive() -> None:
    session = active()
    assert session.state is PeerState.DISABLED and session.next_deadline() is None
    assert session.start(5.0) == [Connect(HIGH, LOW)]
    assert session.state is PeerState.CONNECTING and session.next_deadline() is None
    assert session.start(5.0) == []  # already started
    assert session.connected(6.0) == [Established(), Send(KEEPALIVE_BYTES)]
    assert session.state is PeerState.ESTABLISHED
    assert session.next_deadline() == 66.0  # the keepalive, before the hold at 81
    assert session.counters["keepalive_out"] == 1


def test_the_passive_side_listens_and_comes_up_on_accept() -> None:
    session = passive()
    assert session.start(0.0) == [Listen(LOW, HIGH)]
    assert session.state is PeerState.LISTEN and session.next_deadline() is None
    assert session.accepted(1.0) == [Established(), Send(KEEPALIVE_BYTES)]
    assert session.state is PeerState.ESTABLISHED


def test_connections_are_refused_outside_passive_listen() -> None:
    session = passive()
    assert session.accepted(0.0) == [Close("refused: the session is disabled")]
    session.start(0.0)
    session.accepted(1.0)
    assert session.accepted(2.0) == [Close("refused: the session is established")]
    assert session.state is PeerState.ESTABLISHED  # the current connection is untouched
    talker = active()
    talker.start(0.0)
    assert talker.accepted(1.0) == [Close("refused: our address is lower, we connect to this peer")]
    assert talker.state is PeerState.CONNECTING
    assert session.counters["refused_connections"] == 2 and talker.counters["refused_connections"] == 1


def test_a_connect_completing_when_not_connecting_is_closed() -> None:
    session = active()
    assert session.connected(0.0) == [Close("connection completed while disabled")]
    assert session.state is PeerState.DISABLED and session.counters["unexpected_connections"] == 1


# --- retry and backoff -------------------------------------------------------------

def test_a_failed_connect_waits_connect_retry_then_connects_again() -> None:
    session = active()
    session.start(0.0)
    assert session.connect_failed(1.0, "connection refused") == []
    assert session.state is PeerState.INACTIVE and session.next_deadline() == 31.0
    assert session.describe(11.0)["retry_in"] == 20.0
    assert session.describe(11.0)["last_error"] == "connect failed: connection refused"
    assert session.expire(30.9) == []
    assert session.expire(31.0) == [Connect(HIGH, LOW)]
    assert session.state is PeerState.CONNECTING and session.counters["connect_failures"] == 1


def test_backoff_doubles_up_to_the_cap() -> None:
    session = active()
    session.start(0.0)
    now, delays = 0.0, []
    for _ in range(6):
        session.connect_failed(now, "timed out")
        delays.append(session.next_deadline() - now)
        now = session.next_deadline()
        assert session.expire(now) == [Connect(HIGH, LOW)]
    assert delays == [30.0, 60.0, 120.0, 240.0, 240.0, 240.0]


def test_jitter_spreads_the_delay_within_ten_percent() -> None:
    delays = set()
    for seed in range(20):
        session = MsdpSession(HIGH, LOW, rng=random.Random(seed))
        session.start(0.0)
        session.connect_failed(0.0, "x")
        delays.add(session.next_deadline())
    assert all(27.0 <= d <= 33.0 for d in delays) and len(delays) > 1


def test_a_flapping_session_backs_off_and_a_stable_one_resets() -> None:
    session = up_active(0.0)
    session.closed(10.0, "reset by peer")  # up for 10 s < hold: failure 1
    assert session.next_deadline() == 40.0
    session.expire(40.0)
    session.connected(40.0)
    session.closed(50.0, "reset by peer")  # failure 2
    assert session.next_deadline() == 50.0 + 60.0
    session.expire(110.0)
    session.connected(110.0)
    session.closed(185.0, "reset by peer")  # up for 75 s = hold: counts afresh, failure 1
    assert session.next_deadline() == 185.0 + 30.0


def test_the_passive_side_goes_back_to_listening_without_backoff() -> None:
    session = passive()
    session.start(0.0)
    for now in (1.0, 2.0, 3.0):
        session.accepted(now)
        assert session.closed(now + 0.5, "reset") == [Down("reset"), Listen(LOW, HIGH)]
        assert session.state is PeerState.LISTEN and session.next_deadline() is None


def test_closed_while_connecting_counts_as_a_failed_connect() -> None:
    session = active()
    session.start(0.0)
    assert session.closed(1.0, "reset") == []
    assert session.state is PeerState.INACTIVE and session.counters["connect_failures"] == 1


def test_late_events_in_the_wrong_state_change_nothing() -> None:
    session = active()
    assert session.connect_failed(0.0, "x") == [] and session.closed(0.0, "x") == []
    assert session.data_received(0.0, KEEPALIVE_BYTES) == [] and session.expire(1e9) == []
    assert session.state is PeerState.DISABLED and session.counters["data_while_down"] == 1


# --- established: messages, keepalives, hold --------------------------------------

def test_an_sa_comes_out_as_received_and_keepalives_are_absorbed() -> None:
    session = up_active()
    outputs = session.data_received(1.0, KEEPALIVE_BYTES + encode(SA) + bytes.fromhex("0200080011223344"))
    assert outputs == [Received(SA)]
    assert (session.counters["sa_in"], session.counters["keepalive_in"], session.counters["unknown_tlv_in"]) == (1, 1, 1)


def test_tlvs_split_across_reads_are_reassembled() -> None:
    session = up_active()
    wire = encode(SA) + KEEPALIVE_BYTES + encode(SA)
    outputs = []
    for i in range(len(wire)):
        outputs += session.data_received(1.0 + i, wire[i:i + 1])
    assert outputs == [Received(SA), Received(SA)]
    assert session.counters["keepalive_in"] == 1


def test_the_hold_timer_closes_a_silent_peer() -> None:
    session = up_active(0.0)
    session.expire(60.0)  # our own keepalive does not keep the peer alive
    assert session.next_deadline() == 75.0
    assert session.expire(75.0) == [Close("hold timer expired"), Down("hold timer expired")]
    assert session.state is PeerState.INACTIVE and session.counters["hold_expired"] == 1
    assert session.next_deadline() == 75.0 + 30.0  # failure 1 (it was up exactly `hold`, so n reset first)


def test_any_message_restarts_the_hold_timer_but_a_partial_one_does_not() -> None:
    session = up_active(0.0, keepalive=60, hold=75)
    session.data_received(50.0, KEEPALIVE_BYTES)
    session.expire(60.0)
    assert session.next_deadline() == 120.0  # keepalive at 120 before hold at 125
    session.data_received(100.0, KEEPALIVE_BYTES[:2])  # not a message yet
    assert session.expire(120.0) == [Send(KEEPALIVE_BYTES)]
    assert session.next_deadline() == 125.0
    assert session.expire(125.0)[0] == Close("hold timer expired")


def test_keepalives_are_sent_only_after_a_silence_and_send_pushes_them_back() -> None:
    session = up_active(0.0)
    session.data_received(59.0, KEEPALIVE_BYTES)
    assert session.send(40.0, encode(SA)) == [Send(encode(SA))]
    assert session.expire(60.0) == [] and session.next_deadline() == 100.0
    assert session.expire(100.0) == [Send(KEEPALIVE_BYTES)]
    assert session.next_deadline() == 134.0  # hold (59 + 75) before the next keepalive at 160
    assert session.counters["keepalive_out"] == 2 and session.counters["sa_out"] == 1


def test_send_counts_each_tlv_it_carries() -> None:
    session = up_active()
    session.send(1.0, encode(SA) + encode(SA) + KEEPALIVE_BYTES)
    assert session.counters["sa_out"] == 2 and session.counters["keepalive_out"] == 2  # one at establishment


def test_send_while_down_is_dropped_and_counted() -> None:
    session = active()
    session.start(0.0)
    assert session.send(1.0, encode(SA)) == []
    assert session.counters["send_while_down"] == 1


# --- errors and going down -----------------------------------------------------

def test_a_malformed_tlv_closes_the_session_and_retries_later() -> None:
    session = up_active(0.0)
    outputs = session.data_received(5.0, bytes.fromhex("010008000a000001"))
    assert [type(o) for o in outputs] == [Close, Down]
    assert "entry count 0" in outputs[0].reason and outputs[0].reason == outputs[1].reason
    assert session.state is PeerState.INACTIVE and session.next_deadline() == 35.0
    assert session.counters["decode_errors"] == 1 and "entry count 0" in session.describe(5.0)["last_error"]


def test_a_malformed_tlv_sends_the_passive_side_back_to_listening() -> None:
    session = passive()
    session.start(0.0)
    session.accepted(0.0)
    outputs = session.data_received(1.0, bytes.fromhex("040002"))
    assert [type(o) for o in outputs] == [Close, Down, Listen]


def test_a_new_connection_does_not_see_the_old_ones_partial_tlv() -> None:
    session = up_active(0.0)
    session.data_received(1.0, encode(SA)[:7])
    session.closed(2.0, "reset")
    session.expire(32.0)
    session.connected(32.0)
    assert session.data_received(33.0, encode(SA)) == [Received(SA)]


def test_stop_closes_and_reports_down_only_if_up() -> None:
    session = up_active(0.0)
    assert session.stop(1.0) == [Close("peering stopped"), Down("peering stopped")]
    assert session.state is PeerState.DISABLED and session.next_deadline() is None
    connecting = active()
    connecting.start(0.0)
    assert connecting.stop(1.0) == [Close("peering stopped")]
    listening = passive()
    listening.start(0.0)
    assert listening.stop(1.0) == [] and listening.stop(2.0) == []
    assert session.start(3.0) == [Connect(HIGH, LOW)]  # a stopped session starts afresh, at once


def test_describe_gives_plain_values() -> None:
    session = up_active(10.0)
    session.data_received(11.0, encode(SA))
    row = session.describe(40.0)
    assert row == {"peer": HIGH, "local": LOW, "state": "established", "role": "active", "established_for": 30.0,
                   "retry_in": None, "last_error": None, "counters": dict(session.counters)}
    assert row["counters"]["sa_in"] == 1 and type(row["counters"]) is dict
    session.closed(41.0, "reset by peer")
    row = session.describe(41.0)
    assert (row["state"], row["established_for"], row["retry_in"], row["last_error"]) == (
        "inactive", None, 30.0, "reset by peer")


# --- any sequence of events ------------------------------------------------------

EVENTS = ("start", "stop", "connected", "connect_failed", "accepted", "data", "bad_data", "closed", "send", "expire")


@settings(max_examples=150, deadline=None)
@given(st.booleans(), st.lists(st.tuples(st.sampled_from(EVENTS), st.floats(0, 100)), max_size=40))
def test_any_sequence_of_events_keeps_the_machine_consistent(is_active, events) -> None:
    session = active() if is_active else passive()
    never = {PeerState.LISTEN} if is_active else {PeerState.CONNECTING, PeerState.INACTIVE}
    now, up = 0.0, False
    for event, step in events:
        now += step
        if event == "expire":
            outputs = session.expire(session.next_deadline() or now)
            now = max(now, session.next_deadline() or now)
        elif event == "data":
            outputs = session.data_received(now, encode(SA))
        elif event == "bad_data":
            outputs = session.data_received(now, b"\x01\x00\x01")
        elif event in ("connect_failed", "closed"):
            outputs = getattr(session, event)(now, "x")
        elif event == "send":
            outputs = session.send(now, KEEPALIVE_BYTES)
        else:
            outputs = getattr(session, event)(now)
        for output in outputs:
            if isinstance(output, (Established, Down)):
                assert up is isinstance(output, Down), f"{output} while up={up}"  # they alternate
                up = not up
        assert up is (session.state is PeerState.ESTABLISHED)
        assert session.state not in never
        deadline = session.next_deadline()
        assert (deadline is not None) is (session.state in (PeerState.ESTABLISHED, PeerState.INACTIVE))
        if session.state is PeerState.INACTIVE:
            assert deadline - now <= session.timers.max_connect_retry * 1.1 + 1e-9  # the cap holds
