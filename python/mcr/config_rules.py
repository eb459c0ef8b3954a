"""Rules and joins as the config file (and the control socket) write them:
each field checked and named by its key path, a whole list checked for
conflicts, and the checks every part of the config shares (`ConfigError`,
types, unknown keys)."""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Any

from .rules import DSCP_PRIORITY, MAX_IFNAME, Join, Output, Rule, RuleError, parse_priority

NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
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
