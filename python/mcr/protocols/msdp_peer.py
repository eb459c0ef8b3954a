"""One MSDP peering's session (RFC 3618 section 5, timers, and section 11,
the connection state machine whose state names PeerState keeps), sans-IO.

The session decides who connects, when to retry, when to send Keepalives
and when the peer is dead; it owns no socket. Its inputs are the adapter's
events with the time (`start`, `connected`, `data_received`, `expire`, ...),
its outputs frozen dataclasses the adapter carries out: open or accept a
TCP connection, write bytes, close it, and tell the SA speaker that the
session came up, went down or brought an SA.

Facts from RFC 3618 used here: TCP port 639; the peer with the higher
address listens and the lower one connects (section 11); KeepAlive-Period
60 s, HoldTime-Period 75 s, ConnectRetry-Period 30 s (section 5). Like FRR's
pimd we send a Keepalive as soon as the connection is up, so the peer's
hold timer starts from a message, not from the connection.

Transitions (event: from -> to, outputs):

    start           DISABLED -> CONNECTING [Connect] (active) | LISTEN [Listen] (passive)
    connected       CONNECTING -> ESTABLISHED [Established, Send(keepalive)]
    accepted        LISTEN -> ESTABLISHED [Established, Send(keepalive)]; elsewhere [Close] for the new connection
    connect_failed  CONNECTING -> INACTIVE, ConnectRetry timer armed with backoff
    retry timer     INACTIVE -> CONNECTING [Connect]
    closed, hold timer, decode error
                    ESTABLISHED -> INACTIVE (active) | LISTEN [Listen] (passive), with [Down]
                    (and [Close] first when we end it)
    stop            any -> DISABLED ([Close] if connecting or up, [Down] if up)

Not the session's business: a `Connect` that neither succeeds nor fails
stays CONNECTING for as long as the adapter lets it; the adapter owns the
connect timeout and reports its expiry as `connect_failed`.
"""

from __future__ import annotations

import collections
import ipaddress
import random
from dataclasses import dataclass
from enum import Enum

from .msdp_wire import (KEEPALIVE, KEEPALIVE_BYTES, SOURCE_ACTIVE, TLV_HEADER, Keepalive, MsdpDecodeError,
                        SourceActive, StreamDecoder)

JITTER = (0.9, 1.1)  # retry delays are spread so that peers that failed together do not retry together


class PeerState(Enum):
    DISABLED = "disabled"  # not started, or stopped
    INACTIVE = "inactive"  # active role, waiting for the ConnectRetry timer
    LISTEN = "listen"  # passive role, waiting for the peer to connect
    CONNECTING = "connecting"  # active role, our Connect is under way
    ESTABLISHED = "established"


@dataclass(frozen=True)
class SessionTimers:
    """The session's periods in seconds (RFC 3618 section 5 defaults)."""

    keepalive: float = 60.0
    hold: float = 75.0
    connect_retry: float = 30.0
    max_connect_retry: float = 240.0  # backoff cap

    def __post_init__(self) -> None:
        for name in ("keepalive", "hold", "connect_retry", "max_connect_retry"):
            if not getattr(self, name) > 0:
                raise ValueError(f"MSDP timer {name} must be above 0 s, not {getattr(self, name)}")
        if not self.keepalive < self.hold:
            raise ValueError(f"MSDP keepalive ({self.keepalive} s) must be shorter than hold ({self.hold} s)")
        if not self.connect_retry <= self.max_connect_retry:
            raise ValueError(f"MSDP connect_retry ({self.connect_retry} s) must not exceed "
                             f"max_connect_retry ({self.max_connect_retry} s)")


@dataclass(frozen=True)
class Connect:
    """Open a TCP connection from `local` to `peer`:639."""

    peer: str
    local: str


@dataclass(frozen=True)
class Listen:
    """Accept a connection from `peer` on `local`:639."""

    peer: str
    local: str


@dataclass(frozen=True)
class Send:
    """Write `data` to the TCP connection."""

    data: bytes


@dataclass(frozen=True)
class Close:
    """Close the TCP connection."""

    reason: str


@dataclass(frozen=True)
class Established:
    """The session came up (the speaker sends its SAs)."""


@dataclass(frozen=True)
class Down:
    """The session went down (the speaker forgets what it learned from it)."""

    reason: str


@dataclass(frozen=True)
class Received:
    """An SA arrived."""

    message: SourceActive


Output = Connect | Listen | Send | Close | Established | Down | Received

_COUNTED_OUT = {SOURCE_ACTIVE: "sa_out", KEEPALIVE: "keepalive_out"}


class MsdpSession:
    """One peer's session: role by address order, timers, retry with backoff.

    Backoff: the n-th consecutive failed attempt (a failed connect, or a
    session that went down) waits connect_retry * 2**(n-1), capped at
    max_connect_retry, times a jitter in [0.9, 1.1]; n goes back to 0 once
    a session has stayed up for `hold` seconds, so only a flapping peer backs
    off. The first attempt after `start` is immediate. The passive side
    does not back off: it only listens.
    """

    def __init__(self, peer: str, local: str, timers: SessionTimers = SessionTimers(),
                 rng: random.Random | None = None) -> None:
        peer_address, local_address = _address(peer, "peer"), _address(local, "local")
        if peer_address == local_address:
            raise ValueError(f"MSDP peer {peer} is our own local address")
        self.peer, self.local = str(peer_address), str(local_address)
        # Section 11: the lower address connects, the higher one listens.
        self.role = "active" if local_address < peer_address else "passive"
        self.timers = timers
        self.state = PeerState.DISABLED
        self.counters: collections.Counter[str] = collections.Counter()
        self.last_error: str | None = None
        self._rng = rng if rng is not None else random.Random()
        self._decoder = StreamDecoder()
        self._failures = 0  # consecutive failed attempts (the n of the backoff)
        self._established_at: float | None = None
        self._hold_at: float | None = None
        self._keepalive_at: float | None = None
        self._retry_at: float | None = None

    # --- the adapter's events ------------------------------------------------

    def start(self, now: float) -> list[Output]:
        """Begin peering: connect at once (active) or listen (passive)."""
        if self.state is not PeerState.DISABLED:
            return []
        self._failures = 0
        return self._connect() if self.role == "active" else self._listen()

    def stop(self, now: float) -> list[Output]:
        """Stop peering: close what is open; DISABLED until the next start."""
        outputs: list[Output] = []
        if self.state in (PeerState.ESTABLISHED, PeerState.CONNECTING):
            outputs.append(Close("peering stopped"))
        if self.state is PeerState.ESTABLISHED:
            outputs.append(Down("peering stopped"))
        self._clear_timers()
        self.state = PeerState.DISABLED
        return outputs

    def connected(self, now: float) -> list[Output]:
        """Our Connect succeeded: the session is up."""
        if self.state is not PeerState.CONNECTING:
            self.counters["unexpected_connections"] += 1
            return [Close(f"connection completed while {self.state.value}")]
        return self._establish(now)

    def connect_failed(self, now: float, reason: str) -> list[Output]:
        """Our Connect failed (or the adapter's connect timeout ran out)."""
        if self.state is not PeerState.CONNECTING:
            return []
        self.counters["connect_failures"] += 1
        self.last_error = f"connect failed: {reason}"
        return self._retry_later(now)

    def accepted(self, now: float) -> list[Output]:
        """A connection from the peer was accepted on our listening socket.

        Taken only by the passive side in LISTEN. Otherwise the answer is
        [Close(...)] meaning the NEW connection: the adapter must close only
        that one and keep the session's current connection, if any. A peer
        that restarted and reconnects before our hold timer ran out is
        refused until that timer closes the old session.
        """
        if self.role == "passive" and self.state is PeerState.LISTEN:
            return self._establish(now)
        self.counters["refused_connections"] += 1
        if self.role == "active":
            return [Close("refused: our address is lower, we connect to this peer")]
        return [Close(f"refused: the session is {self.state.value}")]

    def data_received(self, now: float, data: bytes) -> list[Output]:
        """Bytes from the connection: SAs out as Received, Keepalives absorbed."""
        if self.state is not PeerState.ESTABLISHED:
            self.counters["data_while_down"] += 1
            return []
        try:
            messages = self._decoder.feed(data)
        except MsdpDecodeError as error:
            # Messages decoded before the bad one are dropped with it: the
            # session goes down, and Down makes the speaker forget them anyway.
            self.counters["decode_errors"] += 1
            return self._go_down(now, f"malformed message: {error}", close=True)
        outputs: list[Output] = []
        for message in messages:
            self._hold_at = now + self.timers.hold  # section 5.3: any message restarts the hold timer
            if isinstance(message, SourceActive):
                self.counters["sa_in"] += 1
                outputs.append(Received(message))
            elif isinstance(message, Keepalive):
                self.counters["keepalive_in"] += 1
            else:
                self.counters["unknown_tlv_in"] += 1
        return outputs

    def closed(self, now: float, reason: str) -> list[Output]:
        """The TCP connection ended (the peer closed it, or it broke)."""
        if self.state is PeerState.ESTABLISHED:
            self.counters["closed_by_peer"] += 1
            return self._go_down(now, reason, close=False)
        if self.state is PeerState.CONNECTING:
            return self.connect_failed(now, reason)
        return []

    def send(self, now: float, data: bytes) -> list[Output]:
        """Write TLVs to the peer; while the session is not up they are dropped and counted."""
        if self.state is not PeerState.ESTABLISHED:
            self.counters["send_while_down"] += 1
            return []
        self._count_out(data)
        self._keepalive_at = now + self.timers.keepalive  # a Keepalive is only due after silence
        return [Send(data)]

    def expire(self, now: float) -> list[Output]:
        """Whatever timer is due at `now`."""
        if self.state is PeerState.ESTABLISHED:
            if self._hold_at is not None and now >= self._hold_at:
                return self.on_hold_timer(now)
            if self._keepalive_at is not None and now >= self._keepalive_at:
                return self.on_keepalive_timer(now)
        if self.state is PeerState.INACTIVE and self._retry_at is not None and now >= self._retry_at:
            return self.on_connect_retry_timer(now)
        return []

    def next_deadline(self) -> float | None:
        """When `expire` should next be called, or None."""
        if self.state is PeerState.ESTABLISHED:
            return min(d for d in (self._hold_at, self._keepalive_at) if d is not None)
        if self.state is PeerState.INACTIVE:
            return self._retry_at
        return None

    def describe(self, now: float) -> dict:
        """The session for `mcr msdp peers`: plain values only."""
        up = self._established_at if self.state is PeerState.ESTABLISHED else None
        retry = self._retry_at if self.state is PeerState.INACTIVE else None
        return {
            "peer": self.peer, "local": self.local, "state": self.state.value, "role": self.role,
            "established_for": None if up is None else max(0.0, now - up),
            "retry_in": None if retry is None else max(0.0, retry - now),
            "last_error": self.last_error, "counters": dict(self.counters),
        }

    # --- timers (section 5) --------------------------------------------------

    def on_hold_timer(self, now: float) -> list[Output]:
        """Nothing heard for HoldTime-Period: the peer is gone."""
        self.counters["hold_expired"] += 1
        return self._go_down(now, "hold timer expired", close=True)

    def on_keepalive_timer(self, now: float) -> list[Output]:
        """Nothing sent for KeepAlive-Period: tell the peer we are alive."""
        self.counters["keepalive_out"] += 1
        self._keepalive_at = now + self.timers.keepalive
        return [Send(KEEPALIVE_BYTES)]

    def on_connect_retry_timer(self, now: float) -> list[Output]:
        return self._connect()

    # --- transitions ---------------------------------------------------------

    def _connect(self) -> list[Output]:
        self._retry_at = None
        self.state = PeerState.CONNECTING
        self.counters["connect_attempts"] += 1
        return [Connect(self.peer, self.local)]

    def _listen(self) -> list[Output]:
        self.state = PeerState.LISTEN
        return [Listen(self.peer, self.local)]

    def _establish(self, now: float) -> list[Output]:
        self.state = PeerState.ESTABLISHED
        self.counters["established"] += 1
        self._decoder = StreamDecoder()  # nothing of an earlier connection carries over
        self._established_at = now
        self._retry_at = None
        self._hold_at = now + self.timers.hold
        self._keepalive_at = now + self.timers.keepalive
        self.counters["keepalive_out"] += 1
        return [Established(), Send(KEEPALIVE_BYTES)]

    def _go_down(self, now: float, reason: str, close: bool) -> list[Output]:
        """From ESTABLISHED to retry (active) or listening (passive)."""
        self.last_error = reason
        self.counters["down"] += 1
        if self._established_at is not None and now - self._established_at >= self.timers.hold:
            self._failures = 0  # it stayed up long enough: not a flap
        outputs: list[Output] = [Close(reason)] if close else []
        outputs.append(Down(reason))
        self._clear_timers()
        if self.role == "active":
            return outputs + self._retry_later(now)
        return outputs + self._listen()

    def _retry_later(self, now: float) -> list[Output]:
        self._failures += 1
        delay = min(self.timers.connect_retry * 2 ** (self._failures - 1), self.timers.max_connect_retry)
        self._retry_at = now + delay * self._rng.uniform(*JITTER)
        self.state = PeerState.INACTIVE
        return []

    def _clear_timers(self) -> None:
        self._established_at = self._hold_at = self._keepalive_at = self._retry_at = None

    def _count_out(self, data: bytes) -> None:
        """Counts the TLVs in `data` by type (it may hold several, or be cut short)."""
        self.counters["bytes_out"] += len(data)
        offset = 0
        while offset + TLV_HEADER <= len(data):
            kind, length = data[offset], int.from_bytes(data[offset + 1:offset + 3], "big")
            self.counters[_COUNTED_OUT.get(kind, "other_tlv_out")] += 1
            if length < TLV_HEADER:
                break
            offset += length


def _address(text: str, what: str) -> ipaddress.IPv4Address:
    try:
        return ipaddress.IPv4Address(text)
    except ValueError as error:
        raise ValueError(f"MSDP {what} address {text!r} is not an IPv4 address") from error
