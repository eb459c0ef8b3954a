"""Join/Prune messages assembled per (interface, upstream neighbor): every
join and prune one tree event (or one timer sweep) produces toward the
same neighbor goes out in as few messages as fit MAX_JOIN_PRUNE_BYTES.

RFC 7761 4.5.9 wants a Join(*,G) and the Prune(S,G,rpt)s of that group in
one message: a group's entries stay together in one group set, split only
when that set alone would not fit (then the Join(*,G) goes first).
"""

from __future__ import annotations

from .pim_tree_types import MAX_JOIN_PRUNE_BYTES, Kind, SendJoinPrune
from .pim_wire import GroupSet, JoinPrune, Source, encode_join_prune

_MESSAGE_BYTES = 4 + 6 + 4  # PIM header, Encoded-Unicast upstream neighbor, reserved|groups|holdtime
_GROUP_BYTES = 8 + 4  # Encoded-Group, joined and pruned counts
_SOURCE_BYTES = 8  # Encoded-Source
_MAX_GROUPS = 255  # the Num Groups field is one byte


def encoded_source(kind: Kind, address: str) -> Source:
    """The Encoded-Source of a (*,G) entry (address: the RP), an (S,G) or
    an (S,G,rpt) one (RFC 7761 4.9.5.1: W and R set for (*,G), R alone for
    (S,G,rpt))."""
    return Source(address, wildcard=kind is Kind.STAR_G, rpt=kind is not Kind.SG)


class JoinBatch:
    """Joins and prunes to send, collected until `messages`."""

    def __init__(self) -> None:
        # (interface, neighbor) -> group -> (joins, prunes), in the order added
        self._pending: dict[tuple[str, str], dict[str, tuple[list[Source], list[Source]]]] = {}

    def add(self, interface: str, neighbor: str, group: str, source: Source, join: bool) -> None:
        """One join or prune. The same source joined and pruned toward one
        neighbor: the later word stands (4.9.5.1 forbids both in one set)."""
        joins, prunes = self._pending.setdefault((interface, neighbor), {}).setdefault(group, ([], []))
        keep, drop = (joins, prunes) if join else (prunes, joins)
        if source in drop:
            drop.remove(source)
        if source not in keep:
            keep.append(source)

    def __bool__(self) -> bool:
        return bool(self._pending)

    def messages(self, holdtime: int) -> list[SendJoinPrune]:
        """Everything collected, as messages; the batch is empty afterwards."""
        out = []
        for (interface, neighbor), groups in self._pending.items():
            for message in _pack(neighbor, holdtime, groups):
                out.append(SendJoinPrune(interface, encode_join_prune(message)))
        self._pending.clear()
        return out


def _group_sets(group: str, joins: list[Source], prunes: list[Source]) -> list[GroupSet]:
    """One group's entries, cut into sets that each fit a message alone."""
    room = (MAX_JOIN_PRUNE_BYTES - _MESSAGE_BYTES - _GROUP_BYTES) // _SOURCE_BYTES
    entries = [(s, True) for s in joins] + [(s, False) for s in prunes]
    sets = []
    for start in range(0, len(entries), room):
        chunk = entries[start:start + room]
        sets.append(GroupSet(group, tuple(s for s, j in chunk if j), tuple(s for s, j in chunk if not j)))
    return sets


def _pack(neighbor: str, holdtime: int, groups: dict[str, tuple[list[Source], list[Source]]]) -> list[JoinPrune]:
    messages: list[JoinPrune] = []
    current: list[GroupSet] = []
    size = _MESSAGE_BYTES
    for group, (joins, prunes) in groups.items():
        for group_set in _group_sets(group, joins, prunes):
            need = _GROUP_BYTES + _SOURCE_BYTES * (len(group_set.joins) + len(group_set.prunes))
            if current and (size + need > MAX_JOIN_PRUNE_BYTES or len(current) == _MAX_GROUPS):
                messages.append(JoinPrune(neighbor, holdtime, tuple(current)))
                current, size = [], _MESSAGE_BYTES
            current.append(group_set)
            size += need
    if current:
        messages.append(JoinPrune(neighbor, holdtime, tuple(current)))
    return messages
