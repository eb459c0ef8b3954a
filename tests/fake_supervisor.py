"""An in-memory stand-in for the Supervisor, and a control server for it on
a background thread, so the control socket, the API and the CLI client verbs
can be tested without a daemon (the socket carries no packets)."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

from mcr.config import Config
from mcr.events import EventBus
from mcr.rules import Rule
from mcr.supervisor.control import CommandError, ControlServer, serve_control


class FakePim:
    router = None  # PIM interfaces without router-wide state: no joins, upstream state or RPs

    def describe(self) -> list[dict]:
        return [{"interface": "eth2", "address": "10.0.2.1", "dr": "10.0.2.2", "dr_priority": 1,
                 "generation_id": 7, "next_hello": 3.0, "neighbors": [
                     {"address": "10.0.2.2", "dr_priority": 1, "generation_id": 9, "holdtime_left": 100.0,
                      "uptime": 5.0}]}]


class FakeMsdp:
    """One peering, up, and one learned SA."""

    def describe_peers(self) -> list[dict]:
        return [{"peer": "10.0.1.1", "local": "10.0.1.2", "state": "established", "role": "passive",
                 "established_for": 12.0, "retry_in": None, "last_error": None, "mesh_group": None,
                 "counters": {"sa_in": 3, "sa_out": 1}}]

    def describe_sa(self) -> list[dict]:
        return [{"source": "192.0.2.10", "group": "239.1.1.1", "rp": "10.0.1.1", "peer": "10.0.1.1",
                 "origin": "peer", "age": 5.0, "expires_in": 85.0}]


class FakeSupervisor:
    version = "9.9.9-fake"

    def __init__(self) -> None:
        self.rules: dict[int, Rule] = {}
        self.levels = {"default": "info"}
        self.next_id = 1
        self.saved: list[str | None] = []
        self.events = EventBus(queue_size=16)
        self.joins: list = []
        self.igmp = self  # describe() stands in for the IGMP service
        self.pim = FakePim()
        self.msdp = FakeMsdp()

    def describe(self) -> list[dict]:
        return [{"interface": "eth1", "address": "10.0.0.1", "version": 3, "querier": True,
                 "querier_address": "10.0.0.1", "next_general_query": 1.0, "other_querier_present": None,
                 "groups": []}]

    async def add_join(self, join) -> str:
        if join in self.joins:
            raise CommandError("conflict", f"already joined: {join}")
        self.joins.append(join)
        return "waiting"

    async def remove_join(self, join) -> None:
        if join not in self.joins:
            raise CommandError("not_found", f"no static join {join}")
        self.joins.remove(join)

    def list_joins(self) -> list[dict]:
        return [{"interface": j.interface, "group": j.group, "source": j.source, "state": "waiting"}
                for j in self.joins]

    async def add_rule(self, rule: Rule) -> int:
        for rule_id, other in self.rules.items():
            if (other.input_interface, other.group, other.port, other.source) == \
                    (rule.input_interface, rule.group, rule.port, rule.source):
                raise CommandError("conflict", f"rule {rule_id} already relays {rule.group}:{rule.port}")
        rule_id, self.next_id = self.next_id, self.next_id + 1
        self.rules[rule_id] = rule
        return rule_id

    async def remove_rule(self, key: int | str) -> None:
        for rule_id, rule in self.rules.items():
            if key in (rule_id, rule.name):
                del self.rules[rule_id]
                return
        raise CommandError("not_found", f"no rule with id or name '{key}'")

    def list_rules(self) -> list[tuple[int, Rule]]:
        return sorted(self.rules.items())

    def rule_state(self, rule_id: int) -> dict:
        return {"state": "active"}

    def interfaces(self) -> list[dict]:
        return [{"name": "eth0", "index": 2, "up": True, "carrier": True, "mtu": 1500, "mac": "02:00:00:00:00:01",
                 "addresses": ["10.0.0.1/24"], "rules": sorted(self.rules)}]

    async def mroute(self) -> list[dict]:
        return [{"id": i, "rule": str(r), "origin": "static", "state": "active", "packets": 5}
                for i, r in sorted(self.rules.items())]

    async def stats(self) -> dict:
        return {"time": time.time(), "drops": {"no_rule": 3, "truncated": 0},
                "inputs": {"eth0": {"frames": 10, "bytes": 1000, "kernel_packets": 10, "kernel_drops": 0}},
                "rules": {str(i): {"name": r.name, "rule": str(r), "packets": 5, "bytes": 500,
                                   "outputs": {str(o): {"packets": 5, "bytes": 500, "errors": 0} for o in r.outputs}}
                          for i, r in self.rules.items()}}

    async def start_trace(self, key: int | str, count: int, sample: int, timeout: float) -> dict:
        for rule_id, rule in self.rules.items():
            if key in (rule_id, rule.name):
                return {"rule": rule_id, "count": count, "sample": sample, "timeout": timeout}
        raise CommandError("not_found", f"no rule with id or name '{key}'")

    async def follow_trace(self, started: dict):
        """Two made-up packets, then the end: the stream's shape, not a data plane's."""
        for port in (41000, 41001)[:started["count"]]:
            yield {"time": time.time(), "event": "packet", "rule": started["rule"], "src_port": port}
        yield {"time": time.time(), "event": "end", "rule": started["rule"], "records": min(2, started["count"]),
               "reason": "count", "missed": 0}

    def workers(self) -> list[dict]:
        return [{"id": 0, "pid": 4242, "core": 0, "state": "running", "restarts": 0, "crashes": 0, "uptime": 3725.0}]

    def faults(self) -> dict[str, int]:
        return {"health": 1}

    def log_levels(self) -> dict[str, str]:
        return dict(self.levels)

    async def set_log_level(self, level: str, facility: str | None) -> None:
        if facility is None:
            self.levels = {f: level for f in self.levels}
        else:
            self.levels[facility] = level

    async def load_config(self, config: Config, replace: bool) -> dict:
        added = [rule for rule in config.rules if rule not in self.rules.values()]
        for rule in added:
            await self.add_rule(rule)
        return {"added": len(added), "removed": 0, "unchanged": len(config.rules) - len(added)}

    def save_config(self, path: str | None) -> str:
        self.saved.append(path)
        return path or "/etc/mcr/mcr.json"


class ServerThread:
    """serve_control() on its own event loop thread; `with ServerThread(path) as server:`."""

    def __init__(self, path: Path, sup: FakeSupervisor | None = None, **options) -> None:
        self.path = str(path)
        self.sup = sup or FakeSupervisor()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server: ControlServer = self._run(serve_control(self.sup, self.path, **options))

    def publish(self, kind: str, **data) -> None:
        """Publish an event from the server's own loop, as the supervisor would."""
        self.loop.call_soon_threadsafe(lambda: self.sup.events.publish(kind, **data))

    def _run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=10)

    def __enter__(self) -> ServerThread:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._run(self.server.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()
