"""A Python client for the daemon's control socket, for scripts and notebooks.

    from mcr.api import Client

    with Client() as mcr:        # Client("/tmp/mcr.sock"); $MCR_SOCKET changes the default
        rule_id = mcr.add_rule("in=eth0 group=239.1.1.1:5000 out=239.2.2.2:5000:eth1 name=feed-a")
        print(mcr.stats()["rules"][str(rule_id)]["packets"])
        mcr.remove_rule("feed-a")

Every method is one request and one reply (the protocol is described in
mcr/supervisor/control.py); `call(cmd, **args)` reaches any command. A
refused request raises `ApiError` with the daemon's stable error code
(`not_found`, `conflict`, `bad_request`, ...), or, from this side,
`unreachable` (no daemon, or the connection broke), `timeout` (no reply in
time) or `bad_reply`. ApiError is a RuntimeError.
"""

from __future__ import annotations

import itertools
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .config import Config, rule_from_dict, rule_to_dict
from .rules import Rule

DEFAULT_SOCKET = "/run/mcr/control.sock"


def default_socket() -> str:
    """The socket to use when none is given: $MCR_SOCKET, else /run/mcr/control.sock."""
    return os.environ.get("MCR_SOCKET") or DEFAULT_SOCKET


class ApiError(RuntimeError):
    """The daemon refused a request (or could not be reached): a stable `code` and a message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class _Closed(Exception):
    """The daemon closed the connection."""


class Client:
    """A connection to the daemon; opened on first use, reopened after the daemon drops an idle one."""

    def __init__(self, path: str | os.PathLike | None = None, timeout: float = 5.0) -> None:
        self.path = os.fspath(path) if path is not None else default_socket()
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._reader: Any = None
        self._ids = itertools.count(1)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._sock is not None:
            self._reader.close()
            self._sock.close()
            self._sock = self._reader = None

    def _connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.path)
        except OSError as error:
            sock.close()
            hints = {FileNotFoundError: "no such socket: is the daemon running (mcr daemon)?",
                     ConnectionRefusedError: "nobody is listening: the daemon is not running",
                     PermissionError: "permission denied (root, or a member of the socket's group)",
                     BlockingIOError: "the daemon's queue of new connections is full: try again"}
            raise ApiError("unreachable", f"{self.path}: {hints.get(type(error), error.strerror)}") from None
        self._sock, self._reader = sock, sock.makefile("rb")

    def _read_reply(self) -> dict:
        line = self._reader.readline()
        if not line:
            raise _Closed
        try:
            reply = json.loads(line)
        except ValueError:
            reply = None
        if not isinstance(reply, dict) or not isinstance(reply.get("ok"), bool):
            self.close()
            raise ApiError("bad_reply", f"not a reply: {line[:200]!r}")
        return reply

    def _exchange(self, request: dict) -> dict:
        fresh = self._sock is None
        if fresh:
            self._connect()
        try:
            self._sock.sendall(json.dumps(request).encode() + b"\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the daemon hung up, maybe after saying why: that is still there to read
        try:
            reply = self._read_reply()
        except (_Closed, ConnectionResetError):
            reply = None
        except TimeoutError:
            self.close()
            raise ApiError("timeout", f"no reply from {self.path} within {self.timeout:g} s") from None
        if reply is not None and (reply.get("id") == request["id"] or fresh):
            return reply  # on a fresh connection an id-less reply is the daemon refusing us
        self.close()
        if fresh:
            raise ApiError("unreachable", f"{self.path}: the daemon closed the connection")
        # The daemon had closed this idle connection (its parting reply has no id)
        # before reading the request, so sending it again cannot apply it twice.
        return self._exchange(request)

    def call(self, cmd: str, **args: Any) -> dict:
        """Send one command; its result, or ApiError."""
        reply = self._exchange({"cmd": cmd, "args": args, "id": next(self._ids)})
        if not reply["ok"]:
            error = reply.get("error") or {}
            raise ApiError(str(error.get("code", "bad_reply")), str(error.get("message", reply)))
        return reply.get("result", {})

    # Convenience methods, one per command ------------------------------------

    def ping(self) -> str:
        """The daemon's version."""
        return self.call("ping")["version"]

    def add_rule(self, rule: Rule | dict | str) -> int:
        """Add a Rule, its config form (dict) or its text form; returns its id."""
        if isinstance(rule, str):
            rule = Rule.parse(rule)
        return self.call("rules.add", rule=rule_to_dict(rule) if isinstance(rule, Rule) else rule)["id"]

    def remove_rule(self, key: int | str) -> None:
        """Remove a rule by id or name."""
        self.call("rules.remove", rule=key)

    def rules(self) -> dict[int, Rule]:
        """The daemon's rules by id (as mcr.engine.Engine.rules())."""
        entries = self.call("rules.list")["rules"]
        for entry in entries:  # what the daemon made of the rule, not part of it
            entry.pop("state", None)
            entry.pop("waiting_for", None)
        return {entry.pop("id"): rule_from_dict(entry) for entry in entries}

    def stats(self) -> dict:
        return self.call("stats")

    def workers(self) -> list[dict]:
        return self.call("workers")["workers"]

    def subscribe(self, timeout: float | None = None) -> EventStream:
        """Subscribe to the daemon's events now, on a connection of their own:
        what happens after this returns is in the stream. `timeout`: how long
        next() waits for an event (None: for ever)."""
        return EventStream(self.path, self.timeout, timeout)

    def events(self, count: int | None = None, timeout: float | None = None) -> Iterator[dict]:
        """The daemon's events as they happen, on a connection of their own;
        stops after `count` events or when none came for `timeout` seconds."""
        with self.subscribe(timeout) as stream:
            seen = 0
            while count is None or seen < count:
                event = stream.next()
                if event is None:
                    return
                seen += 1
                yield event

    def trace(self, rule: int | str, count: int = 10, sample: int = 1, timeout: float = 10.0) -> Iterator[dict]:
        """Trace a rule's packets (`mcr trace`): one {"event": "packet", ...} per
        traced packet (headers, input, each output's outcome), then
        {"event": "end", "records": N, "reason": "count"|"timeout", "missed": M}.
        Bounded by `count` records and `timeout` seconds; the daemon ends it."""
        args = {"rule": rule, "count": count, "sample": sample, "timeout": timeout}
        # The daemon ends the stream at the timeout; a little longer here covers its last poll.
        with EventStream(self.path, self.timeout, timeout + self.timeout, "trace", args) as stream:
            yield from stream

    def interfaces(self) -> list[dict]:
        """Interfaces as the daemon's netlink view has them, with the rules that name each."""
        return self.call("interfaces")["interfaces"]

    def mroute(self) -> list[dict]:
        """The multicast RIB: each route's origin, state (active/waiting) and packets."""
        return self.call("mroute")["routes"]

    def join(self, interface: str, group: str, source: str | None = None) -> str:
        """A static join (as `smcroutectl join`); returns "joined", or "waiting" for the interface."""
        return self.call("igmp.join", join=_join_dict(interface, group, source))["state"]

    def leave(self, interface: str, group: str, source: str | None = None) -> None:
        self.call("igmp.leave", join=_join_dict(interface, group, source))

    def joins(self) -> list[dict]:
        return self.call("igmp.joins")["joins"]

    def log_levels(self) -> dict[str, str]:
        return self.call("log-level.get")["levels"]

    def set_log_level(self, level: str, facility: str | None = None) -> dict[str, str]:
        """Set the level of one facility, or of all; returns the levels now in force."""
        args = {"level": level} if facility is None else {"level": level, "facility": facility}
        return self.call("log-level.set", **args)["levels"]

    def load_config(self, config: Config | dict | str | os.PathLike, replace: bool = False) -> dict:
        """Apply a config (a file here is read and checked here); returns added/removed/unchanged
        counts, and with `replace` the settings it applied and those that need a restart."""
        return self.call("config.load", config=_config_dict(config), replace=replace)

    def save_config(self, path: str | os.PathLike | None = None) -> str:
        """Have the daemon write its running config (to its config file, or to `path`); returns the path."""
        return self.call("config.save", **({} if path is None else {"path": os.fspath(path)}))["path"]

    def check_config(self, config: Config | dict | str | os.PathLike) -> dict:
        """Have the daemon validate a config without applying it; returns {"rules": count}."""
        return self.call("config.check", config=_config_dict(config))


def _config_dict(config: Config | dict | str | os.PathLike) -> dict:
    if isinstance(config, Config):
        return config.to_dict()
    if isinstance(config, dict):
        return config
    return Config.load(Path(config)).to_dict()


def _join_dict(interface: str, group: str, source: str | None) -> dict:
    return {"interface": interface, "group": group, **({"source": source} if source else {})}


class EventStream:
    """A subscription to the daemon's events (`mcr events`), one dict per
    event; {"event": "missed", "count": N} says N were dropped because this
    reader fell behind."""

    def __init__(self, path: str, reply_timeout: float, timeout: float | None, command: str = "events",
                 args: dict | None = None) -> None:
        self._client = Client(path, timeout=reply_timeout)
        reply = self._client._exchange({"cmd": command, "args": args or {}, "id": 0})
        if not reply["ok"]:
            self._client.close()
            raise ApiError(reply["error"]["code"], reply["error"]["message"])
        self.result = reply.get("result", {})
        self._client._sock.settimeout(timeout)

    def next(self) -> dict | None:
        """The next event, or None if none came within the timeout or the daemon went away."""
        try:
            line = self._client._reader.readline()
        except TimeoutError:
            return None
        return json.loads(line) if line else None

    def __iter__(self) -> Iterator[dict]:
        while (event := self.next()) is not None:
            yield event

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()
