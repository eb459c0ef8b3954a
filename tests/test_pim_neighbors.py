"""PIM Hello against FRRouting's pimd on one link: MCR and FRR become
neighbors, both elect the same DR (by priority, then by address), MCR
notices FRR's restart (its goodbye, or a new generation ID) and holds the
generation ID FRR reports, and FRR drops MCR at once
when MCR stops (a Hello with holdtime 0). Every Hello MCR sends parses in
scapy's PIM dissector."""

from __future__ import annotations

import json

import pytest
from daemon_support import daemon, wait_for

from mcr.lab import Capture, chain, frr

pytestmark = pytest.mark.skipif(not frr.available(), reason="FRR (Debian frr) is not installed")

FAST = {"hello_period": 1, "triggered_hello_delay": 0.5}


def frr_config(ifname: str, priority: int = 1) -> str:
    return (f"frr defaults traditional\nhostname peer\ninterface {ifname}\n ip pim\n ip pim hello 1 4\n"
            f" ip pim drpriority {priority}\n!\n")


def mcr_neighbors(d) -> dict[str, dict]:
    return {n["address"]: n for n in d.client.call("pim.neighbors")["neighbors"]}


def mcr_interface(d) -> dict:
    interfaces = d.client.call("pim.interfaces")["interfaces"]
    return interfaces[0] if interfaces else {}


def frr_interface(peer: frr.Frr, ifname: str) -> dict:
    return peer.show("show ip pim interface json").get(ifname, {})


def frr_generation_id(peer: frr.Frr, ifname: str) -> int | None:
    """The generation ID FRR's Hellos carry on `ifname`, by FRR's own account."""
    return peer.show(f"show ip pim interface {ifname} json").get(ifname, {}).get("helloGenerationId")


def frr_neighbors(peer: frr.Frr, ifname: str) -> dict:
    return peer.show("show ip pim neighbor json").get(ifname, {})


@pytest.mark.parametrize("mcr_priority, dr", [(1, "frr"), (10, "mcr")])
def test_mcr_and_frr_become_neighbors_and_agree_on_the_dr(tmp_path, mcr_priority, dr):
    from scapy.contrib.pim import PIMv2Hdr, PIMv2Hello
    from scapy.layers.l2 import Ether

    with chain(n_sinks=1) as lab:
        out, peer_if = lab.relay_out[0], lab.sink_if[0]
        mcr_address, frr_address = lab.relay_out_addr[0], lab.sink_addr[0]
        path = tmp_path / "mcr.json"
        path.write_text(json.dumps({"workers": 1, "pim": {"interfaces": {out: {**FAST, "dr_priority": mcr_priority}}}}))
        capture = Capture(lab.sink_ns[0], peer_if, max_seconds=30)
        with daemon(lab, tmp_path, config=path) as d, frr.Frr(lab.sink_ns[0], frr_config(peer_if)) as peer:
            wait_for(lambda: frr_address in mcr_neighbors(d), 10, "MCR to see FRR as neighbor")
            wait_for(lambda: mcr_address in frr_neighbors(peer, peer_if), 10, "FRR to see MCR as neighbor")
            expected = frr_address if dr == "frr" else mcr_address  # equal priorities: the higher address
            wait_for(lambda: mcr_interface(d).get("dr") == expected, 5, f"MCR to elect {expected}")
            wait_for(lambda: frr_interface(peer, peer_if).get("pimDesignatedRouter") == expected, 10,
                     f"FRR to elect {expected}")
            neighbor = mcr_neighbors(d)[frr_address]
            assert neighbor["dr_priority"] == 1 and neighbor["generation_id"] is not None
            text = d.mcr("pim", "neighbors").stdout
            assert frr_address in text and out in text, text

            if dr == "frr":
                # FRR restarts: MCR sees it go (its goodbye) and come back.
                events = d.client.subscribe(timeout=15)
                peer.stop_daemon("pimd")
                peer.start_daemon("pimd")
                with events:
                    changes = []
                    for event in events:
                        if event["event"] == "pim-neighbor" and event["address"] == frr_address:
                            changes.append(event["change"])
                            if event["change"] in ("restarted", "up"):
                                break
                # FRR's goodbye (holdtime 0) then its new Hello; without the
                # goodbye, a new generation ID (RFC 7761 4.3.1).
                assert changes in (["restarted"], ["down", "up"]), changes
                # MCR holds the generation ID FRR says it sends. (FRR 8.4 does
                # not always draw a new one: its restarted pimd reported the
                # same ID as before in 2 runs of 10 here.)
                wait_for(lambda: mcr_neighbors(d).get(frr_address, {}).get("generation_id")
                         == frr_generation_id(peer, peer_if),
                         10, "MCR to hold FRR's generation ID after its restart")
        hellos = [Ether(f) for f in capture.stop()]
        ours = [f for f in hellos if f.haslayer("IP") and f["IP"].src == mcr_address and f["IP"].proto == 103]
        assert ours, "no PIM from MCR on the wire"
        for frame in ours:
            assert (frame["IP"].dst, frame["IP"].ttl) == ("224.0.0.13", 1)
            pim = PIMv2Hdr(bytes(frame["IP"].payload))
            assert pim.type == 0 and pim.haslayer(PIMv2Hello)


def test_frr_drops_mcr_at_once_when_mcr_stops(tmp_path):
    with chain(n_sinks=1) as lab:
        out, peer_if = lab.relay_out[0], lab.sink_if[0]
        path = tmp_path / "mcr.json"
        # A long holdtime: without the goodbye FRR would keep MCR for 100 s.
        path.write_text(json.dumps({"workers": 1, "pim": {"interfaces": {out: {**FAST, "hello_holdtime": 100}}}}))
        with frr.Frr(lab.sink_ns[0], frr_config(peer_if)) as peer:
            with daemon(lab, tmp_path, config=path):
                wait_for(lambda: lab.relay_out_addr[0] in frr_neighbors(peer, peer_if), 10, "FRR to see MCR")
            wait_for(lambda: lab.relay_out_addr[0] not in frr_neighbors(peer, peer_if), 3,
                     "FRR to drop MCR on its goodbye Hello")
