"""The benchmark's report: the machine, Markdown tables with MCR's ratios, PNG plots."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

import mcr

SYSTEMS = ("mcr", "socat", "kernel")


def machine() -> dict:
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")),
                 platform.processor())
    socat = subprocess.run(["socat", "-V"], capture_output=True, text=True, check=False).stdout.splitlines()
    commit = subprocess.run(["git", "-C", str(Path(__file__).parent), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True, check=False).stdout.strip()
    return {"cpu": model, "cores": os.cpu_count(), "kernel": platform.release(), "python": platform.python_version(),
            "mcr": mcr.__version__, "commit": commit, "socat": next((s for s in socat if "version" in s), "?"),
            "load_average_at_start": os.getloadavg()}


def _get(summary: dict, test, placement, system, size="", streams="", outputs="") -> dict:
    return summary.get(f"{test}|{placement}|{system}|{size}|{streams}|{outputs}", {})


def _num(entry: dict | None, scale: float = 1, digits: int = 0) -> str:
    if not entry:
        return "—"
    fmt = f"{{:,.{digits}f}}"
    text = fmt.format(entry["median"] * scale)
    if entry["n"] > 1:
        text += f" ({fmt.format(entry['min'] * scale)}–{fmt.format(entry['max'] * scale)})"
    return text


def _ratio(a: dict | None, b: dict | None) -> str:
    if not a or not b or not b["median"]:
        return "—"
    return f"{a['median'] / b['median']:.2f}x"


def ndr_table(summary: dict, placements, payloads, streams=1) -> list[str]:
    lines = ["| placement | payload B | MCR pps | socat pps | kernel pps | MCR/socat | MCR/kernel |",
             "|---|---|---|---|---|---|---|"]
    for pl in placements:
        for size in payloads:
            e = {s: _get(summary, "ndr", pl, s, size, streams, 1) for s in SYSTEMS}
            v = {s: e[s].get("offered_pps") for s in SYSTEMS}
            # ">=": the generator's full speed passed, so the relay's limit is higher still
            n = {s: (">=" if e[s].get("generator_limited") else "") + _num(v[s]) for s in SYSTEMS}
            lines.append(f"| {pl} | {size} | {n['mcr']} | {n['socat']} | {n['kernel']} | "
                         f"{_ratio(v['mcr'], v['socat'])} | {_ratio(v['mcr'], v['kernel'])} |")
    return lines


def cpu_table(summary: dict, placements, payloads) -> list[str]:
    lines = ["| placement | payload B | system | relay process ns/pkt | whole host ns/pkt | relay core busy |",
             "|---|---|---|---|---|---|"]
    for pl in placements:
        for size in payloads:
            for s in SYSTEMS:
                e = _get(summary, "ndr", pl, s, size, 1, 1)
                if e:
                    lines.append(f"| {pl} | {size} | {s} | {_num(e['relay_cpu_ns'])} | {_num(e['host_cpu_ns'])} | "
                                 f"{_num(e['relay_core_busy'], 100)} % |")
    return lines


def overload_table(summary: dict, placements, payloads) -> list[str]:
    lines = ["| placement | payload B | system | no-drop pps | offered pps | delivered pps | delivered / no-drop |",
             "|---|---|---|---|---|---|---|"]
    for pl in placements:
        for size in payloads:
            for s in SYSTEMS:
                e = _get(summary, "overload", pl, s, size)
                ndr = _get(summary, "ndr", pl, s, size, 1, 1).get("offered_pps")
                if e:
                    lines.append(f"| {pl} | {size} | {s} | {_num(ndr)} | {_num(e['offered_pps'])} | "
                                 f"{_num(e['delivered_pps'])} | {_num(e['ratio'], 100)} % |")
    return lines


def latency_table(summary: dict, placements) -> list[str]:
    lines = ["| placement | system | delivered pps | loss | p50 us | p99 us | p99.9 us |",
             "|---|---|---|---|---|---|---|"]
    for pl in placements:
        for s in SYSTEMS:
            e = _get(summary, "latency", pl, s, 64)
            if e:
                lines.append(f"| {pl} | {s} | {_num(e['delivered_pps'])} | {_num(e['loss'], 100, 2)} % | "
                             f"{_num(e['p50_us'], 1, 1)} | {_num(e['p99_us'], 1, 1)} | {_num(e['p999_us'], 1, 1)} |")
    return lines


def fanout_table(summary: dict, placements, fanout) -> list[str]:
    lines = ["| placement | system | outputs | no-drop input pps | total output pps | output vs 1 output "
             "| frames past a full TX ring |",
             "|---|---|---|---|---|---|---|"]
    for pl in placements:
        for s in SYSTEMS:
            one = _get(summary, "fanout", pl, s, 64, "", 1).get("delivered_pps")
            for n in fanout:
                e = _get(summary, "fanout", pl, s, 64, "", n)
                if e:
                    lines.append(f"| {pl} | {s} | {n} | {_num(e['offered_pps'])} | {_num(e['delivered_pps'])} | "
                                 f"{_ratio(e['delivered_pps'], one)} | {_num(e.get('tx_ring_full'))} |")
        one = _get(summary, "fanout", pl, "mcr", 64, "", 1).get("delivered_pps")
        n = max(fanout)
        e = _get(summary, "fanout", pl, "mcr-one-link", 64, "", n)
        if e:
            lines.append(f"| {pl} | mcr, all on one link | {n} | {_num(e['offered_pps'])} | "
                         f"{_num(e['delivered_pps'])} | {_ratio(e['delivered_pps'], one)} | "
                         f"{_num(e.get('tx_ring_full'))} |")
    return lines


def senders_table(summary: dict, placements) -> list[str]:
    lines = ["| placement | sender | checksum MCR receives | no-drop pps (64 B) | relay CPU ns/pkt | CPU vs raw |",
             "|---|---|---|---|---|---|"]
    for pl in placements:
        raw = _get(summary, "senders", pl, "mcr", 64, "raw", 1)
        for sender, checksum in (("raw", "full (updated incrementally)"), ("udp-socket", "partial (offloaded)")):
            e = _get(summary, "senders", pl, "mcr", 64, sender, 1)
            if e:
                limited = ">= " if e.get("generator_limited") else ""
                lines.append(f"| {pl} | {sender} | {checksum} | {limited}{_num(e['offered_pps'])} | "
                             f"{_num(e['relay_cpu_ns'])} | {_ratio(e['relay_cpu_ns'], raw.get('relay_cpu_ns'))} |")
    return lines


def workers_table(summary: dict, placements, workers) -> list[str]:
    lines = ["| placement | workers | no-drop pps (100 streams, 64 B) | relay CPU ns/pkt | vs 1 worker |",
             "|---|---|---|---|---|"]
    for pl in placements:
        one = _get(summary, "ndr", pl, "mcr-1w", 64, 100, 1).get("offered_pps")
        for n in workers:
            e = _get(summary, "ndr", pl, f"mcr-{n}w", 64, 100, 1)
            if e:
                lines.append(f"| {pl} | {n} | {_num(e['offered_pps'])} | {_num(e['relay_cpu_ns'])} | "
                             f"{_ratio(e['offered_pps'], one)} |")
    return lines


WILDCARD_ROWS = {"exact": "exact rules alone (as today)",
                 "exact+wildcards": "exact rules, 256 any-port and 256 range rules present",
                 "range-hit": "no exact rule: a range rule takes it, after scanning 255 others"}


def wildcards_table(summary: dict, placements, variants) -> list[str]:
    lines = ["| placement | rule table | no-drop pps (64 B) | vs exact alone | relay CPU ns/pkt at no-drop "
             "| relay CPU ns/pkt at 100k pps | vs exact alone |",
             "|---|---|---|---|---|---|---|"]
    for pl in placements:
        base = _get(summary, "wildcards", pl, "mcr-exact", 64, 1, 1)
        base_cpu = _get(summary, "wildcards-cpu", pl, "mcr-exact", 64)
        for v in variants:
            e = _get(summary, "wildcards", pl, f"mcr-{v}", 64, 1, 1)
            cpu = _get(summary, "wildcards-cpu", pl, f"mcr-{v}", 64)
            if e:
                limited = ">= " if e.get("generator_limited") else ""
                lines.append(f"| {pl} | {WILDCARD_ROWS.get(v, v)} | {limited}{_num(e['offered_pps'])} | "
                             f"{_ratio(e['offered_pps'], base.get('offered_pps'))} | {_num(e['relay_cpu_ns'])} | "
                             f"{_num(cpu.get('relay_cpu_ns'))} | "
                             f"{_ratio(cpu.get('relay_cpu_ns'), base_cpu.get('relay_cpu_ns'))} |")
    return lines


TRACING_ROWS = {"off": "no trace (the default)", "other-rule": "a trace running on another rule",
                "sample-1": "every packet of this rule traced (for information)"}


def tracing_table(summary: dict, placements, variants) -> list[str]:
    lines = ["| placement | tracing | no-drop pps (64 B) | vs off | relay CPU ns/pkt at 100k pps | vs off |",
             "|---|---|---|---|---|---|"]
    for pl in placements:
        base = _get(summary, "tracing", pl, "mcr-trace-off", 64, 1, 1)
        base_cpu = _get(summary, "tracing-cpu", pl, "mcr-trace-off", 64)
        for v in variants:
            e = _get(summary, "tracing", pl, f"mcr-trace-{v}", 64, 1, 1)
            cpu = _get(summary, "tracing-cpu", pl, f"mcr-trace-{v}", 64)
            if e:
                limited = ">= " if e.get("generator_limited") else ""
                lines.append(f"| {pl} | {TRACING_ROWS.get(v, v)} | {limited}{_num(e['offered_pps'])} | "
                             f"{_ratio(e['offered_pps'], base.get('offered_pps'))} | "
                             f"{_num(cpu.get('relay_cpu_ns'))} | "
                             f"{_ratio(cpu.get('relay_cpu_ns'), base_cpu.get('relay_cpu_ns'))} |")
    return lines


SCALE_ROWS = {"1-rule": "one rule", "10000-rules": "10,000 rules, 100,000 outputs",
              "10000-rules-syncing": "10,000 rules, a full 10,000-rule sync every 0.5 s"}


def scale_table(summary: dict, rows: list[dict], placements, variants) -> list[str]:
    lines = ["| placement | rule table | no-drop pps (64 B) | vs one rule | loss at 50k pps (3 s) | syncs during it "
             "| slowest sync (ms) |", "|---|---|---|---|---|---|---|"]
    for pl in placements:
        base = _get(summary, "scale", pl, "mcr-1-rule", 64, 1, 1)
        for v in variants:
            e = _get(summary, "scale", pl, f"mcr-{v}", 64, 1, 1)
            fixed = _get(summary, "scale-sync", pl, f"mcr-{v}", 64)
            syncs = [r for r in rows if r["test"] == "scale-sync" and r["placement"] == pl
                     and r["system"] == f"mcr-{v}"]
            limited = ">= " if e.get("generator_limited") else ""
            lines.append(f"| {pl} | {SCALE_ROWS.get(v, v)} | {limited + _num(e['offered_pps']) if e else '—'} | "
                         f"{_ratio(e['offered_pps'], base.get('offered_pps')) if e else '—'} | "
                         f"{_num(fixed.get('loss'), 100, 3) + ' %' if fixed else '—'} | "
                         f"{', '.join(str(r['syncs']) for r in syncs) or '—'} | "
                         f"{', '.join(str(r['sync_ms_max']) for r in syncs) or '—'} |")
    return lines


def write(results: dict, out: Path) -> None:
    s, st = results["summary"], results["settings"]
    m = results["machine"]
    machine_line = (f"Run {results['started']}, {results['duration_s']} s. Machine: {m['cpu']}, {m['cores']} "
                    f"cores, kernel {m['kernel']}, load average at start {m['load_average_at_start']}. "
                    f"MCR {m['mcr']} (commit {m['commit']}), {m['socat']}.")
    method = ("Figures are medians over repeats (min–max when repeated). No-drop rate: highest paced rate with "
              "<= 0.5 % loss found by bisection (offered pps = what the generator achieved). Placement A: plain "
              "veth, the relay's ingress softirq runs on the generator's core. B: RPS steers it to the relay's "
              "core, where it runs as a softirq ahead of any process. C: the relay's input veth is polled by a "
              "threaded NAPI kernel thread pinned to the relay's core, which the scheduler weighs against the "
              "relay. '>=': the generator at full speed passed (the generator, not the relay, was the limit; in A "
              "the kernel forwards on the generator's core). Overload offered pps is what the generator got "
              "onto the wire: its own maximum, or less when the relay host's input queue is full and refuses "
              "the send (ENOBUFS; the generator retries), which is how C sheds load.")
    lines = [f"# MCR benchmark ({results['profile']} profile)", "", machine_line, "",
             "Settings: " + ", ".join(f"{k}={v}" for k, v in st.items()), "", method,
             "", "## No-drop rate, one stream", *ndr_table(s, st["placements"], st["payloads"]), "",
             "## CPU per delivered packet at the no-drop rate", *cpu_table(s, st["placements"], st["payloads"]), "",
             "## Overload: offered 3x the no-drop rate", *overload_table(s, st["placements"], st["payloads"]), "",
             f"## Latency at {st['latency_rate_pps']:,} pps, 64 B", *latency_table(s, st["placements"]), ""]
    for n in st["streams"]:
        if n != 1:
            lines += [f"## No-drop rate, {n} streams (64 B)", *ndr_table(s, st["placements"], [64], n), ""]
    lines += ["## Fan-out (64 B; delivery counted on the relay's output links)",
              *fanout_table(s, st["fanout_placements"], st["fanout"]), ""]
    lines += ["## Senders: prebuilt frames against a kernel UDP socket (partial checksums), MCR only",
              *senders_table(s, st["fanout_placements"]), ""]
    if st.get("workers"):
        lines += ["## Workers: `mcr daemon` sharing one input through PACKET_FANOUT (hashed by flow)",
                  *workers_table(s, st["fanout_placements"], st["workers"]), ""]
    if st.get("wildcards"):
        lines += ["## Any-port and range rules: what they cost exact rules (benchmarks/wildcard_relay.py)",
                  *wildcards_table(s, st["fanout_placements"], st["wildcards"]), ""]
    if st.get("tracing"):
        lines += ["## Packet tracing: what it costs the data path (benchmarks/trace_relay.py)",
                  *tracing_table(s, st["fanout_placements"], st["tracing"]), ""]
    if st.get("scale"):
        lines += ["## 10,000 rules: forwarding rate and syncs under traffic (benchmarks/scale_relay.py)",
                  *scale_table(s, results["rows"], st["fanout_placements"], st["scale"]), ""]
    lines += ["## Not measured", *[f"- {n['what']}: {n['why']}" for n in results["not_measured"]], ""]
    lines += [f"![{p.stem}]({p.name})" for p in plots(results, out)]
    (out / "report.md").write_text("\n".join(lines) + "\n")


def plots(results: dict, out: Path) -> list[Path]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    st, made = results["settings"], []
    for placement in st["placements"]:
        fig, ax = plt.subplots(figsize=(7, 4))
        for system, color in zip(SYSTEMS, ("tab:blue", "tab:orange", "tab:green")):
            points = sorted((t["offered"], t["delivered_pps"]) for row in results["rows"]
                            if row["test"] == "ndr" and row["placement"] == placement and row["system"] == system
                            and row.get("size") == 64 and row.get("streams") == 1 for t in row["tried"])
            if points:
                ax.plot(*zip(*points), "o-", color=color, label=system)
        top = max([p for line in ax.get_lines() for p in line.get_xdata()] or [1])
        ax.plot([0, top], [0, top], ":", color="grey", label="offered")
        ax.set(xlabel="offered pps", ylabel="delivered pps", title=f"64 B, placement {placement}: every trial")
        ax.legend()
        ax.grid(alpha=0.3)
        path = out / f"delivered_vs_offered_{placement}.png"
        fig.savefig(path, dpi=100, bbox_inches="tight")
        plt.close(fig)
        made.append(path)
    return made
