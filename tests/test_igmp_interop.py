"""MCR's querier against implementations we did not write.

- FRRouting's pimd as a competing IGMP querier on the same link: the lower
  address wins whichever side it is on, and MCR takes over once FRR is gone
  and Other Querier Present has expired (RFC 3376 6.6.2).
- A Linux bridge with IGMP snooping and no querier of its own between MCR
  and a host: it forwards by membership only while some querier is heard,
  and its memberships last only as long as hosts keep answering queries. With
  MCR querying, the host keeps getting the group well past the bridge's
  membership interval.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest
from daemon_support import daemon, wait_for
from test_igmp_receivers import GROUP, PORT, Member, Stream, data_times

from mcr.lab import Capture, Lab, chain, frr

pytestmark = pytest.mark.skipif(not frr.available(), reason="FRR (Debian frr) is not installed")

# MCR: query every 2 s, so Other Querier Present is 2 x 2 + 1 / 2 = 4.5 s.
FAST = {"query_interval": 2, "query_response_interval": 1, "last_member_query_interval": 0.2}
OTHER_QUERIER_PRESENT = 4.5


def frr_config(ifname: str) -> str:
    # The response time (tenths) must come down before the query interval may.
    return (f"frr defaults traditional\nhostname peer\ninterface {ifname}\n ip igmp\n"
            " ip igmp query-max-response-time 10\n ip igmp query-interval 2\n!\n")


def mcr_querier(d) -> dict:
    interfaces = d.client.call("igmp.interfaces")["interfaces"]
    return interfaces[0] if interfaces else {}


def frr_querier(peer: frr.Frr, ifname: str) -> dict:
    return peer.show("show ip igmp interface json").get(ifname, {})


@pytest.mark.skipif(bool(frr.missing(routing=True)), reason=frr.missing(routing=True))
def test_querier_election_against_frr_both_ways_and_takeover(tmp_path):
    with chain(n_sinks=1) as lab:
        out, peer_if = lab.relay_out[0], lab.sink_if[0]
        path = tmp_path / "mcr.json"
        path.write_text(json.dumps({"workers": 1, "igmp": {"interfaces": {out: FAST}}}))
        with daemon(lab, tmp_path, config=path) as d, frr.Frr(lab.sink_ns[0], frr_config(peer_if)) as peer:
            # MCR has the lower address (.1 against FRR's .2): MCR queries, FRR defers.
            # (FRR's JSON leaves "querier" out when it is not the querier.)
            wait_for(lambda: frr_querier(peer, peer_if).get("querierIp") == lab.relay_out_addr[0], 10,
                     "FRR to defer to MCR")
            assert not frr_querier(peer, peer_if).get("querier")
            assert mcr_querier(d)["querier"] is True

            # MCR's side is re-addressed above FRR's: FRR wins, MCR defers to it.
            # (The new address is promoted when the old one goes, so the link is never without one.)
            lab.lab.set_sysctl(lab.relay_ns, f"net.ipv4.conf.{out}.promote_secondaries", 1)
            subprocess.run(["ip", "-n", lab.relay_ns, "addr", "add", "10.200.1.9/24", "dev", out], check=True,
                           timeout=10)
            subprocess.run(["ip", "-n", lab.relay_ns, "addr", "del", "10.200.1.1/24", "dev", out], check=True,
                           timeout=10)
            wait_for(lambda: mcr_querier(d).get("address") == "10.200.1.9", 5, "MCR to take its new address")
            wait_for(lambda: mcr_querier(d).get("querier") is False, 15, "MCR to defer to FRR")
            assert mcr_querier(d)["querier_address"] == lab.sink_addr[0]
            wait_for(lambda: frr_querier(peer, peer_if).get("querier") is True, 10, "FRR to be querier")
            assert frr_querier(peer, peer_if)["querierIp"] == lab.sink_addr[0]

            # FRR goes away: MCR takes over once Other Querier Present has run out.
            peer.stop_daemon("pimd")
            stopped = time.monotonic()
            wait_for(lambda: mcr_querier(d).get("querier") is True, OTHER_QUERIER_PRESENT + 3, "MCR to take over")
            took = time.monotonic() - stopped
            assert took >= OTHER_QUERIER_PRESENT - 2.5, f"MCR took over after {took:.1f} s, before the timer ran out"
            assert mcr_querier(d)["querier_address"] == "10.200.1.9"


def test_a_snooping_bridge_forwards_by_membership_because_mcr_queries(tmp_path):
    """Two hosts behind the bridge, one a member. Without a querier the bridge
    floods the group to both; with MCR querying it sends the group only to
    the member, and keeps doing so past its membership interval because the
    member answers MCR's queries (an unrefreshed membership would expire and
    the group would be flooded to the other host again)."""
    # Longer than MCR's Group Membership Interval (RFC 3376 8.4: 2 x 2 + 1 s), as
    # a switch's is (Linux's default is 260 s against a querier's 125 s default):
    # the membership expires only if three queries in a row go unanswered.
    membership_interval = 8.0
    with Lab(prefix="mcrb") as lab:
        src, relay, sw, member_ns, other_ns = (lab.add_namespace(r) for r in ("src", "relay", "sw", "hosta", "hostb"))
        src_if, relay_in = lab.add_link(src, relay, "10.201.0.2/24", "10.201.0.1/24")
        lab.add_route(src, "224.0.0.0/4", src_if)
        relay_out, relay_port = lab.add_link(relay, sw, "10.201.1.1/24", None)
        member_if, member_port = lab.add_link(member_ns, sw, "10.201.1.2/24", None)
        other_if, other_port = lab.add_link(other_ns, sw, "10.201.1.3/24", None)
        for ns, ifname in ((member_ns, member_if), (other_ns, other_if)):
            lab.add_route(ns, "224.0.0.0/4", ifname)
        # Snooping, no querier of its own, memberships that last 8 s unless refreshed.
        lab.add_bridge(sw, [relay_port, member_port, other_port], mcast_snooping=1, mcast_querier=0,
                       mcast_membership_interval=int(membership_interval * 100), mcast_igmp_version=3)

        class Topology:  # what daemon_support, Stream and Member need
            relay_ns, source_ns, source_if = relay, src, src_if

        path = tmp_path / "mcr.json"
        path.write_text(json.dumps({"workers": 1, "igmp": {"interfaces": {relay_out: FAST}}, "rules": [
            {"input_interface": relay_in, "group": GROUP, "port": PORT, "outputs": [f"{GROUP}:{PORT}:{relay_out}"]}]}))
        with daemon(Topology, tmp_path, config=path) as d, Stream(Topology):
            member = Member(member_ns, member_if)
            to_member, to_other = Capture(member_ns, member_if, max_seconds=60), Capture(other_ns, other_if,
                                                                                        max_seconds=60)

            watching = time.monotonic()

            def settled() -> bool:  # the bridge forwards by membership: the other host got nothing for 1 s
                recent = time.monotonic() - 1.0
                # Only a full second watched counts: in the first one the other host's
                # capture may not have seen the flood that is already on its way.
                return recent > watching and any(t > recent for t in data_times(to_member)) and not any(
                    t > recent for t in data_times(to_other))

            wait_for(settled, 30, "the bridge to forward by membership", interval=0.2)
            assert d.client.call("igmp.interfaces")["interfaces"][0]["querier"] is True
            since = time.monotonic()
            time.sleep(2 * membership_interval)
            to_member.stop()
            to_other.stop()
            member.leave()
        arrived = [t for t in data_times(to_member) if t >= since]
        gaps = [b - a for a, b in zip(arrived, arrived[1:])]
        assert arrived and max(arrived) - since > 1.8 * membership_interval, "the group stopped reaching the member"
        assert max(gaps) < 1.0, f"the member went {max(gaps):.1f} s without the group"
        assert [t for t in data_times(to_other) if t >= since] == [], \
            "the bridge flooded the group to the other host: its membership expired"
