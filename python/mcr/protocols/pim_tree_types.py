"""The contract between the PIM-SM tree (mcr.protocols.pim_tree) and the
router around it: what the tree asks of the router (`TreeView`, whose
RPF answers are mcr.protocols.pim_rpf's `Rpf`),
its settings (`TreeSettings`) and what it hands back (`Forwarding`
entries, and the outputs `SendJoinPrune` and `TreeChanged`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum, auto
from ipaddress import IPv4Address
from typing import Protocol

from .pim import PimInterface
from .pim_rpf import Rpf
from .pim_wire import HOLDTIME_FOREVER

MAX_JOIN_PRUNE_BYTES = 1400  # PIM payload of one Join/Prune: fits any link MTU we meet, with IP and tunnel headers
SPT_SWITCHOVER = ("immediate", "never")


class Kind(Enum):
    """The three kinds of tree state (RFC 7761 4.1)."""

    STAR_G = "(*,G)"
    SG = "(S,G)"
    SG_RPT = "(S,G,rpt)"


class Timer(Enum):
    """Every timer the tree runs (RFC 7761 4.10, 4.11)."""

    EXPIRY = auto()  # downstream ET(*,G,I), ET(S,G,I), ET(S,G,rpt,I)
    PRUNE_PENDING = auto()  # downstream PPT
    JOIN = auto()  # upstream JT(*,G), JT(S,G)
    OVERRIDE = auto()  # upstream OT(S,G,rpt)
    KEEPALIVE = auto()  # KAT(S,G)


Key = tuple[str, str | None, Kind, str]  # group, source (None: (*,G)), kind, interface ("" upstream)


class TreeView(Protocol):
    """What the tree asks of the router around it."""

    def rp_of(self, group: str) -> str | None: ...

    def rpf(self, address: str) -> Rpf | None: ...  # None: unreachable

    def interfaces(self) -> Mapping[str, PimInterface]: ...  # PIM-enabled interfaces

    def lost_assert(self, source: str | None, group: str, interface: str) -> bool: ...

    def assert_winner(self, source: str | None, group: str, interface: str) -> str | None: ...

    def assert_sources(self, group: str) -> set[str]: ...  # sources of G with an (S,G) Assert machine


def _positive(name: str, value: float, most: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= most:
        raise ValueError(f"{name} must be a number above 0 and at most {most}, not {value!r}")


@dataclass(frozen=True)
class TreeSettings:
    """Join/Prune and Keepalive timers (RFC 7761 4.11) and the SPT switch
    policy. A join_prune_holdtime of 0 takes its default, 3.5 x period."""

    join_prune_period: float = 60.0  # t_periodic
    join_prune_holdtime: int = 0  # 4.11 J/P_HoldTime: 3.5 * t_periodic
    keepalive_period: float = 210.0  # 4.11 Keepalive_Period
    rp_keepalive_period: float = 185.0  # 4.11: 3 x Register_Suppression_Time + Register_Probe_Time
    spt_switchover: str = "immediate"  # SwitchToSptDesired(S,G): "immediate" (true) or "never" (false)

    def __post_init__(self) -> None:
        _positive("join_prune_period", self.join_prune_period, HOLDTIME_FOREVER / 3.5)
        holdtime = self.join_prune_holdtime
        if isinstance(holdtime, bool) or not isinstance(holdtime, int) or not 0 <= holdtime <= HOLDTIME_FOREVER:
            raise ValueError(f"join_prune_holdtime must be a whole number between 0 and {HOLDTIME_FOREVER}, "
                             f"not {holdtime!r}")
        _positive("keepalive_period", self.keepalive_period, 86400)
        _positive("rp_keepalive_period", self.rp_keepalive_period, 86400)
        if self.spt_switchover not in SPT_SWITCHOVER:
            raise ValueError(f"spt_switchover must be one of {', '.join(SPT_SWITCHOVER)}, "
                             f"not {self.spt_switchover!r}")
        if not holdtime:
            object.__setattr__(self, "join_prune_holdtime", round(3.5 * self.join_prune_period))


@dataclass(frozen=True)
class Forwarding:
    """One data-plane entry: packets of (source or any, group) arriving on
    `interface` go out of `outputs` (empty: dropped)."""

    interface: str  # may be pim_rpf.REGISTER_VIF for decapsulated Registers at the RP
    source: str | None  # None: (*,G)
    group: str
    outputs: frozenset[str]  # never holds `interface`
    notify: bool = False  # report arrivals (data_arrived): SPT switchover or setting the SPT bit


@dataclass(frozen=True)
class SendJoinPrune:
    """Send `payload` (PIM bytes) to 224.0.0.13 with TTL 1 on `interface`."""

    interface: str
    payload: bytes


@dataclass(frozen=True)
class TreeChanged:
    """forwarding() changed for the entries of (source, group); source None: the (*,G) entry."""

    source: str | None
    group: str


Output = SendJoinPrune | TreeChanged


def is_group(address: str) -> bool:
    """A multicast IPv4 address."""
    try:
        return IPv4Address(address).is_multicast
    except ValueError:
        return False


def is_source(address: str) -> bool:
    """An IPv4 address a packet can come from (not multicast, not 0.0.0.0)."""
    try:
        parsed = IPv4Address(address)
    except ValueError:
        return False
    return not (parsed.is_multicast or parsed.is_unspecified)
