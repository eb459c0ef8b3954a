"""`mcr events`: the event bus and its stream over the control socket.

A subscriber that reads too slowly loses events (counted, then reported as
one "missed" event) instead of holding up the daemon; the daemon keeps
answering other clients meanwhile.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time

from fake_supervisor import ServerThread
from test_control_socket import Conn

from mcr.api import Client
from mcr.events import EventBus


def test_a_full_queue_drops_for_that_subscriber_only_and_says_how_many() -> None:
    async def scenario() -> tuple[list[dict], list[dict]]:
        bus = EventBus(queue_size=3)
        slow, quick = bus.subscribe(), bus.subscribe()
        quick_seen = []
        reader = aiter(quick)
        for n in range(10):
            bus.publish("tick", n=n)
            quick_seen.append(await anext(reader))  # keeps up
        slow_reader = aiter(slow)
        slow_seen = [await anext(slow_reader) for _ in range(4)]
        bus.unsubscribe(slow)
        bus.publish("tick", n=10)
        assert bus.subscribers == 1 and slow.queue.empty()
        return quick_seen, slow_seen

    quick, slow = asyncio.run(scenario())
    assert [e["n"] for e in quick] == list(range(10))
    assert [e["event"] for e in slow] == ["missed", "tick", "tick", "tick"]
    assert slow[0]["count"] == 7 and [e["n"] for e in slow[1:]] == [0, 1, 2]


def test_events_stream_over_the_control_socket(tmp_path) -> None:
    with ServerThread(tmp_path / "control.sock") as server:
        conn = Conn(server.path, timeout=15)
        assert conn.ask({"cmd": "events", "id": 1}) == {"ok": True, "result": {"subscribed": True}, "id": 1}
        deadline = time.monotonic() + 5
        while server.sup.events.subscribers == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        server.publish("rule", change="added", id=7)
        event = conn.reply()
        assert (event["event"], event["change"], event["id"]) == ("rule", "added", 7)

        # Events for a subscriber that reads none: the socket buffer fills, then
        # its queue (16), and the rest is counted, not queued.
        total, pad = 5000, "x" * 200
        for n in range(total):
            server.publish("tick", n=n, pad=pad)
        started = time.monotonic()
        assert Client(server.path, timeout=2).ping() == "9.9.9-fake"
        assert time.monotonic() - started < 0.5, "a stuck subscriber held up the daemon"
        ticks, missed, reports = [], 0, 0
        while len(ticks) + missed < total:
            event = conn.reply()
            if event["event"] == "missed":
                missed, reports = missed + event["count"], reports + 1
            else:
                ticks.append(event["n"])
        assert reports >= 1 and missed > 0, "the subscriber was never told it missed events"
        assert ticks == sorted(ticks) and len(set(ticks)) == len(ticks)
        assert ticks[0] == 0, "events from before the queue filled were lost"

        conn.close()  # the daemon lets the subscription go
        deadline = time.monotonic() + 5
        while server.sup.events.subscribers and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.sup.events.subscribers == 0


def test_api_and_cli_read_events(tmp_path, capsys) -> None:
    from mcr.cli import main

    with ServerThread(tmp_path / "control.sock") as server:
        client = Client(server.path)

        def publish_later() -> None:
            deadline = time.monotonic() + 5
            while server.sup.events.subscribers == 0 and time.monotonic() < deadline:
                time.sleep(0.01)
            for n in range(3):
                server.publish("link", change="added", name=f"wg{n}")

        threading.Thread(target=publish_later, daemon=True).start()
        received = list(client.events(count=3, timeout=5))
        assert [e["name"] for e in received] == ["wg0", "wg1", "wg2"]

        deadline = time.monotonic() + 5  # the first stream's subscription is let go first
        while server.sup.events.subscribers and time.monotonic() < deadline:
            time.sleep(0.01)
        threading.Thread(target=publish_later, daemon=True).start()
        assert main(["events", "--json", "--count", "3", "--timeout", "5", "--socket", server.path]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert [json.loads(line)["name"] for line in lines] == ["wg0", "wg1", "wg2"]
