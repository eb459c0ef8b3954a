"""Static joins (`mcr igmp join`, as smcroutectl join) judged by a Linux
bridge with IGMP snooping: it forwards a group to MCR's port only while MCR
is a member, as it would for any host, and its mdb shows the membership.

    src ns --veth-- [ sw ns: br0, snooping + querier ] --veth-- relay ns (mcr daemon)
"""

from __future__ import annotations

import json
import secrets
import socket
import struct
import subprocess
from dataclasses import dataclass

import pytest
from daemon_support import Daemon, wait_for

from mcr.lab import Capture, Lab, UdpSender, interface_index, numbered_payloads, open_socket

GROUP, SSM_GROUP, SOURCE = "239.5.5.5", "232.5.5.5", "10.230.0.1"
PROBE = "239.5.5.99"


@dataclass
class Switched:
    relay_ns: str
    src_ns: str
    sw_ns: str
    src_if: str
    relay_if: str
    relay_port: str  # the bridge port facing MCR


@pytest.fixture
def switched():
    with Lab(prefix="mcrj") as lab:
        src, sw, relay = lab.add_namespace("src"), lab.add_namespace("sw"), lab.add_namespace("relay")
        src_if, src_port = lab.add_link(src, sw, f"{SOURCE}/24", None)
        relay_if, relay_port = lab.add_link(relay, sw, "10.230.0.2/24", None)
        # The bridge queries (every 2 s) and snoops; groups nobody joined are
        # not flooded to MCR's port, so only a membership brings them there.
        lab.add_bridge(sw, [src_port, relay_port], mcast_snooping=1, mcast_querier=1, mcast_query_interval=200,
                       mcast_query_response_interval=100, mcast_last_member_interval=20, mcast_igmp_version=3,
                       mcast_querier_interval=300)
        subprocess.run(["ip", "netns", "exec", sw, "bridge", "link", "set", "dev", relay_port, "mcast_flood", "off"],
                       check=True, timeout=10)
        switched = Switched(relay, src, sw, src_if, relay_if, relay_port)
        wait_for_snooping(switched)
        yield switched


def wait_for_snooping(s: Switched) -> None:
    """A new Linux bridge forwards by membership only some seconds after it
    comes up (about 10 s here, whatever its intervals); until then a member
    behind a mcast_flood-off port gets nothing. So a kernel socket joins a
    probe group on MCR's side, and we wait until the probe arrives."""
    member = open_socket(s.relay_ns, socket.AF_INET, socket.SOCK_DGRAM)
    with member:
        mreq = struct.pack("4s4si", socket.inet_aton(PROBE), socket.inet_aton("0.0.0.0"),
                           interface_index(s.relay_ns, s.relay_if))
        member.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
        wait_for(lambda: delivered(s, PROBE, 5) == 5, 30, "the bridge to forward by membership", interval=0.5)


def mdb(ns: str, port: str) -> set[tuple[str, str | None]]:
    """(group, source or None) the bridge forwards to `port`, from `bridge -j mdb show`."""
    out = subprocess.run(["ip", "netns", "exec", ns, "bridge", "-j", "mdb", "show"], capture_output=True, text=True,
                         check=True, timeout=10).stdout
    entries = [e for bridge in json.loads(out or "[]") for e in bridge.get("mdb", [])]
    return {(e["grp"], e.get("src")) for e in entries if e["port"] == port}


def delivered(s: Switched, group: str, count: int = 50) -> int:
    """Frames for `group` that reach MCR's interface while a kernel socket sends `count`."""
    capture = Capture(s.relay_ns, s.relay_if, max_seconds=5)
    with UdpSender(s.src_ns, s.src_if, ttl=8) as sender:
        assert sender.send(numbered_payloads(count, 64), group, 5000, rate_pps=1000) == count
    frames = capture.stop()
    return sum(1 for f in frames if f[12:14] == b"\x08\x00" and f[23] == 17 and f[30:34] == bytes(map(int, group.split("."))))


def test_a_static_join_makes_the_snooping_bridge_send_the_group(tmp_path, switched):
    s = switched
    d = Daemon(s, tmp_path)
    try:
        assert delivered(s, GROUP) == 0, "the bridge floods the group without a member: the test proves nothing"
        assert d.client.join(s.relay_if, GROUP) == "joined"
        wait_for(lambda: (GROUP, None) in mdb(s.sw_ns, s.relay_port), 5, "the bridge to learn MCR's membership")
        assert delivered(s, GROUP) == 50
        assert d.client.joins() == [{"interface": s.relay_if, "group": GROUP, "source": None, "state": "joined"}]

        # Source-specific: an IGMPv3 INCLUDE membership, as the bridge's mdb shows it.
        d.mcr("igmp", "join", s.relay_if, SSM_GROUP, "--source", SOURCE)
        wait_for(lambda: (SSM_GROUP, SOURCE) in mdb(s.sw_ns, s.relay_port), 5, "the (S,G) membership")
        assert delivered(s, SSM_GROUP) == 50

        # It survives a daemon restart (kept in the state file) ...
        d.stop()
        d = Daemon(s, tmp_path)
        assert [j["state"] for j in d.client.joins()] == ["joined", "joined"]
        # ... and leaving stops the traffic once the bridge's last-member query goes unanswered.
        d.mcr("igmp", "leave", s.relay_if, GROUP)
        wait_for(lambda: (GROUP, None) not in mdb(s.sw_ns, s.relay_port), 5, "the bridge to forget the membership")
        assert delivered(s, GROUP) == 0
        assert d.client.joins()[0]["group"] == SSM_GROUP
    finally:
        d.stop()


def test_a_join_waits_for_its_interface_and_follows_it(tmp_path, switched):
    s = switched
    late = f"mcrj{secrets.token_hex(3)}"
    d = Daemon(s, tmp_path)
    try:
        assert d.client.join(late, GROUP) == "waiting"
        # The interface appears: MCR's relay link renamed to the name the join waits for.
        subprocess.run(["ip", "-n", s.relay_ns, "link", "set", s.relay_if, "down"], check=True, timeout=10)
        subprocess.run(["ip", "-n", s.relay_ns, "link", "set", s.relay_if, "name", late], check=True, timeout=10)
        subprocess.run(["ip", "-n", s.relay_ns, "link", "set", late, "up"], check=True, timeout=10)
        wait_for(lambda: d.client.joins()[0]["state"] == "joined", 5, "the join to take the interface")
        wait_for(lambda: (GROUP, None) in mdb(s.sw_ns, s.relay_port), 5, "the bridge to learn the membership")
        s.relay_if = late
        assert delivered(s, GROUP) == 50
        with pytest.raises(Exception, match="already joined"):
            d.client.join(late, GROUP)
    finally:
        d.stop()
