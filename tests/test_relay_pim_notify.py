"""The engine's notifications for PIM (cpp/notify_table.h), across namespaces.

Kernel UDP senders in the source namespace; the relay's rules carry the
notify flag. What the supervisor's PIM state machines rely on: one
notification per new (rule, source, group) per window, however many
packets follow (a last-hop router learning a (*,G)'s sources); a
zero-output catch-all range rule reporting groups no other rule has (the
first-hop case at a source's DR); and a pending table that, when full,
counts what it could not hold instead of growing.
"""

from __future__ import annotations

import subprocess
import time

from mcr import _engine
from mcr.engine import Engine
from mcr.lab import UdpSender, numbered_payloads
from mcr.rules import Output, Rule

SECOND_SOURCE = "10.200.0.3"
CATCH_ALL = "224.0.0.0/4"


def add_source_address(lab) -> None:
    subprocess.run(["ip", "-n", lab.c.source_ns, "addr", "add", f"{SECOND_SOURCE}/24", "dev", lab.c.source_if],
                   check=True, timeout=10)


def send(lab, group: str, port: int, count: int, source: str | None = None) -> None:
    with UdpSender(lab.c.source_ns, lab.c.source_if, source_address=source) as sender:
        assert sender.send(numbered_payloads(count, 64), group, port, rate_pps=2000) == count


def wait_matched(lab, rule_id: int, packets: int, timeout: float = 3.0) -> dict:
    """Engine counters once rule `rule_id` matched `packets` (notifications are recorded by then)."""
    deadline = time.monotonic() + timeout
    while True:
        stats = lab.engine._call(_engine.encode_get_stats)["stats"]
        rule = next((r for r in stats["rules"] if r["id"] == rule_id), {"packets": 0})
        if rule["packets"] >= packets or time.monotonic() >= deadline:
            return stats
        time.sleep(0.02)


def test_new_sources_under_a_star_g_rule_are_notified_once_per_window(relay_lab) -> None:
    lab = relay_lab()
    c = lab.c
    add_source_address(lab)
    rule_id = lab.engine.add_rule(Rule(c.relay_in, "239.7.7.7", 5000, (Output("239.7.7.8", 5000, c.relay_out[0]),),
                                       notify=True))
    quiet = lab.engine.add_rule(Rule(c.relay_in, "239.7.7.9", 5000, (Output("239.7.7.10", 5000, c.relay_out[0]),)))

    send(lab, "239.7.7.7", 5000, 30)
    send(lab, "239.7.7.7", 5000, 30, source=SECOND_SOURCE)
    send(lab, "239.7.7.9", 5000, 30)  # a rule without notify: never reported
    wait_matched(lab, quiet, 30)

    expected = [{"rule_id": rule_id, "source": s, "group": "239.7.7.7", "input": c.relay_in, "dr": None}
                for s in (c.source_addr, SECOND_SOURCE)]
    assert lab.engine.take_notifications() == expected
    send(lab, "239.7.7.7", 5000, 20)  # the same (S,G) within the window: nothing new
    wait_matched(lab, rule_id, 80)
    assert lab.engine.take_notifications() == []

    lab.engine.set_notify_window(0.2)
    time.sleep(0.4)
    send(lab, "239.7.7.7", 5000, 20)  # the window has passed: reported again, once
    wait_matched(lab, rule_id, 100)
    assert lab.engine.take_notifications() == expected[:1]


def test_a_catch_all_rule_reports_groups_without_a_rule(relay_lab) -> None:
    """At a source's DR: the zero-output 224.0.0.0/4 any-port rule reports
    each group no other rule takes, and forwards nothing."""
    lab = relay_lab()
    c = lab.c
    catch_all = lab.engine.add_rule(Rule(c.relay_in, CATCH_ALL, 0, (), notify=True))
    ruled = lab.engine.add_rule(Rule(c.relay_in, "239.8.8.8", 5000, (Output("239.8.8.9", 5000, c.relay_out[0]),)))
    sink = lab.sink(0, "239.8.8.1", 5001)

    send(lab, "239.8.8.1", 5001, 10)
    send(lab, "239.8.8.2", 5002, 10)
    send(lab, "239.8.8.8", 5000, 10)  # has its own rule: not the catch-all's
    stats = wait_matched(lab, catch_all, 20)
    wait_matched(lab, ruled, 10)

    assert lab.engine.take_notifications() == [
        {"rule_id": catch_all, "source": c.source_addr, "group": g, "input": c.relay_in, "dr": None}
        for g in ("239.8.8.1", "239.8.8.2")]
    assert stats["drops"]["no_rule"] == 0, stats["drops"]
    assert sink.receive(1, timeout=0.3) == [], "a zero-output rule forwarded something"


def test_a_full_pending_table_counts_its_overflow(relay_lab) -> None:
    lab = relay_lab()
    c = lab.c
    lab.engine.close()
    lab.engine = Engine(c.relay_ns, notify_pending=4)  # closed with the lab
    catch_all = lab.engine.add_rule(Rule(c.relay_in, CATCH_ALL, 0, (), notify=True))
    groups = [f"239.9.0.{i}" for i in range(1, 11)]

    for group in groups:
        send(lab, group, 6000, 5)
    stats = wait_matched(lab, catch_all, 50)

    # The first four groups fill the table; every packet of the other six finds it full.
    assert [n["group"] for n in lab.engine.take_notifications()] == groups[:4]
    assert stats["drops"]["notify_overflow"] == 6 * 5, stats["drops"]
    send(lab, groups[4], 6000, 1)  # taken, so there is room again; the overflowed group is reported now
    wait_matched(lab, catch_all, 51)
    assert [n["group"] for n in lab.engine.take_notifications()] == [groups[4]]
