"""A new config's settings, applied to the running daemon (SIGHUP, or
`config load --replace`).

Whatever can change at run time changes at once: log levels (per
facility, the engine's too), idle_stop_after, and pin_cores (running workers
are re-pinned, the supervisor being root; cores given for a new worker count
wait for that count). The worker
count and the workers' user are fixed when the workers are spawned and the
fanout groups formed, the metrics endpoint's address when it starts to
listen; a change to any of them is kept for the next start and named in
the reply and the log, never ignored silently.
"""

from __future__ import annotations

import logging
import os

from .. import _engine, logs
from ..config import Config
from .workers import WorkerError

RUN_TIME = ("log_level", "log_levels", "idle_stop_after", "pin_cores", "igmp", "pim", "msdp")
AT_RESTART = ("workers", "user", "metrics")

log = logging.getLogger("mcr.supervisor")


def changed(running: Config, wanted: Config) -> list[str]:
    return [key for key in RUN_TIME + AT_RESTART if getattr(running, key) != getattr(wanted, key)]


async def apply(sup, config: Config) -> dict:
    """Apply `config`'s settings; returns {"applied": [...], "restart_needed": [...]}."""
    keys = changed(sup.current_config(), config)
    restart = [key for key in keys if key in AT_RESTART]
    if "pin_cores" in keys and "workers" in keys and config.pin_cores is not None:
        restart.append("pin_cores")  # cores for a worker count we do not run yet (unpinning is fine)
    applied = [key for key in keys if key not in restart]
    if {"log_level", "log_levels"} & set(applied):
        await set_levels(sup, {"default": config.log_level, **config.log_levels})
    if "pin_cores" in applied:
        pin(sup, config.pin_cores)
    sup.config = config
    if "igmp" in applied:
        sup.sync_igmp()  # a querier whose settings changed starts again with them
    if "pim" in applied:
        sup.sync_pim()
    if "msdp" in applied:
        sup.sync_msdp()
    if restart:
        log.warning("settings that need a restart of the daemon to take effect: %s (kept for the next start)",
                    ", ".join(f"{key}={getattr(config, key)}" for key in restart))
    return {"applied": applied, "restart_needed": restart}


async def set_levels(sup, levels: dict[str, str]) -> None:
    """The supervisor's loggers and every worker's engine follow `levels`."""
    sup.levels = dict(levels)
    logs.apply(sup.levels)
    number = logs.level_number(sup.levels.get("engine", sup.levels["default"]))
    for worker in sup._running():
        try:
            await worker.call(_engine.encode_set_log_level, number)
        except WorkerError as error:  # a worker that restarts takes sup.levels anyway
            log.warning("log level of worker %d: %s", worker.id, error)


def pin(sup, cores: tuple[int, ...] | None) -> None:
    """Worker i runs on cores[i] (None: on any core), now and after restarts."""
    everywhere = range(os.cpu_count() or 1)
    for index, worker in enumerate(sup.pool):
        worker.core = cores[index] if cores and index < len(cores) else None
        if worker.state == "running":
            os.sched_setaffinity(worker.pid, everywhere if worker.core is None else {worker.core})
            log.info("worker %d pinned to %s", worker.id, "any core" if worker.core is None else f"core {worker.core}")
