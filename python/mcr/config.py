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

import ipaddress
import json
import os
import re
import tempfile
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

from . import listen_address
from .logs import FACILITIES
from .protocols.igmp import Settings
from .protocols.msdp_config import MsdpConfig, msdp_from_dict, msdp_to_dict
from .protocols.pim import Settings as PimSettings
from .protocols.pim_config import ALL_GROUPS, TREE_SETTINGS, PimConfig, StaticRp
from .protocols.pim_tree_types import TreeSettings
from .rules import DSCP_PRIORITY, MAX_IFNAME, Join, Output, Rule, RuleError, parse_priority

IGMP_SETTINGS = tuple(f.name for f in fields(Settings))
PIM_SETTINGS = tuple(f.name for f in fields(PimSettings))

LOG_LEVELS = ("debug", "info", "warning", "error")
NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}")
RULE_KEYS = ("name", "input_interface", "group", "port", "source", "vlan", "priority", "outputs", "members")
REQUIRED_RULE_KEYS = ("input_interface", "group", "port")
JOIN_KEYS = ("interface", "group", "source")


class ConfigError(ValueError):
    """One or more config problems, each `key.path: reason`; str() is one problem per line."""

    def __init__(self, errors: str | list[str]) -> None:
        self.errors = (errors,) if isinstance(errors, str) else tuple(errors)
        super().__init__("\n".join(self.errors))


def _fail(where: str, reason: str) -> ConfigError:
    return ConfigError(f"{where}: {reason}")


_TYPE_NAMES = {int: "an integer", str: "a string", list: "a list", dict: "an object", bool: "true or false"}


def _typed(value: Any, kind: type, where: str) -> Any:
    # bool is an int in Python, but `"port": true` is a mistake in a config file.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise _fail(where, f"must be {_TYPE_NAMES[kind]}, not {json.dumps(value)}")
    return value


def _check_keys(data: dict, allowed: tuple[str, ...], where: str) -> list[str]:
    prefix = f"{where}." if where else ""
    return [f"{prefix}{key}: unknown key (expected one of: {', '.join(allowed)})"
            for key in data if key not in allowed]


# Rule fields ------------------------------------------------------------------

def _interface(value: Any, where: str) -> str:
    name = _typed(value, str, where)
    if not name or len(name) > MAX_IFNAME or "/" in name or any(c.isspace() for c in name):
        raise _fail(where, f"'{name}' is not a valid interface name (1-{MAX_IFNAME} characters, no '/' or spaces)")
    return name


def _address(value: Any, where: str) -> ipaddress.IPv4Address:
    try:
        return ipaddress.IPv4Address(_typed(value, str, where))
    except ValueError:
        raise _fail(where, f"'{value}' is not an IPv4 address") from None


def _group(value: Any, where: str) -> str:
    if "/" in _typed(value, str, where):  # a range: Rule checks it
        return value
    address = _address(value, where)
    if address.is_unspecified or address.is_loopback or address == ipaddress.IPv4Address("255.255.255.255"):
        raise _fail(where, f"'{value}' is neither a multicast group nor a unicast address of the input")
    return value


def _source(value: Any, where: str) -> str | None:
    if value is None:
        return None
    address = _address(value, where)
    if address.is_multicast or address.is_unspecified:
        raise _fail(where, f"'{value}' must be a unicast address")
    return value


def _port(value: Any, where: str) -> int:
    if value == "any":
        return 0
    if not 1 <= _typed(value, int, where) <= 65535:
        raise _fail(where, f"{value} is outside 1-65535")
    return value


def _vlan(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if not 1 <= _typed(value, int, where) <= 4094:
        raise _fail(where, f"{value} is outside 1-4094")
    return value


def _priority(value: Any, where: str) -> int:
    if not isinstance(value, (int, str)) or isinstance(value, bool):
        raise _fail(where, f"expected 0-6 or \"dscp\", not {type(value).__name__}")
    try:
        return parse_priority(value, "priority", dscp=True)
    except RuleError as error:
        raise _fail(where, str(error).removeprefix("priority: ")) from None


def _name(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if not NAME.fullmatch(_typed(value, str, where)):
        raise _fail(where, f"'{value}' is not a valid name (1-64 of A-Z a-z 0-9 _ . -)")
    if value.isdigit():  # `mcr rules remove 7` means the rule with id 7
        raise _fail(where, f"'{value}' is all digits, so it would be mistaken for a rule id")
    return value


def _outputs(value: Any, where: str) -> tuple[Output, ...]:
    outputs: list[Output] = []
    for index, text in enumerate(_typed(value, list, where)):
        here = f"{where}[{index}]"
        try:
            output = Output.parse(_typed(text, str, here))
        except RuleError as error:
            raise _fail(here, str(error)) from None
        for earlier, other in enumerate(outputs):
            if (other.destination, other.port, other.interface) == (output.destination, output.port, output.interface):
                raise _fail(here, f"same destination as {where}[{earlier}]: packets would be sent twice")
        outputs.append(output)
    return tuple(outputs)


def _members(value: Any, where: str) -> tuple[str, ...]:
    return tuple(_interface(name, f"{where}[{i}]") for i, name in enumerate(_typed(value, list, where)))


def rule_from_dict(data: dict, where: str = "rule") -> Rule:
    """Build a Rule from its config form; raises ConfigError naming the bad key under `where`."""
    _typed(data, dict, where)
    problems = _check_keys(data, RULE_KEYS, where)
    missing = [key for key in REQUIRED_RULE_KEYS if key not in data]
    if missing:
        problems.append(f"{where}: missing {', '.join(missing)}")
    if problems:
        raise ConfigError(problems)
    fields = dict(input_interface=_interface(data["input_interface"], f"{where}.input_interface"),
                  group=_group(data["group"], f"{where}.group"), port=_port(data["port"], f"{where}.port"),
                  outputs=_outputs(data.get("outputs", []), f"{where}.outputs"),
                  members=_members(data.get("members", []), f"{where}.members"),
                  source=_source(data.get("source"), f"{where}.source"), name=_name(data.get("name"), f"{where}.name"),
                  vlan=_vlan(data.get("vlan"), f"{where}.vlan"),
                  priority=_priority(data.get("priority", 0), f"{where}.priority"))
    if not fields["outputs"] and not fields["members"]:
        raise _fail(f"{where}.outputs", "a rule needs at least one output (or members)")
    try:
        return Rule(**fields)
    except RuleError as error:  # what only the whole rule can tell, e.g. a loop back onto its input
        raise _fail(where, str(error)) from None


def rule_to_dict(rule: Rule) -> dict:
    """The config form of `rule`; optional keys appear only when set."""
    data: dict[str, Any] = {"name": rule.name} if rule.name else {}
    data.update(input_interface=rule.input_interface, group=rule.group, port=rule.port or "any")
    if rule.source is not None:
        data["source"] = rule.source
    if rule.vlan is not None:
        data["vlan"] = rule.vlan
    if rule.priority:
        data["priority"] = "dscp" if rule.priority == DSCP_PRIORITY else rule.priority
    data["outputs"] = [str(output) for output in rule.outputs]
    if rule.members:
        data["members"] = list(rule.members)
    return data


def join_from_dict(data: dict, where: str = "join") -> Join:
    """Build a Join from its config form; raises ConfigError naming the bad key under `where`."""
    _typed(data, dict, where)
    problems = _check_keys(data, JOIN_KEYS, where)
    missing = [key for key in ("interface", "group") if key not in data]
    if missing:
        problems.append(f"{where}: missing {', '.join(missing)}")
    if problems:
        raise ConfigError(problems)
    interface = _interface(data["interface"], f"{where}.interface")
    group, source = _typed(data["group"], str, f"{where}.group"), _source(data.get("source"), f"{where}.source")
    try:
        return Join(interface, group, source)
    except RuleError as error:
        raise _fail(where, str(error)) from None


def join_to_dict(join: Join) -> dict:
    return {"interface": join.interface, "group": join.group, **({"source": join.source} if join.source else {})}


def _joins(value: Any, where: str) -> tuple[Join, ...]:
    problems: list[str] = []
    joins: list[Join] = []
    for index, data in enumerate(_typed(value, list, where)):
        try:
            join = join_from_dict(data, f"{where}[{index}]")
        except ConfigError as error:
            problems.extend(error.errors)
            continue
        if join in joins:
            problems.append(f"{where}[{index}]: the same join as {where}[{joins.index(join)}]")
        joins.append(join)
    if problems:
        raise ConfigError(problems)
    return tuple(joins)


def _rules(value: Any, where: str) -> tuple[Rule, ...]:
    """Every rule's first problem, then the conflicts between the valid ones."""
    problems: list[str] = []
    rules: list[tuple[int, Rule]] = []
    for index, data in enumerate(_typed(value, list, where)):
        try:
            rules.append((index, rule_from_dict(data, f"{where}[{index}]")))
        except ConfigError as error:
            problems.extend(error.errors)
    inputs: dict[tuple, int] = {}
    names: dict[str, int] = {}
    for index, rule in rules:
        key = (rule.input_interface, rule.group, rule.port, rule.source, rule.vlan)
        if key in inputs:
            problems.append(f"{where}[{index}]: same input as {where}[{inputs[key]}] "
                            f"({rule.input_interface} {rule.group}:{rule.port} source {rule.source or 'any'}"
                            f"{f' VLAN {rule.vlan}' if rule.vlan else ''})")
        inputs.setdefault(key, index)
        if rule.name is None:
            continue
        if rule.name in names:
            problems.append(f"{where}[{index}].name: '{rule.name}' is already used by {where}[{names[rule.name]}]")
        names.setdefault(rule.name, index)
    if problems:
        raise ConfigError(problems)
    return tuple(rule for _, rule in rules)


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
