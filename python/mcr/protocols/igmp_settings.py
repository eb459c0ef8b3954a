"""One IGMP interface's settings: the version and the timers of RFC 3376
section 8, checked when made, with the defaults the RFC derives from the
robustness variable and the query interval. Also the address ranges the
querier treats specially."""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Network

from .igmp_wire import MAX_CODE_VALUE, MAX_V2_TENTHS

MULTICAST = IPv4Network("224.0.0.0/4")
LINK_LOCAL = IPv4Network("224.0.0.0/24")  # RFC 5771: never forwarded, so never worth a membership
SSM_RANGE = IPv4Network("232.0.0.0/8")  # RFC 4607


def _seconds(name: str, value: float, least: float, most: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not least <= value <= most:
        raise ValueError(f"{name} must be between {least} and {most} seconds, not {value!r}")


def _count(name: str, value: int, least: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ValueError(f"{name} must be a whole number of at least {least}, not {value!r}")


@dataclass(frozen=True)
class Settings:
    """One interface's IGMP version and timers (RFC 3376 section 8), with the
    RFC defaults. A count or interval given as 0 takes its RFC default,
    derived from the robustness variable or the query interval."""

    version: int = 3
    robustness: int = 2  # 8.1
    query_interval: float = 125.0  # 8.2
    query_response_interval: float = 10.0  # 8.3
    last_member_query_interval: float = 1.0  # 8.8
    last_member_query_count: int = 0  # 8.9: robustness
    startup_query_interval: float = 0.0  # 8.6: query_interval / 4
    startup_query_count: int = 0  # 8.7: robustness

    def __post_init__(self) -> None:
        if self.version not in (1, 2, 3):
            raise ValueError(f"version must be 1, 2 or 3, not {self.version!r}")
        _count("robustness", self.robustness, 1)  # 8.1: MUST NOT be zero
        _seconds("query_interval", self.query_interval, 1, MAX_CODE_VALUE)  # 4.1.7: what QQIC holds
        # A v2 query's Max Resp Time is one byte of tenths; a v3 one is the float form of 4.1.1.
        most = (MAX_V2_TENTHS if self.version == 2 else MAX_CODE_VALUE) / 10
        _seconds("query_response_interval", self.query_response_interval, 0.1, most)
        if self.query_response_interval >= self.query_interval:
            raise ValueError(f"query_response_interval ({self.query_response_interval} s) must be less than "
                             f"query_interval ({self.query_interval} s) (RFC 3376 8.3)")
        _seconds("last_member_query_interval", self.last_member_query_interval, 0.1, most)
        _count("last_member_query_count", self.last_member_query_count, 0)
        _seconds("startup_query_interval", self.startup_query_interval, 0, self.query_interval)
        _count("startup_query_count", self.startup_query_count, 0)
        for name, default in (("last_member_query_count", self.robustness),
                              ("startup_query_interval", self.query_interval / 4),
                              ("startup_query_count", self.robustness)):
            if not getattr(self, name):
                object.__setattr__(self, name, default)

    @property
    def group_membership_interval(self) -> float:  # 8.4
        return self.robustness * self.query_interval + self.query_response_interval

    @property
    def other_querier_present_interval(self) -> float:  # 8.5
        return self.robustness * self.query_interval + self.query_response_interval / 2

    @property
    def older_host_present_interval(self) -> float:  # 8.13
        return self.robustness * self.query_interval + self.query_response_interval

    @property
    def last_member_query_time(self) -> float:  # 8.10
        return self.last_member_query_count * self.last_member_query_interval
