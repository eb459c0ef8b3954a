"""The supervisor killed with SIGKILL under traffic, then started again.

Its workers must not outlive it (PR_SET_PDEATHSIG, and the engine ends on
its channel's EOF), so the new supervisor's workers never forward beside
old ones: a kernel UDP receiver sees no datagram twice, traffic resumes
with the rules from the state file, and no old worker process remains.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from daemon_support import Daemon, rule, sink, wait_for

from mcr.lab import UdpSender, chain, numbered_payloads, payload_seq

RATE = 2000
DURATION = 8.0  # seconds of traffic; the supervisor dies after about 2
IDLE = 10.0  # the receiver waits this long through the gap (a cold daemon start under load takes seconds)


def gone(pid: int) -> bool:
    """Exited: no such process, or a zombie nobody has reaped yet (it runs no code)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def send(lab, count: int) -> None:
    with UdpSender(lab.source_ns, lab.source_if) as sender:
        assert sender.send(numbered_payloads(count, 100), "239.1.1.1", 5000, rate_pps=RATE,
                           timeout=DURATION + 10) == count


def test_supervisor_killed_under_traffic_is_replaced_without_duplicates(tmp_path):
    count = int(RATE * DURATION)
    with chain(n_sinks=1) as lab, sink(lab) as s:
        first = Daemon(lab, tmp_path, workers=2)
        second = None
        try:
            first.client.add_rule(rule(lab))  # kept in the state file
            received: list = []
            rx = threading.Thread(target=lambda: received.extend(s.receive(count, timeout=DURATION + 15, idle=IDLE)))
            tx = threading.Thread(target=send, args=(lab, count))
            rx.start()
            tx.start()
            wait_for(lambda: next(iter(first.client.stats()["rules"].values()))["packets"] > RATE, 5, "traffic")
            old = first.worker_pids()
            assert len(old) == 2
            first.process.kill()
            first.process.wait()
            killed = time.monotonic()
            wait_for(lambda: all(gone(p) for p in old), 1.0, f"old workers {old} to exit", interval=0.01)
            orphaned_for = time.monotonic() - killed
            second = Daemon(lab, tmp_path, workers=2)
            assert [r.group for r in second.client.rules().values()] == ["239.1.1.1"]
            new = second.worker_pids()
            tx.join(DURATION + 15)
            rx.join(DURATION + 30)
            relayed = next(iter(second.client.stats()["rules"].values()))["packets"]
        finally:
            if first.process.poll() is None:
                first.process.kill()
                first.process.wait()
            if second is not None:
                second.stop()  # also checks it leaves no worker and no socket file behind

    numbers = [payload_seq(r.payload)[1] for r in received]
    print(f"old workers gone {orphaned_for * 1000:.0f} ms after the kill; {len(numbers)} of {count} received, "
          f"{relayed} relayed by the new supervisor's workers")
    assert len(new) == 2 and not set(new) & set(old)
    assert len(numbers) == len(set(numbers)), "a datagram arrived twice: old and new workers forwarded together"
    assert max(numbers) == count - 1, "forwarding did not resume under the new supervisor"
    assert relayed > 0
    assert all(gone(p) for p in old)
