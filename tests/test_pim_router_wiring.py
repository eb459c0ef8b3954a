"""The router glue of Assert and the BSR listener (mcr.protocols.pim_router
with pim_asserts and pim_bootstraps): real tree, Assert and BSR cores and
real PimInterfaces (neighbors from Hellos), fake routes and sends. What goes
out is parsed back with the production codec; the wire itself is judged
against FRR in tests/test_pim_assert_interop.py and test_pim_bsr_wired_interop.py."""

from __future__ import annotations

import random
import time

from mcr.mrib import Listening
from mcr.protocols.pim import PimInterface, Settings
from mcr.protocols.pim_config import PimConfig, StaticRp
from mcr.protocols.pim_router import PimRouter
from mcr.protocols.pim_rpf import Rpf
from mcr.protocols.pim_tree_types import TreeSettings
from mcr.protocols.pim_wire import ALL_PIM_ROUTERS, GroupSet, Hello, JoinPrune, Source, parse_message
from mcr.protocols.pim_wire_more import Assert, Bootstrap, BsrGroup, BsrRp, encode_assert, encode_bootstrap

G, S, RP, BSR_RP = "239.1.1.1", "192.0.2.10", "10.255.0.1", "10.255.0.9"
UP, UP_NBR = "10.0.1.1", "10.0.1.2"
LAN, LAN_NBR, LAN_NEW = "10.0.9.1", "10.0.9.2", "10.0.9.3"
BSR = "10.99.0.1"


class Routes:
    """The RpfTable's one question, answered from a dict the test sets."""

    def __init__(self) -> None:
        self.routes = {RP: Rpf("up", UP_NBR, 1, 10), BSR_RP: Rpf("up", UP_NBR, 1, 10), S: Rpf("up", UP_NBR, 1, 10),
                       BSR: Rpf("up", UP_NBR, 1, 20)}

    def rpf(self, address: str) -> Rpf | None:
        return self.routes.get(address)


def pim(address: str, *neighbors: str, dr_priority: int = 1) -> PimInterface:
    core = PimInterface(Settings(dr_priority=dr_priority), address, 1, random.Random(1))
    for neighbor in neighbors:
        core.receive_hello(time.monotonic(), neighbor, Hello(105, 1, 7))
    return core


class Router:
    """A PimRouter with up (toward RP and S) and lan (another router on it; we are DR)."""

    def __init__(self, rp: tuple[StaticRp, ...] = (StaticRp(RP, "239.0.0.0/8"),)) -> None:
        self.cores = {"up": pim(UP, UP_NBR), "lan": pim(LAN, LAN_NBR, dr_priority=10)}
        self.sent: list[tuple[str, bytes]] = []
        self.unicast: list[tuple[str, bytes]] = []
        self.changes = 0
        config = PimConfig(rp=rp, tree=TreeSettings(spt_switchover="never"))
        self.router = PimRouter(config, Routes(), lambda: self.cores, lambda i, p: self.sent.append((i, p)),
                                lambda to, p: self.unicast.append((to, p)), self._changed, lambda *a, **k: None)

    def _changed(self) -> None:
        self.changes += 1

    def listen(self) -> None:
        self.router.set_listeners(time.monotonic(), {"lan": {G: Listening("exclude")}})

    def messages(self, kind: type) -> list[tuple[str, object]]:
        parsed = [(i, parse_message(p)) for i, p in self.sent]
        return [(i, m) for i, m in parsed if isinstance(m, kind)]

    def outputs(self, source: str | None = None) -> set[str]:
        return {o for e in self.router.forwarding() if e.group == G and e.source == source for o in e.outputs}

    def assert_state(self) -> list[tuple]:
        return [(a["source"], a["group"], a["interface"], a["state"], a["winner"])
                for a in self.router.asserts.describe(time.monotonic())]


def test_data_on_an_outgoing_interface_is_watched_and_makes_us_assert():
    r = Router()
    r.listen()
    assert r.outputs() == {"lan"}
    watch = [e for e in r.router.forwarding() if e.interface == "lan" and e.group == G]
    assert [(e.source, e.outputs, e.notify) for e in watch] == [(None, frozenset(), True)]
    r.router.data_arrived(time.monotonic(), S, G, "lan")  # another forwarder's packet on our olist interface
    ((interface, sent),) = r.messages(Assert)
    assert interface == "lan"
    assert sent == Assert(G, "0.0.0.0", True, 1, 10)  # (*,G): our rpt metric toward the RP (4.6.3)
    assert r.assert_state() == [(None, G, "lan", "I am Assert Winner", LAN)]
    assert r.router.assert_winner(None, G, "lan") == LAN and not r.router.lost_assert(None, G, "lan")
    assert r.outputs() == {"lan"}  # the winner keeps forwarding


def test_a_better_assert_makes_us_stop_forwarding_until_the_winner_is_gone():
    r = Router()
    r.listen()
    before = r.changes
    better = encode_assert(Assert(G, "0.0.0.0", True, 1, 5))
    r.router.asserts.receive(time.monotonic(), "lan", LAN_NBR, parse_message(better))
    assert r.assert_state() == [(None, G, "lan", "I am Assert Loser", LAN_NBR)]
    assert r.router.lost_assert(None, G, "lan")
    assert "lan" not in r.outputs(), "the loser still forwards onto the LAN"
    assert r.changes > before
    assert r.router.next_deadline() is not None
    r.router.neighbor_changed(time.monotonic(), "lan", LAN_NBR, "down")  # 4.6.1: the winner's NLT ran out
    assert r.assert_state() == []
    assert r.outputs() == {"lan"}


def test_the_losers_assert_timer_runs_out_and_it_forwards_again():
    r = Router()
    r.listen()
    r.router.asserts.receive(time.monotonic(), "lan", LAN_NBR, Assert(G, "0.0.0.0", True, 1, 5))
    deadline = r.router.next_deadline()
    assert deadline is not None and deadline - time.monotonic() > 170  # Assert_Time, 180 s
    r.router.expire(time.monotonic() + 181)
    assert r.assert_state() == [] and "lan" in r.outputs()


def test_a_join_for_us_sends_a_loser_back_to_no_info():
    r = Router()
    r.listen()
    r.router.asserts.receive(time.monotonic(), "lan", LAN_NBR, Assert(G, "0.0.0.0", True, 1, 5))
    join = JoinPrune(LAN, 210, (GroupSet(G, joins=(Source(RP, wildcard=True, rpt=True),)),))
    r.router.receive_join_prune(time.monotonic(), "lan", LAN_NBR, join)
    assert all(state != "I am Assert Loser" for *_, state, _ in r.assert_state())
    assert "lan" in r.outputs()


def test_an_assert_from_a_router_we_have_no_hello_from_is_counted_and_ignored():
    r = Router()
    r.listen()
    r.router.asserts.receive(time.monotonic(), "lan", "10.0.9.77", Assert(G, "0.0.0.0", True, 1, 5))
    assert r.assert_state() == []
    assert r.router.asserts.machines.counters["assert_not_from_neighbor"] == 1


def bootstrap(tag: int = 1, rp: str = BSR_RP, holdtime: int = 150) -> Bootstrap:
    return Bootstrap(tag, 30, 7, BSR, (BsrGroup("239.0.0.0", 8, 1, (BsrRp(rp, holdtime, 5),)),))


def test_a_bootstrap_teaches_the_rp_the_tree_then_joins_toward():
    r = Router(rp=())
    r.listen()
    assert r.router.rp_of(G) is None and r.outputs() == set()
    message = bootstrap()
    payload = encode_bootstrap(message)
    r.router.bootstraps.receive(time.monotonic(), "up", UP_NBR, ALL_PIM_ROUTERS, message, payload)
    assert r.router.rp_of(G) == BSR_RP
    rows = [row for row in r.router.describe_rps() if row["source"] == "bsr"]
    assert [(row["group"], row["candidates"]) for row in rows] == [("239.0.0.0/8", [{"rp": BSR_RP, "priority": 5}])]
    assert r.outputs() == {"lan"}, "the (*,G) toward the learned RP does not forward"
    joins = [m for i, m in r.messages(JoinPrune) if i == "up"]
    assert any(s.address == BSR_RP and s.wildcard for m in joins for gs in m.groups for s in gs.joins)
    assert ("lan", payload) in r.sent  # forwarded as it came, on every other PIM interface (RFC 5059 3.3)


def test_a_bootstrap_not_from_the_rpf_neighbor_changes_nothing():
    r = Router(rp=())
    message = bootstrap()
    r.router.bootstraps.receive(time.monotonic(), "lan", LAN_NBR, ALL_PIM_ROUTERS, message, encode_bootstrap(message))
    assert r.router.rp_of(G) is None and r.sent == []
    assert r.router.bootstraps.listener.counters["bootstrap_not_from_rpf_neighbor"] == 1


def test_a_new_neighbor_gets_the_bootstrap_unicast_with_no_forward():
    r = Router(rp=())
    message = bootstrap()
    r.router.bootstraps.receive(time.monotonic(), "up", UP_NBR, ALL_PIM_ROUTERS, message, encode_bootstrap(message))
    r.cores["lan"].receive_hello(time.monotonic(), LAN_NEW, Hello(105, 1, 9))
    r.router.neighbor_changed(time.monotonic(), "lan", LAN_NEW, "up")
    ((to, payload),) = r.unicast
    assert to == LAN_NEW
    copy = parse_message(payload)
    assert copy.no_forward and copy.bsr_address == BSR and copy.groups == message.groups


def test_the_learned_rp_times_out_with_its_holdtime():
    r = Router(rp=())
    r.listen()
    message = bootstrap(holdtime=20)
    r.router.bootstraps.receive(time.monotonic(), "up", UP_NBR, ALL_PIM_ROUTERS, message, encode_bootstrap(message))
    assert r.router.rp_of(G) == BSR_RP
    r.router.expire(time.monotonic() + 21)
    assert r.router.rp_of(G) is None
    assert r.outputs() == set()


def test_an_spt_assert_lost_on_the_rp_tree_takes_only_that_source_off_the_lan():
    """We forward G on the RP tree; a neighbor on the SPT asserts for S with
    a metric ours (RPT) cannot beat: S leaves the LAN (lost_assert(S,G,rpt)),
    other sources of G still go there."""
    r = Router()
    r.listen()
    r.router.asserts.receive(time.monotonic(), "lan", LAN_NBR, Assert(G, S, False, 1, 10))
    assert r.assert_state() == [(S, G, "lan", "I am Assert Loser", LAN_NBR)]
    entries = [e for e in r.router.forwarding() if e.source == S and e.group == G and e.interface == "up"]
    assert entries and "lan" not in entries[0].outputs, "S still goes onto the LAN by the (*,G) entry"
    assert r.outputs() == {"lan"}
