"""Clients that misbehave cannot stall the real daemon: garbage, a 64 MiB
request, a client that connects and says nothing, 50 clients at once; the
daemon answers ping throughout."""

from __future__ import annotations

import socket
import threading

from daemon_support import daemon, rule

from mcr.api import Client
from mcr.lab import chain


def connect(path: str) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(path)
    return s


def test_hostile_clients_do_not_stall_the_daemon(tmp_path):
    with chain(n_sinks=1) as lab, daemon(lab, tmp_path) as d:
        d.client.add_rule(rule(lab))
        silent = connect(d.socket)  # says nothing at all
        garbage = connect(d.socket)
        garbage.sendall(b"\x00\xff{{{not json\n")
        assert b'"ok": false' in garbage.recv(4096).replace(b'"ok":false', b'"ok": false')
        assert Client(d.socket).ping()

        huge = connect(d.socket)
        sent = [0]

        def flood() -> None:
            chunk = b"x" * (1 << 20)
            try:
                for _ in range(64):
                    huge.sendall(chunk)
                    sent[0] += len(chunk)
            except OSError:
                pass  # the daemon hung up on us: expected

        flooder = threading.Thread(target=flood)
        flooder.start()
        assert Client(d.socket).ping()
        flooder.join(30)
        assert not flooder.is_alive()

        answers: list = []
        def ping() -> None:
            with Client(d.socket) as c:
                answers.append(c.ping())
        clients = [threading.Thread(target=ping) for _ in range(50)]
        for t in clients:
            t.start()
        for t in clients:
            t.join(30)
        assert len(answers) == 50
        assert len(d.client.rules()) == 1  # nothing changed
        for s in (silent, garbage, huge):
            s.close()
