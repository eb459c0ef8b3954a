"""The daemon's Prometheus endpoint: `GET /metrics` over HTTP on the supervisor's loop.

Opt-in (`--metrics ADDR:PORT`, config key `metrics`) and bound only there.
prometheus_client's own server would run on a thread of its own; the
supervisor has one asyncio loop and no helper thread, so this is a minimal
HTTP/1.1 responder on asyncio.start_server: one request per connection
(`Connection: close`), GET only, the request head at most MAX_HEAD bytes
and complete within REQUEST_TIMEOUT seconds, the reply taken within
SEND_TIMEOUT, at most MAX_CLIENTS
connections at once (one more gets 503). The body is prometheus_client's
text format, or OpenMetrics when the scraper's Accept header asks for it
(the library's choose_encoder decides). Families are rendered piece by
piece (metrics.StateCollector.pieces), giving the loop back between
pieces, so a scrape of 10,000 rules never holds it for long.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
from typing import Iterable

from prometheus_client import ProcessCollector
from prometheus_client.core import Metric
from prometheus_client.exposition import choose_encoder

from .metrics import StateCollector, capture

MAX_HEAD = 8192
REQUEST_TIMEOUT = 10.0
SEND_TIMEOUT = 30.0  # for the reply to leave: a scraper that stops reading must not hold its slot for ever
CLOSE_TIMEOUT = 2.0
MAX_CLIENTS = 16
OPENMETRICS_EOF = b"# EOF\n"

log = logging.getLogger("mcr.supervisor")


class EndpointError(RuntimeError):
    """The metrics endpoint cannot listen where it was asked to."""


class _Families:
    """The Collector protocol over a given list of families, for one encoder call."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> list[Metric]:
        return self.families


async def render(pieces: Iterable[Metric], accept: str) -> tuple[bytes, str]:
    """(body, content type) of the families in `pieces` (consecutive pieces of
    one name are one family), encoded as `accept` asks."""
    encode, content_type = choose_encoder(accept)
    openmetrics = content_type.startswith("application/openmetrics-text")
    parts, previous = [], None
    for piece in pieces:
        text = encode(_Families([piece]))
        if openmetrics:
            text = text.removesuffix(OPENMETRICS_EOF)  # once, at the very end
        if piece.name == previous:  # a continuation: its samples only, no second HELP/TYPE
            text = b"".join(line for line in text.splitlines(keepends=True) if not line.startswith(b"#"))
        parts.append(text)
        previous = piece.name
        await asyncio.sleep(0)
    if openmetrics:
        parts.append(OPENMETRICS_EOF)
    return b"".join(parts), content_type


class MetricsEndpoint:
    """start() / close() the listening socket; each connection is one scrape."""

    def __init__(self, sup, host: str, port: int) -> None:
        self.sup = sup
        self.host, self.port = host, port
        self.clients = 0
        self._server: asyncio.AbstractServer | None = None
        # The supervisor's own process_* metrics (CPU, memory, start time: a
        # changed start time tells a scraper the counters began again).
        self._process = ProcessCollector(registry=None)

    @property
    def where(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    async def start(self) -> None:
        try:
            self._server = await asyncio.start_server(self._serve, self.host, self.port, limit=MAX_HEAD,
                                                      reuse_address=True)
        except OSError as error:  # asyncio's message repeats the address: the errno's alone says it
            reason = os.strerror(error.errno) if error.errno else str(error)
            raise EndpointError(f"metrics endpoint {self.where}: cannot listen there: {reason}") from None
        log.info("metrics at http://%s/metrics", self.where)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            try:  # since Python 3.12 this also waits for open connections
                await asyncio.wait_for(self._server.wait_closed(), CLOSE_TIMEOUT)
            except asyncio.TimeoutError:
                log.warning("metrics connections still open at shutdown")
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.clients += 1
        try:
            if self.clients > MAX_CLIENTS:
                await _reply(writer, 503, b"too many scrapes at once\n")
                return
            try:
                method, path, headers = await asyncio.wait_for(_read_head(reader), REQUEST_TIMEOUT)
            except (ValueError, asyncio.LimitOverrunError, asyncio.IncompleteReadError, asyncio.TimeoutError):
                await _reply(writer, 400, b"a GET /metrics request, please\n")
                return
            if path.split("?", 1)[0] != "/metrics":
                await _reply(writer, 404, b"metrics are at /metrics\n")
            elif method != "GET":
                await _reply(writer, 405, b"GET only\n", {"Allow": "GET"})
            else:
                await self._scrape(writer, headers.get("accept", ""))
        except (ConnectionError, OSError, asyncio.TimeoutError) as error:
            log.debug("metrics client went away or stopped reading: %r", error)
        except Exception:  # a fault of ours: counted and logged like any task's, and the daemon serves on
            self.sup._count_fault("metrics")
            log.exception("metrics scrape failed (%d so far)", self.sup.task_faults["metrics"])
            with contextlib.suppress(ConnectionError, OSError, asyncio.TimeoutError):
                await _reply(writer, 500, b"internal error: see the daemon's log\n")
        finally:
            self.clients -= 1
            writer.close()

    async def _scrape(self, writer: asyncio.StreamWriter, accept: str) -> None:
        state = await capture(self.sup)
        pieces = itertools.chain(StateCollector(state).pieces(), self._process.collect())  # built as rendered
        body, content_type = await render(pieces, accept)
        await _reply(writer, 200, body, {"Content-Type": content_type})


async def _read_head(reader: asyncio.StreamReader) -> tuple[str, str, dict[str, str]]:
    """Method, path and headers (names lower-cased) of one request; ValueError if it is not HTTP."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise ValueError("not an HTTP/1.x request line")
    headers = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    return parts[0], parts[1], headers


REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 500: "Internal Server Error",
           503: "Service Unavailable"}


async def _reply(writer: asyncio.StreamWriter, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
    fields = {"Content-Type": "text/plain; charset=utf-8", **(headers or {}),
              "Content-Length": str(len(body)), "Connection": "close"}
    head = f"HTTP/1.1 {status} {REASONS[status]}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items())
    writer.write(head.encode("latin-1") + b"\r\n" + body)
    await asyncio.wait_for(writer.drain(), SEND_TIMEOUT)
