"""The MSDP SA cache (RFC 3618 section 5.3): the (S,G)s other RPs
announced, each with the RP that originated it and the peer it came from,
kept until SG-State-Period passes without a refresh; and beside them, this
router's own sources, which never time out here (they last while PIM says
they are active). Bounded: a new entry beyond `max_entries` is refused and
counted by the speaker.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass


@dataclass
class SaEntry:
    source: str
    group: str
    rp: str
    peer: str | None  # None: originated here (local)
    learned_at: float
    expires_at: float | None  # None for local ones

    def describe(self, now: float) -> dict:
        return {"source": self.source, "group": self.group, "rp": self.rp, "peer": self.peer,
                "origin": "local" if self.peer is None else "peer", "age": round(now - self.learned_at, 1),
                "expires_in": None if self.expires_at is None else round(max(0.0, self.expires_at - now), 1)}


class SaCache:
    """Learned entries by (S,G), with their timeouts."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._entries: dict[tuple[str, str], SaEntry] = {}
        self._timers: list[tuple[float, int, tuple[str, str]]] = []  # (expiry, order, key), lazily cleaned
        self._order = itertools.count()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: tuple[str, str]) -> SaEntry | None:
        return self._entries.get(key)

    def entries(self) -> dict[tuple[str, str], SaEntry]:
        return dict(self._entries)

    def learn(self, now: float, source: str, group: str, rp: str, peer: str, hold: float) -> str | None:
        """Add or refresh (S,G): "added", "refreshed", or None when the cache is full."""
        key = (source, group)
        entry = self._entries.get(key)
        if entry is None:
            if len(self._entries) >= self.max_entries:
                return None
            entry = self._entries[key] = SaEntry(source, group, rp, peer, now, None)
            change = "added"
        else:
            entry.rp, entry.peer = rp, peer  # the newest announcement names who has it now
            change = "refreshed"
        entry.expires_at = now + hold
        heapq.heappush(self._timers, (entry.expires_at, next(self._order), key))
        return change

    def expire(self, now: float) -> list[SaEntry]:
        """Remove and return the entries whose time ran out by `now`."""
        gone = []
        while self._timers and self._timers[0][0] <= now:
            _, _, key = heapq.heappop(self._timers)
            entry = self._entries.get(key)
            if entry is not None and entry.expires_at is not None and entry.expires_at <= now:
                gone.append(self._entries.pop(key))
        if len(self._timers) > 4 * len(self._entries) + 64:  # refreshes leave stale timers behind
            self._timers = [(e.expires_at, next(self._order), k) for k, e in self._entries.items()]
            heapq.heapify(self._timers)
        return gone

    def next_deadline(self) -> float | None:
        return self._timers[0][0] if self._timers else None
