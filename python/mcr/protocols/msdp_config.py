"""The daemon's MSDP settings as one value (config key "msdp"; see
mcr.config): the originator address, the peers, and the timers.

    "msdp": {"originator": "10.0.2.1", "keepalive": 60, "hold": 75, "connect_retry": 30,
             "advertisement_period": 60, "sa_hold": 90, "max_sa": 10000,
             "peers": [{"address": "10.0.1.1", "local": "10.0.1.2", "mesh_group": "dc1",
                        "sa_filter_in": ["deny 10.9.0.0/16 any", "permit any any"], "sa_filter_out": []}]}

Defaults are RFC 3618's: KeepAlive 60 s, Hold 75 s, ConnectRetry 30 s,
SA-Advertisement-Period 60 s, and SA cache entries kept 90 s since their
last refresh (SG-State-Period, at least the period plus 30 s).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, fields
from typing import Any

from .msdp_filter import SaFilter

BROADCAST = ipaddress.IPv4Address("255.255.255.255")
PEER_KEYS = ("address", "local", "mesh_group", "sa_filter_in", "sa_filter_out")


def _unicast(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what}: expected an IPv4 address, got {value!r}")
    try:
        address = ipaddress.IPv4Address(value)
    except ValueError:
        raise ValueError(f"{what}: '{value}' is not an IPv4 address") from None
    if address.is_multicast or address.is_unspecified or address.is_loopback or address == BROADCAST:
        raise ValueError(f"{what}: {value} is not a unicast address")
    return value


@dataclass(frozen=True)
class MsdpPeerConfig:
    address: str  # the peer's address
    local: str  # ours for this peering: the TCP source, and which side listens (the higher one)
    mesh_group: str | None = None
    sa_filter_in: SaFilter = field(default_factory=SaFilter)
    sa_filter_out: SaFilter = field(default_factory=SaFilter)

    def __post_init__(self) -> None:
        _unicast(self.address, "peer address")
        _unicast(self.local, "local address")
        if self.address == self.local:
            raise ValueError(f"peer {self.address} is our own (local) address")
        if self.mesh_group is not None and (not isinstance(self.mesh_group, str) or not self.mesh_group):
            raise ValueError(f"mesh_group of peer {self.address} must be a non-empty name")


@dataclass(frozen=True)
class MsdpConfig:
    originator: str | None = None  # the RP address in our SAs: this router's own (never a shared anycast one)
    peers: tuple[MsdpPeerConfig, ...] = ()
    keepalive: float = 60.0
    hold: float = 75.0
    connect_retry: float = 30.0
    advertisement_period: float = 60.0
    sa_hold: float = 90.0
    max_sa: int = 10000

    def __post_init__(self) -> None:
        if self.originator is not None:
            _unicast(self.originator, "originator")
        for name in ("keepalive", "hold", "connect_retry", "advertisement_period", "sa_hold"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 86400:
                raise ValueError(f"{name}: expected seconds in (0, 86400], got {value!r}")
        if self.keepalive >= self.hold:
            raise ValueError(f"keepalive ({self.keepalive} s) must be shorter than hold ({self.hold} s)")
        if self.sa_hold < self.advertisement_period:
            raise ValueError(f"sa_hold ({self.sa_hold} s) must be at least advertisement_period "
                             f"({self.advertisement_period} s), or every SA expires before its refresh")
        if isinstance(self.max_sa, bool) or not isinstance(self.max_sa, int) or not 1 <= self.max_sa <= 1_000_000:
            raise ValueError(f"max_sa: expected 1 to 1000000, got {self.max_sa!r}")
        addresses = [p.address for p in self.peers]
        twice = sorted({a for a in addresses if addresses.count(a) > 1})
        if twice:
            raise ValueError(f"peer {', '.join(twice)} configured more than once")


SETTINGS = tuple(f.name for f in fields(MsdpConfig) if f.name != "peers")


def msdp_from_dict(data: Any, where: str = "msdp") -> MsdpConfig:
    """The "msdp" config section; ValueError names the key (msdp.peers[1].address: ...)."""
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected an object")
    unknown = sorted(set(data) - set(SETTINGS) - {"peers"})
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)}")
    peers = data.get("peers", [])
    if not isinstance(peers, list):
        raise ValueError(f"{where}.peers: expected a list")
    parsed = tuple(_peer(entry, f"{where}.peers[{index}]") for index, entry in enumerate(peers))
    try:
        return MsdpConfig(peers=parsed, **{key: data[key] for key in SETTINGS if key in data})
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None


def _peer(entry: Any, where: str) -> MsdpPeerConfig:
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: expected an object")
    unknown = sorted(set(entry) - set(PEER_KEYS))
    missing = [key for key in ("address", "local") if key not in entry]
    if unknown or missing:
        raise ValueError(f"{where}: " + "; ".join(
            ([f"unknown key(s) {', '.join(unknown)}"] if unknown else []) +
            ([f"missing key(s) {', '.join(missing)}"] if missing else [])))
    try:
        filters = {key: SaFilter.parse(entry.get(key, [])) for key in ("sa_filter_in", "sa_filter_out")}
        return MsdpPeerConfig(entry["address"], entry["local"], entry.get("mesh_group"), **filters)
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None


def msdp_to_dict(config: MsdpConfig) -> dict:
    data: dict = {key: getattr(config, key) for key in SETTINGS}
    data["peers"] = [{"address": p.address, "local": p.local, "mesh_group": p.mesh_group,
                      "sa_filter_in": p.sa_filter_in.to_list(), "sa_filter_out": p.sa_filter_out.to_list()}
                     for p in config.peers]
    return data
