"""Relaying a multicast group between namespaces, judged by ordinary kernel sockets.

The network under test, built fresh for every test:

    src --10.100.0.0/24-- relay --10.100.1.0/24-- rcv

The relay (MCR's engine, in the relay namespace) takes 239.1.1.1:5000 off
the src link and sends it to the rcv link as 239.2.2.2:6000.
"""

from __future__ import annotations

import pytest

LINKS = [("src", "relay"), ("relay", "rcv")]


@pytest.fixture
def net(mcr_topology):
    return mcr_topology(LINKS)


def rule(net, out_options: str = "") -> str:
    """The relay's rule in the text form `mcr rules add` and Rule.parse() take."""
    return (f"in={net.interface('relay', 'src')} group=239.1.1.1:5000 "
            f"out=239.2.2.2:6000:{net.interface('relay', 'rcv')}{out_options}")


def test_relay_forwards_a_group(net, mcr_relay, mcr_sender, mcr_receiver):
    relay = mcr_relay(net.ns["relay"], rule(net))
    rx = mcr_receiver(net.ns["rcv"], "239.2.2.2", 6000, net.interface("rcv", "relay"))
    tx = mcr_sender(net.ns["src"], net.interface("src", "relay"))

    assert tx.send([b"frame %d" % i for i in range(200)], "239.1.1.1", 5000, rate_pps=2000) == 200
    received = rx.receive(200, timeout=5)

    assert len(received) == 200
    assert received[0].payload == b"frame 0"
    assert received[0].src[0] == net.address("relay", "rcv")  # re-sent by the relay, from its own address
    (counters,) = relay.stats()["rules"].values()
    assert counters["packets"] == 200


def test_other_groups_are_not_relayed(net, mcr_relay, mcr_sender, mcr_receiver):
    mcr_relay(net.ns["relay"], rule(net))
    rx = mcr_receiver(net.ns["rcv"], "239.2.2.2", 6000, net.interface("rcv", "relay"))
    tx = mcr_sender(net.ns["src"], net.interface("src", "relay"))

    tx.send([b"not for the relay"] * 20, "239.1.1.99", 5000)

    assert rx.receive(20, timeout=1) == []
