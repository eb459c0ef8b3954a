"""The supervisor's restart path on its own, with real worker processes and
no network: a worker that dies between the check and the kill, one that
cannot even be spawned, and the rule that decides when restarts back off."""

from __future__ import annotations

import asyncio

import pytest

from mcr.config import Config
from mcr.supervisor import Supervisor
from mcr.supervisor.workers import CRASH_LOOP, STABLE_AFTER, Worker, WorkerError, restart_delay


def test_restart_delay_backs_off_only_for_crashes_in_a_row():
    assert restart_delay(0) == 0.0  # died after a stable run
    assert restart_delay(1) == 0.0  # a first crash
    delays = [restart_delay(n) for n in range(2, 12)]
    assert delays[:4] == [0.5, 1.0, 2.0, 4.0]
    assert delays == sorted(delays) and delays[-1] == 30.0


def test_a_death_after_a_stable_run_is_not_a_crash():
    worker = Worker(0, None)
    for n in range(1, CRASH_LOOP + 1):  # dies while starting, again and again
        worker.state = "starting"
        delay = worker.exited(100.0 + n)
        assert worker.crashes == n and delay == restart_delay(n)
    assert worker.state == "crash-looping"
    worker.running(200.0)
    assert worker.exited(200.0 + STABLE_AFTER / 2) > 0, "died soon after starting: still a crash"
    worker.running(300.0)
    assert worker.exited(300.0 + STABLE_AFTER) == 0.0
    assert worker.crashes == 0 and worker.state == "restarting"


class RefusingSupervisor(Supervisor):
    """A supervisor whose first rule sync finds the worker dead: the worker
    refused and died, and asyncio has reaped it before the supervisor reacts
    (what `Process.kill()` answers with ProcessLookupError)."""

    def __init__(self, refusals: int) -> None:
        super().__init__(Config(workers=1))
        self.refusals = refusals

    async def _sync_worker(self, worker: Worker) -> None:
        if self.refusals:
            self.refusals -= 1
            worker.process.kill()
            await worker.process.wait()
            await asyncio.sleep(0.2)  # the transport closes once the stderr pipe has ended too
            with pytest.raises(ProcessLookupError):
                worker.process.kill()  # the race, as asyncio presents it
            raise WorkerError(f"worker {worker.id}: refused the rule set")


async def wait_until(predicate, timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


async def stop(sup: Supervisor) -> None:
    """This supervisor never ran (no netlink, no protocols): stop its tasks and workers only."""
    sup.stop()
    for task in list(sup._tasks):
        task.cancel()
    await asyncio.gather(*sup._tasks, return_exceptions=True)
    await asyncio.gather(*(w.stop() for w in sup.pool))


def run_refusals(refusals: int) -> tuple[dict, dict]:
    """Start one worker whose first `refusals` syncs fail; once it runs: (its description, task faults)."""

    async def scenario() -> tuple[dict, dict]:
        sup = RefusingSupervisor(refusals)
        async with sup._changing:
            await sup._start_workers()
        (worker,) = sup.pool
        try:
            await wait_until(lambda: worker.state == "running", 15)
            return worker.describe(), dict(sup.task_faults)
        finally:
            await stop(sup)

    return asyncio.run(scenario())


def test_worker_dead_before_the_kill_is_restarted(caplog):
    described, faults = run_refusals(refusals=1)
    assert described["restarts"] == 1 and described["state"] == "running"
    assert faults == {"start worker 0": 1}, "the failed start is counted, and the watcher itself never failed"
    assert "worker 0 failed to start: WorkerError: worker 0: refused the rule set" in caplog.text


def test_refusals_in_a_row_back_off_and_are_counted():
    described, faults = run_refusals(refusals=3)
    assert described["restarts"] == 3 and described["state"] == "running"
    assert described["crashes"] == 3
    assert faults == {"start worker 0": 3}


def test_a_worker_that_cannot_be_spawned_is_retried(monkeypatch):
    real_exec = asyncio.create_subprocess_exec
    failures = [2]

    async def flaky_exec(*args, **kwargs):
        if failures[0]:
            failures[0] -= 1
            raise OSError(24, "Too many open files")
        return await real_exec(*args, **kwargs)

    monkeypatch.setattr(asyncio, "create_subprocess_exec", flaky_exec)
    described, faults = run_refusals(refusals=0)
    assert described["state"] == "running" and described["restarts"] == 2
    assert faults == {"start worker 0": 2}
