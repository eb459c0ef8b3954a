"""The BSR listener (mcr.protocols.pim_bsr, RFC 5059): which Bootstraps are
accepted, the preferred-BSR choice, the Bootstrap Timer, fragments, RP
holdtimes and forwarding, on a fake clock with a view whose RPF answers
each test sets."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from mcr.protocols.pim_bsr import (BS_TIMEOUT, BsrListener, BsrState, ForwardBootstrap, RpSetChanged,
                                   SendBootstrap)
from mcr.protocols.pim_rp import CandidateRp
from mcr.protocols.pim_wire import ALL_PIM_ROUTERS, parse_message
from mcr.protocols.pim_wire_more import Bootstrap, BsrGroup, BsrRp, encode_bootstrap

BSR, BETTER, WORSE = "10.0.0.50", "10.0.0.60", "10.0.0.40"
UP, NEIGHBOR, OTHER = "eth0", "10.1.0.1", "10.1.0.9"
ME = "10.1.0.2"
RP1, RP2, RP3 = "10.0.0.1", "10.0.0.2", "10.0.0.3"
RANGE = BsrGroup("239.0.0.0", 8, 2, (BsrRp(RP1, 150, 0), BsrRp(RP2, 150, 1)))


@dataclass
class Route:
    interface: str
    neighbor: str | None


@dataclass
class Router:
    routes: dict = field(default_factory=lambda: {BSR: Route(UP, NEIGHBOR), BETTER: Route(UP, NEIGHBOR),
                                                  WORSE: Route(UP, NEIGHBOR)})
    neighbors: set = field(default_factory=lambda: {(UP, NEIGHBOR), ("eth1", OTHER)})

    def rpf(self, address):
        return self.routes.get(address)

    def is_neighbor(self, interface, address):
        return (interface, address) in self.neighbors

    def pim_interfaces(self):
        return [UP, "eth1", "eth2"]

    def my_addresses(self):
        return {ME}


def bootstrap(bsr: str = BSR, priority: int = 10, groups=(RANGE,), tag: int = 1, **extra) -> Bootstrap:
    return Bootstrap(tag, 30, priority, bsr, tuple(groups), **extra)


def send(listener: BsrListener, now: float, message: Bootstrap, interface: str = UP, source: str = NEIGHBOR,
         destination: str = ALL_PIM_ROUTERS) -> list:
    return listener.receive(now, interface, source, destination, message, encode_bootstrap(message))


def rp_sets(out: list) -> list[dict]:
    return [o.rp_set for o in out if isinstance(o, RpSetChanged)]


def test_first_bootstrap_is_accepted_stored_and_forwarded_out_of_the_other_interfaces():
    listener = BsrListener(Router())
    message = bootstrap()
    out = send(listener, 0.0, message)
    assert rp_sets(out) == [{("239.0.0.0", 8): (CandidateRp(RP1, 0), CandidateRp(RP2, 1))}]
    assert [o for o in out if isinstance(o, ForwardBootstrap)] == [
        ForwardBootstrap("eth1", encode_bootstrap(message)), ForwardBootstrap("eth2", encode_bootstrap(message))]
    assert (listener.state, listener.bsr, listener.next_deadline()) == (BsrState.ACCEPT_PREFERRED, BSR, BS_TIMEOUT)


def test_the_same_rp_set_again_changes_nothing_but_is_forwarded():
    listener = BsrListener(Router())
    send(listener, 0.0, bootstrap())
    out = send(listener, 60.0, bootstrap(tag=2))
    assert rp_sets(out) == [] and len(out) == 2 and listener.next_deadline() == 60.0 + BS_TIMEOUT


@pytest.mark.parametrize("interface, source, destination, reason", [
    ("eth1", OTHER, ALL_PIM_ROUTERS, "bootstrap_not_from_rpf_neighbor"),
    (UP, OTHER, ALL_PIM_ROUTERS, "bootstrap_not_from_rpf_neighbor"),
    ("eth1", "10.1.5.5", ME, "bootstrap_not_from_neighbor"),
    (UP, NEIGHBOR, "10.7.7.7", "bootstrap_bad_destination"),
])
def test_bootstraps_not_from_the_rpf_neighbor_are_dropped(interface, source, destination, reason):
    listener = BsrListener(Router())
    assert send(listener, 0.0, bootstrap(), interface, source, destination) == []
    assert listener.counters[reason] == 1 and listener.state is BsrState.ACCEPT_ANY


@pytest.mark.parametrize("destination", [ME, ALL_PIM_ROUTERS])
def test_a_no_forward_bootstrap_from_a_neighbor_is_accepted_but_not_forwarded(destination):
    listener = BsrListener(Router())
    out = send(listener, 0.0, bootstrap(no_forward=True), "eth1", OTHER, destination)
    assert len(rp_sets(out)) == 1 and not any(isinstance(o, ForwardBootstrap) for o in out)


def test_a_directly_connected_bsr_is_its_own_rpf_neighbor():
    listener = BsrListener(Router(routes={BSR: Route(UP, None)}))
    assert send(listener, 0.0, bootstrap(), UP, NEIGHBOR) == []
    assert rp_sets(send(listener, 0.0, bootstrap(), UP, BSR)) != []


def test_a_no_forward_bootstrap_from_a_stranger_is_dropped():
    listener = BsrListener(Router())
    assert send(listener, 0.0, bootstrap(no_forward=True), "eth2", "10.1.5.5") == []
    assert listener.counters["bootstrap_not_from_neighbor"] == 1


def test_a_no_forward_copy_of_another_tag_does_not_undo_the_bsr():
    listener = BsrListener(Router())
    send(listener, 0.0, bootstrap(tag=5))
    stale = bootstrap(tag=4, groups=(BsrGroup("239.0.0.0", 8, 1, (BsrRp(RP3, 150, 0),)),), no_forward=True)
    assert send(listener, 1.0, stale, "eth1", OTHER, ME) == []
    assert listener.counters["bootstrap_no_forward_refused"] == 1
    same_tag = bootstrap(tag=5, no_forward=True)
    assert send(listener, 2.0, same_tag, "eth1", OTHER, ME) == []  # accepted; nothing new, not forwarded
    assert listener.next_deadline() == 2.0 + BS_TIMEOUT


def test_a_unicast_bootstrap_without_no_forward_is_forwarded_as_frr_does():
    listener = BsrListener(Router())
    out = send(listener, 0.0, bootstrap(), "eth1", OTHER, ME)
    assert [o.interface for o in out if isinstance(o, ForwardBootstrap)] == [UP, "eth2"]


def test_our_own_bsr_address_is_dropped():
    listener = BsrListener(Router(routes={ME: Route(UP, NEIGHBOR)}))
    assert send(listener, 0.0, bootstrap(bsr=ME)) == [] and listener.counters["bootstrap_own"] == 1


def test_preferred_bsr_priority_then_address():
    listener = BsrListener(Router())
    send(listener, 0.0, bootstrap(priority=10))
    assert send(listener, 1.0, bootstrap(bsr=WORSE, priority=10)) == []  # same priority, lower address
    assert send(listener, 1.0, bootstrap(bsr=BETTER, priority=9)) == []  # higher address, lower priority
    assert listener.counters["bootstrap_not_preferred"] == 2
    other_range = BsrGroup("239.0.0.0", 8, 1, (BsrRp(RP3, 150, 0),))
    out = send(listener, 2.0, bootstrap(bsr=WORSE, priority=11, groups=(other_range,)))
    assert listener.bsr == WORSE and rp_sets(out) == [{("239.0.0.0", 8): (CandidateRp(RP3, 0),)}]
    send(listener, 3.0, bootstrap(bsr=BETTER, priority=11, groups=(other_range,)))
    assert listener.bsr == BETTER  # same priority, higher address


def test_bootstrap_timer_returns_to_accept_any_and_keeps_the_rp_set_until_holdtimes_end():
    listener = BsrListener(Router())
    send(listener, 0.0, bootstrap(groups=(BsrGroup("239.0.0.0", 8, 1, (BsrRp(RP1, 200, 0),)),)))
    assert listener.expire(BS_TIMEOUT) == []
    assert listener.state is BsrState.ACCEPT_ANY and listener.rp_set() != {}
    send(listener, BS_TIMEOUT + 1, bootstrap(bsr=WORSE, priority=0, groups=()))
    assert listener.bsr == WORSE  # any BSR is accepted again
    assert rp_sets(listener.expire(200.0)) == [{}]


def test_rp_holdtime_expiry_removes_one_rp():
    listener = BsrListener(Router())
    send(listener, 0.0, bootstrap(groups=(BsrGroup("239.0.0.0", 8, 2, (BsrRp(RP1, 50, 0), BsrRp(RP2, 90, 0))),)))
    assert listener.next_deadline() == 50.0
    assert rp_sets(listener.expire(50.0)) == [{("239.0.0.0", 8): (CandidateRp(RP2, 0),)}]
    assert rp_sets(listener.expire(90.0)) == [{}] and listener.next_deadline() == BS_TIMEOUT


def test_fragments_of_one_tag_assemble_a_range():
    listener = BsrListener(Router())
    first = BsrGroup("239.0.0.0", 8, 3, (BsrRp(RP1, 150, 0),))
    second = BsrGroup("239.0.0.0", 8, 3, (BsrRp(RP2, 150, 0), BsrRp(RP3, 150, 0)))
    other = BsrGroup("238.0.0.0", 8, 1, (BsrRp(RP3, 150, 0),))
    out = send(listener, 0.0, bootstrap(tag=7, groups=(first, other)))
    assert rp_sets(out) == [{("238.0.0.0", 8): (CandidateRp(RP3, 0),)}]  # 239/8 not complete yet
    out = send(listener, 0.1, bootstrap(tag=7, groups=(second,)))
    assert rp_sets(out)[0][("239.0.0.0", 8)] == (CandidateRp(RP1, 0), CandidateRp(RP2, 0), CandidateRp(RP3, 0))


def test_a_new_tag_drops_a_half_assembled_range():
    listener = BsrListener(Router())
    send(listener, 0.0, bootstrap(tag=7, groups=(BsrGroup("239.0.0.0", 8, 2, (BsrRp(RP1, 150, 0),)),)))
    out = send(listener, 0.1, bootstrap(tag=8, groups=(BsrGroup("239.0.0.0", 8, 2, (BsrRp(RP2, 150, 0),)),)))
    assert rp_sets(out) == [] and listener.rp_set() == {}


def test_zero_holdtime_and_zero_count_withdraw_a_range():
    listener = BsrListener(Router())
    send(listener, 0.0, bootstrap())
    out = send(listener, 1.0, bootstrap(tag=2, groups=(BsrGroup("239.0.0.0", 8, 0),)))
    assert rp_sets(out) == [{}]
    send(listener, 2.0, bootstrap(tag=3))
    out = send(listener, 3.0, bootstrap(tag=4, groups=(BsrGroup("239.0.0.0", 8, 1, (BsrRp(RP1, 0, 0),)),)))
    assert rp_sets(out) == [{}]


def test_admin_scoped_ranges_are_counted_and_left_out():
    listener = BsrListener(Router())
    scoped = BsrGroup("239.192.0.0", 14, 1, (BsrRp(RP1, 150, 0),), admin_scope=True)
    out = send(listener, 0.0, bootstrap(groups=(scoped,)))
    assert rp_sets(out) == [] and listener.counters["bootstrap_admin_scope_ignored"] == 1


def test_a_new_neighbor_gets_the_bootstrap_unicast_with_no_forward():
    listener = BsrListener(Router())
    assert listener.new_neighbor("eth1", OTHER) == []  # nothing learned yet
    send(listener, 0.0, bootstrap())
    out = listener.new_neighbor("eth1", OTHER)
    assert len(out) == 1 and isinstance(out[0], SendBootstrap) and (out[0].interface, out[0].to) == ("eth1", OTHER)
    assert parse_message(out[0].payload) == bootstrap(no_forward=True)


def test_bad_timeout_rejected():
    with pytest.raises(ValueError, match="bootstrap timeout"):
        BsrListener(Router(), bs_timeout=0)
