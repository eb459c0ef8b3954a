"""QoS under overload: an EF stream and a best-effort one offered to one worker at about twice its no-drop rate.

    sudo .venv/bin/python -m benchmarks.qos                 # 3 repeats
    sudo .venv/bin/python -m benchmarks.qos --repeats 1 --trial 0.5

Two sources, each on its own link into the relay (RPS steers both links'
ingress softirq to the relay's core, as placement B of benchmarks.run), one
output link to a sink namespace; `mcr daemon` with one worker pinned to the
relay's core. A best-effort stream (239.1.1.1:5000, DSCP 0) goes to
239.2.2.1:6000 and an EF-marked one (239.1.1.5:5000, DSCP 46) to
239.2.2.5:6000; each output group has a sink of its own that counts it.
Both generators (prebuilt frames, paced) share the generator's core.

Each repeat finds the no-drop rate of the best-effort stream alone (the
bisection of benchmarks.run), then offers twice that rate, --ef-share of it
EF and the rest best effort, for --trial seconds, in three variants:

- none: no priorities; the worker reads its two inputs in turn, 256 frames
  each per pass, so EF keeps up only while it is under about half of what
  the worker can relay;
- serve-first: the EF rule at priority 5 and its output at :priority=0, so
  its input is emptied first every pass and its packets still take the TX
  ring (no packet priority);
- serve-first+priority: the EF rule at priority 5 on its output too: the
  packets also carry priority 5, so they take the interface's second TX
  ring, whose socket keeps the qdisc and sets SO_PRIORITY.

(Both generators share one core, so what they get out, the offered column,
can fall short of the rate asked for.) Prints a Markdown table and writes
it, with the JSON, to --out.

With --ef-sender iperf the EF stream is judged by programs we did not
write: iperf2 sends it (`-u -S 0xb8 -l 64 -b Npps`; its -e report gives
what it wrote), and an nftables counter on the sink's ingress hook counts
what arrived of it. Best effort still comes from our generator, which is
load only.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from mcr.api import Client
from mcr.lab import Lab, Sink, generate, nft

from .measure import GRACE, no_drop_rate
from .run import GEN_CORE, RELAY_CORE, RESULTS, set_placement

BE, EF = ("239.1.1.1", 5000), ("239.1.1.5", 5000)
BE_OUT, EF_OUT = ("239.2.2.1", 6000), ("239.2.2.5", 6000)
EF_TOS = 46 << 2
VARIANTS = {"none": (0, None), "serve-first": (5, 0), "serve-first+priority": (5, None)}  # rule, EF output
SIZE = 64
CEILING = 800_000  # the first guess of the no-drop search (pps)
STEPS = 6


@dataclass
class Point:
    """One trial: what each generator got out and what each sink counted in time."""

    rate: float  # requested, both streams together
    offered: float  # achieved, both together
    be_sent: int
    be_delivered: int
    ef_sent: int
    ef_delivered: int
    elapsed: float

    @property
    def loss(self) -> float:  # over both streams: what no_drop_rate reads
        sent = self.be_sent + self.ef_sent
        return 1 - (self.be_delivered + self.ef_delivered) / sent if sent else 1.0

    @property
    def delivered_pps(self) -> float:
        return (self.be_delivered + self.ef_delivered) / self.elapsed if self.elapsed else 0.0

    def stream_loss(self, sent: int, delivered: int) -> float:
        return 1 - delivered / sent if sent else 0.0


class Topology:
    """be-src and ef-src -> relay -> sink, each link a veth pair with its own /24."""

    def __init__(self, lab: Lab) -> None:
        self.be_ns, self.ef_ns, self.relay_ns, self.sink_ns = (
            lab.add_namespace(role) for role in ("be", "ef", "relay", "sink"))
        self.be_if, self.be_in = lab.add_link(self.be_ns, self.relay_ns, "10.203.0.2/24", "10.203.0.1/24")
        self.ef_addr = "10.203.1.2"  # iperf binds to it
        self.ef_if, self.ef_in = lab.add_link(self.ef_ns, self.relay_ns, f"{self.ef_addr}/24", "10.203.1.1/24")
        self.out, self.sink_if = lab.add_link(self.relay_ns, self.sink_ns, "10.203.2.1/24", "10.203.2.2/24")
        for ns, ifname in ((self.be_ns, self.be_if), (self.ef_ns, self.ef_if), (self.sink_ns, self.sink_if)):
            lab.add_route(ns, "224.0.0.0/4", ifname)
        for ifname in (self.be_in, self.ef_in):
            set_placement(self.relay_ns, ifname, "B")


class Daemon:
    """`mcr daemon` in the relay namespace, one worker on the relay's core, the two rules."""

    def __init__(self, topo: Topology, ef_priority: int = 0, output_priority: int | None = None) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="mcr-qos-")
        config = Path(self._dir.name) / "mcr.json"
        output = f"{EF_OUT[0]}:{EF_OUT[1]}:{topo.out}" + ("" if output_priority is None
                                                          else f":priority={output_priority}")
        ef_rule = {"input_interface": topo.ef_in, "group": EF[0], "port": EF[1], "outputs": [output]}
        if ef_priority:
            ef_rule["priority"] = ef_priority
        config.write_text(json.dumps({"workers": 1, "pin_cores": [RELAY_CORE], "log_level": "warning", "rules": [
            {"input_interface": topo.be_in, "group": BE[0], "port": BE[1],
             "outputs": [f"{BE_OUT[0]}:{BE_OUT[1]}:{topo.out}"]}, ef_rule]}))
        sock = str(Path(self._dir.name) / "control.sock")
        self.process = subprocess.Popen(["ip", "netns", "exec", topo.relay_ns, sys.executable, "-m", "mcr", "daemon",
                                         "--socket", sock, "--state", "", "--config", str(config)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while True:
            try:
                Client(sock, timeout=1).ping()
                break
            except Exception:  # noqa: BLE001 - not listening yet
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.close()
                    raise RuntimeError("mcr daemon did not start") from None
                time.sleep(0.05)
        self.client = Client(sock, timeout=10)

    def kernel_drops(self) -> dict[str, int]:
        return {name: i["kernel_drops"] for name, i in self.client.call("stats")["inputs"].items()}

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(15)
        self._dir.cleanup()


def iperf_send(ns: str, source: str, pps: float, duration: float) -> dict:
    """iperf2 sends EF for `duration` s at `pps`; what it wrote, by its own -e report."""
    result = subprocess.run(["ip", "netns", "exec", ns, "iperf", "-c", EF[0], "-p", str(EF[1]), "-u", "-e",
                             "-l", str(SIZE), "-b", f"{int(pps)}pps", "-t", str(duration), "-T", "8",
                             "-S", str(EF_TOS), "-B", source], capture_output=True, text=True, timeout=duration + 30)
    # The summary line: "[  1] 0.0000-2.0001 sec  ... 412345/0  206123 pps"
    found = re.findall(r"([\d.]+)-([\d.]+) sec .*?\s(\d+)/(\d+)\s+\d+ pps", result.stdout)
    if result.returncode != 0 or not found:
        raise RuntimeError(f"iperf failed ({result.returncode}): {result.stdout}{result.stderr}")
    start, end, written, _errors = found[-1]
    return {"sent": int(written), "elapsed": float(end) - float(start)}


class IngressCounter:
    """An nftables counter on the sink's ingress hook: EF datagrams that reached the sink's link."""

    def __init__(self, ns: str, ifname: str) -> None:
        self.ns = ns
        for command in (["add", "table", "netdev", "qos"],
                        ["add", "chain", "netdev", "qos", "in", f"{{ type filter hook ingress device {ifname} "
                                                               "priority 0; }"],
                        # iperf's data datagrams only: their id (the payload's first 32 bits) is
                        # positive; its closing FIN carries a negative one.
                        ["add", "rule", "netdev", "qos", "in", "ip", "daddr", EF_OUT[0], "udp", "dport",
                         str(EF_OUT[1]), "@th,64,1", "0", "counter"]):
            nft(ns, *command)

    def packets(self) -> int:
        text = nft(self.ns, "list", "table", "netdev", "qos")
        return int(re.search(r"counter packets (\d+)", text).group(1))


def trial(topo: Topology, rate: float, duration: float, ef_share: float, iperf: IngressCounter | None = None) -> Point:
    """Both streams for `duration` s at `rate` pps together (`ef_share` of it EF; 0: best effort alone).
    With `iperf`, iperf2 sends EF and that counter counts it in."""
    sinks = [Sink(topo.sink_ns, topo.sink_if, [group], duration=duration + 30, idle=duration + 30)
             for group in (BE_OUT, EF_OUT)]
    results: dict[str, dict] = {}
    ef_before = iperf.packets() if iperf else 0

    def send(name: str, ns: str, ifname: str, target, pps: float, tos: int) -> None:
        if name == "ef" and iperf:
            results[name] = iperf_send(ns, topo.ef_addr, pps, duration)
            return
        results[name] = generate(ns, ifname, [target], size=SIZE, rate=pps, duration=duration, raw=True, tos=tos)

    threads = [threading.Thread(target=send, args=("be", topo.be_ns, topo.be_if, BE, rate * (1 - ef_share), 0))]
    if ef_share:
        threads.append(threading.Thread(target=send, args=("ef", topo.ef_ns, topo.ef_if, EF, rate * ef_share,
                                                           EF_TOS)))
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(duration + 30)
        for s in sinks:
            s.end_window(time.monotonic_ns() + int(GRACE * 1e9))
        time.sleep(GRACE)
        reports = [s.stop() for s in sinks]
    finally:
        for s in sinks:
            s.__exit__(None, None, None)
    be, ef = results["be"], results.get("ef", {"sent": 0, "elapsed": 0.0})
    elapsed = max(be["elapsed"], ef["elapsed"])
    ef_delivered = iperf.packets() - ef_before if iperf else reports[1]["unique"]
    return Point(rate, (be["sent"] + ef["sent"]) / elapsed if elapsed else 0.0, be["sent"], reports[0]["unique"],
                 ef["sent"], ef_delivered, elapsed)


def run(repeats: int, duration: float, ef_share: float, ef_sender: str) -> list[dict]:
    rows = []
    with Lab(prefix="mcrq") as lab:
        topo = Topology(lab)
        iperf = IngressCounter(topo.sink_ns, topo.sink_if) if ef_sender == "iperf" else None
        for repeat in range(repeats):
            plain = Daemon(topo)
            try:
                found, _ = no_drop_rate(lambda r: trial(topo, r, duration, 0.0), CEILING, STEPS)
            finally:
                plain.close()
            if found is None:
                rows.append({"repeat": repeat, "ndr": None})
                continue
            ndr = found.offered
            for variant, (priority, output_priority) in VARIANTS.items():
                d = Daemon(topo, priority, output_priority)
                try:
                    trial(topo, 1000, 0.2, ef_share)  # a primer: both paths are up
                    drops_before = d.kernel_drops()
                    p = trial(topo, 2 * ndr, duration, ef_share, iperf)
                    drops = {k: v - drops_before.get(k, 0) for k, v in d.kernel_drops().items()}
                finally:
                    d.close()
                rows.append({"repeat": repeat, "ndr": ndr, "variant": variant, **asdict(p),
                             "be_loss": p.stream_loss(p.be_sent, p.be_delivered),
                             "ef_loss": p.stream_loss(p.ef_sent, p.ef_delivered),
                             "kernel_drops": {"be": drops.get(topo.be_in, 0), "ef": drops.get(topo.ef_in, 0)}})
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| repeat | BE alone no-drop pps | variant | offered pps (both) | EF sent | EF lost | EF loss |"
             " BE sent | BE lost | BE loss | kernel drops EF / BE input |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["ndr"] is None:
            lines.append(f"| {r['repeat'] + 1} | no rate passed | | | | | | | | | |")
            continue
        lines.append(f"| {r['repeat'] + 1} | {r['ndr']:,.0f} | {r['variant']} | {r['offered']:,.0f} | "
                     f"{r['ef_sent']:,} | {r['ef_sent'] - r['ef_delivered']:,} | {100 * r['ef_loss']:.3f} % | "
                     f"{r['be_sent']:,} | {r['be_sent'] - r['be_delivered']:,} | {100 * r['be_loss']:.1f} % | "
                     f"{r['kernel_drops']['ef']:,} / {r['kernel_drops']['be']:,} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.qos", description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--trial", type=float, default=2.0, help="seconds per overload trial (default 2)")
    parser.add_argument("--ef-share", type=float, default=0.2, help="EF's part of the offered rate (default 0.2)")
    parser.add_argument("--ef-sender", choices=("generator", "iperf"), default="generator",
                        help="who sends EF: our generator, or iperf2 counted in by nftables")
    parser.add_argument("--out", type=Path, help="output folder (default benchmarks/results/qos-<time>)")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("benchmarks need root (network namespaces, raw sockets)", file=sys.stderr)
        return 1
    os.sched_setaffinity(0, {GEN_CORE})  # the generators and sinks; the worker has the relay core
    out = args.out or RESULTS / time.strftime("qos-%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    rows = run(args.repeats, args.trial, args.ef_share, args.ef_sender)
    text = table(rows)
    (out / "results.json").write_text(json.dumps({"trial_s": args.trial, "ef_share": args.ef_share,
                                                  "ef_sender": args.ef_sender, "rows": rows}, indent=1))
    (out / "report.md").write_text(f"# QoS under overload ({time.strftime('%Y-%m-%d %H:%M')}, trials of "
                                   f"{args.trial} s, EF {args.ef_share:.0%} of the offered rate, sent by "
                                   f"{args.ef_sender})\n\n{text}")
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
