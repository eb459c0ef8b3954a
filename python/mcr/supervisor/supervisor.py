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
import time
from pathlib import Path

from .. import __version__, _engine, logs, mrib, sockets
from ..config import Config, ConfigError
from ..events import EventBus
from ..membership import AsyncMembershipService, InputHolds
from ..netlink import NetworkMonitor
from ..protocols.igmp import Settings as IgmpSettings
from ..protocols.igmp_service import IgmpService
from ..rules import Join, Rule
from ..stats import from_engine, snapshot
from . import following, settings
from .commands import CommandError
from .joins import StaticJoins
from .ruleset import RuleSet
from .workers import Worker, WorkerError, add_counters

HEALTH_INTERVAL = 1.0
DERIVED_IDS = 1 << 30  # engine ids of derived (S,G) routes start here; rule ids stay below
TASK_RESTART_DELAY = 1.0  # after a background task failed, before it runs again
DEFAULT_LIMITS = {"max_rules": 4096, "rx_frames": 2048, "send_slots": 8192}

log = logging.getLogger("mcr.supervisor")


class Supervisor:
    version = __version__

    def __init__(self, config: Config, *, config_path: str | None = None, state_path: str | None = None,
                 socket_path: str = "/run/mcr/control.sock") -> None:
        self.config = config  # as last loaded; workers and user take effect at the next start
        self.started_with = config  # the settings this process runs with
        self.config_path = config_path
        self.state_path = state_path
        self.socket_path = socket_path
        self.levels = {"default": config.log_level, **config.log_levels}
        self._idle_since: float | None = None  # since when no route was active (workers stop after a while)
        count = config.workers or os.cpu_count() or 1
        cores = config.pin_cores or (None,) * count
        self.pool = [Worker(i, cores[i] if i < len(cores) else None) for i in range(count)]
        self.ruleset = RuleSet()  # what the user asked for (static rules), by id
        self.routes: dict[int, mrib.Route] = {}  # what the MRIB made of them, by engine rule id
        self._derived_ids: dict[tuple[int, str], int] = {}  # (rule id, source) -> engine id of an (S,G) route
        self.joins = StaticJoins()  # memberships asked for without a rule (`mcr igmp join`)
        self.igmp: IgmpService | None = None  # queriers, on the loop from run()
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
        self._holds = InputHolds(AsyncMembershipService())
        self.igmp = IgmpService(self._membership_changed, self.events.publish)
        await self.network.start()
        self._spawn("network", lambda: following.follow(self))
        self._spawn("routes", lambda: following.follow_routes(self))
        async with self._changing:
            initial = self._initial_config()
            await self._set_rules(initial.rules)
            self.joins.wanted = set(initial.joins)
            self._sync_joins()
            self.sync_igmp()
            await self._start_workers()
        self._spawn("health", self._health)
        server = await serve_control(self, self.socket_path)
        log.info("supervisor ready: %d workers, %d rules, control socket %s",
                 len(self.pool), len(self.rules), self.socket_path)
        try:
            await self._stopping.wait()
        finally:
            log.info("shutting down")
            await server.close()
            await self._shutdown()

    def stop(self) -> None:
        self._stopping.set()

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
                self.task_faults[name] = self.task_faults.get(name, 0) + 1
                log.exception("background task '%s' failed (%d so far)%s", name, self.task_faults[name],
                              f"; running it again in {TASK_RESTART_DELAY:.0f} s" if forever else "")
                if not forever:
                    return
                await asyncio.sleep(TASK_RESTART_DELAY)

    async def _shutdown(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*(w.stop() for w in self.pool), return_exceptions=True)
        self.network.close()
        self.igmp.close()
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
        try:
            config = Config.load(self.config_path)
            result = await self.load_config(config, replace=True)
            log.info("reloaded %s: %s", self.config_path, result)
        except (ConfigError, CommandError) as error:
            log.error("reload of %s refused, nothing changed: %s", self.config_path, error)

    # Workers --------------------------------------------------------------------

    async def _start_workers(self) -> None:
        """Start every worker that is not running (at startup, or after they
        stopped for want of rules); the caller holds _changing."""
        for worker in self.pool:
            if worker.state in ("stopped", "idle"):
                await self._bring_up(worker)
                self._spawn(f"watch worker {worker.id}", lambda w=worker: self._watch(w))

    async def _bring_up(self, worker: Worker) -> None:
        """Spawn a worker, hand it its sockets and the whole rule set; the caller holds _changing."""
        level = logs.level_number(self.levels.get("engine", self.levels["default"]))
        await worker.spawn(self.started_with.user, level, DEFAULT_LIMITS)
        try:
            await self._sync_worker(worker)
            worker.state = "running"
            log.info("worker %d running (pid %d)", worker.id, worker.pid)
            self.events.publish("worker", change="running", id=worker.id, pid=worker.pid)
        except (WorkerError, CommandError, OSError) as error:
            log.error("worker %d failed to start: %s", worker.id, error)
            worker.process.kill()  # the watcher restarts it with backoff

    async def _stop_idle_workers(self) -> None:
        """No route has been active for idle_stop_after seconds: the workers
        stop (their counters kept) until a route needs them again."""
        limit = self.config.idle_stop_after
        if self._any_active():
            self._idle_since = None
            return
        now = time.monotonic()
        self._idle_since = self._idle_since or now
        if limit is None or now - self._idle_since < limit or not self._running():
            return
        for worker in self._running():
            try:
                await self._poll(worker)  # what it counted joins its base, so totals never go backwards
            except WorkerError as error:
                log.warning("counters of worker %d before it stops: %s", worker.id, error)
            worker.base, worker.last = add_counters(worker.base, worker.last), {}
            await worker.stop()
            worker.state = "idle"
            log.info("worker %d stopped: no active rule for %g s", worker.id, limit)
            self.events.publish("worker", change="idle", id=worker.id)

    async def _sync_worker(self, worker: Worker) -> None:
        """Give `worker` every socket the active routes need, then the whole rule set."""
        for route in self.routes.values():
            await self._give_sockets(worker, route)
        await worker.call(_engine.encode_sync_rules, mrib.engine_rules(self.routes))
        await self._release_unused(worker)

    async def _release_unused(self, worker: Worker) -> None:
        """Close the worker's sockets (and unmap its rings) for interfaces no
        active route uses any more (its rules are synced first)."""
        active = [r for r in self.routes.values() if r.state == mrib.ACTIVE]
        used = {r.input_ifindex for r in active} | {i for r in active for i in r.output_ifindexes}
        unused = sorted({i for _, i in worker.interfaces} - used)
        if not unused:
            return
        await self._poll(worker)  # an input's counters go with its socket: keep them in the base
        carried = {i: worker.last.get("inputs", {}).pop(i) for i in unused if i in worker.last.get("inputs", {})}
        worker.base = add_counters(worker.base, {"inputs": carried})
        for ifindex in unused:
            await worker.call(_engine.encode_remove_interface, ifindex)
            worker.interfaces = {(kind, i) for kind, i in worker.interfaces if i != ifindex}

    async def _watch(self, worker: Worker) -> None:
        while not self._stopping.is_set():
            code = await worker.process.wait()
            if self._stopping.is_set() or worker.state in ("stopped", "idle"):
                return
            delay = worker.crashed(time.monotonic())
            worker.restarts += 1
            self.events.publish("worker", change="exited", id=worker.id, pid=worker.pid, status=code,
                                restart_in=delay)
            log.error("worker %d (pid %d) exited with %s; restart %d in %.1f s%s", worker.id, worker.pid, code,
                      worker.restarts, delay, " (crash-looping)" if worker.state == "crash-looping" else "")
            await asyncio.sleep(delay)
            async with self._changing:
                if self._stopping.is_set() or worker.state == "idle":  # it may have idled out meanwhile
                    return
                await self._bring_up(worker)

    async def _give_sockets(self, worker: Worker, route: mrib.Route) -> None:
        """Pass the worker the input and egress sockets an active route needs,
        once per interface (by index: a re-created interface gets new ones)."""
        if route.state != mrib.ACTIVE:
            return
        have = worker.interfaces
        wanted = [("in", route.rule.input_interface, route.input_ifindex)]
        wanted += [("out", o.interface, i) for o, i in zip(route.outputs, route.output_ifindexes)]
        for kind, name, ifindex in wanted:
            if (kind, ifindex) in have:
                continue
            if kind == "in":
                with sockets.open_input_socket(name, self._fanout_salt + ifindex) as sock:
                    await worker.call(_engine.encode_add_input, ifindex, fd=sock.fileno())
            else:
                for sock, encode, args in sockets.open_output_sockets(name):
                    with sock:
                        await worker.call(encode, ifindex, *args, fd=sock.fileno())
            have.add((kind, ifindex))

    def _any_active(self) -> bool:
        return any(r.state == mrib.ACTIVE for r in self.routes.values())

    def _running(self) -> list[Worker]:
        return [w for w in self.pool if w.state == "running"]

    def _interface_table(self) -> dict[str, int]:
        """The interfaces that exist now, name -> index, as netlink told us."""
        return {i.name: i.index for i in self.network.interfaces().values()}

    def _routes_for(self, rules: dict[int, Rule]) -> dict[int, mrib.Route]:
        return mrib.compute(rules, self._interface_table(), self._listeners(), self._derived_id)

    def _listeners(self) -> mrib.Listeners:
        """What IGMP's listeners want, per interface and group."""
        return self.igmp.listeners() if self.igmp else {}

    # IGMP querier -------------------------------------------------------------------

    def igmp_wanted(self) -> dict[str, IgmpSettings]:
        """Where MCR is querier: the configured interfaces, and every members
        interface of a rule (with RFC defaults unless configured)."""
        wanted = {name: IgmpSettings() for rule in self.rules.values() for name in rule.members}
        return wanted | self.config.igmp

    def sync_igmp(self) -> None:
        """A querier on each wanted interface that exists with an IPv4 address, none elsewhere."""
        wanted = self.igmp_wanted()
        for name in self.igmp.interfaces():
            iface = self.network.by_name(name)
            if name not in wanted or iface is None or not iface.addresses:
                self.igmp.disable(name)
        for name, settings in wanted.items():
            iface = self.network.by_name(name)
            if iface is not None and iface.addresses:
                try:
                    self.igmp.enable(name, settings, iface.addresses[0].split("/")[0])
                except OSError as error:  # e.g. gone again meanwhile: netlink will tell
                    log.warning("IGMP querier on %s: %s", name, error)

    def _membership_changed(self, interface: str, group: str) -> None:
        """Listeners changed: recompute the routes once for a burst of changes."""
        if not self._membership_pending:
            self._membership_pending = True
            self._spawn("membership", self._apply_membership, forever=False)

    async def _apply_membership(self) -> None:
        async with self._changing:
            self._membership_pending = False
            await following.apply_routes(self)

    def _derived_id(self, rule_id: int, source: str) -> int:
        """A stable engine id for a rule's (S,G) route; from a range rule ids never reach."""
        key = (rule_id, source)
        if key not in self._derived_ids:
            self._derived_ids[key] = DERIVED_IDS + len(self._derived_ids)
        return self._derived_ids[key]

    def _output_labels(self) -> dict[int, list[str]]:
        return {i: [str(o) for o in r.outputs] for i, r in self.routes.items() if r.state == mrib.ACTIVE}

    async def _health(self) -> None:
        """Keep counters fresh and repair any worker whose rule set drifted from ours."""
        while True:
            await asyncio.sleep(HEALTH_INTERVAL)
            async with self._changing:
                await following.apply_routes(self)
                await self._stop_idle_workers()
                expected = _engine.ruleset_hash(mrib.engine_rules(self.routes))
                for worker in self._running():
                    try:
                        raw = await self._poll(worker)
                        if raw["ruleset_hash"] != expected:
                            self.resyncs += 1
                            log.warning("worker %d rule set drifted; re-syncing", worker.id)
                            await self._sync_worker(worker)
                    except (WorkerError, CommandError, OSError) as error:
                        log.warning("health check of worker %d: %s", worker.id, error)
            self.health_passes += 1

    async def _poll(self, worker: Worker) -> dict:
        raw = (await worker.call(_engine.encode_get_stats))["stats"]
        worker.last = from_engine(raw, self._output_labels())
        return raw

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
        if route.state == mrib.ACTIVE and route.outputs:  # a route that sends nothing needs no traffic
            (self._holds.take if take else self._holds.give_back)(route.rule, route.source)

    async def _set_rules(self, wanted: tuple[Rule, ...]) -> dict:
        """Make the rule set equal `wanted`, all or nothing; unchanged rules keep their id and traffic."""
        plan = self.ruleset.plan(wanted)
        old_rules, old_routes = dict(self.rules), self.routes
        self.ruleset.adopt(plan)
        if self.igmp:
            self.sync_igmp()
        self.routes = self._routes_for(self.rules)
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

    # Static joins -----------------------------------------------------------------

    def _sync_joins(self) -> None:
        for join, change in self.joins.sync(self._holds.membership, self._interface_table()):
            log.info("static join %s: %s", join, change)
            self.events.publish("join", change=change, interface=join.interface, group=join.group,
                                source=join.source)

    def _set_joins(self, wanted: set[Join]) -> None:
        self.joins.wanted = set(wanted)
        self._sync_joins()
        self._persist()

    async def add_join(self, join: Join) -> str:
        async with self._changing:
            if join in self.joins.wanted:
                raise CommandError("conflict", f"already joined: {join}")
            try:
                self._set_joins(self.joins.wanted | {join})
            except OSError as error:
                self.joins.wanted.discard(join)
                raise CommandError("engine", f"cannot join {join}: {error.strerror or error}") from None
            return self.joins.state(join)

    async def remove_join(self, join: Join) -> None:
        async with self._changing:
            if join not in self.joins.wanted:
                raise CommandError("not_found", f"no static join {join}")
            self._set_joins(self.joins.wanted - {join})

    def list_joins(self) -> list[dict]:
        return [{"interface": j.interface, "group": j.group, "source": j.source, "state": self.joins.state(j)}
                for j in sorted(self.joins.wanted, key=str)]

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
        rule_of = {engine_id: route.rule_id for engine_id, route in self.routes.items()}
        return {**snapshot(self.rules, states, total, names, rule_of),
                "resyncs": self.resyncs, "task_faults": dict(self.task_faults), "health_passes": self.health_passes}

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
        routes = []
        for engine_id, route in sorted(self.routes.items()):
            entry = route.describe()
            entry["packets"] = total.get("rules", {}).get(engine_id, {}).get("packets", 0)
            entry["name"] = route.rule.name
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
