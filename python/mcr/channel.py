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

BUFFER = 4 << 20  # a stats reply for thousands of rules is one datagram
REPLY_TIMEOUT = 5.0


class ChannelError(RuntimeError):
    """The engine refused a command, did not answer, or is gone; the message says which."""


def pair() -> tuple[socket.socket, socket.socket]:
    """A command channel: (our end, the engine's end), with buffers big enough for any reply."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    for end in (ours, theirs):
        sockets.force_buffer(end, sockets.SO_SNDBUFFORCE, socket.SO_SNDBUF, BUFFER)
        sockets.force_buffer(end, sockets.SO_RCVBUFFORCE, socket.SO_RCVBUF, BUFFER)
    return ours, theirs


class Channel:
    """Our end of one engine's channel. `name` prefixes error messages ("worker 2")."""

    def __init__(self, sock: socket.socket, name: str = "engine", error: type[Exception] = ChannelError) -> None:
        self.sock = sock
        self.name = name
        self.error = error  # raised for every failure, so callers keep their own exception type
        self._seq = itertools.count(1)
        self._lock = threading.Lock()
        self._async_lock = asyncio.Lock()

    def _send(self, encode, args: tuple, fd: int | None) -> int:
        seq = next(self._seq)
        ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fd.to_bytes(4, "little"))] if fd is not None else []
        self.sock.sendmsg([encode(seq, *args)], ancillary)
        return seq

    def _match(self, data: bytes, seq: int) -> dict | None:
        """The reply to `seq`, None for an older one (its request timed out), or an error."""
        if not data:
            raise self.error(f"{self.name} closed its channel")
        reply = _engine.decode_reply(data)
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
            self.sock.settimeout(REPLY_TIMEOUT)
            try:
                seq = self._send(encode, args, fd)
                while (reply := self._match(self.sock.recv(_engine.MAX_MESSAGE), seq)) is None:
                    pass
            except OSError as error:  # TimeoutError included
                raise self._failure(error) from None
            return reply

    async def call_async(self, encode, *args, fd: int | None = None) -> dict:
        """Send one command and wait for its reply on the running loop."""
        async with self._async_lock:
            loop = asyncio.get_running_loop()
            try:
                seq = self._send(encode, args, fd)
                async with asyncio.timeout(REPLY_TIMEOUT):
                    while (reply := self._match(await loop.sock_recv(self.sock, _engine.MAX_MESSAGE), seq)) is None:
                        pass
            except OSError as error:  # TimeoutError included
                raise self._failure(error) from None
            return reply

    async def aclose(self) -> None:
        """Close after the call in flight (if any) has ended: closing a socket
        under a pending asyncio read would leave that read hanging."""
        async with self._async_lock:
            self.sock.close()

    def close(self) -> None:
        self.sock.close()
