"""The command channel at scale: rule syncs and stats replies far over one
datagram (and over the 1 MiB that used to be the limit) round-trip through
a real engine, and a big sync that is refused changes nothing."""

from __future__ import annotations

import time

import pytest

from mcr import _engine
from mcr.engine import Engine
from mcr.lab import chain

PREFIX = "mcrsc"


@pytest.fixture
def big_engine():
    """An engine in a relay namespace with room for 40,000 rules, its input and output ifindexes."""
    c = chain(n_sinks=1, prefix=PREFIX)
    engine = None
    try:
        engine = Engine(c.relay_ns, max_rules=40_000)
        yield engine, engine._ensure_input(c.relay_in), engine._ensure_egress(c.relay_out[0])
    finally:
        if engine is not None:
            engine.close()
        c.close()


def rule_set(n: int, outputs: int, input_ifindex: int, output_ifindex: int) -> list[tuple]:
    """`n` exact rules on distinct groups, each with `outputs` unicast outputs."""
    return [(i + 1, input_ifindex, f"239.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}", 5000, "",
             [(f"10.9.{j >> 8}.{j & 255}", 7000 + j, output_ifindex, -1, -1, False, 0) for j in range(outputs)], 0)
            for i in range(n)]


def test_sync_and_stats_far_over_a_megabyte(big_engine):
    engine, rx, tx = big_engine
    rules = rule_set(2000, 100, rx, tx)
    sync = _engine.encode_sync_rules(1, rules)
    assert len(sync) > 3 << 20, len(sync)
    engine._call(_engine.encode_sync_rules, rules)
    stats = engine._call(_engine.encode_get_stats)["stats"]
    assert stats["ruleset_hash"] == _engine.ruleset_hash(rules)
    assert sorted(r["id"] for r in stats["rules"]) == list(range(1, 2001))
    assert {len(r["outputs"]) for r in stats["rules"]} == {100}

    # A second sync changing half the rules keeps the other half as they were.
    changed = rules[:1000] + [(r[0] + 5000, *r[1:]) for r in rules[1000:]]
    engine._call(_engine.encode_sync_rules, changed)
    stats = engine._call(_engine.encode_get_stats)["stats"]
    assert stats["ruleset_hash"] == _engine.ruleset_hash(changed)
    assert sorted(r["id"] for r in stats["rules"]) == list(range(1, 1001)) + list(range(6001, 7001))


def test_duplicate_key_in_a_30000_rule_sync_is_refused_quickly(big_engine):
    engine, rx, tx = big_engine
    kept = rule_set(10, 1, rx, tx)
    engine._call(_engine.encode_sync_rules, kept)
    rules = rule_set(30_000, 1, rx, tx)
    rules[-1] = (rules[-1][0], rx, rules[0][2], *rules[-1][3:])  # the last rule takes the first one's key
    started = time.monotonic()
    with pytest.raises(Exception, match="rules 1 and 30000 have the same key"):
        engine._call(_engine.encode_sync_rules, rules)
    elapsed = time.monotonic() - started
    stats = engine._call(_engine.encode_get_stats)["stats"]
    assert stats["ruleset_hash"] == _engine.ruleset_hash(kept), "a refused sync changed the table"
    # The pairwise check took 0.44 s here for 30,000 rules on the engine
    # thread alone; encoding and sending them is most of what is left.
    assert elapsed < 0.3, f"refusing took {elapsed:.2f} s"
    print(f"30,000-rule sync refused in {elapsed * 1000:.0f} ms")


def test_sync_over_capacity_is_refused_with_its_seq(big_engine):
    engine, rx, tx = big_engine
    with pytest.raises(Exception, match="rule table full"):
        engine._call(_engine.encode_sync_rules, rule_set(40_001, 0, rx, tx))
    assert engine._call(_engine.encode_get_stats)["ok"]
