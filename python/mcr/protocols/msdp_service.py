"""MSDP on the supervisor's asyncio loop: one `MsdpSession` per configured
peer (mcr.protocols.msdp_peer, sans-IO) with its TCP connection, and the
router-wide `MsdpSpeaker` (mcr.protocols.msdp_speaker: SA cache, peer-RPF,
mesh groups, filters, origination).

TCP port 639 (RFC 3618 section 5): the side with the higher address
listens, the lower one connects. One listening socket per local address
that some passive peering uses; a connection is matched to its peer by
the remote and local addresses, and one from an address no peering names
is closed at once. Every connection's reader is a task of its own; a fault
in it, or in the timer, is logged, counted in `faults` and survived.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable

from .msdp_config import MsdpConfig
from .msdp_peer import (Close, Connect, Down, Established, Listen, MsdpSession, Received, Send,
                        SessionTimers)
from .msdp_speaker import MsdpSpeaker
from .msdp_wire import MSDP_PORT

READ_SIZE = 65536
MAX_WRITE_BUFFER = 1 << 20  # bytes queued for a peer that does not read: the session is closed instead
LISTEN_RETRY = 5.0  # s between attempts to listen on an address that is not (yet) ours

log = logging.getLogger("mcr.msdp")


class _Peer:
    """One peering: its session, and its connection while there is one."""

    def __init__(self, session: MsdpSession) -> None:
        self.session = session
        self.writer: asyncio.StreamWriter | None = None
        self.task: asyncio.Task | None = None  # connecting, then reading


class MsdpService:
    """MSDP for the configured peers, on the running loop."""

    def __init__(self, publish: Callable[..., None], on_sa: Callable[[float, str, str, str, bytes], None],
                 on_change: Callable[[], None], rpf_neighbor: Callable[[str], str | None]) -> None:
        self._loop = asyncio.get_running_loop()
        self._publish = publish
        self._on_sa = on_sa
        self._on_change = on_change
        self._rpf_neighbor = rpf_neighbor
        self.config = MsdpConfig()
        self.speaker: MsdpSpeaker | None = None
        self._peers: dict[str, _Peer] = {}
        self._listeners: dict[str, asyncio.Task] = {}  # local address -> the task that listens there
        self._servers: dict[str, asyncio.base_events.Server] = {}
        self._timer: asyncio.TimerHandle | None = None
        self.faults = 0

    # --- configuration -------------------------------------------------------

    def configure(self, config: MsdpConfig) -> None:
        """Peer as `config` says. A changed config starts MSDP afresh (the SA
        cache is relearned within one advertisement period)."""
        if config == self.config and (self.speaker is not None or not config.peers):
            return
        self.close()
        self.config = config
        if not config.peers:
            return
        self.speaker = MsdpSpeaker(config, self._rpf_neighbor, self._send_to, self._on_sa, self._on_change,
                                   self._publish)
        timers = SessionTimers(keepalive=config.keepalive, hold=config.hold, connect_retry=config.connect_retry,
                               max_connect_retry=8 * config.connect_retry)
        now = time.monotonic()
        for peer in config.peers:
            self._peers[peer.address] = _Peer(MsdpSession(peer.address, peer.local, timers))
        for p in self._peers.values():
            self._act(p, p.session.start(now))
        self._arm()

    def set_local_sources(self, sources: set[tuple[str, str]]) -> None:
        if self.speaker is not None:
            self._guard("local sources", lambda: self.speaker.set_local_sources(time.monotonic(), sources))
            self._arm()

    def close(self) -> None:
        now = time.monotonic()
        for p in self._peers.values():
            self._guard("stop", lambda p=p: self._act(p, p.session.stop(now)))
            self._drop_connection(p)
        self._peers.clear()
        for task in self._listeners.values():
            task.cancel()
        self._listeners.clear()
        for server in self._servers.values():
            server.close()
        self._servers.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.speaker is not None:
            self.speaker = None
            self._on_change()

    # --- what the CLI shows --------------------------------------------------

    def describe_peers(self) -> list[dict]:
        now = time.monotonic()
        rows = []
        for address, p in sorted(self._peers.items()):
            row = p.session.describe(now)
            peer = next(c for c in self.config.peers if c.address == address)
            row["mesh_group"] = peer.mesh_group
            rows.append(row)
        return rows

    def describe_sa(self) -> list[dict]:
        return self.speaker.describe_sa(time.monotonic()) if self.speaker is not None else []

    def learned(self) -> dict:
        return self.speaker.learned() if self.speaker is not None else {}

    # --- the sessions' outputs -----------------------------------------------

    def _act(self, p: _Peer, outputs: list) -> None:
        now = time.monotonic()
        address = p.session.peer
        for output in outputs:
            if isinstance(output, Send):
                self._write(p, output.data)
            elif isinstance(output, Connect):
                self._drop_connection(p)
                p.task = self._loop.create_task(self._connect(p), name=f"msdp-connect-{address}")
            elif isinstance(output, Listen):
                self._listen(output.local)
            elif isinstance(output, Close):
                log.info("MSDP peer %s: closing the connection: %s", address, output.reason)
                self._drop_connection(p)
            elif isinstance(output, Established):
                log.info("MSDP peer %s: established", address)
                self._publish("msdp-peer", peer=address, change="up")
                if self.speaker is not None:
                    self.speaker.peer_up(now, address)
            elif isinstance(output, Down):
                log.info("MSDP peer %s: down: %s", address, output.reason)
                self._publish("msdp-peer", peer=address, change="down", reason=output.reason)
                if self.speaker is not None:
                    self.speaker.peer_down(now, address)
            elif isinstance(output, Received) and self.speaker is not None:
                self.speaker.sa_received(now, address, output.message)

    def _send_to(self, address: str, data: bytes) -> None:
        """The speaker's message to one peer: its session sends it if up."""
        p = self._peers.get(address)
        if p is not None:
            self._act(p, p.session.send(time.monotonic(), data))

    def _write(self, p: _Peer, data: bytes) -> None:
        writer = p.writer
        if writer is None or writer.is_closing():
            p.session.counters["write_without_connection"] += 1
            return
        writer.write(data)
        if writer.transport.get_write_buffer_size() > MAX_WRITE_BUFFER:
            self._drop_connection(p)
            self._act(p, p.session.closed(time.monotonic(), "the peer does not read (send buffer full)"))

    def _drop_connection(self, p: _Peer) -> None:
        task, writer = p.task, p.writer
        p.task = p.writer = None
        if writer is not None:
            writer.close()
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    # --- TCP -----------------------------------------------------------------

    async def _connect(self, p: _Peer) -> None:
        session = p.session
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(session.peer, MSDP_PORT, local_addr=(session.local, 0)),
                timeout=self.config.connect_retry)
        except (OSError, asyncio.TimeoutError) as error:
            p.task = None
            self._guard("connect", lambda: self._act(p, session.connect_failed(time.monotonic(),
                                                                              str(error) or "timed out")))
            self._arm()
            return
        p.writer = writer
        self._guard("connected", lambda: self._act(p, session.connected(time.monotonic())))
        self._arm()
        await self._read(p, reader, writer)

    def _listen(self, local: str) -> None:
        if local not in self._listeners:
            self._listeners[local] = self._loop.create_task(self._serve(local), name=f"msdp-listen-{local}")

    async def _serve(self, local: str) -> None:
        """Listen on local:639 until closed, retrying while the address is not ours."""
        reported = False
        while local not in self._servers:
            try:
                self._servers[local] = await asyncio.start_server(
                    lambda r, w: self._accepted(local, r, w), local, MSDP_PORT, reuse_address=True)
            except OSError as error:
                if not reported:
                    log.warning("MSDP: cannot listen on %s:%d: %s (retrying every %.0f s)", local, MSDP_PORT,
                                error, LISTEN_RETRY)
                    reported = True
                await asyncio.sleep(LISTEN_RETRY)

    async def _accepted(self, local: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        remote = writer.get_extra_info("peername")[0]
        p = self._peers.get(remote)
        if p is None or p.session.local != local:
            log.info("MSDP: refused a connection from %s to %s (no such peering)", remote, local)
            writer.close()
            return
        outputs = p.session.accepted(time.monotonic())
        if not any(isinstance(o, Established) for o in outputs):
            writer.close()  # refused: the session keeps the connection it has, if any
            return
        self._drop_connection(p)
        p.writer = writer
        p.task = asyncio.current_task()
        self._guard("accepted", lambda: self._act(p, outputs))
        self._arm()
        await self._read(p, reader, writer)

    async def _read(self, p: _Peer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Feed the session until the connection ends or is replaced."""
        reason = "closed by the peer"
        try:
            while p.writer is writer:
                data = await reader.read(READ_SIZE)
                if not data:
                    break
                self._guard("read", lambda: self._act(p, p.session.data_received(time.monotonic(), data)))
                self._arm()
        except OSError as error:
            reason = str(error)
        if p.writer is writer:  # it ended under us, not by our Close
            p.writer = p.task = None
            writer.close()
            self._guard("closed", lambda: self._act(p, p.session.closed(time.monotonic(), reason)))
            self._arm()

    # --- timers --------------------------------------------------------------

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadlines = [d for d in (p.session.next_deadline() for p in self._peers.values()) if d is not None]
        if self.speaker is not None and (due := self.speaker.next_deadline()) is not None:
            deadlines.append(due)
        if deadlines:
            # asyncio's clock is time.monotonic, the one the cores are given
            self._timer = self._loop.call_at(min(deadlines), self._expire)

    def _expire(self) -> None:
        self._timer = None
        now = time.monotonic()
        for p in list(self._peers.values()):
            self._guard("timer", lambda p=p: self._act(p, p.session.expire(now)))
        if self.speaker is not None:
            self._guard("timer", lambda: self.speaker.expire(now))
        self._arm()

    def _guard(self, what: str, call: Callable[[], None]) -> None:
        try:
            call()
        except Exception:
            self.faults += 1
            log.exception("MSDP %s failed (%d faults so far)", what, self.faults)
