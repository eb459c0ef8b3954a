"""The client end of an engine's command channel, written once.

An engine (on a thread of this process, mcr.engine, or in a worker process,
mcr.supervisor.workers) reads commands from one end of a SOCK_SEQPACKET
socketpair and answers each with a reply carrying the command's sequence
number. `Channel` is the other end: it frames commands, passes file
descriptors, numbers requests and matches replies, skipping the late
replies of requests that timed out. It does so blocking (`call`, for
scripts and notebooks) or on an asyncio loop (`call_async`, for the
supervisor); one command is in flight at a time either way.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
import threading

from . import _engine, sockets

BUFFER = 4 << 20  # socket buffers: room for many message parts each way
REPLY_TIMEOUT = 5.0


class ChannelError(RuntimeError):
    """The engine refused a command, did not answer, or is gone; the message says which."""


def pair() -> tuple[socket.socket, socket.socket]:
    """A command channel: (our end, the engine's end), with big buffers."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    for end in (ours, theirs):
        sockets.force_buffer(end, sockets.SO_SNDBUFFORCE, socket.SO_SNDBUF, BUFFER)
        sockets.force_buffer(end, sockets.SO_RCVBUFFORCE, socket.SO_RCVBUF, BUFFER)
    return ours, theirs


class Channel:
    """Our end of one engine's channel. `name` prefixes error messages ("worker 2").

    Messages of any size up to _engine.MAX_MESSAGE travel as several
    datagrams (cpp/wire_framing.h): a rule sync for tens of thousands of
    rules, or the stats reply for them, is split and joined here."""

    def __init__(self, sock: socket.socket, name: str = "engine", error: type[Exception] = ChannelError) -> None:
        self.sock = sock
        self.name = name
        self.error = error  # raised for every failure, so callers keep their own exception type
        self._seq = itertools.count(1)
        self._assembler = _engine.Assembler()
        self._lock = threading.Lock()
        self._async_lock = asyncio.Lock()

    def _frame(self, encode, args: tuple, fd: int | None) -> tuple[int, list[bytes], list]:
        """A new seq, the command's datagrams, and the ancillary data for the first one."""
        seq = next(self._seq)
        message = encode(seq, *args)
        if len(message) > _engine.MAX_MESSAGE:
            raise self.error(f"{self.name}: a command of {len(message)} bytes is over the channel's limit "
                             f"of {_engine.MAX_MESSAGE} bytes")
        ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fd.to_bytes(4, "little"))] if fd is not None else []
        return seq, _engine.split_message(message), ancillary

    def _discard_stale(self) -> None:
        """Read what replies to timed-out requests left queued, so that the
        engine (which sends no more while its replies pile up) goes on.
        (A socket with a timeout would wait for one even with MSG_DONTWAIT.)"""
        timeout = self.sock.gettimeout()
        self.sock.setblocking(False)
        try:
            while part := self.sock.recv(_engine.MAX_PART):  # b"": the end, which the next read reports
                self._take(part, None)
        except BlockingIOError:
            pass
        finally:
            self.sock.settimeout(timeout)

    def _take(self, part: bytes, seq: int | None) -> dict | None:
        """One datagram: the reply to `seq` once it is whole, None until then
        (or for an older reply: its request timed out), or an error."""
        if not part:
            raise self.error(f"{self.name} closed its channel")
        message = self._assembler.add(part)
        for refused, why in self._assembler.take_errors():
            if refused == seq:
                raise self.error(f"{self.name}: bad reply: {why}")
        if message is None:
            return None
        reply = _engine.decode_reply(message)
        if reply["seq"] != seq:
            return None
        if not reply["ok"]:
            raise self.error(f"{self.name}: {reply['error']}")
        return reply

    def _failure(self, error: OSError) -> Exception:
        if isinstance(error, TimeoutError):
            return self.error(f"{self.name} did not answer within {REPLY_TIMEOUT:g} s")
        return self.error(f"{self.name}: {error}")

    def call(self, encode, *args, fd: int | None = None) -> dict:
        """Send one command and wait (blocking) for its reply."""
        with self._lock:
            seq, parts, ancillary = self._frame(encode, args, fd)
            self.sock.settimeout(REPLY_TIMEOUT)
            try:
                self._discard_stale()
                self.sock.sendmsg([parts[0]], ancillary)
                for part in parts[1:]:
                    self.sock.sendall(part)
                while (reply := self._take(self.sock.recv(_engine.MAX_PART), seq)) is None:
                    pass
            except OSError as error:  # TimeoutError included
                raise self._failure(error) from None
            return reply

    async def call_async(self, encode, *args, fd: int | None = None) -> dict:
        """Send one command and wait for its reply on the running loop."""
        async with self._async_lock:
            loop = asyncio.get_running_loop()
            seq, parts, ancillary = self._frame(encode, args, fd)
            try:
                async with asyncio.timeout(REPLY_TIMEOUT):
                    self._discard_stale()
                    await self._send_first(loop, parts[0], ancillary)
                    for part in parts[1:]:
                        await loop.sock_sendall(self.sock, part)
                    while (reply := self._take(await loop.sock_recv(self.sock, _engine.MAX_PART), seq)) is None:
                        pass
            except OSError as error:  # TimeoutError included
                raise self._failure(error) from None
            return reply

    async def _send_first(self, loop: asyncio.AbstractEventLoop, part: bytes, ancillary: list) -> None:
        """sendmsg (asyncio has no awaitable one, and the socket rides on the first part)."""
        while True:
            try:
                self.sock.sendmsg([part], ancillary)
                return
            except BlockingIOError:
                writable = loop.create_future()
                loop.add_writer(self.sock.fileno(), lambda: writable.done() or writable.set_result(None))
                try:
                    await writable
                finally:
                    loop.remove_writer(self.sock.fileno())

    async def aclose(self) -> None:
        """Close after the call in flight (if any) has ended: closing a socket
        under a pending asyncio read would leave that read hanging."""
        async with self._async_lock:
            self.sock.close()

    def close(self) -> None:
        self.sock.close()
