"""Group-to-RP mapping (mcr.protocols.pim_rp): static ranges, the BSR
RP-set, how they combine (as FRR's pimd does), and the RFC 7761 4.7.2 hash
checked against FRR's way of computing it (pimd/pim_bsm.c
hash_calc_on_grp_rp: 64-bit wrap-around, one mask at the end)."""

from __future__ import annotations

import socket

import pytest
from hypothesis import given, settings as hypothesis_settings, strategies as st

from mcr.protocols.pim_rp import CandidateRp, RpMapping, choose_rp, rp_hash

RP1, RP2, RP3 = "10.0.0.1", "10.0.0.2", "10.0.0.3"


def frr_hash(group: str, mask_len: int, rp: str) -> int:
    g = int.from_bytes(socket.inet_aton(group), "big")
    g &= (0xFFFFFFFF << (32 - mask_len)) & 0xFFFFFFFF if mask_len else 0
    r = int.from_bytes(socket.inet_aton(rp), "big")
    wrap = (1 << 64) - 1
    temp = (1103515245 * (((1103515245 * g + 12345) & wrap) ^ r) + 12345) & wrap
    return temp & 0x7FFFFFFF


def test_hash_of_a_worked_example():
    # G&M = 0: the inner term is 12345; 12345 XOR 1 = 12344.
    assert rp_hash("239.1.1.1", 0, "0.0.0.1") == (1103515245 * 12344 + 12345) % (1 << 31)


@hypothesis_settings(deadline=None)  # the machine is shared: no per-example time limit
@given(group=st.integers(0xE0000000, 0xEFFFFFFF), mask_len=st.integers(0, 32), rp=st.integers(0, 0xFFFFFFFF))
def test_hash_matches_frr(group, mask_len, rp):
    g, r = socket.inet_ntoa(group.to_bytes(4, "big")), socket.inet_ntoa(rp.to_bytes(4, "big"))
    assert rp_hash(g, mask_len, r) == frr_hash(g, mask_len, r)


def test_hash_mask_groups_share_an_rp():
    """4.7.2: groups equal under the hash mask hash the same, so map to one RP."""
    candidates = tuple(CandidateRp(f"10.0.0.{i}", 0) for i in range(1, 9))
    assert choose_rp("239.1.1.1", candidates, 24) == choose_rp("239.1.1.200", candidates, 24)
    spread = {choose_rp(f"239.1.{i}.1", candidates, 24) for i in range(64)}
    assert len(spread) > 2  # different /24s spread over the C-RPs


def test_best_priority_wins_before_the_hash():
    candidates = (CandidateRp(RP1, 10), CandidateRp(RP2, 5), CandidateRp(RP3, 5))
    chosen = choose_rp("239.1.1.1", candidates, 30)
    best_hash = max((RP2, RP3), key=lambda rp: rp_hash("239.1.1.1", 30, rp))
    assert chosen == best_hash
    assert choose_rp("239.1.1.1", (CandidateRp(RP1, 0), CandidateRp(RP2, 1)), 30) == RP1
    assert choose_rp("239.1.1.1", (), 30) is None


def test_static_longest_prefix_match_and_removal():
    mapping = RpMapping()
    mapping.set_static("224.0.0.0/4", RP1)
    mapping.set_static("239.0.0.0/8", RP2)
    mapping.set_static("239.1.0.0/16", RP3)
    assert [mapping.rp_for(g) for g in ("230.1.1.1", "239.2.2.2", "239.1.9.9")] == [RP1, RP2, RP3]
    mapping.remove_static("239.1.0.0/16")
    assert mapping.rp_for("239.1.9.9") == RP2
    mapping.remove_static("224.0.0.0/4")
    assert mapping.rp_for("230.1.1.1") is None
    with pytest.raises(ValueError, match="no static RP"):
        mapping.remove_static("224.0.0.0/4")


def test_static_wins_over_bsr_at_the_same_prefix_and_bsr_returns_when_it_goes():
    mapping = RpMapping()
    mapping.set_bsr_rp_set({("239.0.0.0", 8): (CandidateRp(RP2, 0),)}, 30)
    mapping.set_static("239.0.0.0/8", RP1)
    assert mapping.rp_for("239.5.5.5") == RP1
    mapping.remove_static("239.0.0.0/8")
    assert mapping.rp_for("239.5.5.5") == RP2


def test_a_longer_bsr_range_beats_a_shorter_static_one():
    mapping = RpMapping()
    mapping.set_static("224.0.0.0/4", RP1)
    mapping.set_bsr_rp_set({("239.1.0.0", 16): (CandidateRp(RP2, 0),)}, 30)
    assert (mapping.rp_for("239.1.1.1"), mapping.rp_for("239.2.1.1")) == (RP2, RP1)
    assert mapping.i_am_rp("239.1.1.1", {RP2}) and not mapping.i_am_rp("239.1.1.1", {RP1})


def test_a_new_rp_set_replaces_the_old():
    mapping = RpMapping()
    mapping.set_bsr_rp_set({("239.1.0.0", 16): (CandidateRp(RP2, 0),)}, 30)
    mapping.set_bsr_rp_set({("238.0.0.0", 8): (CandidateRp(RP3, 0),), ("10.0.0.0", 8): (CandidateRp(RP1, 0),)}, 4)
    assert (mapping.rp_for("239.1.1.1"), mapping.rp_for("238.1.1.1"), mapping.hash_mask_len) == (None, RP3, 4)
    assert [row["group"] for row in mapping.describe()] == ["238.0.0.0/8"]  # 10/8 is not multicast: left out


@pytest.mark.parametrize("prefix, rp, message", [("10.0.0.0/8", RP1, "not inside 224.0.0.0/4"),
                                                ("239.0.0.1/8", RP1, "239.0.0.1/8"),
                                                ("239.0.0.0/8", "239.1.1.1", "unicast"),
                                                ("239.0.0.0/8", "0.0.0.0", "unicast")])
def test_bad_static_rps_rejected(prefix, rp, message):
    with pytest.raises(ValueError, match=message):
        RpMapping().set_static(prefix, rp)
