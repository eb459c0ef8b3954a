"""Runs every fuzz target for a bounded number of inputs and fails on any
crash: the CI step `make fuzz` (tests/fuzz/README.md).

Each target starts from its committed corpus (tests/fuzz/corpus/<target>/,
read only) and keeps what it finds in BUILD/work/<target>/; a crashing
input is written to BUILD/artifacts/. Prints, per target, the inputs run
and the seconds taken.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CPP_TARGETS = ("packet_parser", "command", "reply", "register")
PY_TARGETS = {"igmp": "igmp_fuzz.py", "pim": "pim_fuzz.py", "msdp": "msdp_fuzz.py", "control": "control_fuzz.py"}
# IGMP and PIM messages come in one IP packet off a link: 1,500 bytes is plenty,
# and longer inputs only slow the (pure Python) decoders down.
# MSDP: 512 bytes hold an SA of 42 entries, or several TLVs to reassemble (longer inputs
# kept the Python target under 10^6 inputs in its time).
EXTRA = {"igmp": ["-max_len=1500"], "pim": ["-max_len=1500"], "msdp": ["-max_len=512"],
         "control": ["-dict=" + str(HERE / "control.dict")]}
EXECUTED = re.compile(rb"stat::number_of_executed_units: (\d+)")


def command(target: str, build: Path) -> list[str]:
    if target in PY_TARGETS:
        return [sys.executable, str(HERE / PY_TARGETS[target])]
    return [str(build / "tests" / "fuzz" / f"fuzz_{target}")]


def fuzz(target: str, build: Path, runs: int, max_time: int) -> tuple[bool, int, float]:
    """(passed, inputs run, seconds) for one target."""
    work, artifacts = build / "work" / target, build / "artifacts"
    work.mkdir(parents=True, exist_ok=True)
    artifacts.mkdir(parents=True, exist_ok=True)
    args = [*command(target, build), f"-runs={runs}", f"-max_total_time={max_time}", "-timeout=10",
            "-print_final_stats=1", f"-artifact_prefix={artifacts}/{target}-", *EXTRA.get(target, []),
            str(work), str(HERE / "corpus" / target)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), str(HERE.parent)])}
    start = time.monotonic()
    result = subprocess.run(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    seconds = time.monotonic() - start
    found = EXECUTED.search(result.stdout)
    if result.returncode != 0:
        sys.stdout.write(result.stdout.decode(errors="replace")[-6000:])
    return result.returncode == 0, int(found.group(1)) if found else 0, seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", type=Path, required=True, help="the fuzz build directory (make fuzz)")
    parser.add_argument("--runs", type=int, default=1_000_000, help="inputs per target (-1: until the time cap)")
    parser.add_argument("--max-time", type=int, default=60, help="seconds per target at most")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="targets run at once (one core each)")
    # the slow (Python) targets first, so the cores finish together
    parser.add_argument("targets", nargs="*", default=[*PY_TARGETS, *CPP_TARGETS])
    options = parser.parse_args()
    failed = []
    # Each libFuzzer run is one process on one core: the targets share the cores out.
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, options.jobs)) as pool:
        runs = {pool.submit(fuzz, target, options.build.resolve(), options.runs, options.max_time): target
                for target in options.targets}
        for done in concurrent.futures.as_completed(runs):
            target = runs[done]
            passed, executed, seconds = done.result()
            short = "" if executed >= options.runs else f" (stopped at the {options.max_time} s cap)"
            print(f"fuzz {target:14} {'ok' if passed else 'CRASH':5} {executed:9} inputs {seconds:6.1f} s{short}",
                  flush=True)
            if not passed:
                failed.append(target)
    if failed:
        print(f"fuzz: {', '.join(failed)} crashed; the input is in {options.build}/artifacts/", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
