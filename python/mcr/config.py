"""The daemon's config file: schema, validation, load and save.

The file is JSON. Every top-level key is optional:

    {
      "workers": 2,                 # worker processes; null or absent: one per core
      "pin_cores": [0, 1],          # pin worker i to pin_cores[i]; null or absent: no pinning
      "log_level": "info",          # debug, info, warning or error
      "log_levels": {"engine": "debug"},  # per facility (supervisor, control, worker, engine)
      "idle_stop_after": 60,        # seconds without an active rule before workers stop; null: never
      "user": "nobody",             # the unprivileged user workers drop to
      "metrics": "127.0.0.1:9464",  # Prometheus endpoint (GET /metrics) there; null or absent: none
      "igmp": {"interfaces": {       # MCR as IGMP querier there (members interfaces get one anyway)
        "eth1": {"version": 3, "query_interval": 125, "query_response_interval": 10,
                 "robustness": 2, "last_member_query_interval": 1}}},
      "pim": {"interfaces": {        # PIM-SM there (Hello options per interface)
        "eth2": {"hello_period": 30, "dr_priority": 1}},
        "rp": [{"address": "10.0.0.1", "groups": "239.0.0.0/8"}],   # static RPs, longest range wins
        "join_prune_period": 60, "spt_switchover": "immediate"},     # or "never"; also
                                     # join_prune_holdtime, keepalive_period, rp_keepalive_period
      "msdp": {"originator": "10.0.0.1", "peers": [{"address": "10.9.0.1", "local": "10.9.0.2"}]},  # see msdp_config
      "joins": [                     # static memberships, as `smcroutectl join`
        {"interface": "eth0", "group": "239.5.5.5"},
        {"interface": "eth0", "group": "232.1.1.1", "source": "10.1.1.1"}],
      "rules": [
        {"name": "feed-a",                        # optional, unique, [A-Za-z0-9_.-]{1,64}, not all digits
         "input_interface": "eth0",
         "group": "239.1.1.1", "port": 5000,
         "source": "10.1.1.1",                     # optional: an (S,G) rule
         "priority": 5,                            # optional QoS: 0-6 or "dscp" (see mcr.rules)
         "outputs": ["239.2.2.2:5000:eth1", "10.9.0.7:7000:eth2:ttl=16:dscp=46:priority=0"],
         "members": ["eth3"]},                      # optional: also where IGMP members want it
        {"input_interface": "eth0", "group": "239.2.0.0/16", "port": "any",   # a range, every port
         "members": ["eth3"]}
      ]
    }

At run time (SIGHUP, or `mcr config load --replace`) the rules, the log
levels, idle_stop_after and pin_cores (workers are re-pinned) take effect at
once; workers, user and metrics need a restart, and the reply and the log name each
such setting that changed.

Outputs use the mcrctl form GROUP:PORT:IFACE[:ttl=N][:dscp=N][:keep-source][:vlan=N][:priority=N]
(see mcr.rules, which also says what a priority does).
Validation is strict, so a typo never silently changes what is relayed:
unknown keys at any level, wrong types, bad addresses, ports and interface
names, two rules for the same input (interface, group, port, source), two
rules with one name, a rule that would send back onto its own input, and a
bad worker, core or log level setting are all refused. A `ConfigError`
names each problem with its key path, e.g.
`rules[2].group: '0.0.0.0' is neither a multicast group nor a unicast address of the input`; all problems in a
file are reported at once, one per line.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

from . import listen_address
# Re-exported: callers read rules, joins and their errors through mcr.config.
from .config_rules import (JOIN_KEYS, RULE_KEYS, ConfigError, _check_keys, _fail, _interface, _joins, _rules, _typed,
                           join_from_dict, join_to_dict, rule_from_dict, rule_to_dict)
from .logs import FACILITIES
from .protocols.igmp_settings import Settings
from .protocols.msdp_config import MsdpConfig, msdp_from_dict, msdp_to_dict
from .protocols.pim import Settings as PimSettings
from .protocols.pim_config import ALL_GROUPS, TREE_SETTINGS, PimConfig, StaticRp
from .protocols.pim_tree_types import TreeSettings
from .rules import Join, Rule

__all__ = ["Config", "ConfigError", "IGMP_SETTINGS", "JOIN_KEYS", "LOG_LEVELS", "PIM_KEYS", "PIM_SETTINGS", "RULE_KEYS",
           "join_from_dict", "join_to_dict", "rule_from_dict", "rule_to_dict"]

IGMP_SETTINGS = tuple(f.name for f in fields(Settings))
PIM_SETTINGS = tuple(f.name for f in fields(PimSettings))

LOG_LEVELS = ("debug", "info", "warning", "error")
USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}")


# Top-level settings -----------------------------------------------------------

def _workers(value: Any, where: str) -> int | None:
    if value is not None and _typed(value, int, where) < 1:
        raise _fail(where, f"{value} is not a worker count (1 or more; null means one per core)")
    return value


def _pin_cores(value: Any, where: str) -> tuple[int, ...] | None:
    if value is None:
        return None
    if not _typed(value, list, where):
        raise _fail(where, "list at least one core, or use null for no pinning")
    for index, core in enumerate(value):
        if _typed(core, int, f"{where}[{index}]") < 0:
            raise _fail(f"{where}[{index}]", f"{core} is not a core number")
        if core in value[:index]:
            raise _fail(f"{where}[{index}]", f"core {core} is listed twice")
    return tuple(value)


def _log_level(value: Any, where: str) -> str:
    if _typed(value, str, where) not in LOG_LEVELS:
        raise _fail(where, f"'{value}' is not a log level ({', '.join(LOG_LEVELS)})")
    return value


def _log_levels(value: Any, where: str) -> dict[str, str]:
    for facility, level in _typed(value, dict, where).items():
        if facility not in FACILITIES:
            raise _fail(f"{where}.{facility}", f"unknown facility (expected one of: {', '.join(FACILITIES)})")
        _log_level(level, f"{where}.{facility}")
    return dict(value)


def _idle_stop_after(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise _fail(where, f"must be a number of seconds (0 or more) or null for never, not {json.dumps(value)}")
    return value


PROTOCOL_KEYS = ("interfaces",)
PIM_KEYS = ("interfaces", "rp", *TREE_SETTINGS)


def _protocol(value: Any, where: str, kind: type, keys: tuple[str, ...]) -> dict:
    """{"interfaces": {name: {setting: value}}} -> name -> kind(**settings) (RFC defaults for what is left out)."""
    problems = _check_keys(_typed(value, dict, where), PROTOCOL_KEYS, where)
    if problems:
        raise ConfigError(problems)
    interfaces = {}
    for name, settings in _typed(value.get("interfaces", {}), dict, f"{where}.interfaces").items():
        here = f"{where}.interfaces.{name}"
        _interface(name, here)
        unknown = _check_keys(_typed(settings, dict, here), keys, here)
        if unknown:
            raise ConfigError(unknown)
        try:
            interfaces[name] = kind(**settings)
        except (TypeError, ValueError) as error:
            raise _fail(here, str(error)) from None
    return interfaces


def _igmp(value: Any, where: str) -> dict[str, Settings]:
    return _protocol(value, where, Settings, IGMP_SETTINGS)


def _pim(value: Any, where: str) -> PimConfig:
    """{"interfaces": {...}, "rp": [{"address", "groups"}], and the router-wide TREE_SETTINGS}."""
    data = _typed(value, dict, where)
    problems = _check_keys(data, PIM_KEYS, where)
    if problems:
        raise ConfigError(problems)
    interfaces = _protocol({"interfaces": data.get("interfaces", {})}, where, PimSettings, PIM_SETTINGS)
    rps = []
    for index, entry in enumerate(_typed(data.get("rp", []), list, f"{where}.rp")):
        here = f"{where}.rp[{index}]"
        unknown = _check_keys(_typed(entry, dict, here), ("address", "groups"), here)
        if unknown or "address" not in entry:
            raise ConfigError(unknown or [f"{here}: missing key 'address'"])
        try:
            rps.append(StaticRp(_typed(entry["address"], str, f"{here}.address"),
                                _typed(entry.get("groups", ALL_GROUPS), str, f"{here}.groups")))
        except ValueError as error:
            raise _fail(here, str(error)) from None
    try:
        tree = TreeSettings(**{key: data[key] for key in TREE_SETTINGS if key in data})
        return PimConfig(interfaces, tuple(rps), tree)
    except (TypeError, ValueError) as error:
        raise _fail(where, str(error)) from None


def _msdp(value: Any, where: str) -> MsdpConfig:
    try:
        return msdp_from_dict(value, where)
    except ValueError as error:
        raise ConfigError([str(error)]) from None


def protocol_to_dict(interfaces: dict, keys: tuple[str, ...]) -> dict:
    return {"interfaces": {name: {key: getattr(s, key) for key in keys} for name, s in sorted(interfaces.items())}}


def _metrics(value: Any, where: str) -> str | None:
    if value is None:
        return None
    _typed(value, str, where)
    try:
        listen_address.parse(value)
    except ValueError as error:
        raise _fail(where, str(error)) from None
    return value


def _user(value: Any, where: str) -> str:
    if not USER.fullmatch(_typed(value, str, where)):
        raise _fail(where, f"'{value}' is not a user name")
    return value


_SETTINGS: dict[str, Callable[[Any, str], Any]] = {
    "workers": _workers, "pin_cores": _pin_cores, "log_level": _log_level, "log_levels": _log_levels,
    "idle_stop_after": _idle_stop_after, "user": _user, "metrics": _metrics, "igmp": _igmp, "pim": _pim, "msdp": _msdp,
    "joins": _joins,
    "rules": _rules}
DEFAULT_IDLE_STOP_AFTER = 60.0


@dataclass(frozen=True)
class Config:
    """What the daemon runs: worker settings and the static rules."""

    workers: int | None = None
    pin_cores: tuple[int, ...] | None = None
    log_level: str = "info"
    user: str = "nobody"
    rules: tuple[Rule, ...] = ()
    joins: tuple[Join, ...] = ()
    igmp: dict[str, Settings] = field(default_factory=dict)  # interface -> querier settings
    pim: PimConfig = field(default_factory=PimConfig)  # interfaces, RPs, router-wide settings
    msdp: MsdpConfig = field(default_factory=MsdpConfig)  # peers, originator, timers
    log_levels: dict[str, str] = field(default_factory=dict)  # facility -> level, over log_level
    idle_stop_after: float | None = DEFAULT_IDLE_STOP_AFTER
    metrics: str | None = None  # ADDR:PORT of the Prometheus endpoint

    @classmethod
    def from_dict(cls, data: dict) -> Config:
        """Validate `data` (the parsed file); raises ConfigError listing every problem."""
        _typed(data, dict, "config")
        problems = _check_keys(data, tuple(_SETTINGS), "")
        values = {}
        for key, check in _SETTINGS.items():
            if key in data:
                try:
                    values[key] = check(data[key], key)
                except ConfigError as error:
                    problems.extend(error.errors)
        workers, cores = values.get("workers"), values.get("pin_cores")
        if workers is not None and cores is not None and len(cores) != workers:
            problems.append(f"pin_cores: {len(cores)} cores for {workers} workers (give one core per worker)")
        if problems:
            raise ConfigError(problems)
        return cls(**values)

    def to_dict(self) -> dict:
        return {"workers": self.workers, "pin_cores": None if self.pin_cores is None else list(self.pin_cores),
                "log_level": self.log_level, "log_levels": dict(self.log_levels),
                "idle_stop_after": self.idle_stop_after, "user": self.user, "metrics": self.metrics,
                "igmp": protocol_to_dict(self.igmp, IGMP_SETTINGS), "pim": self.pim.to_dict(),
                "msdp": msdp_to_dict(self.msdp),
                "joins": [join_to_dict(j) for j in self.joins],
                "rules": [rule_to_dict(r) for r in self.rules]}

    @classmethod
    def load(cls, path: str | os.PathLike) -> Config:
        """Read and validate a config file; every problem is prefixed with the file's path."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise _fail(str(path), getattr(error, "strerror", None) or str(error)) from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise _fail(str(path), f"line {error.lineno} column {error.colno}: {error.msg}") from None
        try:
            return cls.from_dict(data)
        except ConfigError as error:
            raise ConfigError([f"{path}: {problem}" for problem in error.errors]) from None

    def save(self, path: str | os.PathLike) -> None:
        """Write atomically: a reader (or a crash) sees the old file or the new one, never half of one."""
        target = Path(path)
        mode = target.stat().st_mode & 0o7777 if target.exists() else 0o644
        fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                json.dump(self.to_dict(), file, indent=2)
                file.write("\n")
                file.flush()
                os.fsync(file.fileno())
            os.chmod(temp, mode)
            os.replace(temp, target)
        except BaseException:
            os.unlink(temp)
            raise
