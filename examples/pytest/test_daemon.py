"""`mcr daemon` started from a config file, as it runs in production, relays a group.

The daemon runs in the relay namespace of src -- relay -- rcv; the test
checks its rules and counters through the Python control client (what
`mcr rules list` and `mcr stats` show; `daemon.mcr("rules", "list")` runs
the CLI itself) and the relayed datagrams with a kernel socket in rcv.
"""

from __future__ import annotations


def test_daemon_with_a_config_relays(mcr_topology, mcr_daemon, mcr_sender, mcr_receiver):
    net = mcr_topology([("src", "relay"), ("relay", "rcv")])
    config = {"workers": 1, "rules": [{
        "name": "feed-a",
        "input_interface": net.interface("relay", "src"),
        "group": "239.1.1.1", "port": 5000,
        "outputs": [f"239.2.2.2:6000:{net.interface('relay', 'rcv')}"],
    }]}
    daemon = mcr_daemon(net.ns["relay"], config)
    rx = mcr_receiver(net.ns["rcv"], "239.2.2.2", 6000, net.interface("rcv", "relay"))
    tx = mcr_sender(net.ns["src"], net.interface("src", "relay"))

    with daemon.client() as mcr:
        assert [rule.name for rule in mcr.rules().values()] == ["feed-a"]
        tx.send([b"x" * 100] * 100, "239.1.1.1", 5000, rate_pps=2000)

        assert len(rx.receive(100, timeout=5)) == 100
        assert mcr.stats()["rules"]["1"]["packets"] == 100
