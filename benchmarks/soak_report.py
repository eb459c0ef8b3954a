"""The soak profile's figures: loss and RSS growth from its raw records, report.md and rss.png.

Kept apart from benchmarks/soak.py so that the arithmetic (what counts as
loss, which sample is the RSS baseline, the verdict) needs no namespaces
or root and can be tested on its own.
"""

from __future__ import annotations

from pathlib import Path

RSS_GROWTH_OK = 0.05  # issue 15, item 5: supervisor and worker RSS within 5 %


class SoakDataError(ValueError):
    """Soak records that cannot be summarised (no samples, a malformed chunk)."""


def loss_totals(chunks: list[dict]) -> dict:
    """Sent, received, lost over all chunks, and how many chunks lost anything."""
    if not chunks:
        raise SoakDataError("no chunks: the soak sent nothing")
    try:
        sent = sum(int(c["sent"]) for c in chunks)
        received = sum(int(c["received"]) for c in chunks)
        lost = sum(int(c["lost"]) for c in chunks)
    except (KeyError, TypeError, ValueError) as error:
        raise SoakDataError(f"malformed chunk record: {error!r}") from error
    return {"chunks": len(chunks), "sent": sent, "received": received, "lost": lost,
            "loss": lost / sent if sent else 1.0, "chunks_with_loss": sum(1 for c in chunks if c["lost"]),
            "duplicates": sum(int(c.get("duplicates", 0)) for c in chunks),
            "late": sum(int(c.get("late", 0)) for c in chunks),
            # Loss the relay's input saw (the worker fell behind) versus loss after it (output, sink).
            "relay_input_kernel_drops": sum(int(c.get("relay_input_kernel_drops", 0)) for c in chunks)}


def series(samples: list[dict]) -> dict[str, list[tuple[float, int]]]:
    """(t, KiB) per process: "supervisor" and "worker <pid>"; samples where a process was gone are skipped."""
    out: dict[str, list[tuple[float, int]]] = {"supervisor": []}
    for sample in samples:
        if sample.get("supervisor") is not None:
            out["supervisor"].append((sample["t"], sample["supervisor"]))
        for pid, kib in sample.get("workers", {}).items():
            if kib is not None:
                out.setdefault(f"worker {pid}", []).append((sample["t"], kib))
    return out


def growth(points: list[tuple[float, int]], warmup: float) -> dict | None:
    """first (the baseline: the first point at or after `warmup` s), last, max, growth = (last - first) / first.

    A run shorter than its warm-up falls back to the first point and says so
    (warmup_honoured False), so a short look still gives a figure. None
    without points."""
    if not points:
        return None
    start = next((i for i, (t, _) in enumerate(points) if t >= warmup), None)
    warmed = start is not None
    base = points[start if warmed else 0:]
    first, last = base[0][1], base[-1][1]
    return {"first_kib": first, "last_kib": last, "max_kib": max(kib for _, kib in points),
            "baseline_t": base[0][0], "last_t": base[-1][0], "samples": len(base), "warmup_honoured": warmed,
            "growth": (last - first) / first if first else None}


def rss_summary(samples: list[dict], warmup: float) -> dict:
    """Growth per process; the workers' verdict figure is the largest growth among them.

    A worker that was replaced shows as two pids: each is measured on its own
    samples, and the replacement itself is reported (workers_seen > 1)."""
    if not samples:
        raise SoakDataError("no RSS samples")
    per = {name: growth(points, warmup) for name, points in series(samples).items()}
    workers = {name: g for name, g in per.items() if name.startswith("worker ") and g is not None}
    worker_growths = [g["growth"] for g in workers.values() if g["growth"] is not None]
    return {"supervisor": per.get("supervisor"), "workers": workers, "workers_seen": len(workers),
            "worker_growth_max": max(worker_growths) if worker_growths else None}


def summarise(chunks: list[dict], samples: list[dict], warmup: float) -> dict:
    """Loss totals, RSS growths and the verdict: loss == 0 and both growths within RSS_GROWTH_OK."""
    loss = loss_totals(chunks)
    rss = rss_summary(samples, warmup)
    sup = rss["supervisor"]["growth"] if rss["supervisor"] else None
    wrk = rss["worker_growth_max"]
    checks = {"loss_zero": loss["lost"] == 0 and loss["sent"] > 0,
              "supervisor_rss_flat": sup is not None and abs(sup) <= RSS_GROWTH_OK,
              "worker_rss_flat": wrk is not None and abs(wrk) <= RSS_GROWTH_OK,
              "one_worker_throughout": rss["workers_seen"] == 1}
    passed = all(checks.values())
    verdict = ("PASS" if passed else "FAIL") + (
        f": loss {loss['lost']} of {loss['sent']}, supervisor RSS {_pct(sup)}, worker RSS {_pct(wrk)}"
        f" (limit {RSS_GROWTH_OK:.0%})")
    return {"loss": loss, "rss": rss, "checks": checks, "passed": passed, "verdict": verdict}


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.2%}"


def _mib(kib: int | None) -> str:
    return "n/a" if kib is None else f"{kib / 1024:.1f}"


def rss_table(rss: dict) -> list[str]:
    lines = ["| process | baseline (MiB) | last (MiB) | max (MiB) | growth | baseline at | samples |",
             "|---|---|---|---|---|---|---|"]
    rows = [("supervisor", rss["supervisor"]), *rss["workers"].items()]
    for name, g in rows:
        if g is None:
            lines.append(f"| {name} | n/a | n/a | n/a | n/a | n/a | 0 |")
            continue
        at = f"{g['baseline_t']:.0f} s" + ("" if g["warmup_honoured"] else " (run shorter than warm-up)")
        lines.append(f"| {name} | {_mib(g['first_kib'])} | {_mib(g['last_kib'])} | {_mib(g['max_kib'])} "
                     f"| {_pct(g['growth'])} | {at} | {g['samples']} |")
    return lines


def chunk_table(chunks: list[dict]) -> list[str]:
    """The chunks that lost packets (all of them fit: at most one line per chunk, and none on a pass)."""
    lossy = [c for c in chunks if c["lost"]]
    if not lossy:
        return ["No chunk lost a packet."]
    lines = ["| chunk | at (s) | sent | lost | relay input kernel drops | relay core busy | load average |",
             "|---|---|---|---|---|---|---|"]
    for c in lossy:
        lines.append(f"| {c['index'] + 1} | {c['t']:.0f} | {c['sent']} | {c['lost']} | "
                     f"{c.get('relay_input_kernel_drops', 'n/a')} | {c.get('relay_core_busy', 'n/a')} | "
                     f"{c.get('load_average', 'n/a')} |")
    return lines


def counters_lines(daemon: dict) -> list[str]:
    drops = daemon.get("drops")
    nonzero = {k: v for k, v in drops.items() if v} if isinstance(drops, dict) else drops
    return [f"- kernel_drops (input sockets): {daemon.get('kernel_drops')} {daemon.get('kernel_drops_by_input')}, "
            "over the whole run: the no-drop search's overload trials included (the soak's own are in the "
            "Loss table)",
            f"- drops by reason: {nonzero or 'all 0'}" + (f" ({len(drops)} reasons)" if isinstance(drops, dict)
                                                          else ""),
            f"- events: {daemon.get('events')}",
            f"- input frames read: {daemon.get('input_frames')}, rule packets forwarded: "
            f"{daemon.get('rule_packets')} (the whole run, search included)",
            f"- resyncs: {daemon.get('resyncs')}, task faults: {daemon.get('task_faults') or 'none'}, "
            f"worker restarts: {daemon.get('worker_restarts')}, crashes: {daemon.get('worker_crashes')}"]


def markdown(results: dict) -> str:
    s, summary = results["settings"], results["summary"]
    loss = summary["loss"]
    search = results.get("search")
    rate = f"{s['rate_pps']:.0f} pps" + (" (given)" if s["rate_given"] else
                                         f" (half the measured no-drop rate, {search['ndr_pps']:.0f} pps)")
    lines = [f"# MCR soak, {results['started']}", "", f"**{summary['verdict']}**", "",
             f"- {s['minutes']} min at {rate}, {s['size']}-byte payloads, {loss['chunks']} chunks of "
             f"{s['chunk_s']} s; run took {results['duration_s']} s",
             f"- daemon: {s['daemon']}; generator: {s['generator']}; receiver: {s['receiver']}",
             f"- RSS from /proc/PID/VmRSS every {s['sample_s']} s; baseline = first sample after a "
             f"{s['warmup_s']} s warm-up",
             f"- machine: {results.get('machine')}", "", "## Loss", "",
             "| sent | received | lost | loss | chunks with loss | of it, kernel drops at the relay's input "
             "| duplicates | late |", "|---|---|---|---|---|---|---|---|",
             f"| {loss['sent']} | {loss['received']} | {loss['lost']} | {loss['loss']:.6%} | "
             f"{loss['chunks_with_loss']} | {loss['relay_input_kernel_drops']} | {loss['duplicates']} "
             f"| {loss['late']} |", "", *chunk_table(results["chunks"]), "", "## Memory", "",
             *rss_table(summary["rss"]), "", "![RSS over time](rss.png)", "", "## Daemon counters at the end", "",
             *counters_lines(results["daemon"]), "", "## Checks", "",
             *(f"- {name}: {'ok' if ok else 'FAILED'}" for name, ok in summary["checks"].items())]
    if results.get("rss_errors"):
        lines += ["", "## Samples missed", "", *(f"- {e}" for e in results["rss_errors"])]
    return "\n".join(lines) + "\n"


def plot(samples: list[dict], warmup: float, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    for name, points in series(samples).items():
        if points:
            ax.plot([t / 60 for t, _ in points], [kib / 1024 for _, kib in points], marker=".", label=name)
    ax.axvline(warmup / 60, color="grey", linestyle="--", label="end of warm-up (baseline)")
    ax.set_xlabel("minutes")
    ax.set_ylabel("RSS (MiB)")
    ax.set_title("mcr daemon RSS during the soak")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def write(results: dict, out: Path) -> None:
    (out / "report.md").write_text(markdown(results))
    plot(results["rss"], results["settings"]["warmup_s"], out / "rss.png")
