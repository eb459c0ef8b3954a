"""Soak profile: the real daemon at half its no-drop rate for a long time, with memory and loss watched.

    sudo .venv/bin/python -m benchmarks.soak                     # 30 minutes (issue 15, item 5; not CI)
    sudo .venv/bin/python -m benchmarks.soak --minutes 2         # a short look
    sudo .venv/bin/python -m benchmarks.soak --rate 50000 --size 1400

Builds source -> relay -> sink in network namespaces (mcr.lab.chain) and
starts `mcr daemon` (supervisor plus one worker pinned to core 1) in the
relay namespace with one static rule from a config file, so that both the
supervisor's and the worker's memory are on trial, not only the engine's.
Unless --rate is given it first measures the no-drop rate (<= 0.5 % loss)
with the bisection of benchmarks/measure.py, then sends at half of it for
--minutes, as back-to-back trials of --chunk seconds (10 s by default).
Each chunk is counted on both ends: sent by `mcr gen --raw` (prebuilt
frames on an AF_PACKET socket) and received by the lab Sink, which reads
ordinary kernel UDP sockets joined to the output group (recvmmsg in C++),
so a packet counts only when the kernel's UDP stack delivered it.

Every --sample seconds (10 s) a thread reads VmRSS from /proc/PID/status
for the supervisor and for each worker (pids from the daemon's `workers`
reply, as `mcr workers --json` prints them). Growth is (last - first) /
first, with the baseline taken at the first sample after --warmup seconds
(60 s) of the soak itself (the no-drop search comes before): buffer rings, the allocator's arenas and the interpreter's caches
settle in the first minute and are not a leak. At the end the daemon's own
counters (`stats`: drops by reason, kernel_drops) are recorded; each
chunk also records the kernel drops at the daemon's input during it, which
tells a relay that fell behind from loss after it. The run passes when the
total loss is 0, both growths are within +-5 % and the worker was never
replaced. Exit status 0 on a pass, 2 on a fail, 1 if the daemon failed,
130 on Ctrl-C.

Writes results.json, report.md and rss.png to benchmarks/results/soak-<time>/.
Everything runs inside the namespaces this script creates and is torn down
on exit, Ctrl-C and SIGTERM included.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from mcr.lab import chain, streams
from mcr.lab.relays import START_TIMEOUT, DaemonRelay, RelayError, output_groups

from . import report as bench_report
from . import soak_report
from .measure import GRACE, no_drop_rate, trial

GEN_CORE, RELAY_CORE = 0, 1
RESULTS = Path(__file__).resolve().parent / "results"
SEARCH_CEILING = 800_000  # the first (overload) trial of the search; above what the generator reaches
SEARCH_TRIAL = 2.0  # seconds per search trial (the full profile's length)
SEARCH_STEPS = 6
MAX_CHUNKS = 10_000  # hard bound on the soak loop (30 min of 10 s chunks is 180)


class SoakDaemon(DaemonRelay):
    """`mcr daemon` with one worker and one static rule from a config file (not added over the API).

    The rule is input 239.1.1.1:5000 on the relay's input link -> 239.2.2.1:6000
    on its first output; idle_stop_after is off so the worker never stops
    between chunks."""

    name = "mcr-daemon-soak"

    def start(self) -> None:
        from mcr.api import Client

        self.outputs = output_groups(len(self.inputs))
        self._dir = tempfile.TemporaryDirectory(prefix="mcr-soak-")
        sock = os.path.join(self._dir.name, "control.sock")
        config = os.path.join(self._dir.name, "mcr.json")
        Path(config).write_text(json.dumps(self.config()))
        cmd = ["ip", "netns", "exec", self.ns, sys.executable, "-m", "mcr", "daemon", "--config", config,
               "--socket", sock, "--state", ""]
        # `ip netns exec` execs the daemon, so this pid is the supervisor's own.
        self.process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.socket_path = sock
        try:
            self._wait_ready(sock)
        except BaseException:
            self.stop()
            raise
        self.client = Client(sock, timeout=10)

    def config(self) -> dict:
        rules = [{"name": f"soak-{k}", "input_interface": self.in_if, "group": group, "port": port,
                  "outputs": [f"{out_group}:{out_port}:{self.out_ifs[0]}"]}
                 for k, ((group, port), (out_group, out_port)) in enumerate(zip(self.inputs, self.outputs))]
        return {"workers": 1, "pin_cores": [self.cpu if self.cpu is not None else RELAY_CORE],
                "log_level": "warning", "idle_stop_after": None, "rules": rules}

    def _wait_ready(self, sock: str) -> None:
        """Until the daemon reports a worker with a pid and every rule active, i.e. installed in the
        worker (bounded by START_TIMEOUT): a first chunk sent earlier would count start-up as loss."""
        from mcr.api import Client

        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise RelayError("mcr daemon exited while starting")
            if os.path.exists(sock):
                try:
                    with Client(sock, timeout=2) as client:
                        pids = [w.get("pid") for w in client.workers()]
                        rules = client.stats().get("rules") or {}
                    if pids and all(pids) and rules and all(r.get("state") == "active" for r in rules.values()):
                        self._pids = pids
                        return
                except (OSError, RuntimeError, ValueError):
                    pass  # not answering yet (ApiError is a RuntimeError)
            time.sleep(0.1)
        raise RelayError("mcr daemon did not report a running worker and an active rule in time")

    def supervisor_pid(self) -> int:
        """The daemon's pid, checked to be the daemon itself and not a wrapper that forked it."""
        if self.process is None:
            raise RelayError("mcr daemon is not running")
        with open(f"/proc/{self.process.pid}/cmdline", "rb") as f:
            if b"daemon" not in f.read().split(b"\0"):
                raise RelayError(f"pid {self.process.pid} is not the mcr daemon")
        return self.process.pid

    def cpu_ns(self) -> int | None:
        if self.process is None or self.process.poll() is not None:
            raise RelayError("mcr daemon exited")
        self._pids = self.worker_pids()
        return super().cpu_ns()

    def worker_pids(self) -> list[int]:
        return [w["pid"] for w in self.client.workers() if w.get("pid")]

    def stop(self) -> None:
        client = getattr(self, "client", None)
        if client is not None:
            client.close()
            self.client = None
        super().stop()


def vm_rss_kib(pid: int) -> int | None:
    """VmRSS of `pid` in KiB, or None for a process that is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


class RssSampler:
    """Samples supervisor and worker RSS every `interval` seconds on a thread, at most `max_samples` times.

    Uses its own control connection: the main thread's client is busy with
    the trials' counter reads."""

    def __init__(self, supervisor: int, socket_path: str, interval: float, max_samples: int) -> None:
        self.supervisor, self.socket_path = supervisor, socket_path
        self.interval, self.max_samples = interval, max_samples
        self.samples: list[dict] = []
        self.errors: list[str] = []
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-rss", daemon=True)

    def start(self) -> RssSampler:
        self._thread.start()
        return self

    def _run(self) -> None:
        from mcr.api import Client

        with Client(self.socket_path, timeout=5) as client:
            for _ in range(self.max_samples):
                self.sample(client)
                if self._stop.wait(self.interval):
                    return

    def sample(self, client) -> None:
        try:
            pids = [w["pid"] for w in client.workers() if w.get("pid")]
        except Exception as error:  # a sample missed is recorded, the soak goes on
            self.errors.append(f"{time.monotonic() - self.started:.1f} s: workers: {error}")
            pids = []
        self.samples.append({"t": round(time.monotonic() - self.started, 2),
                             "supervisor": vm_rss_kib(self.supervisor),
                             "workers": {str(pid): vm_rss_kib(pid) for pid in pids}})

    def stop(self, client=None) -> list[dict]:
        """Stops the thread and takes one last sample (so the end of the run is always in)."""
        self._stop.set()
        self._thread.join(self.interval + 10)
        if client is not None:
            self.sample(client)
        return self.samples


def search(setup, relay, size: int) -> tuple[float, dict]:
    """Half the no-drop rate found by bisection, and the search's record."""
    best, tried = no_drop_rate(lambda rate: trial(setup, relay, rate, size, SEARCH_TRIAL, RELAY_CORE),
                               SEARCH_CEILING, SEARCH_STEPS)
    if best is None:
        raise RelayError("no trial of the no-drop search passed; nothing to soak at")
    return best.offered / 2, {"ndr_pps": best.offered, "generator_limited": best is tried[0],
                              "tried": [t.as_dict() for t in tried]}


def soak(setup, relay, rate: float, size: int, minutes: float, chunk: float, log) -> list[dict]:
    """Back-to-back fixed-rate trials of `chunk` seconds for `minutes`; bounded by time and by MAX_CHUNKS."""
    total = minutes * 60
    count = min(MAX_CHUNKS, max(1, math.ceil(total / chunk)))
    started = time.monotonic()
    deadline = started + total + chunk  # one chunk of slack for the trials' own set-up time
    chunks = []
    for i in range(count):
        length = min(chunk, max(0.5, total - (time.monotonic() - started)))
        before = input_kernel_drops(relay.client.stats())
        t = trial(setup, relay, rate, size, length, RELAY_CORE)
        relay_drops = input_kernel_drops(relay.client.stats()) - before
        lost = max(0, t.sent - t.delivered)
        chunks.append({"index": i, "t": round(time.monotonic() - started, 2), "seconds": length,
                       "sent": t.sent, "received": t.delivered, "lost": lost, "loss": t.loss, "late": t.late,
                       "duplicates": t.duplicates, "offered_pps": t.offered, "refused": t.refused,
                       "relay_input_kernel_drops": relay_drops, "relay_core_busy": round(t.relay_core_busy, 3),
                       "load_average": round(os.getloadavg()[0], 2), "latency_us": t.latency_us})
        if lost or i % 6 == 5 or i == count - 1:
            log(f"chunk {i + 1}/{count}: sent {t.sent}, received {t.delivered}, lost {lost} "
                f"({relay_drops} dropped by the kernel at the relay's input, relay core {t.relay_core_busy:.0%} busy)")
        if time.monotonic() > deadline:
            break
    return chunks


def input_kernel_drops(stats: dict) -> int:
    """Packets the kernel dropped at the daemon's input sockets (full buffer: the worker fell behind)."""
    return sum(int(i.get("kernel_drops") or 0) for i in (stats.get("inputs") or {}).values())


def daemon_counters(stats: dict, workers: list[dict]) -> dict:
    """What a soak reads from the daemon at the end: nonzero drops by reason, kernel drops per input (the
    input socket's own count of packets the kernel dropped for a full buffer), relay events, rule and
    input packet counts, resyncs, task faults, worker restarts and crashes; the whole stats reply as well."""
    inputs = stats.get("inputs") or {}
    return {"drops": stats.get("drops"),
            "kernel_drops": input_kernel_drops(stats),
            "kernel_drops_by_input": {name: i.get("kernel_drops") for name, i in inputs.items()},
            "input_frames": sum(int(i.get("frames") or 0) for i in inputs.values()),
            "rule_packets": sum(int(r.get("packets") or 0) for r in (stats.get("rules") or {}).values()),
            "events": stats.get("events"), "resyncs": stats.get("resyncs"), "task_faults": stats.get("task_faults"),
            "worker_restarts": sum(int(w.get("restarts") or 0) for w in workers),
            "worker_crashes": sum(int(w.get("crashes") or 0) for w in workers),
            "stats": stats}


def run(args: argparse.Namespace, log) -> dict:
    with chain(n_sinks=1, prefix="mcrk") as setup:
        relay = SoakDaemon(setup.relay_ns, setup.relay_in, setup.relay_out[:1], streams(),
                           source=setup.source_addr, out_addrs=setup.relay_out_addr[:1], cpu=RELAY_CORE)
        with relay:
            log(f"daemon up: supervisor {relay.supervisor_pid()}, workers {relay.worker_pids()}")
            search_record = None
            rate = args.rate
            if rate is None:
                log("measuring the no-drop rate")
                rate, search_record = search(setup, relay, args.size)
                log(f"no-drop rate {search_record['ndr_pps']:.0f} pps: soaking at {rate:.0f} pps")
            total = args.minutes * 60
            sampler = RssSampler(relay.supervisor_pid(), relay.socket_path, args.sample,
                                 max_samples=int(total / args.sample) + 10).start()
            try:
                chunks = soak(setup, relay, rate, args.size, args.minutes, args.chunk, log)
            finally:
                samples = sampler.stop(relay.client)
            time.sleep(GRACE)
            workers_end = relay.client.workers()
            counters = daemon_counters(relay.client.stats(), workers_end)
    return {"settings": {"minutes": args.minutes, "rate_pps": rate, "rate_given": args.rate is not None,
                         "size": args.size, "chunk_s": args.chunk, "sample_s": args.sample,
                         "warmup_s": args.warmup, "generator_core": GEN_CORE, "relay_core": RELAY_CORE,
                         "generator": "mcr gen --raw (AF_PACKET, prebuilt frames, paced)",
                         "receiver": "mcr.lab.Sink: kernel UDP sockets joined to 239.2.2.1:6000, recvmmsg",
                         "daemon": "mcr daemon --config (1 worker, 1 static rule, idle_stop_after null)",
                         "topology": "mcr.lab.chain, placement A (plain veth)"},
            "search": search_record, "chunks": chunks, "rss": samples, "rss_errors": sampler.errors,
            "workers_end": workers_end, "daemon": counters}


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="benchmarks.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="soak length (default 30)")
    parser.add_argument("--rate", type=float, help="packets per second (default: half the measured no-drop rate)")
    parser.add_argument("--size", type=int, default=1400, help="UDP payload bytes (default 1400)")
    parser.add_argument("--chunk", type=float, default=10.0, help="seconds per counted trial (default 10)")
    parser.add_argument("--sample", type=float, default=10.0, help="seconds between RSS samples (default 10)")
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds before the RSS baseline (default 60)")
    parser.add_argument("--out", type=Path, help="output folder (default benchmarks/results/soak-<time>)")
    args = parser.parse_args(argv)
    for name in ("minutes", "chunk", "sample"):
        if not getattr(args, name) > 0:
            parser.error(f"--{name} must be positive")
    if args.rate is not None and not args.rate > 0:
        parser.error("--rate must be positive")
    if not 24 <= args.size <= 1472:
        parser.error("--size must be between 24 (the probe header) and 1472 (a 1500-byte MTU)")
    if args.warmup < 0:
        parser.error("--warmup must not be negative")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if os.geteuid() != 0:
        print("the soak needs root (network namespaces, raw sockets)", file=sys.stderr)
        return 1
    out = args.out or RESULTS / time.strftime("soak-%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    os.sched_setaffinity(0, {GEN_CORE})  # the generator and sink threads inherit this core
    # SIGTERM unwinds like Ctrl-C, so the daemon stops and the namespaces are removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.monotonic()

    def log(text: str) -> None:
        print(f"[{time.monotonic() - started:7.1f} s] {text}", flush=True)

    wall = time.time()
    try:
        results = run(args, log)
    except RelayError as error:  # the namespaces and the daemon are already gone here
        log(f"soak aborted: {error}")
        return 1
    except KeyboardInterrupt:  # likewise: the context managers have unwound
        log("interrupted; daemon stopped and namespaces removed, no results written")
        return 130
    results |= {"machine": bench_report.machine(), "duration_s": round(time.monotonic() - started, 1),
                "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(wall))}
    results["summary"] = soak_report.summarise(results["chunks"], results["rss"], args.warmup)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    soak_report.write(results, out)
    log(f"{results['summary']['verdict']}: {out}/report.md")
    return 0 if results["summary"]["passed"] else 2


if __name__ == "__main__":
    sys.exit(main())
