"""Per-peer MSDP SA filters (our choice of form; RFC 3618 leaves filtering
to the implementation, FRR 8.4 has none, later FRR and other vendors use
access lists).

A filter is an ordered list of lines `permit|deny SOURCE GROUP`, each of
SOURCE and GROUP a prefix (`a.b.c.d/len`; a bare address is a /32) or
`any`. An SA entry (S,G) takes the first line that matches it; a list
that is not empty ends with an implicit deny, and an empty list permits
everything.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

ANY = ipaddress.IPv4Network("0.0.0.0/0")


@dataclass(frozen=True)
class _Line:
    permit: bool
    source: ipaddress.IPv4Network
    group: ipaddress.IPv4Network

    def matches(self, source: ipaddress.IPv4Address, group: ipaddress.IPv4Address) -> bool:
        return source in self.source and group in self.group

    def text(self) -> str:
        def prefix(network: ipaddress.IPv4Network) -> str:
            return "any" if network == ANY else str(network)
        return f"{'permit' if self.permit else 'deny'} {prefix(self.source)} {prefix(self.group)}"


def _prefix(word: str, line: str) -> ipaddress.IPv4Network:
    if word == "any":
        return ANY
    try:
        return ipaddress.IPv4Network(word)  # strict: 10.1.1.1/8 is refused, as a typo would be
    except ValueError as error:
        raise ValueError(f"SA filter line '{line}': {error}") from None


@dataclass(frozen=True)
class SaFilter:
    lines: tuple[_Line, ...] = ()

    @classmethod
    def parse(cls, lines: Sequence[str]) -> SaFilter:
        if isinstance(lines, str):
            raise ValueError("an SA filter is a list of lines, not one string")
        parsed = []
        for line in lines:
            if not isinstance(line, str):
                raise ValueError(f"SA filter line {line!r} is not a string")
            words = line.split()
            if len(words) != 3 or words[0] not in ("permit", "deny"):
                raise ValueError(f"SA filter line '{line}': expected 'permit|deny SOURCE GROUP'")
            parsed.append(_Line(words[0] == "permit", _prefix(words[1], line), _prefix(words[2], line)))
        return cls(tuple(parsed))

    def permits(self, source: str, group: str) -> bool:
        if not self.lines:
            return True
        s, g = ipaddress.IPv4Address(source), ipaddress.IPv4Address(group)
        for line in self.lines:
            if line.matches(s, g):
                return line.permit
        return False  # the implicit deny at the end

    def to_list(self) -> list[str]:
        return [line.text() for line in self.lines]
