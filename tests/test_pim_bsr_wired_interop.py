"""MCR learns its RP from a BSR, through FRRouting's pimd, and traffic
follows that RP, on a routed line

    src (+ BSR 10.99.0.1) --link 0-- FRR (the RP) --link 1-- MCR --link 2-- rcv

FRR 8.4 cannot be a candidate BSR, so the Bootstrap comes from a test-only
BSR in src: a raw IPPROTO_PIM socket that sends Hellos (FRR reads PIM only
from neighbors) and our encoder's Bootstrap naming FRR as the RP of
239.0.0.0/8. FRR accepts it (src is its RPF neighbor toward the BSR) and
forwards it (`ip pim bsm`) to MCR, whose daemon has no RP configured: it
must learn FRR as the RP (`mcr pim rp` shows a bsr row), join the shared
tree toward it, and relay a kernel sender's datagrams to a kernel receiver,
counted exactly."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from types import SimpleNamespace

import pytest
from daemon_support import daemon, wait_for
from test_pim_interop import FAST_HELLO, FAST_IGMP, GROUP, PORT, frr_config, frr_joins, send_and_count

from mcr.lab import UdpSink, frr
from mcr.lab.line import line
from mcr.lab.netns import open_socket
from mcr.protocols.pim_wire import ALL_PIM_ROUTERS, Hello, encode_hello
from mcr.protocols.pim_wire_more import Bootstrap, BsrGroup, BsrRp, encode_bootstrap

pytestmark = pytest.mark.skipif(bool(frr.missing(routing=True)), reason=frr.missing(routing=True))

BSR = "10.99.0.1"
IPPROTO_PIM = 103
SENDS, INTERVAL = 40, 0.5  # bounded: at most 40 Hello + Bootstrap rounds, one every half second


def bsr_socket(ns: str, address: str) -> socket.socket:
    sock = open_socket(ns, socket.AF_INET, socket.SOCK_RAW, IPPROTO_PIM)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(address))
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
    return sock


def mcr_bsr_rows(d) -> list[dict]:
    return [r for r in d.client.call("pim.rp")["rps"] if r["source"] == "bsr"]


def test_mcr_learns_the_rp_from_a_bootstrap_forwarded_by_frr_and_traffic_follows_it(tmp_path):
    with line(["src", "frr", "mcr", "rcv"]) as net:
        net.relay_ns = net.ns["mcr"]
        src_if, src_addr = net.left(0)
        rp = net.right(0)[1]  # FRR's address on the source's link
        frr_ifs = [name for name, _ in net.interfaces("frr")]
        frr_down, frr_down_addr = net.left(1)
        mcr_up, mcr_up_addr = net.right(1)
        mcr_down, _ = net.left(2)
        rcv_if, _ = net.right(2)
        # The BSR's address lives behind src: FRR routes it through src, MCR through FRR.
        subprocess.run(["ip", "-n", net.ns["src"], "addr", "add", f"{BSR}/32", "dev", "lo"], check=True, timeout=10)
        subprocess.run(["ip", "-n", net.ns["frr"], "route", "add", f"{BSR}/32", "via", src_addr], check=True,
                       timeout=10)
        subprocess.run(["ip", "-n", net.ns["mcr"], "route", "add", f"{BSR}/32", "via", frr_down_addr], check=True,
                       timeout=10)
        frr_conf = frr_config(frr_ifs, rp).replace(" ip pim hello 1 4\n", " ip pim hello 1 4\n ip pim bsm\n")
        config = tmp_path / "mcr.json"
        config.write_text(json.dumps({  # no RP: it can only come from the BSR
            "workers": 1, "igmp": {"interfaces": {mcr_down: FAST_IGMP}},
            "pim": {"interfaces": {mcr_up: FAST_HELLO, mcr_down: FAST_HELLO}, "join_prune_period": 5,
                    "spt_switchover": "never"}}))
        bootstrap = encode_bootstrap(Bootstrap(0x0a0b, 30, 9, BSR, (BsrGroup("239.0.0.0", 8, 1, (BsrRp(rp, 150, 3),)),)))
        with frr.Frr(net.ns["frr"], frr_conf) as peer, daemon(net, tmp_path, config=config) as d, \
                bsr_socket(net.ns["src"], src_addr) as sock:
            wait_for(lambda: mcr_up_addr in peer.show("show ip pim neighbor json").get(frr_down, {}), 15,
                     "FRR to see MCR as PIM neighbor")
            assert mcr_bsr_rows(d) == []
            for _ in range(SENDS):  # FRR must know src as a neighbor, and MCR's RPF toward the BSR must resolve
                sock.sendto(encode_hello(Hello(105, 1, 4242)), (ALL_PIM_ROUTERS, 0))
                sock.sendto(bootstrap, (ALL_PIM_ROUTERS, 0))
                time.sleep(INTERVAL)
                if mcr_bsr_rows(d):
                    break
            rows = mcr_bsr_rows(d)
            assert [(r["group"], r["candidates"]) for r in rows] == [("239.0.0.0/8", [{"rp": rp, "priority": 3}])], \
                (rows, peer.show("show ip pim bsr json"))
            bsr = d.client.call("pim.rp")["bsr"]
            assert (bsr["bsr"], bsr["bsr_priority"], bsr["state"]) == (BSR, 9, "Accept Preferred")
            text = d.mcr("pim", "rp").stdout
            assert "bsr" in text and rp in text and BSR in text, text
            with UdpSink(net.ns["rcv"], GROUP, PORT, rcv_if) as sink:
                wait_for(lambda: ("*", GROUP) in frr_joins(peer, frr_down), 15,
                         "MCR's (*,G) join toward the BSR-learned RP to reach FRR")
                domain = SimpleNamespace(net=net)  # what send_and_count reads of test_pim_interop's Domain
                primed = send_and_count(domain, sink, 50, stream=1)  # FRR drops a new source's first packets
                assert len(primed) > 25, f"only {len(primed)} of 50 primer datagrams arrived"
                got = send_and_count(domain, sink, 500, stream=2)
                assert got == list(range(500)), f"{len(got)} of 500 arrived"
