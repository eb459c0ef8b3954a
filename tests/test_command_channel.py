"""The engine's command channel under bad input: every bad message gets an
error reply naming the problem (and carrying the request's own seq, where
it has a header), and the engine keeps serving afterwards."""

from __future__ import annotations

import os
import socket
import threading

import pytest

from mcr import _engine


@pytest.fixture
def channel():
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    ours.settimeout(5)
    ours.setsockopt(socket.SOL_SOCKET, 32, 4 << 20)  # SO_SNDBUFFORCE: room for an oversized message
    core = _engine.Engine(theirs.detach(), max_rules=16, rx_frames=64, send_slots=64)
    thread = threading.Thread(target=core.run, daemon=True)
    thread.start()
    yield ours
    ours.sendall(_engine.encode_shutdown(999))
    thread.join(5)
    assert not thread.is_alive(), "engine did not stop on Shutdown"
    ours.close()


def call(sock: socket.socket, message: bytes, fds: list[int] = ()) -> dict:
    """Send `message` as one datagram, whatever its size; the engine's one reply."""
    ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, b"".join(fd.to_bytes(4, "little") for fd in fds))] if fds else []
    sock.sendmsg([message], ancillary)
    return _engine.decode_reply(sock.recv(_engine.MAX_PART))


def with_flags(message: bytes, flags: int) -> bytes:
    return message[:2] + flags.to_bytes(2, "little") + message[4:]


@pytest.mark.parametrize("garbage, complaint", [
    (b"", "header"),
    (b"\x01\x02\x03", "header"),
    (b"\xff\xff\x00\x00\x01\x00\x00\x00", "unknown command"),
    (b"\x05\x00\x07\x00\x01\x00\x00\x00", "reserved"),
    (_engine.encode_get_stats(1) + b"junk", "trailing"),
    (_engine.encode_remove_rule(1, 7)[:-1], "truncated"),
    (_engine.encode_add_rule(1, 1, 2, "239.1.1.1", 5000, "", [("239.2.2.2", 1, 3, -1, -1, False, 0)])[:-3], "truncated"),
    (with_flags(os.urandom(4096), 0), ""),  # flags 1 would wait for the rest of the message
])
def test_bad_message_gets_error_and_engine_survives(channel, garbage, complaint):
    reply = call(channel, garbage)
    assert reply["ok"] is False, reply
    assert complaint in reply["error"], reply["error"]
    if len(garbage) >= 8:
        assert reply["seq"] == int.from_bytes(garbage[4:8], "little"), "the error names another request"
    assert call(channel, _engine.encode_get_stats(2))["ok"]


def test_oversized_datagram_is_refused_with_its_seq(channel):
    """A datagram the kernel cuts short (MSG_TRUNC) still has its header: the
    error answers that very request instead of seq 0 (which timed out the caller)."""
    reply = call(channel, _engine.encode_get_stats(41) + b"\0" * _engine.MAX_PART)
    assert not reply["ok"] and "larger than" in reply["error"] and reply["seq"] == 41, reply
    assert call(channel, _engine.encode_get_stats(2))["ok"]


def test_message_over_the_limit_is_refused_once(channel):
    """Parts adding up to more than MAX_MESSAGE: one error for that seq, the
    rest of its parts skipped silently, the next command served."""
    body = b"\0" * (_engine.MAX_PART - 8)
    part = with_flags(_engine.encode_get_stats(43), 1) + body
    for _ in range(_engine.MAX_MESSAGE // len(body) + 1):
        channel.sendall(part)
    channel.sendall(_engine.encode_get_stats(43) + body)  # its last part
    reply = _engine.decode_reply(channel.recv(_engine.MAX_PART))
    assert not reply["ok"] and "larger than" in reply["error"] and reply["seq"] == 43, reply
    assert call(channel, _engine.encode_get_stats(44))["seq"] == 44


def test_an_abandoned_message_is_answered(channel):
    """A message whose last part never came (its sender gave up on it) gets
    its error when the next message starts; the next one is served."""
    channel.sendall(with_flags(_engine.encode_get_stats(45), 1))
    channel.sendall(_engine.encode_get_stats(46))
    first = _engine.decode_reply(channel.recv(_engine.MAX_PART))
    assert (first["seq"], first["ok"]) == (45, False) and "last part" in first["error"], first
    assert _engine.decode_reply(channel.recv(_engine.MAX_PART))["seq"] == 46


def test_a_command_in_parts_is_joined(channel):
    """The framing itself: any message may come in parts, even a short one."""
    message = _engine.encode_remove_rule(47, 7)
    channel.sendall(with_flags(message[:8], 1))
    channel.sendall(message)
    reply = _engine.decode_reply(channel.recv(_engine.MAX_PART))
    assert reply["seq"] == 47 and "no rule with id 7" in reply["error"], reply


def test_semantic_errors_name_the_problem(channel):
    assert "no rule with id 7" in call(channel, _engine.encode_remove_rule(1, 7))["error"]
    outputs = [("239.2.2.2", 6000, 3, -1, -1, False, 0)]
    reply = call(channel, _engine.encode_add_rule(2, 1, 2, "239.1.1.1", 5000, "", outputs))
    assert "no input socket for interface 2" in reply["error"]
    assert "needs a socket" in call(channel, _engine.encode_add_input(3, 2))["error"]
    assert "no socket for interface 9" in call(channel, _engine.encode_remove_interface(4, 9))["error"]


def test_socket_passed_with_wrong_command_is_closed(channel):
    spare = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    target = os.readlink(f"/proc/self/fd/{spare.fileno()}")  # socket:[inode]
    reply = call(channel, _engine.encode_get_stats(1), [spare.fileno()])
    assert reply["ok"]
    holders = [fd for fd in os.listdir("/proc/self/fd") if _link(fd) == target]
    assert holders == [str(spare.fileno())], "engine kept the passed socket open"
    spare.close()


def _link(fd: str) -> str | None:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None


def test_closing_the_channel_stops_the_engine():
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    core = _engine.Engine(theirs.detach(), max_rules=4, rx_frames=64, send_slots=64)
    thread = threading.Thread(target=core.run, daemon=True)
    thread.start()
    ours.close()
    thread.join(5)
    assert not thread.is_alive()


def test_an_mtu_beyond_16_bits_means_the_largest():
    """The wire's MTU is 16 bits; a larger interface MTU (dummy devices take
    any) is sent as 65535, not refused (pybind11 raised TypeError on it)."""
    mac = bytes.fromhex("020000000001")
    for encode in (_engine.encode_add_packet_egress, _engine.encode_update_link):
        assert encode(1, 4, "10.0.0.1", 100000, mac) == encode(1, 4, "10.0.0.1", 65535, mac)
        assert encode(1, 4, "10.0.0.1", 1500, mac) != encode(1, 4, "10.0.0.1", 65535, mac)


def test_shutdown_read_after_the_pass_budget_stops_the_engine():
    """More commands waiting than one pass reads (8 parts), the Shutdown last:
    the engine reads it on a later pass, where no completion is left to wake
    it, and must stop there rather than sleep. (It once slept for ever.)"""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    ours.settimeout(5)
    with ours:
        for seq in range(1, 11):
            ours.sendall(_engine.encode_remove_rule(seq, 7))  # refused: no such rule, but answered
        ours.sendall(_engine.encode_shutdown(11))
        core = _engine.Engine(theirs.detach(), max_rules=16, rx_frames=64, send_slots=64)
        thread = threading.Thread(target=core.run, daemon=True)
        thread.start()
        thread.join(5)
        assert not thread.is_alive(), "engine did not stop on a Shutdown read on a later pass"
        replies = [_engine.decode_reply(ours.recv(_engine.MAX_PART))["seq"] for _ in range(11)]
        assert replies == list(range(1, 12))
