"""Register (mcr.protocols.pim_register): the DR's per-(S,G) machine of
RFC 7761 4.4.1 on a fake clock, and the RP's decisions of 4.4.2 against a
tree view whose answers each test sets."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest

from mcr.protocols.pim_register import (KEEPALIVE_PERIOD, RP_KEEPALIVE_PERIOD, Encapsulate, ForwardDecapsulated,
                                        RegisterReceived, RegisterReceiver, RegisterSender, RegisterState,
                                        SendNullRegister, SendRegisterStop)
from mcr.protocols.pim_wire import parse_message
from mcr.protocols.pim_wire_more import Register, RegisterStop, null_register_packet

S, S2, G, G2, RP, RP2, DR, ME = "10.1.0.2", "10.1.0.3", "239.1.1.1", "239.2.2.2", "10.9.9.9", "10.8.8.8", \
    "10.1.0.1", "10.9.9.9"


def joined(seed: int = 3) -> tuple[RegisterSender, list]:
    sender = RegisterSender(rng=random.Random(seed))
    return sender, sender.could_register(0.0, S, G, True, RP)


def stopped_at(sender: RegisterSender, now: float) -> float:
    """The Register-Stop Timer's deadline after a Register-Stop at `now`."""
    sender.receive_register_stop(now, RegisterStop(G, S))
    return sender.next_deadline()


# --- DR side (4.4.1) ---

def test_could_register_starts_encapsulation():
    sender, out = joined()
    assert out == [Encapsulate(S, G, RP, True)] and sender.state(S, G) is RegisterState.JOIN


def test_could_register_false_stops_it_from_every_state():
    sender, _ = joined()
    assert sender.could_register(1.0, S, G, False, RP) == [Encapsulate(S, G, RP, False)]
    assert sender.state(S, G) is RegisterState.NO_INFO
    sender, _ = joined()
    sender.receive_register_stop(1.0, RegisterStop(G, S))
    assert sender.could_register(2.0, S, G, False, RP) == []  # Prune: nothing was encapsulating
    assert sender.state(S, G) is RegisterState.NO_INFO and sender.next_deadline() is None


def test_register_stop_prunes_with_jittered_suppression_less_probe_time():
    deadlines = []
    for seed in range(40):
        sender, _ = joined(seed)
        out = sender.receive_register_stop(10.0, RegisterStop(G, S))
        assert out == [Encapsulate(S, G, RP, False)] and sender.state(S, G) is RegisterState.PRUNE
        deadlines.append(sender.next_deadline() - 10.0)
    assert all(0.5 * 60 - 5 <= d <= 1.5 * 60 - 5 for d in deadlines)
    assert max(deadlines) - min(deadlines) > 20  # really random, not a constant


def test_prune_probes_with_a_null_register_then_joins_again():
    sender, _ = joined()
    deadline = stopped_at(sender, 0.0)
    assert sender.expire(deadline - 0.01) == []
    out = sender.expire(deadline)
    assert len(out) == 1 and isinstance(out[0], SendNullRegister) and out[0].rp == RP
    probe = parse_message(out[0].payload)
    assert probe == Register(null_register_packet(S, G), null=True)
    assert sender.state(S, G) is RegisterState.JOIN_PENDING and sender.next_deadline() == deadline + 5.0
    assert sender.expire(deadline + 5.0) == [Encapsulate(S, G, RP, True)]
    assert sender.state(S, G) is RegisterState.JOIN and sender.next_deadline() is None


def test_a_register_stop_during_join_pending_prunes_again():
    sender, _ = joined()
    deadline = stopped_at(sender, 0.0)
    sender.expire(deadline)
    assert sender.receive_register_stop(deadline + 1, RegisterStop(G, S)) == []  # nothing to turn off
    assert sender.state(S, G) is RegisterState.PRUNE
    assert sender.next_deadline() >= deadline + 1 + 25
    assert sender.expire(deadline + 5.0) == []  # the old probe timer is stale


def test_wildcard_register_stop_stops_every_source_of_the_group():
    sender, _ = joined()
    sender.could_register(0.0, S2, G, True, RP)
    sender.could_register(0.0, S, G2, True, RP)
    out = sender.receive_register_stop(1.0, RegisterStop(G, "0.0.0.0"))
    assert set(out) == {Encapsulate(S, G, RP, False), Encapsulate(S2, G, RP, False)}
    assert sender.state(S, G2) is RegisterState.JOIN


def test_unknown_register_stop_is_counted():
    sender, _ = joined()
    assert sender.receive_register_stop(1.0, RegisterStop(G2, S)) == []
    assert sender.counters["register_stop_unknown"] == 1


@pytest.mark.parametrize("prune_first", [False, True])
def test_rp_change_moves_to_join_toward_the_new_rp(prune_first):
    sender, _ = joined()
    if prune_first:
        sender.receive_register_stop(1.0, RegisterStop(G, S))
    out = sender.rp_changed(2.0, lambda group: RP2)
    expected = [Encapsulate(S, G, RP2, True)] if prune_first else [Encapsulate(S, G, RP, False),
                                                                     Encapsulate(S, G, RP2, True)]
    assert out == expected and sender.state(S, G) is RegisterState.JOIN and sender.next_deadline() is None


def test_rp_gone_is_no_info():
    sender, _ = joined()
    assert sender.rp_changed(2.0, lambda group: None) == [Encapsulate(S, G, RP, False)]
    assert sender.state(S, G) is RegisterState.NO_INFO


def in_state(state: RegisterState) -> RegisterSender:
    sender = RegisterSender(rng=random.Random(5))
    if state is not RegisterState.NO_INFO:
        sender.could_register(0.0, S, G, True, RP)
    if state in (RegisterState.PRUNE, RegisterState.JOIN_PENDING):
        sender.receive_register_stop(1.0, RegisterStop(G, S))
    if state is RegisterState.JOIN_PENDING:
        sender.expire(sender.next_deadline())
    assert sender.state(S, G) is state
    return sender


def soon(sender: RegisterSender) -> float:
    """A time before the sender's next timer, so an event meets the state as set up."""
    deadline = sender.next_deadline()
    return 200.0 if deadline is None else deadline - 0.001


EVENTS = {
    "timer": lambda sender: sender.expire(sender.next_deadline() or 0.0),
    "could_register": lambda sender: sender.could_register(soon(sender), S, G, True, RP),
    "could_not_register": lambda sender: sender.could_register(soon(sender), S, G, False, RP),
    "register_stop": lambda sender: sender.receive_register_stop(soon(sender), RegisterStop(G, S)),
    "rp_changed": lambda sender: sender.rp_changed(soon(sender), lambda group: RP2),
}
NI, J, JP, P = RegisterState.NO_INFO, RegisterState.JOIN, RegisterState.JOIN_PENDING, RegisterState.PRUNE
# RFC 7761 4.4.1's table, written out again here: state -> event -> next state.
RFC_TABLE = {
    NI: {"timer": NI, "could_register": J, "could_not_register": NI, "register_stop": NI, "rp_changed": NI},
    J: {"timer": J, "could_register": J, "could_not_register": NI, "register_stop": P, "rp_changed": J},
    JP: {"timer": J, "could_register": JP, "could_not_register": NI, "register_stop": P, "rp_changed": J},
    P: {"timer": JP, "could_register": P, "could_not_register": NI, "register_stop": P, "rp_changed": J},
}


@pytest.mark.parametrize("state, event", [(state, event) for state in RFC_TABLE for event in EVENTS])
def test_every_state_and_event_as_the_rfc_table_says(state, event):
    sender = in_state(state)
    EVENTS[event](sender)
    assert sender.state(S, G) is RFC_TABLE[state][event]


def test_sender_settings_validated():
    with pytest.raises(ValueError, match="probe time"):
        RegisterSender(suppression_time=8, probe_time=5)


# --- RP side (4.4.2) ---

@dataclass
class TreeView:
    rp_for: dict = field(default_factory=lambda: {G: ME})
    spt: bool = False
    switch: bool = False
    receivers: bool = True

    def i_am_rp(self, group, address):
        return self.rp_for.get(group) == address

    def spt_bit(self, source, group):
        return self.spt

    def switch_to_spt_desired(self, source, group):
        return self.switch

    def has_receivers(self, source, group):
        return self.receivers


DATA = Register(bytes.fromhex("4500001c000000001011") + bytes(2) + bytes([10, 1, 0, 2, 239, 1, 1, 1]) + bytes(8))


def stops(out: list) -> list[tuple[str, RegisterStop]]:
    return [(o.to, parse_message(o.payload)) for o in out if isinstance(o, SendRegisterStop)]


def test_rp_before_the_spt_forwards_the_data():
    receiver = RegisterReceiver(TreeView())
    assert receiver.receive(0.0, DR, ME, DATA) == [ForwardDecapsulated(S, G, DATA.packet)]


def test_rp_wanting_the_spt_restarts_the_keepalive_and_forwards():
    receiver = RegisterReceiver(TreeView(switch=True))
    assert receiver.receive(0.0, DR, ME, DATA) == [RegisterReceived(S, G, KEEPALIVE_PERIOD),
                                                   ForwardDecapsulated(S, G, DATA.packet)]


def test_rp_on_the_spt_sends_register_stop_and_does_not_forward():
    receiver = RegisterReceiver(TreeView(spt=True))
    out = receiver.receive(0.0, DR, ME, DATA)
    assert stops(out) == [(DR, RegisterStop(G, S))]
    assert RegisterReceived(S, G, RP_KEEPALIVE_PERIOD) in out
    assert not any(isinstance(o, ForwardDecapsulated) for o in out)


def test_rp_without_receivers_stops_the_registers():
    receiver = RegisterReceiver(TreeView(switch=True, receivers=False))
    out = receiver.receive(0.0, DR, ME, DATA)
    assert stops(out) == [(DR, RegisterStop(G, S))] and RegisterReceived(S, G, RP_KEEPALIVE_PERIOD) in out


def test_null_register_is_never_forwarded():
    receiver = RegisterReceiver(TreeView())
    assert receiver.receive(0.0, DR, ME, Register(null_register_packet(S, G), null=True)) == []


def test_not_the_rp_for_the_group_sends_register_stop():
    receiver = RegisterReceiver(TreeView(rp_for={G: "10.7.7.7"}))
    assert stops(receiver.receive(0.0, DR, ME, DATA)) == [(DR, RegisterStop(G, S))]


def test_register_stops_are_rate_limited_per_dr_and_flow():
    receiver = RegisterReceiver(TreeView(spt=True), stop_interval=1.0)
    assert len(stops(receiver.receive(0.0, DR, ME, DATA))) == 1
    assert stops(receiver.receive(0.5, DR, ME, DATA)) == []
    assert len(stops(receiver.receive(0.5, "10.1.0.9", ME, DATA))) == 1  # another DR: its own budget
    assert len(stops(receiver.receive(1.0, DR, ME, DATA))) == 1
    assert receiver.counters["register_stop_rate_limited"] == 1


def test_rate_limit_memory_is_bounded():
    receiver = RegisterReceiver(TreeView(spt=True), stop_interval=10.0, max_tracked=4)
    for i in range(20):
        assert len(stops(receiver.receive(float(i) / 100, f"10.1.1.{i}", ME, DATA))) == 1
    assert len(receiver._last_stop) <= 4


def test_register_for_a_unicast_inner_destination_is_counted():
    inner = bytearray(DATA.packet)
    inner[16:20] = bytes([10, 2, 2, 2])
    receiver = RegisterReceiver(TreeView())
    assert receiver.receive(0.0, DR, ME, Register(bytes(inner))) == []
    assert receiver.counters["register_not_multicast"] == 1
