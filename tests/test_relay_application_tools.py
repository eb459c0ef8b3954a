"""The relay judged by socat and iperf2 as senders or receivers, and through
`mcr daemon` with two workers; see test_relay_applications.py for why."""

from __future__ import annotations

import re
import struct
import subprocess
import time
from pathlib import Path

from app_support import (
    COUNT,
    GROUP,
    IDLE,
    OUT_GROUP,
    OUT_PORT,
    PORT,
    RATE,
    SIZE,
    TIMEOUT,
    UdpCounters,
    expect_delivered,
    feed_paced,
    joined,
    run,
    send,
    stop,
    wait_until,
)
from daemon_support import daemon, rule
from mcr.lab import (
    Received,
    UdpSender,
    UdpSink,
    chain,
    numbered_payloads,
    payload_seq,
)
from mcr.rules import Output, Rule


def test_socat_sender(relay_lab) -> None:
    """socat reads the payloads from a pipe (`-b SIZE`: one read, one datagram) and sends them."""
    lab = relay_lab()
    c = lab.c
    out = Output(OUT_GROUP, OUT_PORT, c.relay_out[0])
    rule_id = lab.engine.add_rule(Rule(c.relay_in, GROUP, PORT, (out,)))
    counters = UdpCounters(c.sink_ns[0])
    collector = lab.collect(lab.sink(0, OUT_GROUP, OUT_PORT), COUNT + 1, timeout=TIMEOUT + 5, idle=IDLE)

    socat = subprocess.Popen(
        ["ip", "netns", "exec", c.source_ns, "socat", "-u", "-b", str(SIZE), "STDIN",
         f"UDP4-DATAGRAM:{GROUP}:{PORT},ip-multicast-if={c.source_addr},ip-multicast-ttl=8,"
         "ip-multicast-loop=0"],
        stdin=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
    try:
        written = feed_paced(socat.stdin, numbered_payloads(COUNT, SIZE), RATE)
        socat.stdin.close()
        socat.wait(10)  # socat leaves half a second after EOF (its -t)
        error = socat.stderr.read().decode()
    finally:
        stop(socat)
    assert written == COUNT and socat.returncode == 0, f"socat exited {socat.returncode}: {error}"

    received = collector.result()
    expect_delivered(lab, counters, c.sink_ns[0], received, COUNT, SIZE, what=f"{out} from socat")
    lab.wait_relayed({rule_id: COUNT})


def test_socat_receiver(relay_lab, tmp_path: Path) -> None:
    """socat joins the output group and writes what it receives to a file."""
    lab = relay_lab()
    c = lab.c
    out = Output(OUT_GROUP, OUT_PORT, c.relay_out[0])
    rule_id = lab.engine.add_rule(Rule(c.relay_in, GROUP, PORT, (out,)))
    counters = UdpCounters(c.sink_ns[0])
    received_file = tmp_path / "received"
    socat = subprocess.Popen(
        ["ip", "netns", "exec", c.sink_ns[0], "socat", "-u", "-T", str(TIMEOUT + 5),
         f"UDP4-RECV:{OUT_PORT},ip-add-membership={OUT_GROUP}:{c.sink_if[0]}",
         f"CREATE:{received_file}"],
        stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: socat.poll() is not None or joined(c.sink_ns[0], c.sink_if[0], OUT_GROUP),
                   5, "socat to join the group")
        assert socat.poll() is None, f"socat exited: {socat.stderr.read().decode()}"
        send(lab, numbered_payloads(COUNT, SIZE))
        # socat reads whatever arrives: wait (bounded) until the kernel has
        # counted every datagram as read or dropped, then a little longer for
        # any extra; the checks below say what arrived.
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            d = counters.delta(c.sink_ns[0])
            if d["InDatagrams"] + d["InErrors"] >= COUNT:
                break
            time.sleep(0.05)
        time.sleep(IDLE)
    finally:
        stop(socat)
    data = received_file.read_bytes() if received_file.exists() else b""
    received = [Received(data[i:i + SIZE], ("?", 0)) for i in range(0, len(data), SIZE)]
    expect_delivered(lab, counters, c.sink_ns[0], received, COUNT, SIZE, what=f"socat receiving {out}")
    lab.wait_relayed({rule_id: COUNT})


# iperf2 ---------------------------------------------------------------------


def test_iperf_sender(relay_lab) -> None:
    length, datagrams = 400, 1000
    lab = relay_lab()
    c = lab.c
    out = Output(OUT_GROUP, OUT_PORT, c.relay_out[0])
    rule_id = lab.engine.add_rule(Rule(c.relay_in, GROUP, PORT, (out,)))
    counters = UdpCounters(c.sink_ns[0])
    collector = lab.collect(lab.sink(0, OUT_GROUP, OUT_PORT), datagrams + 2, timeout=TIMEOUT + 5, idle=IDLE)

    result = run(["ip", "netns", "exec", c.source_ns, "iperf", "-c", GROUP, "-p", str(PORT), "-u", "-e",
                  "-l", str(length), "-n", str(length * datagrams), "-b", f"{RATE}pps", "-T", "8",
                  "-B", c.source_addr], timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    # The -e summary: "[  1] 0.0000-0.2001 sec  391 KBytes ... 1000/0  4996 pps"
    writes = re.findall(r"\s(\d+)/(\d+)\s+\d+ pps", result.stdout)
    assert writes, f"no Write/Err column in iperf's report:\n{result.stdout}"
    written, write_errors = map(int, writes[-1])
    assert (written, write_errors) == (datagrams, 0), result.stdout

    received = collector.result()
    d = counters.delta(c.sink_ns[0])
    nonzero = {k: v for k, v in d.items() if v}
    assert d["InCsumErrors"] == 0, (f"the kernel in {c.sink_ns[0]} dropped {d['InCsumErrors']} of iperf's "
                                    f"datagrams for a bad UDP checksum; {nonzero}" + lab.describe())
    ids = [struct.unpack_from("!i", r.payload)[0] for r in received]
    data_ids = sorted(i for i in ids if i > 0)
    fins = [i for i in ids if i < 0]
    assert data_ids == list(range(1, written + 1)), (
        f"{len(data_ids)} of iperf's {written} data datagrams, "
        f"missing {sorted(set(range(1, written + 1)) - set(data_ids))[:10]}" + lab.describe())
    assert fins == [-(written + 1)], f"iperf's FIN datagrams: {fins}"
    assert {len(r.payload) for r in received} == {length}
    assert d["InDatagrams"] == written + 1, nonzero
    lab.wait_relayed({rule_id: written + 1})


# The daemon -----------------------------------------------------------------


def test_daemon_two_workers_kernel_sender(tmp_path: Path) -> None:
    """`mcr daemon --workers 2`: kernel sockets on 8 source ports (so the
    PACKET_FANOUT hash spreads them over both workers), every datagram once."""
    flows, per_flow = 8, 250
    count = flows * per_flow
    with chain(n_sinks=1, prefix="mcrr") as c, daemon(c, tmp_path, workers=2) as d:
        d.client.add_rule(rule(c, GROUP, PORT, OUT_GROUP, OUT_PORT))
        counters = UdpCounters(c.sink_ns[0])
        with UdpSink(c.sink_ns[0], OUT_GROUP, OUT_PORT, c.sink_if[0]) as sink:
            payloads = numbered_payloads(count, SIZE)
            senders = [UdpSender(c.source_ns, c.source_if, source_port=40000 + i) for i in range(flows)]
            try:
                for i, sender in enumerate(senders):
                    sent = sender.send(payloads[i * per_flow:(i + 1) * per_flow], GROUP, PORT,
                                       rate_pps=RATE, timeout=30)
                    assert sent == per_flow
            finally:
                for sender in senders:
                    sender.close()
            # 2000 datagrams of 300 bytes fit the sink's 16 MB receive buffer: read after sending.
            received = sink.receive(count + 1, timeout=TIMEOUT, idle=IDLE)
        delta = counters.delta(c.sink_ns[0])
        nonzero = {k: v for k, v in delta.items() if v}
        assert delta["InCsumErrors"] == 0, (
            f"the kernel in {c.sink_ns[0]} dropped {delta['InCsumErrors']} datagrams for a bad UDP "
            f"checksum ({len(received)} of {count} arrived); {nonzero}")
        seqs = sorted(payload_seq(r.payload)[1] for r in received)
        assert seqs == list(range(count)), f"{len(seqs)} of {count} arrived (lost or duplicated)"
        assert delta["InDatagrams"] == count, nonzero
        (entry,) = d.client.stats()["rules"].values()
        assert entry["packets"] == count
