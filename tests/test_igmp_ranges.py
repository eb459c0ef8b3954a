"""A receiver-driven rule for a group range on any port, in the daemon:
each group of the range goes, on whatever port it was sent, only to the
links whose Linux hosts joined it; MCR joins exactly those groups upstream.
Ordinary UDP sockets send and receive, counted exactly."""

from __future__ import annotations

import json
import socket
import subprocess

from daemon_support import daemon, wait_for
from test_igmp_receivers import FAST

from mcr.lab import Capture, UdpSender, UdpSink, chain, numbered_payloads, payload_seq

COUNT = 200
RANGE = "239.1.0.0/16"
BOTH, ONLY_SECOND, OUTSIDE = "239.1.2.3", "239.1.9.9", "239.2.0.1"


def upstream_macs(lab) -> str:
    return subprocess.run(["ip", "-n", lab.relay_ns, "maddr", "show", "dev", lab.relay_in], capture_output=True,
                          text=True, check=True, timeout=10).stdout


def test_a_range_rule_on_any_port_follows_each_groups_listeners(tmp_path):
    with chain(n_sinks=2) as lab:
        path = tmp_path / "mcr.json"
        path.write_text(json.dumps({"workers": 1, "igmp": {"interfaces": {o: FAST for o in lab.relay_out}},
                                    "rules": [{"input_interface": lab.relay_in, "group": RANGE, "port": "any",
                                               "members": list(lab.relay_out)}]}))
        with daemon(lab, tmp_path, config=path) as d, \
                UdpSink(lab.sink_ns[0], BOTH, 5000, lab.sink_if[0]) as first_both, \
                UdpSink(lab.sink_ns[1], BOTH, 6000, lab.sink_if[1]) as second_both, \
                UdpSink(lab.sink_ns[1], ONLY_SECOND, 7000, lab.sink_if[1]) as second_only, \
                UdpSink(lab.sink_ns[1], OUTSIDE, 5000, lab.sink_if[1]) as outside:
            wait_for(lambda: len(d.client.call("igmp.groups")["groups"]) == 4, 3, "MCR to learn the four memberships")
            wait_for(lambda: len([r for r in d.client.mroute() if r["state"] == "active"]) == 2, 3,
                     "a route for each joined group of the range")
            first_link = Capture(lab.sink_ns[0], lab.sink_if[0], max_seconds=20)
            with UdpSender(lab.source_ns, lab.source_if, ttl=8) as sender:
                for group, port in ((BOTH, 5000), (BOTH, 6000), (ONLY_SECOND, 7000), (OUTSIDE, 5000)):
                    assert sender.send(numbered_payloads(COUNT, 80), group, port, rate_pps=2000) == COUNT

            def seqs(sink) -> list[int]:
                return sorted(payload_seq(r.payload)[1] for r in sink.receive(COUNT + 1, timeout=2, idle=0.5))

            assert seqs(first_both) == list(range(COUNT)), "first host, joined group, port 5000"
            assert seqs(second_both) == list(range(COUNT)), "second host, joined group, port 6000"
            assert seqs(second_only) == list(range(COUNT)), "second host, the group only it joined"
            frames = first_link.stop()
            assert not [f for f in frames if f[12:14] == b"\x08\x00" and f[30:34] == socket.inet_aton(ONLY_SECOND)], \
                "the first host's link got a group nobody there joined"
            assert seqs(outside) == [], "a group outside the range was relayed"
            macs = upstream_macs(lab)
            assert "01:00:5e:01:02:03" in macs and "01:00:5e:01:09:09" in macs, macs
            assert "01:00:5e:02:00:01" not in macs, macs
