"""The control socket's commands: one table, one handler each.

`COMMANDS` maps a command name to its handler, a one-line help and an example
request; the control server dispatches through it and nothing else, so a new
command is one handler and one row. Handlers check their arguments strictly
(an unknown, missing or mistyped argument is a `bad_request` that changes
nothing), then call the Supervisor. The wire protocol is described in
control.py.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, AsyncIterator, Awaitable, Callable

from ..config import LOG_LEVELS, Config, ConfigError, join_from_dict, rule_from_dict, rule_to_dict


class CommandError(Exception):
    """A request that fails with a stable error `code` and a message saying what was wrong."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _args(args: dict, required: dict[str, type | tuple] | None = None,
          optional: dict[str, type | tuple] | None = None) -> dict:
    """`args` after checking names and types; absent optional arguments are None."""
    required = required or {}
    known = {**required, **(optional or {})}
    for name in args:
        if name not in known:
            expected = ", ".join(known) or "none"
            raise CommandError("bad_request", f"unknown argument '{name}' (expected: {expected})")
    for name in required:
        if name not in args:
            raise CommandError("bad_request", f"missing argument '{name}'")
    for name, value in args.items():
        # bool is an int in Python, but true is not a rule id.
        if not isinstance(value, known[name]) or (isinstance(value, bool) and known[name] is not bool):
            raise CommandError("bad_request", f"argument '{name}' has the wrong type ({type(value).__name__})")
    return {name: args.get(name) for name in known}


def _config(data: dict) -> Config:
    try:
        return Config.from_dict(data)
    except ConfigError as error:
        raise CommandError("bad_request", "; ".join(f"config.{e}" for e in error.errors)) from None


async def ping(sup: Any, args: dict) -> dict:
    _args(args)
    return {"version": sup.version}


async def rules_add(sup: Any, args: dict) -> dict:
    data = _args(args, {"rule": dict})["rule"]
    try:
        rule = rule_from_dict(data, "rule")
    except ConfigError as error:
        raise CommandError("bad_request", "; ".join(error.errors)) from None
    return {"id": await sup.add_rule(rule)}


async def rules_remove(sup: Any, args: dict) -> dict:
    await sup.remove_rule(_args(args, {"rule": (int, str)})["rule"])
    return {}


async def rules_list(sup: Any, args: dict) -> dict:
    _args(args)
    return {"rules": [{"id": rule_id, **rule_to_dict(rule), **sup.rule_state(rule_id)}
                      for rule_id, rule in sup.list_rules()]}


def _join(args: dict):
    try:
        return join_from_dict(_args(args, {"join": dict})["join"], "join")
    except ConfigError as error:
        raise CommandError("bad_request", "; ".join(error.errors)) from None


async def igmp_join(sup: Any, args: dict) -> dict:
    return {"state": await sup.add_join(_join(args))}


async def igmp_leave(sup: Any, args: dict) -> dict:
    await sup.remove_join(_join(args))
    return {}


async def igmp_joins(sup: Any, args: dict) -> dict:
    _args(args)
    return {"joins": sup.list_joins()}


async def igmp_interfaces(sup: Any, args: dict) -> dict:
    _args(args)
    return {"interfaces": sup.igmp.describe()}


async def igmp_groups(sup: Any, args: dict) -> dict:
    _args(args)
    return {"groups": [{"interface": i["interface"], **g} for i in sup.igmp.describe() for g in i["groups"]]}


async def pim_interfaces(sup: Any, args: dict) -> dict:
    _args(args)
    return {"interfaces": sup.pim.describe()}


async def pim_neighbors(sup: Any, args: dict) -> dict:
    _args(args)
    return {"neighbors": [{"interface": i["interface"], **n} for i in sup.pim.describe() for n in i["neighbors"]]}


def _pim_router(sup: Any):
    return sup.pim.router if sup.pim is not None else None


async def pim_join(sup: Any, args: dict) -> dict:
    _args(args)
    router = _pim_router(sup)
    return {"joins": router.tree.downstream(time.monotonic()) if router else []}


async def pim_upstream(sup: Any, args: dict) -> dict:
    _args(args)
    router = _pim_router(sup)
    if router is None:
        return {"upstream": []}
    now = time.monotonic()
    registers = {(r["source"], r["group"]): r for r in router.registers.sender.describe(now)}
    rows = router.tree.upstream(now)
    for row in rows:  # the DR's Register state of an (S,G) (RFC 7761 4.4.1), where it registers
        if row["kind"] == "(S,G)" and (row["source"], row["group"]) in registers:
            entry = registers.pop((row["source"], row["group"]))
            row.update(register_state=entry["state"], register_rp=entry["rp"])
    rows += [{"source": r["source"], "group": r["group"], "kind": "(S,G)", "state": "NotJoined",
              "register_state": r["state"], "register_rp": r["rp"]} for r in registers.values()]
    return {"upstream": rows}


async def pim_rp(sup: Any, args: dict) -> dict:
    _args(args)
    router = _pim_router(sup)
    if router is None:
        return {"rps": [], "bsr": None}
    return {"rps": router.describe_rps(), "bsr": router.bootstraps.listener.describe(time.monotonic())}


async def pim_assert(sup: Any, args: dict) -> dict:
    _args(args)
    router = _pim_router(sup)
    return {"asserts": router.asserts.describe(time.monotonic()) if router else []}


async def msdp_peers(sup: Any, args: dict) -> dict:
    _args(args)
    return {"peers": sup.msdp.describe_peers() if sup.msdp is not None else []}


async def msdp_sa(sup: Any, args: dict) -> dict:
    _args(args)
    return {"sa": sup.msdp.describe_sa() if sup.msdp is not None else []}


async def stats(sup: Any, args: dict) -> dict:
    _args(args)
    return await sup.stats()


async def workers(sup: Any, args: dict) -> dict:
    _args(args)
    return {"workers": sup.workers(), "task_faults": sup.faults()}


async def interfaces(sup: Any, args: dict) -> dict:
    _args(args)
    return {"interfaces": sup.interfaces()}


async def mroute(sup: Any, args: dict) -> dict:
    _args(args)
    return {"routes": await sup.mroute()}


async def events(sup: Any, args: dict) -> dict:
    _args(args)
    return {"subscribed": True}


async def trace(sup: Any, args: dict) -> dict:
    checked = _args(args, {"rule": (int, str)}, {"count": int, "sample": int, "timeout": (int, float)})
    return await sup.start_trace(checked["rule"], 10 if checked["count"] is None else checked["count"],
                                 1 if checked["sample"] is None else checked["sample"],
                                 10.0 if checked["timeout"] is None else float(checked["timeout"]))


def follow_trace(sup: Any, started: dict):
    return sup.follow_trace(started)


async def log_level_get(sup: Any, args: dict) -> dict:
    _args(args)
    return {"levels": sup.log_levels()}


async def log_level_set(sup: Any, args: dict) -> dict:
    checked = _args(args, {"level": str}, {"facility": str})
    if checked["level"] not in LOG_LEVELS:
        raise CommandError("bad_request", f"'{checked['level']}' is not a log level ({', '.join(LOG_LEVELS)})")
    await sup.set_log_level(checked["level"], checked["facility"])
    return {"levels": sup.log_levels()}


async def config_load(sup: Any, args: dict) -> dict:
    checked = _args(args, {"config": dict}, {"replace": bool})
    return await sup.load_config(_config(checked["config"]), bool(checked["replace"]))


async def config_save(sup: Any, args: dict) -> dict:
    return {"path": sup.save_config(_args(args, optional={"path": str})["path"])}


async def config_check(sup: Any, args: dict) -> dict:
    return {"rules": len(_config(_args(args, {"config": dict})["config"]).rules)}


async def help_(sup: Any, args: dict) -> dict:
    _args(args)
    return {"commands": {name: {"help": c.help, "example": c.example} for name, c in COMMANDS.items()}}


Handler = Callable[[Any, dict], Awaitable[dict]]


@dataclass(frozen=True)
class Command:
    handler: Handler
    help: str
    example: str
    # Arguments only root or the daemon's own user may pass: a member of the
    # socket's group must not get the daemon to write files where it likes.
    owner_only: tuple[str, ...] = ()
    # After its reply the connection carries the daemon's events, one JSON
    # line each, until the client closes it (control.py).
    streams: bool = False
    # After its reply the connection carries what this makes of the reply
    # (an async iterator of JSON objects), one line each, until it ends;
    # then the daemon closes the connection (control.py).
    follow: Callable[[Any, dict], AsyncIterator[dict]] | None = None


COMMANDS: dict[str, Command] = {
    "ping": Command(ping, "check that the daemon answers; returns its version", '{"cmd": "ping"}'),
    "version": Command(ping, "the daemon's version", '{"cmd": "version"}'),
    "rules.add": Command(rules_add, "add a rule (config form); returns its id",
                         '{"cmd": "rules.add", "args": {"rule": {"name": "feed-a", "input_interface": "eth0", '
                         '"group": "239.1.1.1", "port": 5000, "outputs": ["239.2.2.2:5000:eth1"]}}}'),
    "rules.remove": Command(rules_remove, "remove a rule by id or name",
                            '{"cmd": "rules.remove", "args": {"rule": "feed-a"}}'),
    "rules.list": Command(rules_list, "the rules with their ids", '{"cmd": "rules.list"}'),
    "igmp.join": Command(igmp_join, "join a group on an interface without a rule (as smcroutectl join)",
                         '{"cmd": "igmp.join", "args": {"join": {"interface": "eth0", "group": "239.5.5.5"}}}'),
    "igmp.leave": Command(igmp_leave, "leave a static join",
                          '{"cmd": "igmp.leave", "args": {"join": {"interface": "eth0", "group": "239.5.5.5"}}}'),
    "igmp.joins": Command(igmp_joins, "static joins and whether each is joined or waits for its interface",
                          '{"cmd": "igmp.joins"}'),
    "igmp.interfaces": Command(igmp_interfaces, "where MCR is IGMP router: querier or not, who is, version, timers",
                               '{"cmd": "igmp.interfaces"}'),
    "igmp.groups": Command(igmp_groups, "what listeners want per interface: group, mode, sources, timers, reporter",
                           '{"cmd": "igmp.groups"}'),
    "pim.interfaces": Command(pim_interfaces, "PIM interfaces: address, DR, generation ID, next Hello, neighbors",
                              '{"cmd": "pim.interfaces"}'),
    "pim.neighbors": Command(pim_neighbors, "PIM neighbors: interface, address, DR priority, holdtime, uptime",
                             '{"cmd": "pim.neighbors"}'),
    "pim.join": Command(pim_join, "PIM downstream state per interface: (*,G), (S,G), (S,G,rpt), timers",
                        '{"cmd": "pim.join"}'),
    "pim.upstream": Command(pim_upstream, "PIM upstream state: joined or not, RPF neighbor, SPT bit, timers",
                            '{"cmd": "pim.upstream"}'),
    "pim.rp": Command(pim_rp, "PIM RPs per group range, where each came from, and the way to it; the BSR "
                      "listener's state",
                      '{"cmd": "pim.rp"}'),
    "pim.assert": Command(pim_assert, "PIM Assert state per (S,G,I) and (*,G,I): winner, metrics, timer",
                          '{"cmd": "pim.assert"}'),
    "msdp.peers": Command(msdp_peers, "MSDP peers: local address, state, role, uptime, SAs in and out, mesh group",
                          '{"cmd": "msdp.peers"}'),
    "msdp.sa": Command(msdp_sa, "the MSDP SA cache: (S,G), originating RP, the peer it came from, age, expiry",
                       '{"cmd": "msdp.sa"}'),
    "stats": Command(stats, "counters per rule, output and input, drops by reason", '{"cmd": "stats"}'),
    "workers": Command(workers, "worker processes: pid, core, state, restarts, crashes in a row, uptime; faults survived", '{"cmd": "workers"}'),
    "interfaces": Command(interfaces, "interfaces as netlink reports them, with the rules that use each",
                          '{"cmd": "interfaces"}'),
    "mroute": Command(mroute, "what the data plane forwards and why: origin, state, counters",
                      '{"cmd": "mroute"}'),
    "events": Command(events, "stream what changes (links, addresses, rules, workers) as JSON lines",
                      '{"cmd": "events"}', streams=True),
    "trace": Command(trace, "trace a rule's packets: headers, and what became of each at every output (count "
                     "10, every sample-th, for timeout 10 s), streamed as JSON lines, then an end line",
                     '{"cmd": "trace", "args": {"rule": "feed-a", "count": 5, "sample": 1, "timeout": 10}}',
                     follow=follow_trace),
    "log-level.get": Command(log_level_get, "log level per facility", '{"cmd": "log-level.get"}'),
    "log-level.set": Command(log_level_set, "set the log level, of one facility or of all",
                             '{"cmd": "log-level.set", "args": {"level": "debug", "facility": "worker"}}'),
    "config.load": Command(config_load, "apply a config: add its rules, or with replace remove all others",
                           '{"cmd": "config.load", "args": {"config": {"rules": []}, "replace": true}}'),
    "config.save": Command(config_save, "write the running config to the config file (or to path)",
                           '{"cmd": "config.save", "args": {"path": "/etc/mcr/mcr.json"}}', owner_only=("path",)),
    "config.check": Command(config_check, "validate a config without applying it",
                            '{"cmd": "config.check", "args": {"config": {"workers": 2}}}'),
    "help": Command(help_, "every command with its help and an example request", '{"cmd": "help"}'),
}
