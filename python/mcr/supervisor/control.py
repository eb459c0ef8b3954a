"""The control socket: how the CLI, mcr.api and scripts talk to the daemon.

Wire protocol (the one description of it):

- A Unix stream socket (default /run/mcr/control.sock), mode 0660, in a
  directory created 0755 if missing. Peers are checked with SO_PEERCRED:
  root, the daemon's own user, and members of the socket file's group (as
  primary or supplementary group; `chgrp mcr control.sock` lets group mcr
  in) are served; anyone else gets a `permission` error and is closed.
- Newline-delimited JSON in UTF-8: one request object per line, one reply
  line per request, replies in request order. A connection may carry many
  requests.
- Request: `{"cmd": "rules.add", "args": {...}, "id": ANY}`; "args" defaults
  to {}; "id" is optional and echoed in the reply.
- Reply: `{"ok": true, "result": {...}}` or
  `{"ok": false, "error": {"code": CODE, "message": "what was wrong"}}`,
  plus "id" when the request had one. Codes are stable: bad_json,
  bad_request, unknown_command, not_found, conflict, too_large, timeout,
  permission, engine, internal, busy. A failed request changes nothing.
- Limits: a request line longer than `max_request` bytes (1 MiB) gets
  `too_large` and the connection is closed, without the server holding more
  than about twice that in memory. A connection that does not complete a
  request within `request_timeout` seconds (10) of connecting or of its
  last reply gets `timeout` and is closed; clients simply reconnect. Such
  unsolicited replies carry no "id". At most `max_clients` connections
  (256) are served at once: one more gets `busy` and is closed, so clients
  that pile up connections cannot take the file descriptors the daemon
  needs for its workers' sockets.
- The commands and their arguments are the table in commands.py.
- `events` is the one streaming command: after its reply the connection
  carries one JSON object per line, `{"time": T, "event": KIND, ...}`, until
  the client closes it. A subscriber that reads too slowly misses events
  (they are counted and reported as `{"event": "missed", "count": N}`)
  rather than holding up the daemon; one that stops reading for
  `request_timeout` seconds while events wait is disconnected.
- `trace` streams too, but ends by itself: after its reply come one
  `{"time": T, "event": "packet", ...}` line per traced packet, then
  `{"event": "end", "records": N, "reason": "count"|"timeout", "missed": M}`,
  and the daemon closes the connection (a client that closes it first ends
  the trace).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import stat
import struct
from dataclasses import dataclass
from typing import Any

from .commands import COMMANDS, CommandError

__all__ = ["CommandError", "ControlServer", "serve_control", "ERROR_CODES"]

ERROR_CODES = ("bad_json", "bad_request", "unknown_command", "not_found", "conflict", "too_large", "timeout",
               "permission", "engine", "internal", "busy")
REQUEST_KEYS = ("cmd", "args", "id")
SO_PEERGROUPS = getattr(socket, "SO_PEERGROUPS", 59)  # Linux 4.13+; Python 3.11 lacks the name
PEERGROUPS_BUFFER = 1024  # the most getsockopt() reads from Python: 256 groups
CLOSE_TIMEOUT = 2.0  # seconds close() waits for connections it could not cancel
log = logging.getLogger("mcr.control")


@dataclass(frozen=True)
class Peer:
    """Who is on the other end, as the kernel saw it at connect()."""

    pid: int
    uid: int
    gid: int
    groups: tuple[int, ...]

    @classmethod
    def of(cls, sock: socket.socket) -> Peer:
        pid, uid, gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
        try:
            raw = sock.getsockopt(socket.SOL_SOCKET, SO_PEERGROUPS, PEERGROUPS_BUFFER)
            groups = struct.unpack(f"{len(raw) // 4}I", raw)
        except OSError:  # old kernel, or more groups than fit: the primary group still counts
            groups = ()
        return cls(pid, uid, gid, groups)

    @property
    def is_owner(self) -> bool:
        return self.uid in (0, os.geteuid())


def _error(code: str, message: str) -> dict:
    return {"ok": False, "error": {"code": code, "message": message}}


def _remove_stale(path: str) -> None:
    """Remove a socket file left by a daemon that died; refuse if one still listens there."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise RuntimeError(f"{path} exists and is not a socket; not replacing it")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(path)
        except ConnectionRefusedError:
            os.unlink(path)
            return
        except OSError as error:
            raise RuntimeError(f"cannot tell whether {path} is in use: {error}") from None
    raise RuntimeError(f"{path}: another daemon is already listening there")


def _listening_socket(path: str) -> socket.socket:
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        os.makedirs(parent, exist_ok=True)
        os.chmod(parent, 0o755)  # makedirs' mode is filtered by the umask
    _remove_stale(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        # Until listen() nobody can connect, so the mode is right before anyone gets in.
        os.chmod(path, 0o660)
    except BaseException:
        sock.close()
        raise
    return sock


class ControlServer:
    """Serves the commands of commands.py to any number of concurrent clients."""

    def __init__(self, sup: Any, path: str, request_timeout: float, max_request: int, max_clients: int) -> None:
        self.sup = sup
        self.path = path
        self.request_timeout = request_timeout
        self.max_request = max_request
        self.max_clients = max_clients
        self._server: asyncio.AbstractServer | None = None
        self._identity: tuple[int, int] | None = None  # (st_dev, st_ino) of our socket file
        self._clients: set[asyncio.Task] = set()

    async def start(self) -> None:
        sock = _listening_socket(self.path)
        info = os.stat(self.path)
        self._identity = (info.st_dev, info.st_ino)
        # The accept queue holds as many as may be served: a burst of clients
        # connecting while the loop is busy is queued rather than refused with
        # EAGAIN (asyncio's default is 100; the kernel caps it at somaxconn).
        self._server = await asyncio.start_unix_server(self._serve_client, sock=sock, limit=self.max_request,
                                                       backlog=self.max_clients)
        log.info("control socket listening on %s", self.path)

    async def close(self) -> None:
        """Stop accepting, drop connected clients and remove the socket file (if it is still ours)."""
        if self._server is None:
            return
        self._server.close()
        await self._drop_clients()
        try:
            await asyncio.wait_for(self._server.wait_closed(), CLOSE_TIMEOUT)
        except asyncio.TimeoutError:
            log.warning("control: a client connection was still open at shutdown")
        # A connection accepted just before close() starts its task only now:
        # dropped too, rather than left pending on a loop about to close.
        await self._drop_clients()
        self._server = None
        try:
            info = os.stat(self.path)
            if (info.st_dev, info.st_ino) == self._identity:
                os.unlink(self.path)
        except FileNotFoundError:
            pass

    async def _drop_clients(self) -> None:
        for task in list(self._clients):
            task.cancel()
        if self._clients:
            await asyncio.wait(list(self._clients), timeout=CLOSE_TIMEOUT)

    def _allowed(self, peer: Peer) -> bool:
        if peer.is_owner:
            return True
        try:
            group = os.stat(self.path).st_gid
        except OSError:
            return False
        return peer.gid == group or group in peer.groups

    async def _serve_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._clients.add(task)
        try:
            peer = Peer.of(writer.get_extra_info("socket"))
            if len(self._clients) > self.max_clients:  # the client is told; nothing to log per refusal
                await self._send(writer, _error("busy", f"{self.max_clients} clients are connected already; "
                                                "closing the connection"))
            elif self._allowed(peer):
                while await self._serve_request(reader, writer, peer):
                    pass
            else:
                log.warning("control: refused pid %d uid %d gid %d", peer.pid, peer.uid, peer.gid)
                await self._send(writer, _error("permission", f"uid {peer.uid} may not use {self.path} "
                                                "(root, the daemon's user or the socket's group only)"))
        except (OSError, asyncio.TimeoutError):
            pass  # the client went away or stopped reading: nothing left to tell it
        finally:
            self._clients.discard(task)
            writer.close()

    async def _serve_request(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: Peer) -> bool:
        """Answer one request; False when the connection is done."""
        try:
            line = await asyncio.wait_for(reader.readline(), self.request_timeout)
        except asyncio.TimeoutError:
            await self._send(writer, _error("timeout", f"no complete request within {self.request_timeout:g} s; "
                                            "closing the connection"))
            return False
        except ValueError:  # StreamReader's limit: the line is longer than max_request
            await self._send(writer, _error("too_large", f"request longer than {self.max_request} bytes; "
                                            "closing the connection"))
            return False
        if not line:
            return False
        reply, command = await self._handle(line, peer)
        if reply["ok"] and command is not None and command.follow is not None:
            await self._send(writer, reply)
            await self._stream_events(reader, writer, command.follow(self.sup, reply["result"]))
            return False
        if not (reply["ok"] and command is not None and command.streams):
            await self._send(writer, reply)
            return True
        # Subscribed before the reply goes out: a client acting on the reply
        # must find in the stream everything that happens after it.
        subscription = self.sup.events.subscribe()
        try:
            await self._send(writer, reply)
            await self._stream_events(reader, writer, subscription)
        finally:
            self.sup.events.unsubscribe(subscription)
        return False

    async def _stream_events(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, subscription) -> None:
        """Write every event to this client until it closes the connection (or, for a
        stream that ends, such as a trace's, until it ends)."""

        async def forward() -> None:
            async for event in subscription:
                await self._send(writer, event)

        sender = asyncio.ensure_future(forward())
        closed = asyncio.ensure_future(reader.read())  # b"" at EOF; a subscriber sends nothing more
        try:
            done, _ = await asyncio.wait({sender, closed}, return_when=asyncio.FIRST_COMPLETED)
            if sender in done:
                sender.result()  # a write that failed or timed out ends the stream
        finally:
            sender.cancel()
            closed.cancel()
            await asyncio.gather(sender, closed, return_exceptions=True)

    async def _send(self, writer: asyncio.StreamWriter, reply: dict) -> None:
        try:
            data = json.dumps(reply, separators=(",", ":"))
        except (TypeError, ValueError) as error:  # a handler returned something JSON cannot carry
            log.error("control: reply not serializable: %s", error)
            fallback = _error("internal", f"reply not serializable: {error}")
            if "id" in reply:  # the id came as JSON, so it goes back as JSON
                fallback["id"] = reply["id"]
            data = json.dumps(fallback)
        writer.write(data.encode() + b"\n")
        await asyncio.wait_for(writer.drain(), self.request_timeout)

    async def _handle(self, line: bytes, peer: Peer) -> tuple[dict, Any]:
        """The reply to one request line, and the command it named (None if none)."""
        request: Any = None
        command = None
        try:
            request = _parse(line)
            _check(request)
            command = COMMANDS.get(request["cmd"])
            if command is None:
                raise CommandError("unknown_command", f"unknown command '{request['cmd']}' "
                                   f"(commands: {', '.join(COMMANDS)})")
            args = request.get("args", {})
            denied = [name for name in command.owner_only if name in args]
            if denied and not peer.is_owner:
                raise CommandError("permission", f"only root or the daemon's user may pass '{denied[0]}'")
            reply = {"ok": True, "result": await command.handler(self.sup, args)}
        except CommandError as error:
            reply = _error(error.code, error.message)
        except Exception as error:
            log.exception("control: %s failed", request.get("cmd") if isinstance(request, dict) else "request")
            reply = _error("internal", f"{type(error).__name__}: {error}")
        if isinstance(request, dict) and "id" in request:
            reply["id"] = request["id"]
        return reply, command


def _parse(line: bytes) -> Any:
    try:
        return json.loads(line)
    except ValueError as error:  # also malformed UTF-8
        raise CommandError("bad_json", f"request is not valid JSON: {error}") from None
    except RecursionError:  # "[[[[..." a few thousand deep: no command looks like that
        raise CommandError("bad_json", "request is nested too deeply to be a command") from None


def _check(request: Any) -> None:
    if not isinstance(request, dict):
        raise CommandError("bad_request", "a request is a JSON object such as {\"cmd\": \"ping\"}")
    unknown = [key for key in request if key not in REQUEST_KEYS]
    if unknown:
        raise CommandError("bad_request", f"unknown request key '{unknown[0]}' (expected: cmd, args, id)")
    if not isinstance(request.get("cmd"), str):
        raise CommandError("bad_request", "\"cmd\" must be a string naming the command")
    if not isinstance(request.get("args", {}), dict):
        raise CommandError("bad_request", "\"args\" must be an object")


async def serve_control(sup: Any, path: str, *, request_timeout: float = 10.0, max_request: int = 1 << 20,
                        max_clients: int = 256) -> ControlServer:
    """Listen on `path` and serve `sup` until `close()`; raises RuntimeError if another daemon has it."""
    server = ControlServer(sup, path, request_timeout, max_request, max_clients)
    await server.start()
    return server
