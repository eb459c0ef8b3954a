"""`mcr daemon` follows interfaces that appear late, vanish and come back.

A rule may name an interface that does not exist yet (a VPN or container
link): it is accepted and waits; when an interface of that name appears it
forwards, and when that interface is deleted and created again (same name,
new index) forwarding resumes, without restarting a worker or costing the
other rules a packet. Traffic comes from an ordinary UDP socket and is
counted exactly by ordinary receivers.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import threading
import time

from daemon_support import daemon, wait_for

from mcr.lab import UdpSender, UdpSink, chain, numbered_payloads, payload_seq

GROUP, PORT = "239.1.1.1", 5000
LATE_GROUP, LATE_PORT = "239.4.4.4", 6400
COUNT, SIZE = 300, 200


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, timeout=30)


def create_late_link(lab, name: str, peer: str) -> None:
    """A veth pair: `name` in the relay namespace, `peer` in sink 0's, addressed and up."""
    ip("-n", lab.relay_ns, "link", "add", name, "type", "veth", "peer", "name", peer, "netns", lab.sink_ns[0])
    ip("-n", lab.relay_ns, "addr", "add", "10.220.0.1/24", "dev", name)
    ip("-n", lab.sink_ns[0], "addr", "add", "10.220.0.2/24", "dev", peer)
    ip("-n", lab.relay_ns, "link", "set", name, "up")
    ip("-n", lab.sink_ns[0], "link", "set", peer, "up")


class Bystander(threading.Thread):
    """An ordinary sender feeding a rule no change touches, all along: it
    must not lose a packet to what happens to the other rules."""

    GROUP = "239.1.1.7"

    def __init__(self, lab) -> None:
        super().__init__(daemon=True)
        self.lab, self.sent = lab, 0
        self.stop = threading.Event()

    def run(self) -> None:
        payloads = numbered_payloads(30_000, 100, stream=9)
        with UdpSender(self.lab.source_ns, self.lab.source_if, ttl=8) as sender:
            while not self.stop.is_set() and self.sent < len(payloads):
                self.sent += sender.send(payloads[self.sent:self.sent + 50], self.GROUP, PORT, rate_pps=1000)

    def finish(self, sink: UdpSink) -> list[int]:
        """Stop sending; the sequence numbers `sink` got."""
        self.stop.set()
        self.join(10)
        return sorted(payload_seq(r.payload)[1] for r in sink.receive(self.sent + 1, timeout=3, idle=0.5))


def rule_states(d) -> dict[int, str]:
    return {r["id"]: r["state"] for r in json.loads(d.mcr("rules", "list", "--json").stdout)["rules"]}


def relayed(sink: UdpSink, count: int, sender: UdpSender, stream: int) -> list[int]:
    """Send `count` datagrams of `stream` and return the sequence numbers `sink` got."""
    assert sender.send(numbered_payloads(count, SIZE, stream=stream), GROUP, PORT, rate_pps=2000) == count
    return sorted(payload_seq(r.payload)[1] for r in sink.receive(count + 1, timeout=3, idle=0.5)
                  if payload_seq(r.payload)[0] == stream)


def test_rule_waits_for_its_interface_and_follows_it(tmp_path) -> None:
    late, peer = f"mcrl{secrets.token_hex(3)}", f"mcrp{secrets.token_hex(3)}"
    with chain(n_sinks=1) as lab, daemon(lab, tmp_path) as d:
        steady = f"in={lab.relay_in} group={GROUP}:{PORT} out=239.2.2.2:6000:{lab.relay_out[0]}"
        waiting = f"in={lab.relay_in} group={GROUP}:{PORT} source={lab.source_addr} out={LATE_GROUP}:{LATE_PORT}:{late}"
        d.mcr("rules", "add", "--rule", steady)
        d.mcr("rules", "add", "--rule", waiting)
        d.mcr("rules", "add", "--rule", f"in={lab.relay_in} group={Bystander.GROUP}:{PORT} "
                                        f"out=239.2.2.7:6007:{lab.relay_out[0]}")
        assert rule_states(d) == {1: "active", 2: "waiting", 3: "active"}
        bystander_sink = UdpSink(lab.sink_ns[0], "239.2.2.7", 6007, lab.sink_if[0])
        bystander = Bystander(lab)
        bystander.start()
        listed = d.mcr("rules", "list").stdout
        assert f"waiting for {late}" in listed, listed
        pids = d.worker_pids()

        with UdpSender(lab.source_ns, lab.source_if, ttl=8) as sender, \
                UdpSink(lab.sink_ns[0], "239.2.2.2", 6000, lab.sink_if[0]) as steady_sink:
            # The (S,G) rule waits, so its traffic takes the (*,G) rule meanwhile.
            assert relayed(steady_sink, COUNT, sender, 0) == list(range(COUNT))

            create_late_link(lab, late, peer)
            appeared = time.monotonic()
            wait_for(lambda: rule_states(d)[2] == "active", 5, "the rule to see its interface")
            assert time.monotonic() - appeared < 2.5, "the rule took more than 2.5 s to follow its interface"
            with UdpSink(lab.sink_ns[0], LATE_GROUP, LATE_PORT, peer) as late_sink:
                assert relayed(late_sink, COUNT, sender, 1) == list(range(COUNT))

                # Deleted: the rule waits again; then the same name with a new index.
                ip("-n", lab.relay_ns, "link", "del", late)
                wait_for(lambda: rule_states(d)[2] == "waiting", 5, "the rule to wait again")
                assert relayed(steady_sink, COUNT, sender, 2) == list(range(COUNT))
            create_late_link(lab, late, peer)
            wait_for(lambda: rule_states(d)[2] == "active", 5, "the rule to follow the new interface")
            with UdpSink(lab.sink_ns[0], LATE_GROUP, LATE_PORT, peer) as late_sink:
                assert relayed(late_sink, COUNT, sender, 3) == list(range(COUNT))

        with bystander_sink:
            got = bystander.finish(bystander_sink)
        assert bystander.sent > 1000 and got == list(range(bystander.sent)), \
            f"the untouched rule got {len(got)} of {bystander.sent} while the others changed"
        assert d.worker_pids() == pids, "a worker was restarted"
        stats = json.loads(d.mcr("stats", "--json").stdout)
        # The (S,G) rule relayed streams 1 and 3, on two interfaces of one name: its counter carried on.
        assert stats["rules"]["2"]["packets"] == 2 * COUNT, stats["rules"]["2"]
        assert stats["rules"]["1"]["packets"] == 2 * COUNT, stats["rules"]["1"]
        assert stats.get("task_faults", {}) == {}, stats.get("task_faults")
        # The health/drift loop outlived every change (it died here once: "no interface named ...").
        passes = stats["health_passes"]
        wait_for(lambda: json.loads(d.mcr("stats", "--json").stdout)["health_passes"] >= passes + 2, 5,
                 "the health loop to keep running")


def test_address_mtu_and_rename_under_traffic(tmp_path) -> None:
    with chain(n_sinks=1, mtu=9000) as lab, daemon(lab, tmp_path) as d:
        out = lab.relay_out[0]
        d.mcr("rules", "add", "--rule", f"in={lab.relay_in} group={GROUP}:{PORT} out=239.2.2.2:6000:{out}")
        with UdpSender(lab.source_ns, lab.source_if, ttl=8) as sender, \
                UdpSink(lab.sink_ns[0], "239.2.2.2", 6000, lab.sink_if[0]) as sink:
            def round_trip(stream: int, size: int = SIZE) -> list:
                assert sender.send(numbered_payloads(COUNT, size, stream=stream), GROUP, PORT, rate_pps=2000) == COUNT
                got = [r for r in sink.receive(COUNT + 1, timeout=3, idle=0.5) if payload_seq(r.payload)[0] == stream]
                assert sorted(payload_seq(r.payload)[1] for r in got) == list(range(COUNT)), f"stream {stream}"
                return got

            assert {r.src[0] for r in round_trip(0)} == {"10.200.1.1"}
            # A new address: frames leave with it (the templates are rewritten in place).
            ip("-n", lab.relay_ns, "addr", "del", "10.200.1.1/24", "dev", out)
            ip("-n", lab.relay_ns, "addr", "add", "10.200.1.9/24", "dev", out)
            wait_for(lambda: "now 10.200.1.9" in d.log.read_text(), 5, "the daemon to update the output's address")
            assert {r.src[0] for r in round_trip(1)} == {"10.200.1.9"}
            # A lower MTU: 4000-byte payloads no longer fit one frame, and arrive whole all the same.
            ip("-n", lab.relay_ns, "link", "set", out, "mtu", "1500")
            wait_for(lambda: "MTU 1500" in d.log.read_text(), 5, "the daemon to update the output's MTU")
            round_trip(2, size=4000)
            # Renamed away: the rule keeps the name it was given, so it waits.
            ip("-n", lab.relay_ns, "link", "set", out, "name", "mcrrenamed0")
            wait_for(lambda: rule_states(d)[1] == "waiting", 5, "the rule to wait for its interface name")
            ip("-n", lab.relay_ns, "link", "set", "mcrrenamed0", "name", out)
            wait_for(lambda: rule_states(d)[1] == "active", 5, "the rule to take the name back")
            round_trip(3)
        stats = json.loads(d.mcr("stats", "--json").stdout)
        assert stats.get("task_faults", {}) == {}, stats.get("task_faults")


def test_interfaces_and_mroute_show_what_is_forwarded_and_why(tmp_path) -> None:
    with chain(n_sinks=1) as lab, daemon(lab, tmp_path) as d:
        d.mcr("rules", "add", "--rule", f"in={lab.relay_in} group={GROUP}:{PORT} out=239.2.2.2:6000:{lab.relay_out[0]}")
        d.mcr("rules", "add", "--rule", f"in={lab.relay_in} group=239.1.1.2:{PORT} out=239.2.2.2:6000:mcrnothere0")
        with UdpSender(lab.source_ns, lab.source_if, ttl=8) as sender, \
                UdpSink(lab.sink_ns[0], "239.2.2.2", 6000, lab.sink_if[0]) as sink:
            assert relayed(sink, COUNT, sender, 0) == list(range(COUNT))

        interfaces = {i["name"]: i for i in json.loads(d.mcr("interfaces", "--json").stdout)["interfaces"]}
        relay_in = interfaces[lab.relay_in]
        assert relay_in["up"] and relay_in["carrier"] and relay_in["mtu"] == 1500
        assert relay_in["addresses"] == ["10.200.0.1/24"] and relay_in["rules"] == [1, 2]
        assert interfaces["mcrnothere0"] == {"name": "mcrnothere0", "index": None, "rules": [2]}
        text = d.mcr("interfaces").stdout
        assert "missing" in text and lab.relay_out[0] in text

        routes = {r["id"]: r for r in json.loads(d.mcr("mroute", "--json").stdout)["routes"]}
        assert (routes[1]["origin"], routes[1]["state"], routes[1]["packets"]) == ("static", "active", COUNT)
        assert (routes[2]["state"], routes[2]["waiting_for"], routes[2]["packets"]) == \
            ("waiting", ["mcrnothere0"], 0)
        assert "waiting (mcrnothere0)" in d.mcr("mroute").stdout


def packet_sockets(ns: str, ifindex: int, pid: int) -> tuple[int, int]:
    """(packet sockets on `ifindex` in `ns`, ring mappings of process `pid`)."""
    rows = subprocess.run(["ip", "netns", "exec", ns, "cat", "/proc/net/packet"], capture_output=True, text=True,
                          check=True, timeout=10).stdout.splitlines()[1:]
    sockets = sum(1 for row in rows if int(row.split()[4]) == ifindex)
    with open(f"/proc/{pid}/maps") as maps:
        rings = sum(1 for line in maps if "socket:" in line or "packet" in line)
    return sockets, rings


def test_sockets_and_rings_follow_use(tmp_path) -> None:
    from mcr.lab import interface_index

    with chain(n_sinks=2) as lab, daemon(lab, tmp_path) as d:
        (pid,) = d.worker_pids()
        out1 = interface_index(lab.relay_ns, lab.relay_out[1])
        d.mcr("rules", "add", "--rule", f"in={lab.relay_in} group={GROUP}:{PORT} out=239.2.2.2:6000:{lab.relay_out[0]}")
        before = packet_sockets(lab.relay_ns, out1, pid)
        d.mcr("rules", "add", "--rule", f"in={lab.relay_in} group=239.1.1.3:{PORT} out=239.2.2.3:6000:{lab.relay_out[1]}")
        with_rule = packet_sockets(lab.relay_ns, out1, pid)
        assert with_rule[0] == before[0] + 1 and with_rule[1] > before[1], (before, with_rule)
        d.mcr("rules", "remove", "2")
        assert packet_sockets(lab.relay_ns, out1, pid) == before, "the output's packet socket or its ring stayed"
        with UdpSender(lab.source_ns, lab.source_if, ttl=8) as sender, \
                UdpSink(lab.sink_ns[0], "239.2.2.2", 6000, lab.sink_if[0]) as sink:
            assert relayed(sink, COUNT, sender, 0) == list(range(COUNT)), "the other rule stopped"
        d.mcr("rules", "add", "--rule", f"in={lab.relay_in} group=239.1.1.3:{PORT} out=239.2.2.3:6000:{lab.relay_out[1]}")
        assert packet_sockets(lab.relay_ns, out1, pid) == with_rule


def test_the_supervisor_runs_on_one_thread(tmp_path) -> None:
    """One asyncio loop does everything: netlink, IGMP membership, the control
    socket, the workers' channels. No helper thread bridges anything."""
    import os

    from scapy.contrib.igmpv3 import IGMPv3
    from scapy.layers.inet import IP
    from scapy.layers.l2 import Ether

    from mcr.lab import Capture

    with chain(n_sinks=1) as lab, daemon(lab, tmp_path) as d:
        capture = Capture(lab.source_ns, lab.source_if, max_seconds=10)
        d.mcr("rules", "add", "--rule", f"in={lab.relay_in} group={GROUP}:{PORT} out=239.2.2.2:6000:{lab.relay_out[0]}")
        with UdpSender(lab.source_ns, lab.source_if, ttl=8) as sender, \
                UdpSink(lab.sink_ns[0], "239.2.2.2", 6000, lab.sink_if[0]) as sink:
            assert relayed(sink, COUNT, sender, 0) == list(range(COUNT))
        reports = [Ether(f)[IP] for f in capture.stop() if IP in Ether(f) and Ether(f)[IP].proto == 2]
        groups = {r.maddr for p in reports if IGMPv3 in p for r in IGMPv3(bytes(p[IP].payload)).records}
        assert GROUP in groups, f"the relay sent no IGMPv3 report for {GROUP}: {reports}"
        threads = os.listdir(f"/proc/{d.process.pid}/task")
        assert len(threads) == 1, f"the supervisor has {len(threads)} threads"
        # It still joins the group the rule needs (IGMP on that loop).
        maddr = subprocess.run(["ip", "-n", lab.relay_ns, "maddr", "show", "dev", lab.relay_in],
                               capture_output=True, text=True, check=True, timeout=10).stdout
        assert "01:00:5e:01:01:01" in maddr, maddr


def test_an_input_interface_deleted_leaves_its_rule_waiting(tmp_path) -> None:
    late, peer = f"mcri{secrets.token_hex(3)}", f"mcrq{secrets.token_hex(3)}"
    with chain(n_sinks=1) as lab, daemon(lab, tmp_path) as d:
        create_late_link(lab, late, peer)
        d.mcr("rules", "add", "--rule", f"in={late} group={GROUP}:{PORT} out=239.2.2.2:6000:{lab.relay_out[0]}")
        assert rule_states(d) == {1: "active"}
        ip("-n", lab.relay_ns, "link", "del", late)
        wait_for(lambda: rule_states(d)[1] == "waiting", 5, "the rule to wait for its input")
        create_late_link(lab, late, peer)
        wait_for(lambda: rule_states(d)[1] == "active", 5, "the rule to take the new input")
        stats = json.loads(d.mcr("stats", "--json").stdout)
        assert stats.get("task_faults", {}) == {}, stats.get("task_faults")


def test_events_stream_links_addresses_rules_and_workers(tmp_path) -> None:
    """`mcr events` reports what `ip` and the user did, in order, as they happen
    (the address brings its connected route, which goes with it)."""
    import os
    import signal

    late, peer = f"mcre{secrets.token_hex(3)}", f"mcrf{secrets.token_hex(3)}"
    with chain(n_sinks=1) as lab, daemon(lab, tmp_path) as d, d.client.subscribe(timeout=5) as stream:
        d.mcr("rules", "add", "--rule", f"in={late} group={GROUP}:{PORT} out=239.2.2.2:6000:{lab.relay_out[0]}")
        create_late_link(lab, late, peer)
        wait_for(lambda: rule_states(d) == {1: "active"}, 5, "the rule to take the new link")
        ip("-n", lab.relay_ns, "addr", "del", "10.220.0.1/24", "dev", late)
        (pid,) = d.worker_pids()
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: d.worker_pids() not in ([], [pid]), 10, "the worker to be restarted")
        ip("-n", lab.relay_ns, "link", "del", late)
        wait_for(lambda: rule_states(d) == {1: "waiting"}, 5, "the rule to wait again")

        seen: list[tuple] = []
        wanted = [("rule", "added"), ("link", "added"), ("rule", "state"), ("address", "added"),
                  ("address", "removed"), ("worker", "exited"), ("worker", "running"),
                  ("link", "removed"), ("rule", "state"), ("route", "added"), ("route", "removed")]
        for event in stream:
            if event["event"] == "route" and event["destination"] != "10.220.0.0/24":
                continue  # the connected route of the address is the one we follow
            if event.get("name", event.get("interface")) in (late, None) or event["event"] in ("rule", "route"):
                seen.append((event["event"], event.get("change")))
                if event["event"] == "address":
                    assert event["address"] == "10.220.0.1/24" and event["interface"] == late, event
            if seen[-2:] == [("link", "removed"), ("rule", "state")] or len(seen) > 50:
                break
    # Nothing of these kinds left out or repeated (link "changed" events come between)...
    interesting = [e for e in seen if e in wanted]
    assert sorted(interesting) == sorted(wanted), seen
    # ... and each change after what caused it.
    # (Routes come on a socket of their own: no order against the address events.)
    for cause, effect in [(1, 2), (3, 4), (5, 6), (7, 8), (9, 10)]:
        after = interesting[interesting.index(wanted[cause]) + 1:]
        assert wanted[effect] in after, (wanted[cause], wanted[effect], seen)
