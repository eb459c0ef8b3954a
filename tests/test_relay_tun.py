"""Layer-3 links: multicast in from and out to a tun device (no Ethernet header).

The test opens the tun device itself and holds its file descriptor, playing
the VPN daemon (WireGuard, OpenVPN, a GRE endpoint) that writes decapsulated
packets into it and reads what the host routes out of it. The relay sees
bare IPv4 packets on such a link and sends to it through its UDP socket.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import select
import struct
import subprocess
import time

from scapy.layers.inet import IP, UDP
from scapy.packet import Raw

from mcr.lab import UdpSender, in_netns, numbered_payloads, payload_intact, payload_seq, udp_counters
from mcr.rules import Output, Rule

TUNSETIFF, IFF_TUN, IFF_NO_PI = 0x400454CA, 0x0001, 0x1000
GROUP, PORT = "239.1.1.1", 5000
OUT_GROUP, OUT_PORT = "239.3.3.3", 7000
COUNT, SIZE = 200, 300
TUN_ADDR, PEER_ADDR = "10.201.0.1", "10.201.0.2"


class Tun:
    """A tun device in namespace `ns`, held open by this object."""

    def __init__(self, ns: str) -> None:
        self.name = f"mcrtun{secrets.token_hex(3)}"
        with in_netns(ns):
            self.fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
        try:
            fcntl.ioctl(self.fd, TUNSETIFF, struct.pack("16sH", self.name.encode(), IFF_TUN | IFF_NO_PI))
            for args in (["addr", "add", f"{TUN_ADDR}/24", "dev", self.name], ["link", "set", self.name, "up"]):
                subprocess.run(["ip", "-n", ns, *args], check=True, timeout=30)
        except BaseException:
            os.close(self.fd)
            raise

    def write(self, packets: list[bytes], rate_pps: float) -> None:
        for index, packet in enumerate(packets):
            os.write(self.fd, packet)
            if index % 10 == 9:
                time.sleep(10 / rate_pps)

    def read(self, count: int, timeout: float) -> list[bytes]:
        """Up to `count` IPv4/UDP packets to OUT_GROUP the host sent out of the tun, within `timeout`."""
        packets, deadline = [], time.monotonic() + timeout
        while len(packets) < count and time.monotonic() < deadline:
            if not select.select([self.fd], [], [], max(0.0, deadline - time.monotonic()))[0]:
                break
            data = os.read(self.fd, 65535)
            if data[0] >> 4 == 4 and data[16:20] == bytes(map(int, OUT_GROUP.split("."))):
                packets.append(data)
        return packets

    def close(self) -> None:
        os.close(self.fd)  # the device goes with its last descriptor


def open_tun(lab) -> Tun:
    tun = Tun(lab.c.relay_ns)
    lab._own(tun.close)
    return tun


def test_multicast_in_from_a_tun(relay_lab) -> None:
    lab = relay_lab()
    c = lab.c
    tun = open_tun(lab)
    rule_id = lab.engine.add_rule(Rule(tun.name, GROUP, PORT, (Output(OUT_GROUP, OUT_PORT, c.relay_out[0]),)))
    sink = lab.sink(0, OUT_GROUP, OUT_PORT)
    before = udp_counters(c.sink_ns[0])
    collector = lab.collect(sink, COUNT + 1, timeout=5, idle=0.5)
    packets = [bytes(IP(src=PEER_ADDR, dst=GROUP, ttl=8) / UDP(sport=4000, dport=PORT) / Raw(p))
               for p in numbered_payloads(COUNT, SIZE)]
    tun.write(packets, rate_pps=2000)

    lab.expect_stream(collector.result(), COUNT, SIZE, what="from the tun")
    after = udp_counters(c.sink_ns[0])
    assert after["InCsumErrors"] == before["InCsumErrors"]
    stats = lab.wait_relayed({rule_id: COUNT})
    assert stats["inputs"][tun.name]["frames"] == COUNT, lab.describe(stats)


def test_multicast_out_to_a_tun(relay_lab) -> None:
    lab = relay_lab()
    c = lab.c
    tun = open_tun(lab)
    rule_id = lab.engine.add_rule(Rule(c.relay_in, GROUP, PORT, (Output(OUT_GROUP, OUT_PORT, tun.name),)))
    with UdpSender(c.source_ns, c.source_if, ttl=8) as sender:
        assert sender.send(numbered_payloads(COUNT, SIZE), GROUP, PORT, rate_pps=2000) == COUNT
    packets = tun.read(COUNT + 1, timeout=3)

    seqs = []
    for raw in packets:
        ip = IP(raw)
        udp = ip[UDP]
        assert (ip.src, udp.dport, ip.ttl) == (TUN_ADDR, OUT_PORT, 7), ip.summary()
        checked = IP(bytes(ip))
        del checked[UDP].chksum  # scapy recomputes it when rebuilt
        assert IP(bytes(checked))[UDP].chksum == udp.chksum, f"wrong UDP checksum on {ip.summary()}"
        payload = bytes(udp.payload)
        assert payload_intact(payload)
        seqs.append(payload_seq(payload)[1])
    assert sorted(seqs) == list(range(COUNT)), f"{len(packets)} packets out of the tun, expected {COUNT}"
    stats = lab.wait_relayed({rule_id: COUNT})
    assert stats["rules"][str(rule_id)]["packets"] == COUNT, lab.describe(stats)
