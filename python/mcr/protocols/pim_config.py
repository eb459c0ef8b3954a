"""The daemon's PIM settings as one value: per-interface Hello settings,
the static RPs, and the router-wide Join/Prune, keepalive and switchover
settings (config key "pim"; see mcr.config)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, fields

from .pim import Settings
from .pim_tree_types import TreeSettings

ALL_GROUPS = "224.0.0.0/4"
INTERFACE_SETTINGS = tuple(f.name for f in fields(Settings))
TREE_SETTINGS = tuple(f.name for f in fields(TreeSettings))


@dataclass(frozen=True)
class StaticRp:
    """`address` is the RP of the groups in `groups` (RFC 7761 4.7: the
    longest matching range wins)."""

    address: str
    groups: str = ALL_GROUPS

    def __post_init__(self) -> None:
        address = ipaddress.IPv4Address(self.address)
        if address.is_multicast or address.is_unspecified or address.is_loopback:
            raise ValueError(f"RP address {self.address} must be a unicast address")
        network = ipaddress.IPv4Network(self.groups)  # strict: 239.1.1.1/8 is refused
        if not network.subnet_of(ipaddress.IPv4Network(ALL_GROUPS)):
            raise ValueError(f"RP groups {self.groups} are not multicast groups")
        object.__setattr__(self, "groups", str(network))


@dataclass(frozen=True)
class PimConfig:
    interfaces: dict[str, Settings] = field(default_factory=dict)  # interface -> Hello settings
    rp: tuple[StaticRp, ...] = ()
    tree: TreeSettings = field(default_factory=TreeSettings)

    def __post_init__(self) -> None:
        ranges = [r.groups for r in self.rp]
        twice = sorted({g for g in ranges if ranges.count(g) > 1})
        if twice:
            raise ValueError(f"more than one RP for {', '.join(twice)}")

    def to_dict(self) -> dict:
        data: dict = {"interfaces": {name: {key: getattr(s, key) for key in INTERFACE_SETTINGS}
                                     for name, s in sorted(self.interfaces.items())}}
        if self.rp:
            data["rp"] = [{"address": r.address, "groups": r.groups} for r in self.rp]
        data.update({key: getattr(self.tree, key) for key in TREE_SETTINGS})
        return data
