"""Protocol sends the kernel refuses are counted per interface and survived.

An nftables rule in the relay's namespace drops MCR's IGMP queries and PIM
Hellos on their way out (the output hook: the sender gets EPERM), counting
each. The kernel's own counter is the judge: `send_errors` in `mcr igmp
interfaces` / `mcr pim interfaces` equals what nftables dropped. With the
rule gone, queries and Hellos arrive on the links again (captured there,
read by scapy) and the counters stop rising.
"""

from __future__ import annotations

import json
import re
import time

from daemon_support import daemon, wait_for

from mcr.lab import Capture, chain, nft

IGMP_FAST = {"query_interval": 1, "query_response_interval": 0.5, "startup_query_interval": 0.5}
PIM_FAST = {"hello_period": 1, "triggered_hello_delay": 0.5}


def block(ns: str) -> None:
    """Drop and count outgoing IGMP queries and PIM, one counter each. (The
    kernel's own membership reports, for the groups MCR's sockets join, pass.)"""
    nft(ns, "add", "table", "ip", "block")
    nft(ns, "add", "chain", "ip", "block", "out", "{ type filter hook output priority 0; }")
    for protocol, match in (("igmp", ["igmp", "type", "membership-query"]), ("pim", ["ip", "protocol", "pim"])):
        nft(ns, "add", "rule", "ip", "block", "out", *match, "counter", "drop", "comment", f'"{protocol}"')


def dropped(ns: str) -> dict[str, int]:
    text = nft(ns, "list", "table", "ip", "block")
    return {m.group(2): int(m.group(1)) for m in re.finditer(r'packets (\d+) bytes \d+ drop comment "(\w+)"', text)}


def send_errors(d, protocol: str) -> int:
    return d.client.call(f"{protocol}.interfaces")["interfaces"][0]["send_errors"]


def test_refused_queries_and_hellos_are_counted_and_sending_resumes(tmp_path):
    from scapy.contrib.igmpv3 import IGMPv3
    from scapy.contrib.pim import PIMv2Hdr
    from scapy.layers.l2 import Ether

    with chain(n_sinks=2) as lab:
        igmp_if, pim_if = lab.relay_out
        block(lab.relay_ns)
        path = tmp_path / "mcr.json"
        path.write_text(json.dumps({"workers": 1, "igmp": {"interfaces": {igmp_if: IGMP_FAST}},
                                    "pim": {"interfaces": {pim_if: PIM_FAST}}}))
        with daemon(lab, tmp_path, config=path) as d:
            wait_for(lambda: send_errors(d, "igmp") >= 3 and send_errors(d, "pim") >= 3, 10,
                     "three refused sends of each protocol")
            assert d.process.poll() is None
            # Read together, between two timers (both send every second or
            # faster): a count taken across a send is retried.
            def agree():
                before = dropped(lab.relay_ns)
                counted = {"igmp": send_errors(d, "igmp"), "pim": send_errors(d, "pim")}
                return counted if counted == before == dropped(lab.relay_ns) else None
            counted = wait_for(agree, 10, "MCR's send_errors to equal nftables' drops")
            table = d.mcr("igmp", "interfaces").stdout
            header, row = table.splitlines()
            assert header.split()[-2:] == ["SEND", "ERRORS"] and row.startswith(igmp_if), table
            assert int(row.split()[-1]) >= counted["igmp"], table  # a query may have been refused since

            captures = [Capture(ns, ifname, max_seconds=20) for ns, ifname in zip(lab.sink_ns, lab.sink_if)]
            nft(lab.relay_ns, "delete", "table", "ip", "block")
            frozen = {"igmp": send_errors(d, "igmp"), "pim": send_errors(d, "pim")}
            time.sleep(3)  # three query intervals and three Hello periods
            for c in captures:
                c.stop()
            assert {"igmp": send_errors(d, "igmp"), "pim": send_errors(d, "pim")} == frozen
            queries = [f for f in captures[0].frames if Ether(f).haslayer(IGMPv3) and Ether(f)[IGMPv3].type == 0x11]
            hellos = [f for f in captures[1].frames if Ether(f).haslayer(PIMv2Hdr) and Ether(f)[PIMv2Hdr].type == 0]
            assert len(queries) >= 2 and len(hellos) >= 2, (len(queries), len(hellos))
