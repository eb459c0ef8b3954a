"""What changes in the daemon, for anyone who listens (`mcr events`).

The supervisor publishes events (links, addresses, rules and their state,
workers; later group membership and neighbors) and any number of
subscribers read them. Publishing never waits: each subscriber has a
bounded queue, and when a slow or stuck one lets it fill, the events it
cannot take are dropped for it alone and counted; the next event it reads
is preceded by `{"event": "missed", "count": N}`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

QUEUE_SIZE = 1024  # events one subscriber may lag behind before it misses some


class Subscription:
    def __init__(self, size: int) -> None:
        self.queue: asyncio.Queue[dict] = asyncio.Queue(size)
        self.missed = 0

    def offer(self, event: dict) -> None:
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.missed += 1

    async def __aiter__(self) -> AsyncIterator[dict]:
        while True:
            event = await self.queue.get()
            if self.missed:
                missed, self.missed = self.missed, 0
                yield {"time": event["time"], "event": "missed", "count": missed}
            yield event


class EventBus:
    def __init__(self, queue_size: int = QUEUE_SIZE) -> None:
        self.queue_size = queue_size
        self._subscribers: set[Subscription] = set()

    def publish(self, kind: str, **data) -> None:
        event = {"time": time.time(), "event": kind, **data}
        for subscriber in self._subscribers:
            subscriber.offer(event)

    def subscribe(self) -> Subscription:
        subscription = Subscription(self.queue_size)
        self._subscribers.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscribers.discard(subscription)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)
