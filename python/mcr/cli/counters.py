"""Human formatting of engine counters, shared by the verbs that show them."""

from __future__ import annotations


def rate(now: int, before: int, seconds: float) -> float:
    return (now - before) / seconds if seconds > 0 else 0.0


def drops_line(stats: dict) -> str:
    nonzero = {k: v for k, v in stats["drops"].items() if v}
    kernel = sum(i["kernel_drops"] for i in stats["inputs"].values())
    if kernel:
        nonzero["kernel"] = kernel
    return "drops: " + (", ".join(f"{k}={v}" for k, v in nonzero.items()) if nonzero else "none")


def rules_table(stats: dict, previous: dict | None, seconds: float) -> list[str]:
    """One line per rule and per output: packets, bytes and rates since `previous`."""
    lines = []
    for rule_id, rule in stats["rules"].items():
        before = (previous or {}).get("rules", {}).get(rule_id, {"packets": 0, "bytes": 0, "outputs": {}})
        pps = rate(rule["packets"], before["packets"], seconds)
        bps = rate(rule["bytes"], before["bytes"], seconds) * 8
        lines.append(f"rule {rule_id}: {rule['rule']}")
        lines.append(f"  matched {rule['packets']:>10} pkts {rule['bytes']:>12} B  {pps:>9.0f} pps {bps / 1e6:>8.2f} Mb/s")
        for name, out in rule["outputs"].items():
            was = before["outputs"].get(name, {"packets": 0})
            lines.append(f"  -> {name:<28} {out['packets']:>10} pkts {out['errors']:>6} err "
                         f"{rate(out['packets'], was['packets'], seconds):>9.0f} pps")
    return lines
