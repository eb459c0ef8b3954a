"""The metrics endpoint's HTTP limits, on loopback with a supervisor stand-in
(no workers: the counters do not matter here): garbage and silence get 400,
past MAX_CLIENTS connections one more gets 503 at once, a failure of ours
is counted in task_faults and the endpoint serves on."""

from __future__ import annotations

import asyncio
from prometheus_client.parser import text_string_to_metric_families

from metrics_support import StandIn

from mcr.supervisor import metrics_http
from mcr.supervisor.metrics_http import MAX_CLIENTS, MetricsEndpoint


async def ask(port: int, request: bytes) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    data = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def run(scenario) -> None:
    async def main():
        sup = StandIn()
        endpoint = MetricsEndpoint(sup, "127.0.0.1", 0)
        await endpoint.start()
        try:
            await scenario(sup, endpoint._server.sockets[0].getsockname()[1])
        finally:
            await endpoint.close()
    asyncio.run(main())


def test_a_scrape_a_bad_request_and_silence(monkeypatch):
    monkeypatch.setattr(metrics_http, "REQUEST_TIMEOUT", 0.3)

    async def scenario(sup, port):
        status, body = await ask(port, b"GET /metrics HTTP/1.1\r\n\r\n")
        assert status == 200
        assert {f.name for f in text_string_to_metric_families(body.decode())} >= {"mcr_build_info", "mcr_workers"}
        assert (await ask(port, b"\x16\x03\x01 not http\r\n\r\n"))[0] == 400
        assert (await ask(port, b"GET /metrics HTTP/1.1\r\n"))[0] == 400  # the head never ends
        assert (await ask(port, b"GET /metrics HTTP/1.1\r\nX: " + b"y" * 10000 + b"\r\n\r\n"))[0] == 400
    run(scenario)


def test_one_connection_too_many_gets_503_and_the_rest_are_served():
    async def scenario(sup, port):
        idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(MAX_CLIENTS)]
        await asyncio.sleep(0.1)
        assert (await ask(port, b"GET /metrics HTTP/1.1\r\n\r\n"))[0] == 503
        for reader, writer in idle:
            writer.write(b"GET /metrics HTTP/1.1\r\n\r\n")
        statuses = [int((await asyncio.wait_for(reader.read(), 10)).split()[1]) for reader, _ in idle]
        assert statuses == [200] * MAX_CLIENTS
        for _, writer in idle:
            writer.close()
    run(scenario)


def test_a_fault_of_ours_is_counted_and_the_endpoint_serves_on():
    async def scenario(sup, port):
        sup.broken = True
        assert (await ask(port, b"GET /metrics HTTP/1.1\r\n\r\n"))[0] == 500
        assert sup.task_faults == {"metrics": 1}
        sup.broken = False
        assert (await ask(port, b"GET /metrics HTTP/1.1\r\n\r\n"))[0] == 200
    run(scenario)
