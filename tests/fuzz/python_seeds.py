"""Writes the seed corpora of the Python fuzz targets (tests/fuzz/corpus/
igmp, pim, msdp, control) from MCR's own encoders and its command table,
plus edge cases, and the control target's dictionary (tests/fuzz/control.dict):
`make fuzz-seeds`. IGMP and PIM seeds start with the targets' flag
byte (0: the checksum is already right), MSDP seeds with the read size
(0: the whole stream in one read)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from mcr import config, membership
from mcr.protocols import igmp_wire, msdp_wire, pim_wire
from mcr.supervisor.commands import COMMANDS


def igmp_seeds() -> dict[str, bytes]:
    Query = igmp_wire.Query
    return {
        "query-v1": igmp_wire.encode_query(Query(1)),
        "query-v2": igmp_wire.encode_query(Query(2, "239.1.1.1", 2.5)),
        "query-v3": igmp_wire.encode_query(Query(3, max_response=100.0, robustness=2, query_interval=125)),
        "query-v3-sources": igmp_wire.encode_query(Query(3, "239.1.1.1", 1.0, True, 3, 20, ("10.0.0.1", "10.0.0.2"))),
        "report-v1": membership.v2_message(igmp_wire.V1_REPORT, "239.1.1.1"),
        "report-v2": membership.v2_message(membership.V2_REPORT, "239.1.1.1"),
        "leave": membership.v2_message(membership.V2_LEAVE, "239.1.1.1"),
        "report-v3": membership.v3_report([(1, "239.1.1.1", ["10.0.0.1"]), (4, "239.2.2.2", []),
                                           (6, "232.1.1.1", ["10.0.0.2", "10.0.0.3"])]),
    }


def pim_seeds() -> dict[str, bytes]:
    Source, GroupSet = pim_wire.Source, pim_wire.GroupSet
    join_prune = pim_wire.JoinPrune("10.0.0.2", 210, (
        GroupSet("239.1.1.1", (Source("10.0.0.9", wildcard=True, rpt=True),), (Source("10.1.1.1", rpt=True),)),
        GroupSet("232.1.1.1", (Source("10.1.1.1"),)),
        GroupSet("239.0.0.0", mask_len=8)))
    return {
        "hello": pim_wire.encode_hello(pim_wire.Hello()),
        "hello-full": pim_wire.encode_hello(pim_wire.Hello(
            105, 7, 0x1234, pim_wire.LanPruneDelay(True, 500, 2500), ("10.0.0.5", "10.9.9.9"))),
        "join-prune": pim_wire.encode_join_prune(join_prune),
        "join-prune-empty": pim_wire.encode_join_prune(pim_wire.JoinPrune("10.0.0.2", 0)),
        # Types parsed only as far as the header: Register, Register-Stop, Assert.
        "register": bytes([0x21, 0, 0, 0, 0, 0, 0, 0]) + bytes(20),
        "register-stop": bytes([0x22, 0, 0, 0]) + bytes(14),
        "assert": bytes([0x25, 0, 0, 0]) + bytes(22),
    }


def msdp_seeds() -> dict[str, bytes]:
    entries = [("192.168.1.10", "239.1.2.3"), ("10.9.8.7", "232.1.1.1")]
    # A UDP datagram to the group, as an RP would encapsulate it (checksums are not checked).
    packet = bytes.fromhex("4500001e000000004011" "0000" "c0a8010a" "ef010203" "13881388000a" "0000") + b"hi"
    sa, keepalive = msdp_wire.SourceActive("10.0.0.1", tuple(entries)), msdp_wire.encode(msdp_wire.Keepalive())
    return {
        "keepalive": keepalive,
        "sa": msdp_wire.encode(sa),
        "sa-data": msdp_wire.encode(msdp_wire.SourceActive("10.0.0.1", tuple(entries[:1]), packet)),
        "sa-request": msdp_wire.encode(msdp_wire.UnknownTlv(msdp_wire.SA_REQUEST, bytes.fromhex("00ef010203"))),
        "stream": keepalive + msdp_wire.encode(sa) + keepalive,
        "sa-split": b"".join(msdp_wire.encode_source_actives("10.0.0.1", entries * 150)),
    }


def control_seeds() -> dict[str, bytes]:
    seeds = {name.replace(".", "-"): command.example.encode() for name, command in COMMANDS.items()}
    full_rule = {"name": "r", "input_interface": "eth0", "group": "239.1.0.0/16", "port": "any",
                 "source": "10.0.0.1", "vlan": 10, "members": ["eth2"],
                 "outputs": ["239.2.2.2:5000:eth1:ttl=4:dscp=46:keep-source:vlan=7"]}
    seeds["rules-add-full"] = json.dumps({"cmd": "rules.add", "args": {"rule": full_rule}, "id": 7}).encode()
    seeds["config-check-full"] = json.dumps({"cmd": "config.check", "args": {"config": {
        "workers": 2, "rules": [full_rule], "joins": [{"interface": "eth0", "group": "232.1.1.1",
                                                       "source": "10.0.0.1"}]}}}).encode()
    seeds["not-an-object"] = b"[1, 2, 3]"
    seeds["unknown-key"] = b'{"cmd": "ping", "extra": null}'
    return seeds


def control_dictionary() -> list[str]:
    """libFuzzer dictionary entries for the control target: JSON tokens and
    every name a request may hold, so mutations build requests, not noise."""
    names = {"cmd", "args", "id", *COMMANDS, *config.RULE_KEYS, *config.JOIN_KEYS, *config._SETTINGS,
             "rule", "join", "config", "replace", "path", "level", "facility", "rules", "joins", "members:",
             "any", "keep-source", "ttl=", "dscp=", "vlan=", "239.1.1.1", "10.0.0.1", "eth0"}
    return [json.dumps(json.dumps(name)) for name in sorted(names)] + [json.dumps(t) for t in
                                                                       ("{", "}", "[", "]", ":", ",", "null",
                                                                        "true", "false", "-1", "1e999")]


def main(root: Path) -> None:
    for target, seeds, flag in (("igmp", igmp_seeds(), b"\0"), ("pim", pim_seeds(), b"\0"),
                                ("msdp", msdp_seeds(), b"\0"), ("control", control_seeds(), b"")):
        folder = root / target
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in seeds.items():
            (folder / name).write_bytes(flag + data)
    (root.parent / "control.dict").write_text("\n".join(control_dictionary()) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
