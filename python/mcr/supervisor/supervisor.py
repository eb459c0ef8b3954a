"""The supervisor: owns the rule set, the privileges and the workers.

It opens every privileged socket (packet inputs in one PACKET_FANOUT group
per interface, UDP egress, group joins), passes them to unprivileged
workers, keeps each worker's rule set equal to its own (checked by hash,
repaired by re-sync), restarts workers that die, and serves the control
socket. One asyncio loop; tasks get what they need from this object.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path

from .. import __version__, _engine, listen_address, logs, mrib
from ..config import Config, ConfigError
from ..events import EventBus
from ..membership import AsyncMembershipService, InputHolds
from ..netlink import NetworkMonitor
from ..protocols.igmp_service import IgmpService
from ..protocols.msdp_service import MsdpService
from ..protocols.pim_service import PimService
from ..rules import Rule
from ..stats import snapshot
from . import following, settings
from .commands import CommandError
from .joins import StaticJoins
from .listening import Listening
from .metrics_http import MetricsEndpoint
from .msdp_routing import MsdpRouting
from .notify import Notifier
from .pim_routing import PimRouting
from .tracing import Tracing
from .pool import WorkerPool
from .ruleset import RuleSet
from .workers import Worker, WorkerError, add_counters

DERIVED_IDS = 1 << 30  # engine ids of derived (S,G) routes start here; rule ids stay below
TASK_RESTART_DELAY = 1.0  # after a background task failed, before it runs again

log = logging.getLogger("mcr.supervisor")


class Supervisor(WorkerPool, Listening, PimRouting, MsdpRouting, Tracing):
    version = __version__

    def __init__(self, config: Config, *, config_path: str | None = None, state_path: str | None = None,
                 socket_path: str = "/run/mcr/control.sock", notifier: Notifier | None = None) -> None:
        self.config = config  # as last loaded; workers and user take effect at the next start
        self.started_with = config  # the settings this process runs with
        self.config_path = config_path
        self.state_path = state_path
        self.socket_path = socket_path
        self.notifier = notifier or Notifier(None)  # the service manager (systemd Type=notify), if any
        self._serving = False  # ready was reported: from then on a reload is reported too
        self.levels = {"default": config.log_level, **config.log_levels}
        self._idle_since: float | None = None  # since when no route was active (workers stop after a while)
        count = config.workers or os.cpu_count() or 1
        cores = config.pin_cores or (None,) * count
        self.pool = [Worker(i, cores[i] if i < len(cores) else None) for i in range(count)]
        self.ruleset = RuleSet()  # what the user asked for (static rules), by id
        self.routes: dict[int, mrib.Route] = {}  # what the MRIB made of them, by engine rule id
        self._derived_ids: dict[tuple, int] = {}  # (rule id, group, source) -> engine id of a derived route
        self.joins = StaticJoins()  # memberships asked for without a rule (`mcr igmp join`)
        self.igmp: IgmpService | None = None  # queriers, on the loop from run()
        self.pim: PimService | None = None  # PIM interfaces, on the loop from run()
        self.msdp: MsdpService | None = None  # MSDP peers, on the loop from run()
        self._membership_pending = False  # IGMP changed what listeners want: routes to recompute
        self._holds: InputHolds | None = None  # memberships and port claims, on the loop from run()
        self.network = NetworkMonitor()  # started on the loop in run()
        self.events = EventBus()  # `mcr events`
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._fanout_salt = os.getpid() << 8
        self.resyncs = 0
        self.task_faults: dict[str, int] = {}  # background task -> failures survived
        self.health_passes = 0  # health/drift loop passes completed: it is alive
        self.metrics: MetricsEndpoint | None = None  # `--metrics`, listening from run() on
        # The control server runs requests concurrently; rule-set changes and
        # worker (re)starts take turns, so no worker misses a change.
        self._changing = asyncio.Lock()

    # Lifecycle ----------------------------------------------------------------

    async def run(self) -> None:
        """Start, serve until SIGTERM/SIGINT, shut down. SIGHUP reloads the config file."""
        from .control import serve_control

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stopping.set)
        loop.add_signal_handler(signal.SIGHUP, lambda: self._spawn("reload", self.reload, forever=False))
        logs.apply(self.levels)
        if self.started_with.metrics:  # first: an address it cannot listen on stops the start at once
            self.metrics = MetricsEndpoint(self, *listen_address.parse(self.started_with.metrics))
            await self.metrics.start()
        self._holds = InputHolds(AsyncMembershipService())
        self.igmp = IgmpService(self._membership_changed, self.events.publish)
        self.pim = PimService(self.events.publish)
        self._start_pim()
        self._start_msdp()
        await self.network.start()
        self._spawn("network", lambda: following.follow(self))
        self._spawn("routes", lambda: following.follow_routes(self))
        async with self._changing:
            initial = self._initial_config()
            await self._set_rules(initial.rules)
            self.joins.wanted = set(initial.joins)
            self._sync_joins()
            self.sync_igmp()
            self.sync_pim()
            self.sync_msdp()
            await self._start_workers()
        self._spawn("health", self._health)
        server = await serve_control(self, self.socket_path)
        log.info("supervisor ready: %d workers, %d rules, control socket %s",
                 len(self.pool), len(self.rules), self.socket_path)
        self.notifier.ready(self._status())
        self._serving = True
        try:
            await self._stopping.wait()
        finally:
            log.info("shutting down")
            self.notifier.stopping()
            await server.close()
            await self._shutdown()

    def stop(self) -> None:
        self._stopping.set()

    def _status(self) -> str:
        """One line for `systemctl status`."""
        return f"{len(self.rules)} rules, {len(self.pool)} workers, control socket {self.socket_path}"

    def _spawn(self, name: str, run, forever: bool = True) -> None:
        """Run the coroutine function `run` as a background task that no error
        ends silently: a failure is logged with its reason and counted in
        stats (task_faults), and a `forever` task runs again after a pause."""
        task = asyncio.get_running_loop().create_task(self._survive(name, run, forever), name=name)
        self._tasks.append(task)
        task.add_done_callback(self._tasks.remove)

    async def _survive(self, name: str, run, forever: bool) -> None:
        while not self._stopping.is_set():
            try:
                await run()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                self._count_fault(name)
                log.exception("background task '%s' failed (%d so far)%s", name, self.task_faults[name],
                              f"; running it again in {TASK_RESTART_DELAY:.0f} s" if forever else "")
                if not forever:
                    return
                await asyncio.sleep(TASK_RESTART_DELAY)

    def _count_fault(self, name: str) -> None:
        """One more failure of `name` survived (shown by `mcr stats --json` as task_faults)."""
        self.task_faults[name] = self.task_faults.get(name, 0) + 1

    async def _shutdown(self) -> None:
        if self.metrics is not None:
            await self.metrics.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*(w.stop() for w in self.pool), return_exceptions=True)
        self.network.close()
        self.igmp.close()
        self.pim.close()
        self._close_msdp()
        self._rpf.close()
        self._holds.close()

    def _initial_config(self) -> Config:
        """Rules and joins from the saved state if there is one (run-time
        changes survive restarts), else from the config."""
        if self.state_path and Path(self.state_path).exists():
            try:
                return Config.load(self.state_path)
            except ConfigError as error:
                log.error("ignoring unreadable state file %s: %s", self.state_path, error)
        return self.config

    async def reload(self) -> None:
        if not self.config_path:
            log.warning("SIGHUP: no config file to reload")
            return
        # A SIGHUP during startup is applied as well, but a READY=1 after it
        # would tell systemd the daemon serves before it does.
        reported = self._serving and self.notifier.reloading()
        try:
            config = Config.load(self.config_path)
            result = await self.load_config(config, replace=True)
            log.info("reloaded %s: %s", self.config_path, result)
        except (ConfigError, CommandError) as error:
            log.error("reload of %s refused, nothing changed: %s", self.config_path, error)
        finally:  # reloaded or refused, the daemon serves on
            if reported:
                self.notifier.ready(self._status())

    def _any_active(self) -> bool:
        return any(r.state == mrib.ACTIVE for r in self.routes.values())

    def _interface_table(self) -> dict[str, int]:
        """The interfaces that exist now, name -> index, as netlink told us."""
        return {i.name: i.index for i in self.network.interfaces().values()}

    def _routes_for(self, rules: dict[int, Rule]) -> dict[int, mrib.Route]:
        return mrib.compute(rules, self._interface_table(), self._listeners(), self._derived_id)

    def _all_routes(self) -> dict[int, mrib.Route]:
        """The whole MRIB: the static rules' routes, then the protocols'."""
        return mrib.merge(self._routes_for(self.rules), self._learned_routes())

    def _derived_id(self, rule_id: int, group: str, source: str | None) -> int:
        """A stable engine id for a rule's route for one group of its range or
        one source; from a range rule ids never reach."""
        key = (rule_id, group, source)
        if key not in self._derived_ids:
            self._derived_ids[key] = DERIVED_IDS + len(self._derived_ids)
        return self._derived_ids[key]

    def _output_labels(self) -> dict[int, list[str]]:
        return {i: [str(o) for o in r.outputs] for i, r in self.routes.items() if r.state == mrib.ACTIVE}

    # Rules ----------------------------------------------------------------------

    @property
    def rules(self) -> dict[int, Rule]:
        return self.ruleset.rules

    async def add_rule(self, rule: Rule) -> int:
        async with self._changing:
            return await self._add_rule(rule)

    async def _add_rule(self, rule: Rule) -> int:
        self.ruleset.check_new(rule)
        if rule.members:  # its routes depend on listeners: the whole-set path
            return await self._add_receiver_driven(rule)
        rule_id = self.ruleset.next_id()
        route = self._routes_for({rule_id: rule})[rule_id]
        done: list[Worker] = []
        try:
            if route.state == mrib.ACTIVE:
                await self._start_workers()
                for worker in self._running():
                    await self._give_sockets(worker, route)
                    await worker.call(_engine.encode_add_rule, *route.engine_tuple())
                    done.append(worker)
                self._join(route)
        except (WorkerError, OSError) as error:
            for worker in done:  # never half-applied
                await worker.call(_engine.encode_remove_rule, rule_id)
            raise CommandError("engine", str(error)) from None
        self.ruleset.rules[rule_id] = rule
        self.routes[rule_id] = route
        self._persist()
        log.info("rule %d added (%s): %s", rule_id, route.state, rule)
        self.events.publish("rule", change="added", id=rule_id, rule=str(rule), **self.rule_state(rule_id))
        return rule_id

    async def _add_receiver_driven(self, rule: Rule) -> int:
        rule_id = self.ruleset.next_id()
        self.ruleset.rules[rule_id] = rule
        try:
            self.sync_igmp()  # its members interfaces get queriers
            await following.apply_routes(self)
        except (WorkerError, OSError) as error:
            del self.ruleset.rules[rule_id]
            self.sync_igmp()
            await following.apply_routes(self)
            raise CommandError("engine", str(error)) from None
        self._persist()
        log.info("rule %d added (%s): %s", rule_id, self.routes[rule_id].state, rule)
        self.events.publish("rule", change="added", id=rule_id, rule=str(rule), **self.rule_state(rule_id))
        return rule_id

    async def remove_rule(self, key: int | str) -> None:
        async with self._changing:
            await self._remove_rule(key)

    async def _remove_rule(self, key: int | str) -> None:
        rule_id = self.ruleset.find(key)
        routes = mrib.routes_of_rule(self.routes, rule_id)
        for worker in self._running():
            for route in routes:
                if route.state != mrib.ACTIVE:
                    continue
                try:
                    await worker.call(_engine.encode_remove_rule, route.engine_id)
                except WorkerError as error:  # the health check re-syncs it
                    log.warning("removing rule %d: %s", rule_id, error)
        self.ruleset.rules.pop(rule_id)
        for route in routes:
            self._leave(self.routes.pop(route.engine_id))
        self.sync_igmp()
        for worker in self._running():
            try:
                await self._release_unused(worker)
            except WorkerError as error:
                log.warning("releasing sockets of worker %d: %s", worker.id, error)
        self._persist()
        log.info("rule %d removed", rule_id)
        self.events.publish("rule", change="removed", id=rule_id)

    def list_rules(self) -> list[tuple[int, Rule]]:
        return self.ruleset.listed()

    def rule_state(self, rule_id: int) -> dict:
        """Whether the rule forwards now ("active"), waits for interfaces that do
        not exist, or has no output for now ("pruned": no members want it)."""
        route = self.routes[rule_id]
        return {"state": route.state, **({"waiting_for": list(route.waiting_for)} if route.waiting_for else {})}

    def _join(self, route: mrib.Route) -> None:
        """Membership (or the unicast port) on the input, for an active route only."""
        self._hold_input(route, take=True)

    def _leave(self, route: mrib.Route) -> None:
        self._hold_input(route, take=False)

    def _hold_input(self, route: mrib.Route, take: bool) -> None:
        # A route that sends nothing needs no traffic; a range has no one group to join.
        if route.state == mrib.ACTIVE and route.outputs and route.joinable:
            (self._holds.take if take else self._holds.give_back)(route.rule, route.source, route.joinable)

    async def _set_rules(self, wanted: tuple[Rule, ...]) -> dict:
        """Make the rule set equal `wanted`, all or nothing; unchanged rules keep their id and traffic."""
        plan = self.ruleset.plan(wanted)
        old_rules, old_routes = dict(self.rules), self.routes
        self.ruleset.adopt(plan)
        if self.igmp:
            self.sync_igmp()
        self.routes = self._all_routes()
        joined = [i for i in self.routes if old_routes.get(i) != self.routes[i]]
        try:
            if self._any_active():
                await self._start_workers()
            for worker in self._running():
                await self._sync_worker(worker)
            for engine_id in joined:
                self._join(self.routes[engine_id])
        except (WorkerError, OSError) as error:
            self.ruleset.rules, self.routes = old_rules, old_routes
            for worker in self._running():  # put back what some workers already took
                await self._sync_worker(worker)
            raise CommandError("engine", str(error)) from None
        for engine_id, route in old_routes.items():
            if engine_id not in self.routes or engine_id in joined:
                self._leave(route)
        self._persist()
        return plan.summary()

    async def load_config(self, config: Config, replace: bool) -> dict:
        """Add `config`'s rules and joins; with `replace`, make them exactly
        its own and apply its settings too (supervisor/settings.py)."""
        async with self._changing:
            if not replace:
                result = await self._set_rules(tuple(self.rules.values()) + config.rules)
                self._set_joins(self.joins.wanted | set(config.joins))
                return result
            result = await self._set_rules(config.rules)
            self._set_joins(set(config.joins))
            return {**result, **await settings.apply(self, config)}

    def save_config(self, path: str | None) -> str:
        target = path or self.config_path
        if not target:
            raise CommandError("bad_request", "no path given and the daemon was started without --config")
        self.current_config().save(target)
        return str(target)

    def current_config(self) -> Config:
        """The config that would bring the daemon back as it is: its settings
        (log levels as set at run time) and its rules."""
        levels = {facility: level for facility, level in self.levels.items() if facility != "default"}
        return Config(workers=self.config.workers, pin_cores=self.config.pin_cores, log_level=self.levels["default"],
                      log_levels=levels, idle_stop_after=self.config.idle_stop_after, user=self.config.user,
                      metrics=self.config.metrics, igmp=self.config.igmp, pim=self.config.pim, msdp=self.config.msdp,
                      rules=tuple(r for _, r in self.list_rules()), joins=tuple(sorted(self.joins.wanted, key=str)))

    def _persist(self) -> None:
        if self.state_path:
            Path(self.state_path).parent.mkdir(parents=True, exist_ok=True)
            self.current_config().save(self.state_path)

    # Observability ----------------------------------------------------------------

    async def stats(self) -> dict:
        for worker in self._running():
            try:
                await self._poll(worker)
            except WorkerError as error:
                log.warning("stats from worker %d: %s", worker.id, error)
        total: dict = {}
        for worker in self.pool:
            total = add_counters(total, add_counters(worker.base, worker.last))
        names = {i.index: i.name for i in self.network.interfaces().values()}
        states = {rule_id: self.rule_state(rule_id) for rule_id in self.rules}
        # Derived routes pruned since still count for their rule (their counters are in a worker's base).
        rule_of = {engine_id: key[0] for key, engine_id in self._derived_ids.items()}
        rule_of.update({engine_id: route.rule_id for engine_id, route in self.routes.items()})
        return {**snapshot(self.rules, states, total, names, rule_of),
                "resyncs": self.resyncs, "task_faults": self.faults(), "health_passes": self.health_passes}

    def faults(self) -> dict[str, int]:
        """Failures survived, by background task or protocol (its reader and
        timer callbacks); only those that failed at least once."""
        callbacks = {"igmp": self.igmp.faults if self.igmp else 0, "pim": self.pim.faults if self.pim else 0,
                     "membership": self._holds.membership.faults if self._holds else 0}
        return {**self.task_faults, **{name: count for name, count in callbacks.items() if count}}

    def interfaces(self) -> list[dict]:
        return following.describe_interfaces(self)

    async def mroute(self) -> list[dict]:
        """The MRIB's routes with their packet counters, as the workers hold
        them: a change being applied is waited for."""
        async with self._changing:
            return await self._mroute()

    async def _mroute(self) -> list[dict]:
        await self.stats()  # fresh counters in each worker's last
        total: dict = {}
        for worker in self.pool:
            total = add_counters(total, add_counters(worker.base, worker.last))
        learned = self.msdp.learned() if self.msdp is not None else {}
        routes = []
        for engine_id, route in sorted(self.routes.items()):
            entry = route.describe()
            entry["packets"] = total.get("rules", {}).get(engine_id, {}).get("packets", 0)
            entry["name"] = route.rule.name
            sa = learned.get((route.source, route.group)) if route.source else None
            if sa is not None:  # PIM joined this source because MSDP announced it
                entry["msdp"] = {"rp": sa.rp, "peer": sa.peer}
            routes.append(entry)
        return routes

    def workers(self) -> list[dict]:
        return [w.describe() for w in self.pool]

    def log_levels(self) -> dict[str, str]:
        return dict(self.levels)

    async def set_log_level(self, level: str, facility: str | None) -> None:
        async with self._changing:
            await self._set_log_level(level, facility)

    async def _set_log_level(self, level: str, facility: str | None) -> None:
        if level not in logs.LEVELS:
            raise CommandError("bad_request", f"unknown level '{level}' ({', '.join(logs.LEVELS)})")
        if facility not in (None, "default", *logs.FACILITIES):
            raise CommandError("bad_request", f"unknown facility '{facility}' ({', '.join(logs.FACILITIES)})")
        # For all facilities, the default and no exceptions; else one exception more.
        levels = {"default": level} if facility in (None, "default") else {**self.levels, facility: level}
        await settings.set_levels(self, levels)
