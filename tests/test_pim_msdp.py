"""What PIM does for MSDP (RFC 3618 sections 3 and 7), through PimTree and
the router's Registers with fake views: an SA for (S,G) at the RP with
receivers on the shared tree joins toward S; without receivers, or not at
the RP, it does nothing; the RP's own sources (registered, or directly
connected) are what MSDP advertises, and a source learned by MSDP is not."""

from __future__ import annotations

from mcr.protocols.pim_registers import Registers
from mcr.protocols.pim_rpf import Rpf
from mcr.protocols.pim_wire_more import Register
from pim_tree_fakes import DOWN, DOWN_NBR, G, RP, S, UP1_NBR, at_rp, entries, router, star_join

SA_SOURCE = "198.51.100.7"  # a source in another domain, reached through up1


def rp_with_receivers():
    tree, view = router()
    at_rp(view)
    view.routes[SA_SOURCE] = Rpf("up1", UP1_NBR)
    tree.receive_join_prune(0.0, "down", DOWN_NBR, star_join(DOWN))
    return tree, view


def test_an_sa_at_the_rp_with_receivers_joins_toward_the_source():
    tree, _ = rp_with_receivers()
    out = tree.source_active(1.0, SA_SOURCE, G)
    assert entries(out) == {(UP1_NBR, G, SA_SOURCE, "sg", True)}
    [row] = [r for r in tree.upstream(1.0) if r["kind"] == "(S,G)"]
    assert (row["source"], row["state"], row["keepalive_left"]) == (SA_SOURCE, "Joined", 210.0)


def test_sa_refreshes_keep_the_join_and_without_them_it_times_out():
    tree, _ = rp_with_receivers()
    tree.source_active(1.0, SA_SOURCE, G)
    tree.source_active(61.0, SA_SOURCE, G)  # the next SA, one advertisement period later
    for at in (60.0, 120.0, 180.0, 240.0):  # the receivers' side keeps joining the shared tree
        tree.receive_join_prune(at, "down", DOWN_NBR, star_join(DOWN))
    tree.expire(250.0)  # 210 s after the first SA, 189 s after the refresh: still joined
    assert any(r["kind"] == "(S,G)" and r["state"] == "Joined" for r in tree.upstream(250.0))
    out = tree.expire(272.0)  # the KAT ran out: JoinDesired(S,G) is false, the RP prunes
    assert (UP1_NBR, G, SA_SOURCE, "sg", False) in entries(out)


def test_an_sa_without_receivers_or_away_from_the_rp_does_nothing():
    tree, view = router()
    at_rp(view)
    view.routes[SA_SOURCE] = Rpf("up1", UP1_NBR)
    assert entries(tree.source_active(1.0, SA_SOURCE, G)) == set()  # nobody on the shared tree
    assert not [r for r in tree.upstream(1.0) if r["kind"] == "(S,G)"]
    other, other_view = router()  # a router that is not the RP of G
    other_view.routes[SA_SOURCE] = Rpf("up1", UP1_NBR)
    other.receive_join_prune(0.0, "down", DOWN_NBR, star_join(DOWN))
    assert not any(source == SA_SOURCE for _, _, source, _, _ in entries(other.source_active(1.0, SA_SOURCE, G)))


def test_directly_connected_sources_of_our_groups_are_the_rps_own():
    tree, view = rp_with_receivers()
    view.routes[S] = Rpf("lan", None)  # S is on a link of ours
    tree.data_arrived(1.0, S, G, "lan")
    tree.source_active(1.0, SA_SOURCE, G)  # learned by MSDP: not ours to advertise
    view.routes[SA_SOURCE] = Rpf("lan", None)  # not even once it reads as directly connected
    tree.source_active(2.0, SA_SOURCE, G)
    assert tree.connected_rp_sources(2.0) == {(S, G)}
    assert tree.connected_rp_sources(1000.0) == set()  # the KAT ran out: the source went quiet


class _Sent(list):
    def __call__(self, to, payload):
        self.append(to)


def test_sources_that_register_here_are_the_rps_own_until_their_registers_stop():
    tree, view = rp_with_receivers()
    registers = Registers(tree, view.rp_of, _Sent(), tree_outputs=lambda outputs: None, on_change=lambda: None)
    inner = bytes.fromhex("4500001c0000000040110000") + bytes(map(int, S.split("."))) + bytes(map(int, G.split(".")))
    inner += bytes(8)
    registers.register_arrived(1.0, "10.0.2.2", RP, Register(inner))
    assert registers.registered(2.0) == {(S, G)}
    registers.register_arrived(60.0, "10.0.2.2", RP, Register(inner, null=True))  # Null-Registers refresh it
    assert registers.registered(200.0) == {(S, G)}
    assert registers.registered(246.0) == set()  # RP_Keepalive_Period (185 s) after the last one


def test_registers_to_an_address_that_is_not_the_rp_are_not_ours():
    tree, view = rp_with_receivers()
    registers = Registers(tree, view.rp_of, _Sent(), tree_outputs=lambda outputs: None, on_change=lambda: None)
    inner = bytes.fromhex("4500001c0000000040110000") + bytes(map(int, S.split("."))) + bytes(map(int, G.split(".")))
    registers.register_arrived(1.0, "10.0.2.2", "10.9.9.9", Register(inner + bytes(8)))
    assert registers.registered(2.0) == set()
