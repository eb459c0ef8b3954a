"""Group-to-RP mapping (RFC 7761 4.7): static RPs per group range and the
RP-set learned from a BSR (pim_bsr.py), with the 4.7.2 hash for choosing
among C-RPs of equal priority.

How the two combine follows FRR's pimd (pim_rp.c, pim_bsm.c): the longest
group range wins across both sources; where a static RP and a BSR range
are the same prefix, the static RP wins (FRR keeps the BSR entry aside and
installs it when the static one is removed). A shorter static range does
not hide a longer BSR one.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

MULTICAST = IPv4Network("224.0.0.0/4")
_HASH_A, _HASH_C, _HASH_MOD = 1103515245, 12345, 1 << 31  # 4.7.2
DEFAULT_HASH_MASK_LEN = 30  # RFC 5059 3.1 (IPv4 default)


@dataclass(frozen=True)
class CandidateRp:
    """A C-RP of a BSR group range: lower priority values are preferred."""

    address: str
    priority: int


def _value(address: str) -> int:
    return int.from_bytes(socket.inet_aton(address), "big")


def rp_hash(group: str, mask_len: int, rp: str) -> int:
    """4.7.2 Value(G,M,C(i)) = (1103515245 * ((1103515245 * (G&M) + 12345)
    XOR C(i)) + 12345) mod 2^31, on the 32-bit values of the addresses."""
    mask = (0xFFFFFFFF << (32 - mask_len)) & 0xFFFFFFFF if mask_len else 0
    inner = (_HASH_A * (_value(group) & mask) + _HASH_C) % _HASH_MOD
    return (_HASH_A * (inner ^ _value(rp)) + _HASH_C) % _HASH_MOD


def choose_rp(group: str, candidates: tuple[CandidateRp, ...], hash_mask_len: int) -> str | None:
    """4.7.1 steps 2-5 among the RPs of one range: the best priority (lowest
    value), then the highest hash, then the highest address."""
    if not candidates:
        return None
    best = min(c.priority for c in candidates)
    remaining = [c for c in candidates if c.priority == best]
    return max(remaining, key=lambda c: (rp_hash(group, hash_mask_len, c.address), _value(c.address))).address


def group_range(prefix: str) -> IPv4Network:
    """A multicast group range from text like "239.0.0.0/8": a clear error
    for anything else."""
    try:
        network = IPv4Network(prefix)
    except ValueError as error:
        raise ValueError(f"group range {prefix!r}: {error}") from None
    if not network.subnet_of(MULTICAST):
        raise ValueError(f"group range {prefix!r} is not inside 224.0.0.0/4")
    return network


class RpMapping:
    """RP(G) from static ranges and a BSR's RP-set."""

    def __init__(self) -> None:
        self._static: dict[IPv4Network, str] = {}
        self._bsr: dict[IPv4Network, tuple[CandidateRp, ...]] = {}
        self.hash_mask_len = DEFAULT_HASH_MASK_LEN

    def set_static(self, prefix: str, rp: str) -> None:
        """The static RP of a group range, replacing any earlier one."""
        address = IPv4Address(rp)
        if address.is_multicast or address.is_unspecified:
            raise ValueError(f"RP address {rp!r} must be a unicast address")
        self._static[group_range(prefix)] = rp

    def remove_static(self, prefix: str) -> None:
        network = group_range(prefix)
        if network not in self._static:
            raise ValueError(f"no static RP for {prefix}")
        del self._static[network]

    def set_bsr_rp_set(self, rp_set: dict[tuple[str, int], tuple[CandidateRp, ...]], hash_mask_len: int) -> None:
        """Replace the BSR-learned RP-set: (group, mask length) -> its C-RPs.
        Ranges outside 224/4 are left out (an RP-set cannot widen the
        multicast space)."""
        if not 0 <= hash_mask_len <= 32:
            raise ValueError(f"hash mask length {hash_mask_len} is not in 0..32")
        learned = {}
        for (group, mask_len), rps in rp_set.items():
            network = IPv4Network((group, mask_len), strict=False)
            if network.subnet_of(MULTICAST) and rps:
                learned[network] = rps
        self._bsr = learned
        self.hash_mask_len = hash_mask_len

    def rp_for(self, group: str) -> str | None:
        """RP(G): 4.7.1 step 1 over both sources (static first at the same
        prefix), then steps 2-5 among the BSR range's C-RPs."""
        address = IPv4Address(group)
        match: tuple[int, int, IPv4Network] | None = None  # (prefix length, static?, range)
        for network in self._static.keys() | self._bsr.keys():
            if address in network:
                key = (network.prefixlen, int(network in self._static), network)
                if match is None or key[:2] > match[:2]:
                    match = key
        if match is None:
            return None
        network = match[2]
        if network in self._static:
            return self._static[network]
        return choose_rp(group, self._bsr[network], self.hash_mask_len)

    def i_am_rp(self, group: str, addresses: set[str] | frozenset[str]) -> bool:
        """4.7 I_am_RP(G): RP(G) is one of this router's addresses."""
        rp = self.rp_for(group)
        return rp is not None and rp in addresses

    def describe(self) -> list[dict]:
        rows = [{"group": str(n), "rp": rp, "source": "static"} for n, rp in self._static.items()]
        rows += [{"group": str(n), "source": "bsr", "hidden_by_static": n in self._static,
                  "candidates": [{"rp": c.address, "priority": c.priority} for c in rps]}
                 for n, rps in self._bsr.items()]
        return sorted(rows, key=lambda r: (r["group"], r["source"]))
