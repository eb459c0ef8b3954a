"""Our Bootstrap codec and BSR listener against FRRouting's pimd, on one
veth link between two namespaces this test creates. FRR 8.4 cannot be a
candidate BSR, so we forward one from a BSR behind us (FRR routes the BSR's
address through us, so we are its RPF neighbor): a raw IPPROTO_PIM socket
sends our Hellos and the Bootstrap, and FRR must learn the RP from it. Then we leave
(a Hello with Holdtime 0) and come back: FRR sends the new neighbor its
Bootstrap unicast with No-Forward (RFC 5059 3.5), which our codec reads
and our BsrListener accepts.

The cores are not wired to sockets yet, hence the raw socket here."""

from __future__ import annotations

import select
import socket
import subprocess
import time

import pytest

from mcr.lab import frr
from mcr.lab.netns import Lab, open_socket
from mcr.protocols.pim_bsr import BsrListener, RpSetChanged
from mcr.protocols.pim_rp import CandidateRp
from mcr.protocols.pim_wire import ALL_PIM_ROUTERS, BOOTSTRAP, Hello, Malformed, encode_hello, parse_message
from mcr.protocols.pim_wire_more import Bootstrap, BsrGroup, BsrRp, encode_bootstrap

pytestmark = pytest.mark.skipif(not frr.available(), reason="FRR (Debian frr) is not installed")

ME, PEER, RP, BSR = "10.78.0.1", "10.78.0.2", "10.78.0.50", "10.99.0.1"
IPPROTO_PIM = 103
ATTEMPTS, INTERVAL = 20, 0.5  # bounded: at most 20 sends of each kind, one every half second
OURS = Bootstrap(0x0102, 30, 7, BSR, (BsrGroup("239.0.0.0", 8, 1, (BsrRp(RP, 150, 5),)),))


def frr_config(ifname: str) -> str:
    return f"frr defaults traditional\nhostname peer\ninterface {ifname}\n ip pim\n ip pim hello 1 4\n"


def pim_socket(ns: str) -> socket.socket:
    sock = open_socket(ns, socket.AF_INET, socket.SOCK_RAW, IPPROTO_PIM)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(ME))
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, socket.inet_aton(ALL_PIM_ROUTERS) + socket.inet_aton(ME))
    return sock


def repeat_until(send, done) -> bool:
    for _ in range(ATTEMPTS):
        send()
        time.sleep(INTERVAL)
        if done():
            return True
    return False


def unicast_bootstrap(sock: socket.socket, deadline: float) -> tuple[Bootstrap, bytes] | None:
    """The first Bootstrap FRR sends to our own address before `deadline`."""
    while (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([sock], [], [], left)
        if not ready:
            return None
        data, (source, _) = sock.recvfrom(65535)
        body = data[(data[0] & 0x0F) * 4:]
        if source != PEER or socket.inet_ntoa(data[16:20]) != ME or not body or body[0] & 0x0F != BOOTSTRAP:
            continue
        try:
            return parse_message(body), body
        except Malformed:
            continue
    return None


class OneLink:
    """The BsrListener's view of this test's router: FRR is its only neighbor."""

    def rpf(self, address):
        return None  # no route to the BSR: only the No-Forward copy from a neighbor can be accepted

    def is_neighbor(self, interface, address):
        return (interface, address) == ("eth0", PEER)

    def pim_interfaces(self):
        return ["eth0"]

    def my_addresses(self):
        return {ME}


def test_frr_learns_the_rp_from_our_bootstrap_and_hands_it_back_to_a_new_neighbor():
    with Lab("mcrbsr") as lab:
        ours, theirs = lab.add_namespace("me"), lab.add_namespace("frr")
        _, frr_if = lab.add_link(ours, theirs, f"{ME}/24", f"{PEER}/24")
        subprocess.run(["ip", "-n", theirs, "route", "add", f"{BSR}/32", "via", ME], check=True, timeout=10)
        with frr.Frr(theirs, frr_config(frr_if)) as peer, pim_socket(ours) as sock:
            def hello(holdtime: int = 105, generation_id: int = 111) -> None:
                sock.sendto(encode_hello(Hello(holdtime, 1, generation_id)), (ALL_PIM_ROUTERS, 0))

            def frr_knows_us() -> bool:
                return ME in peer.show("show ip pim neighbor json").get(frr_if, {})

            assert repeat_until(hello, frr_knows_us), "FRR never saw our Hello"

            def frr_learned_rp() -> bool:
                return any(row.get("group") == "239.0.0.0/8" and row.get("source") == "BSR"
                           for row in peer.show("show ip pim rp-info json").get(RP, []))

            # The control: the same Bootstrap from a BSR FRR has no route to
            # fails its RPF check and teaches it nothing.
            unroutable = Bootstrap(OURS.fragment_tag, 30, 7, "10.98.0.1", OURS.groups)
            for _ in range(4):
                sock.sendto(encode_bootstrap(unroutable), (ALL_PIM_ROUTERS, 0))
            time.sleep(1.0)
            assert not frr_learned_rp()
            assert repeat_until(lambda: sock.sendto(encode_bootstrap(OURS), (ALL_PIM_ROUTERS, 0)), frr_learned_rp)
            bsr = peer.show("show ip pim bsr json")
            assert (bsr["bsr"], bsr["priority"], bsr["fragmentTag"], bsr["state"]) == (BSR, 7, 0x0102,
                                                                                      "ACCEPT_PREFERRED")

            hello(holdtime=0)  # goodbye: FRR forgets us at once
            assert repeat_until(lambda: None, lambda: not frr_knows_us())
            hello(generation_id=222)  # and we are a new neighbor
            received = unicast_bootstrap(sock, time.monotonic() + 5)
            assert received is not None, "FRR sent the new neighbor no Bootstrap"
            message, payload = received
            assert message == Bootstrap(OURS.fragment_tag, OURS.hash_mask_len, OURS.bsr_priority, BSR,
                                        OURS.groups, no_forward=True)

    listener = BsrListener(OneLink())
    out = listener.receive(0.0, "eth0", PEER, ME, message, payload)
    assert out == [RpSetChanged({("239.0.0.0", 8): (CandidateRp(RP, 5),)}, 30)]
