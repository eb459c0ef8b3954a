"""libFuzzer (atheris) target: the control socket's request decoding, one
request line in, one reply out (ControlServer._handle: JSON, the request
shape, the command table and each command's argument checks), against the
in-memory supervisor of tests/fake_supervisor.py (tests/ is on the path the
runner gives), a fresh one per input.
A bad request must get a stable error code; "internal" means an exception
nobody expected, a crash here."""

from __future__ import annotations

import json

import atheris_target
from fake_supervisor import FakeSupervisor
from mcr import config, rules
from mcr.supervisor import commands, control

atheris_target.instrument(control, commands, config, rules)

OWNER = control.Peer(pid=1, uid=0, gid=0, groups=())  # root: every argument is allowed


def handle(line: bytes) -> dict:
    """The reply to `line`. The fake supervisor never waits on anything, so the
    coroutine finishes at its first step; no event loop per input."""
    server = control.ControlServer(FakeSupervisor(), "/nonexistent/control.sock", 10.0, 1 << 20, 256)
    coroutine = server._handle(line, OWNER)
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value[0]
    coroutine.close()
    raise AssertionError("a command waited on something; the fake supervisor never should")


def test_one(data: bytes) -> None:
    reply = handle(data)
    if not reply["ok"]:
        code = reply["error"]["code"]
        assert code in control.ERROR_CODES and code != "internal", reply
    json.dumps(reply)  # what the server sends must be JSON


if __name__ == "__main__":
    atheris_target.run(test_one)
