"""Assert (mcr.protocols.pim_assert, RFC 7761 4.6): the (S,G,I) and
(*,G,I) machines' transitions and timers, assert metrics and their
comparison, and the lost_assert / assert_winner queries, against a tree
view whose answers each test sets."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from mcr.protocols.pim_assert import (INFINITE_METRIC, AssertChanged, AssertMachines, AssertMetric, AssertState,
                                      SendAssert)
from mcr.protocols.pim_wire import parse_message
from mcr.protocols.pim_wire_more import Assert

S, G, RP = "10.5.0.2", "239.1.1.1", "10.9.9.9"
LAN, UPSTREAM = "eth1", "eth0"
ME, HIGHER, LOWER = "10.1.0.5", "10.1.0.9", "10.1.0.1"
NI, W, L = AssertState.NO_INFO, AssertState.WINNER, AssertState.LOSER


@dataclass
class Route:
    interface: str
    preference: int
    metric: int


@dataclass
class Tree:
    could: set = field(default_factory=lambda: {(S, G, LAN)})
    tracking: set = field(default_factory=set)
    routes: dict = field(default_factory=lambda: {S: Route(UPSTREAM, 110, 20), RP: Route(UPSTREAM, 110, 30)})

    def could_assert(self, source, group, interface):
        return (source, group, interface) in self.could

    def assert_tracking_desired(self, source, group, interface):
        return (source, group, interface) in self.tracking

    def rp(self, group):
        return RP

    def rpf(self, address):
        return self.routes.get(address)

    def interface_address(self, interface):
        return ME


def sent(out: list) -> list[tuple[str, Assert]]:
    return [(o.interface, parse_message(o.payload)) for o in out if isinstance(o, SendAssert)]


def changes(out: list) -> list[AssertState]:
    return [o.state for o in out if isinstance(o, AssertChanged)]


def winner(tree: Tree | None = None) -> AssertMachines:
    machines = AssertMachines(tree or Tree())
    machines.data_arrived(0.0, S, G, LAN)
    return machines


def loser(tree: Tree | None = None) -> AssertMachines:
    machines = winner(tree)
    machines.receive(1.0, LAN, HIGHER, Assert(G, S, False, 100, 20))
    return machines


# --- metrics (4.6.3) ---

def test_metric_order_rpt_then_preference_then_metric_then_higher_address():
    base = AssertMetric(False, 110, 20, ME)
    assert base.better_than(AssertMetric(True, 0, 0, HIGHER))
    assert AssertMetric(False, 100, 99, LOWER).better_than(base)
    assert AssertMetric(False, 110, 19, LOWER).better_than(base)
    assert AssertMetric(False, 110, 20, HIGHER).better_than(base) and not base.better_than(base)
    assert base.better_than(INFINITE_METRIC)


def test_my_assert_metric_spt_rpt_or_infinite():
    tree = Tree(could={(S, G, LAN), (None, G, "eth2")})
    machines = AssertMachines(tree)
    assert machines.my_assert_metric(S, G, LAN) == AssertMetric(False, 110, 20, ME)
    assert machines.my_assert_metric(S, G, "eth2") == AssertMetric(True, 110, 30, ME)
    assert machines.my_assert_metric(S, G, "eth3") == INFINITE_METRIC


# --- (S,G) machine (4.6.1) ---

def test_data_on_an_outgoing_interface_makes_us_winner():
    machines = AssertMachines(Tree())
    out = machines.data_arrived(0.0, S, G, LAN)
    assert sent(out) == [(LAN, Assert(G, S, False, 110, 20))] and changes(out) == [W]
    assert machines.state(S, G, LAN) is W and machines.assert_winner(S, G, LAN) == ME
    assert machines.next_deadline() == 180.0 - 3.0 and not machines.lost_assert(S, G, LAN)


def test_data_without_could_assert_does_nothing():
    machines = AssertMachines(Tree(could=set()))
    assert machines.data_arrived(0.0, S, G, LAN) == [] and machines.state(S, G, LAN) is NI


def test_winner_refreshes_on_its_timer():
    machines = winner()
    out = machines.expire(177.0)
    assert sent(out) == [(LAN, Assert(G, S, False, 110, 20))] and changes(out) == []
    assert machines.next_deadline() == 354.0


def test_winner_answers_an_inferior_assert_and_more_data():
    machines = winner()
    assert sent(machines.receive(10.0, LAN, HIGHER, Assert(G, S, False, 120, 0))) == [(LAN, Assert(G, S, False,
                                                                                                110, 20))]
    assert machines.next_deadline() == 187.0
    assert len(sent(machines.data_arrived(20.0, S, G, LAN))) == 1 and machines.next_deadline() == 197.0


def test_winner_loses_to_a_preferred_assert():
    machines = winner()
    out = machines.receive(1.0, LAN, LOWER, Assert(G, S, False, 100, 50))
    assert changes(out) == [L] and sent(out) == []
    assert machines.assert_winner(S, G, LAN) == LOWER and machines.lost_assert(S, G, LAN)
    assert machines.next_deadline() == 181.0


def test_equal_metrics_go_to_the_higher_address():
    machines = winner()
    assert changes(machines.receive(1.0, LAN, LOWER, Assert(G, S, False, 110, 20))) == []  # we are higher
    assert changes(machines.receive(1.0, LAN, HIGHER, Assert(G, S, False, 110, 20))) == [L]


def test_winner_that_can_no_longer_assert_sends_assert_cancel():
    tree = Tree()
    machines = winner(tree)
    tree.could.clear()
    out = machines.reevaluate(5.0, S, G, LAN)
    assert sent(out) == [(LAN, Assert(G, S, True, 0x7FFFFFFF, 0xFFFFFFFF))] and changes(out) == [NI]
    assert machines.next_deadline() is None


def test_no_info_inferior_assert_with_could_assert_makes_us_winner():
    machines = AssertMachines(Tree())
    out = machines.receive(0.0, LAN, HIGHER, Assert(G, S, False, 200, 0))
    assert changes(out) == [W] and len(sent(out)) == 1


def test_no_info_rpt_assert_with_could_assert_makes_us_winner():
    machines = AssertMachines(Tree())
    out = machines.receive(0.0, LAN, HIGHER, Assert(G, S, True, 1, 1))
    assert changes(out) == [W] and machines.state(None, G, LAN) is NI


def test_no_info_acceptable_assert_makes_us_loser_only_when_tracking():
    machines = AssertMachines(Tree(could=set()))
    assert machines.receive(0.0, LAN, HIGHER, Assert(G, S, False, 100, 1)) == []
    assert machines.counters["assert_ignored"] == 1
    machines = AssertMachines(Tree(could=set(), tracking={(S, G, LAN)}))
    out = machines.receive(0.0, LAN, HIGHER, Assert(G, S, False, 100, 1))
    assert changes(out) == [L] and machines.assert_winner(S, G, LAN) == HIGHER and machines.next_deadline() == 180.0


def test_loser_times_out_to_no_info():
    machines = loser()
    assert changes(machines.expire(180.9)) == []
    assert changes(machines.expire(181.0)) == [NI] and not machines.lost_assert(S, G, LAN)


def test_loser_refreshed_by_the_winner_and_taken_over_by_a_better_one():
    machines = loser()
    assert changes(machines.receive(50.0, LAN, HIGHER, Assert(G, S, False, 100, 20))) == []
    assert machines.next_deadline() == 230.0
    assert machines.receive(60.0, LAN, "10.1.0.7", Assert(G, S, False, 105, 0)) == []  # not better than the winner
    assert changes(machines.receive(60.0, LAN, "10.1.0.7", Assert(G, S, False, 90, 0))) == []
    assert machines.assert_winner(S, G, LAN) == "10.1.0.7" and machines.next_deadline() == 240.0


@pytest.mark.parametrize("message", [Assert(G, S, False, 120, 0), Assert(G, S, True, 0x7FFFFFFF, 0xFFFFFFFF)])
def test_loser_forgets_on_an_inferior_assert_or_cancel_from_the_winner(message):
    machines = loser()
    assert changes(machines.receive(5.0, LAN, HIGHER, message)) == [NI]


def test_loser_forgets_when_the_winner_goes_or_a_join_arrives():
    machines = loser()
    assert machines.neighbor_gone(LAN, LOWER) == []
    assert changes(machines.neighbor_gone(LAN, HIGHER)) == [NI]
    machines = loser()
    assert changes(machines.join_received(S, G, LAN)) == [NI]


def test_loser_reevaluated():
    tree = Tree(tracking={(S, G, LAN)})
    machines = loser(tree)
    assert machines.reevaluate(5.0, S, G, LAN) == []
    tree.routes[S] = Route(UPSTREAM, 50, 1)  # now our metric beats the winner's
    assert changes(machines.reevaluate(6.0, S, G, LAN)) == [NI]
    machines = loser(Tree(tracking={(S, G, LAN)}))
    machines.view.tracking.clear()
    assert changes(machines.reevaluate(6.0, S, G, LAN)) == [NI]


def test_upstream_loser_forgets_when_the_rpf_interface_moves_away():
    """A downstream router tracks the winner on its RPF interface (to send
    its Joins there); when RPF_interface(S) stops being that interface, the
    state goes (4.6.1). A loser on a downstream interface is not touched
    by the same route change."""
    tree = Tree(could=set(), tracking={(S, G, UPSTREAM), (S, G, LAN)})
    machines = AssertMachines(tree)
    machines.receive(0.0, UPSTREAM, HIGHER, Assert(G, S, False, 100, 1))
    machines.receive(0.0, LAN, HIGHER, Assert(G, S, False, 100, 1))
    assert machines.state(S, G, UPSTREAM) is L and not machines.lost_assert(S, G, UPSTREAM)  # never on RPF_interface
    assert machines.reevaluate(1.0, S, G, UPSTREAM) == []
    tree.routes[S] = Route("eth7", 110, 20)
    assert changes(machines.reevaluate(2.0, S, G, UPSTREAM)) == [NI]
    assert machines.reevaluate(2.0, S, G, LAN) == [] and machines.state(S, G, LAN) is L


def test_lost_assert_is_never_true_on_the_rpf_interface():
    tree = Tree()
    machines = loser(tree)
    assert machines.lost_assert(S, G, LAN)
    tree.routes[S] = Route(LAN, 110, 20)
    assert not machines.lost_assert(S, G, LAN)


# --- (*,G) machine (4.6.2) ---

def test_star_g_data_makes_us_winner_with_the_rpt_metric():
    machines = AssertMachines(Tree(could={(None, G, LAN)}))
    out = machines.data_arrived(0.0, S, G, LAN)
    assert sent(out) == [(LAN, Assert(G, "0.0.0.0", True, 110, 30))]
    assert machines.state(None, G, LAN) is W and machines.state(S, G, LAN) is NI


def test_star_g_loser_and_lost_assert():
    machines = AssertMachines(Tree(could={(None, G, LAN)}))
    machines.data_arrived(0.0, S, G, LAN)
    out = machines.receive(1.0, LAN, LOWER, Assert(G, "0.0.0.0", True, 110, 10))
    assert changes(out) == [L] and machines.lost_assert(None, G, LAN) and machines.assert_winner(None, G, LAN) == LOWER
    # An SPT Assert for a source is for the (S,G) machine, not this one.
    assert machines.receive(2.0, LAN, HIGHER, Assert(G, S, False, 1, 1)) == []
    assert machines.assert_winner(None, G, LAN) == LOWER


def test_star_g_acceptable_rpt_assert_makes_a_tracking_router_loser():
    machines = AssertMachines(Tree(could=set(), tracking={(None, G, LAN)}))
    out = machines.receive(0.0, LAN, HIGHER, Assert(G, "0.0.0.0", True, 110, 10))
    assert changes(out) == [L] and machines.state(None, G, LAN) is L


def test_assert_timing_validated():
    with pytest.raises(ValueError, match="override interval"):
        AssertMachines(Tree(), assert_time=3.0, override_interval=3.0)
