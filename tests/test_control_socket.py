"""The control socket server (mcr.supervisor.control) against an in-memory
supervisor: the protocol, its errors, its limits, hostile clients and peer
credentials. Clients here are plain sockets, as a script would use."""

from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
import socket
import stat
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

import pytest
from fake_supervisor import FakeSupervisor, ServerThread

from mcr.api import ApiError, Client

RULE = {"name": "feed-a", "input_interface": "eth0", "group": "239.1.1.1", "port": 5000,
        "outputs": ["239.2.2.2:5000:eth1"]}


class Conn:
    """One raw client connection: send a line, read a reply line."""

    def __init__(self, path: str, timeout: float = 10) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.reader = self.sock.makefile("rb")

    def send(self, request: dict | bytes) -> None:
        self.sock.sendall(request if isinstance(request, bytes) else json.dumps(request).encode() + b"\n")

    def reply(self) -> dict:
        line = self.reader.readline()
        assert line, "the server closed the connection"
        return json.loads(line)

    def ask(self, request: dict | bytes) -> dict:
        self.send(request)
        return self.reply()

    def closed_by_server(self) -> bool:
        return self.reader.readline() == b""

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


@pytest.fixture
def server(tmp_path):
    # A parent directory that does not exist yet: the server creates it.
    with ServerThread(tmp_path / "run" / "control.sock") as running:
        yield running


@pytest.fixture
def conn(server):
    c = Conn(server.path)
    yield c
    c.close()


def error_code(reply: dict) -> str:
    assert reply["ok"] is False, reply
    assert reply["error"]["message"], reply
    return reply["error"]["code"]


# Protocol ---------------------------------------------------------------------

def test_ping_answers_with_the_version_and_echoes_the_id(conn):
    assert conn.ask({"cmd": "ping", "id": "a-1"}) == {"ok": True, "result": {"version": "9.9.9-fake"}, "id": "a-1"}
    assert conn.ask({"cmd": "version"}) == {"ok": True, "result": {"version": "9.9.9-fake"}}


def test_several_requests_on_one_connection_are_answered_in_order(conn):
    conn.send(b"".join(json.dumps({"cmd": "ping", "id": i}).encode() + b"\n" for i in range(20)))
    assert [conn.reply()["id"] for _ in range(20)] == list(range(20))


@pytest.mark.parametrize("line", [b"{not json\n", b"\xff\xfe\x00\n", b"\n", b'{"cmd": "ping"\n',
                                  b"[" * 100000 + b"\n"])  # the last: nested too deep for the parser
def test_bad_json_is_refused_and_the_connection_keeps_working(conn, line):
    assert error_code(conn.ask(line)) == "bad_json"
    assert conn.ask({"cmd": "ping"})["ok"]


def test_help_describes_every_command_with_an_example_that_works(conn, server):
    commands = conn.ask({"cmd": "help"})["result"]["commands"]
    assert {"ping", "rules.add", "rules.remove", "rules.list", "stats", "workers", "log-level.get", "log-level.set",
            "config.load", "config.save", "config.check"} <= set(commands)
    for name, entry in commands.items():
        example = json.loads(entry["example"])
        assert example["cmd"] == name and entry["help"]
        if name == "events":  # the connection carries events from then on: a connection of its own
            stream = Conn(server.path)
            assert stream.ask(example)["ok"], name
            stream.close()
            continue
        if name == "trace":  # a stream that ends by itself, then the server closes the connection
            stream = Conn(server.path)
            assert stream.ask(json.loads(commands["rules.add"]["example"]))["ok"]
            assert stream.ask(example)["ok"], name
            assert [stream.reply()["event"] for _ in range(3)] == ["packet", "packet", "end"]
            assert stream.closed_by_server()
            stream.close()
            continue
        assert conn.ask(example)["ok"], name


def test_trace_of_an_unknown_rule_is_refused_and_streams_nothing(server):
    stream = Conn(server.path)
    reply = stream.ask({"cmd": "trace", "args": {"rule": "nosuch"}})
    assert error_code(reply) == "not_found" and "nosuch" in reply["error"]["message"]
    assert stream.ask({"cmd": "ping"})["ok"]  # an ordinary connection still
    stream.close()
    for args, words in (({"rule": "x", "count": "5"}, "wrong type"), ({"count": 5}, "missing argument 'rule'"),
                        ({"rule": "x", "every": 2}, "unknown argument 'every'")):
        stream = Conn(server.path)
        reply = stream.ask({"cmd": "trace", "args": args})
        assert error_code(reply) == "bad_request" and words in reply["error"]["message"], reply
        stream.close()


def test_unknown_command_lists_the_commands(conn):
    reply = conn.ask({"cmd": "rules.ad", "id": 7})
    assert error_code(reply) == "unknown_command" and reply["id"] == 7
    assert "rules.add" in reply["error"]["message"]


@pytest.mark.parametrize("request_, words", [
    ([1, 2], "JSON object"),
    ({"cmd": 5}, "cmd"),
    ({"command": "ping"}, "command"),
    ({"cmd": "ping", "args": [1]}, "args"),
    ({"cmd": "ping", "args": {"x": 1}}, "unknown argument 'x'"),
    ({"cmd": "rules.add"}, "missing argument 'rule'"),
    ({"cmd": "rules.add", "args": {"rule": "in=eth0"}}, "wrong type"),
    ({"cmd": "rules.add", "args": {"rule": {**RULE, "group": "0.0.0.0"}}}, "rule.group: '0.0.0.0' is neither a multicast"),
    ({"cmd": "rules.add", "args": {"rule": {**RULE, "outputs": ["239.1.1.1:5000:eth0"]}}}, "loop"),
    ({"cmd": "rules.add", "args": {"rule": {**RULE, "colour": "red"}}}, "rule.colour: unknown key"),
    ({"cmd": "rules.remove", "args": {"rule": True}}, "wrong type"),
    ({"cmd": "log-level.set", "args": {"level": "loud"}}, "not a log level"),
    ({"cmd": "config.load", "args": {"config": {"rules": [{**RULE, "port": 0}]}}}, "config.rules[0].port"),
    ({"cmd": "config.load", "args": {"config": {}, "replace": "yes"}}, "replace"),
])
def test_bad_requests_name_the_problem_and_change_nothing(server, conn, request_, words):
    reply = conn.ask(request_)
    assert error_code(reply) == "bad_request"
    assert words in reply["error"]["message"], reply
    assert server.sup.rules == {} and server.sup.levels == {"default": "info"}


def test_rule_commands(server, conn):
    assert conn.ask({"cmd": "rules.add", "args": {"rule": RULE}}) == {"ok": True, "result": {"id": 1}}
    assert error_code(conn.ask({"cmd": "rules.add", "args": {"rule": RULE}})) == "conflict"
    listed = conn.ask({"cmd": "rules.list"})["result"]["rules"]
    assert listed == [{"id": 1, **RULE, "state": "active"}]
    assert error_code(conn.ask({"cmd": "rules.remove", "args": {"rule": 99}})) == "not_found"
    assert conn.ask({"cmd": "rules.remove", "args": {"rule": "feed-a"}}) == {"ok": True, "result": {}}
    assert server.sup.rules == {}


def test_config_commands(server, conn):
    config = {"workers": 2, "rules": [RULE]}
    assert conn.ask({"cmd": "config.check", "args": {"config": config}})["result"] == {"rules": 1}
    assert server.sup.rules == {}, "config.check changed the rules"
    counts = conn.ask({"cmd": "config.load", "args": {"config": config}})["result"]
    assert counts == {"added": 1, "removed": 0, "unchanged": 0}
    assert conn.ask({"cmd": "config.save"})["result"] == {"path": "/etc/mcr/mcr.json"}
    assert conn.ask({"cmd": "config.save", "args": {"path": "/tmp/x.json"}})["result"] == {"path": "/tmp/x.json"}


def test_log_level_commands(conn):
    assert conn.ask({"cmd": "log-level.get"})["result"] == {"levels": {"default": "info"}}
    reply = conn.ask({"cmd": "log-level.set", "args": {"level": "debug", "facility": "worker"}})
    assert reply["result"] == {"levels": {"default": "info", "worker": "debug"}}


def test_stats_and_workers(server, conn):
    conn.ask({"cmd": "rules.add", "args": {"rule": RULE}})
    stats = conn.ask({"cmd": "stats"})["result"]
    assert stats["rules"]["1"]["outputs"]["239.2.2.2:5000:eth1"]["packets"] == 5
    assert conn.ask({"cmd": "workers"})["result"]["workers"][0]["pid"] == 4242


class BrokenSupervisor(FakeSupervisor):
    async def stats(self) -> dict:
        raise KeyError("boom")

    def workers(self) -> list[dict]:
        return [{"pid": object()}]  # JSON cannot carry it


def test_supervisor_bugs_are_internal_errors_and_the_server_carries_on(tmp_path):
    with ServerThread(tmp_path / "control.sock", BrokenSupervisor()) as running:
        c = Conn(running.path)
        assert error_code(c.ask({"cmd": "stats", "id": 1})) == "internal"
        reply = c.ask({"cmd": "workers", "id": 2})
        assert error_code(reply) == "internal" and reply["id"] == 2
        assert c.ask({"cmd": "ping"})["ok"]
        c.close()


# Limits and hostile clients -----------------------------------------------------

def ping_ok(path: str) -> bool:
    c = Conn(path)
    try:
        return c.ask({"cmd": "ping"})["ok"]
    finally:
        c.close()


def test_a_request_of_exactly_the_limit_is_read(tmp_path):
    with ServerThread(tmp_path / "control.sock", max_request=1000) as running:
        c = Conn(running.path)
        line = json.dumps({"cmd": "ping", "id": "x" * 100})
        padded = line[:-1] + " " * (1000 - len(line)) + "}"
        assert len(padded) == 1000
        assert c.ask(padded.encode() + b"\n")["ok"]
        assert error_code(c.ask(padded.encode() + b" \n")) == "too_large"
        assert c.closed_by_server()
        c.close()


def test_a_64_mib_request_is_refused_without_being_buffered(server):
    huge = Conn(server.path)
    sent = [0]

    def flood() -> None:
        chunk = b"x" * (1 << 20)
        try:
            for _ in range(64):
                huge.sock.sendall(chunk)
                sent[0] += len(chunk)
        except OSError:
            pass  # the server hung up: expected

    flooder = threading.Thread(target=flood)
    flooder.start()
    assert ping_ok(server.path)
    flooder.join(30)
    assert not flooder.is_alive()
    assert error_code(huge.reply()) == "too_large"
    assert sent[0] < 16 << 20, f"the server read {sent[0]} bytes of a request it had to refuse at 1 MiB"
    assert ping_ok(server.path)
    huge.close()


def test_a_silent_client_times_out_without_holding_up_others(tmp_path):
    with ServerThread(tmp_path / "control.sock", request_timeout=0.5) as running:
        silent, partial = Conn(running.path), Conn(running.path)
        partial.send(b'{"cmd": "pi')  # never finishes its line
        start = time.monotonic()
        assert ping_ok(running.path)
        assert time.monotonic() - start < 0.4, "another client's silence delayed this one"
        for c in (silent, partial):
            assert error_code(c.reply()) == "timeout"
            assert c.closed_by_server()
            c.close()
        assert ping_ok(running.path)


def test_fifty_concurrent_clients_are_all_answered(server):
    clients = [Conn(server.path) for _ in range(50)]  # all connected at once
    answers: list[dict] = []
    start = threading.Barrier(50)

    def ping(c: Conn, i: int) -> None:
        start.wait(10)
        answers.append(c.ask({"cmd": "ping", "id": i}))

    threads = [threading.Thread(target=ping, args=(c, i)) for i, c in enumerate(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(a["id"] for a in answers if a["ok"]) == list(range(50))
    for c in clients:
        c.close()


# The socket file -------------------------------------------------------------------

def test_socket_file_mode_directory_and_removal(tmp_path):
    path = tmp_path / "new" / "control.sock"
    running = ServerThread(path)
    assert stat.S_ISSOCK(os.stat(path).st_mode)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o660
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o755
    running.close()
    assert not path.exists()


def test_a_stale_socket_is_replaced_but_a_live_one_is_not(tmp_path):
    path = tmp_path / "control.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))  # bound, never listening: what a killed daemon leaves
    stale.close()
    with ServerThread(path) as running:
        assert ping_ok(running.path)
        with pytest.raises(RuntimeError, match="already listening"):
            ServerThread(path)
        assert ping_ok(running.path)


def test_a_file_that_is_not_a_socket_is_left_alone(tmp_path):
    path = tmp_path / "control.sock"
    path.write_text("precious")
    with pytest.raises(RuntimeError, match="not a socket"):
        ServerThread(path)
    assert path.read_text() == "precious"


# Peer credentials --------------------------------------------------------------------

def _request_from_child(path: str, request: dict) -> dict:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(5)
    try:
        sock.connect(path)
    except PermissionError:
        return {"connect": "denied"}
    try:
        sock.sendall(json.dumps(request).encode() + b"\n")
    except BrokenPipeError:
        pass  # refused: the server may hang up before we send, but its reply is there to read
    return json.loads(sock.makefile("rb").readline())


def as_nobody(path: str, request: dict, gid: int | None = None, groups: tuple[int, ...] = ()) -> dict:
    """Send one request from a forked child running as nobody (group nogroup unless `gid` says)."""
    return in_child_as_nobody(lambda: _request_from_child(path, request), gid, groups)


def in_child_as_nobody(work: Callable[[], dict], gid: int | None = None, groups: tuple[int, ...] = ()) -> dict:
    """`work()`'s result, run in a forked child as nobody."""
    nobody, nogroup = pwd.getpwnam("nobody").pw_uid, grp.getgrnam("nogroup").gr_gid
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: only syscalls, then _exit, so the parent's threads do not matter
        try:
            os.setgroups(list(groups))
            os.setgid(nogroup if gid is None else gid)
            os.setuid(nobody)
            result = work()
        except BaseException as error:
            result = {"child_error": repr(error)}
        os.write(write_end, json.dumps(result).encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    return json.loads(data)


@pytest.fixture
def open_dir():
    # pytest's tmp_path is 0700 up its tree, so nobody could not even reach a socket there.
    directory = tempfile.mkdtemp(prefix="mcr-control-test-")
    os.chmod(directory, 0o755)
    yield Path(directory)
    shutil.rmtree(directory)


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="switching to another user needs root")


@needs_root
def test_other_users_cannot_connect_through_the_file_mode(open_dir):
    with ServerThread(open_dir / "control.sock") as running:
        assert as_nobody(running.path, {"cmd": "ping"}) == {"connect": "denied"}


@needs_root
def test_other_users_are_refused_by_peer_credentials(open_dir):
    with ServerThread(open_dir / "control.sock") as running:
        os.chmod(running.path, 0o666)  # a careless admin: the credential check still holds
        reply = as_nobody(running.path, {"cmd": "ping"})
        assert error_code(reply) == "permission"
        assert "uid 65534" in reply["error"]["message"]
        assert ping_ok(running.path)


@needs_root
def test_the_api_reports_a_refusal_as_a_permission_error(open_dir):
    def ping_by_api() -> dict:
        try:
            return {"version": Client(running.path).ping()}
        except ApiError as error:
            return {"code": error.code, "message": error.message}

    with ServerThread(open_dir / "control.sock") as running:
        os.chmod(running.path, 0o666)
        for _ in range(20):  # the refusal races the request: either order must read the same
            assert in_child_as_nobody(ping_by_api)["code"] == "permission"


@needs_root
def test_members_of_the_socket_group_are_served(open_dir):
    with ServerThread(open_dir / "control.sock") as running:
        nogroup = grp.getgrnam("nogroup").gr_gid
        os.chown(running.path, -1, nogroup)
        assert as_nobody(running.path, {"cmd": "ping"})["ok"]
        # As a supplementary group too: that is how `usermod -aG mcr alice` grants access.
        other = grp.getgrnam("daemon").gr_gid
        assert as_nobody(running.path, {"cmd": "ping"}, gid=other, groups=(nogroup,))["ok"]
        # The group may run commands, but not make the daemon write where it likes.
        assert as_nobody(running.path, {"cmd": "config.save"})["ok"]
        reply = as_nobody(running.path, {"cmd": "config.save", "args": {"path": "/etc/passwd"}})
        assert error_code(reply) == "permission"
        assert running.sup.saved == [None]


def test_connections_past_the_limit_are_told_busy_and_the_others_served(tmp_path):
    with ServerThread(tmp_path / "control.sock", max_clients=5) as running:
        held = [Conn(running.path) for _ in range(5)]
        assert all(c.ask({"cmd": "ping"})["ok"] for c in held)  # each is being served
        extra = Conn(running.path)
        assert error_code(extra.reply()) == "busy"
        assert extra.closed_by_server()
        extra.close()
        held.pop().close()
        time.sleep(0.2)  # the server sees the EOF and lets the connection go
        assert ping_ok(running.path)
        for c in held:
            c.close()


def test_a_burst_of_connections_while_the_loop_is_busy_is_queued_not_refused(tmp_path):
    # A socket with a timeout connects without blocking: on a full accept
    # queue AF_UNIX says EAGAIN at once. The daemon queues as many as it serves.
    with ServerThread(tmp_path / "control.sock", max_clients=200) as running:
        busy = threading.Event()
        running.loop.call_soon_threadsafe(busy.wait, 20)  # the loop accepts nothing meanwhile
        try:
            burst = [Conn(running.path) for _ in range(200)]
        finally:
            busy.set()
        assert all(c.ask({"cmd": "ping"})["ok"] for c in burst)
        for c in burst:
            c.close()
