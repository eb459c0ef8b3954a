"""Run the relay engine on a thread of this process and drive it.

`Engine` owns the privileged sockets (opened in an optional network
namespace), hands them to the C++ engine over its command channel, and keeps
the rule set. For PIM-SM it also hands over the raw PIM sockets of register
outputs and of the REGISTER input (enable_register_output/_input), and
returns the engine's notifications of new (source, group)s. The engine thread runs with the GIL released; this side only
sends commands and reads replies, so rules change while traffic flows.
"""

from __future__ import annotations

import itertools
import socket
import threading

from . import _engine, channel, sockets
from .channel import Channel
from .netns import in_netns
from .membership import InputHolds, MembershipService
from .rules import REGISTER_INTERFACE, Rule
from .stats import from_engine, snapshot


class EngineError(RuntimeError):
    """The engine refused a command or stopped; the message says why."""


class Engine:
    """A relay engine on a background thread, configured through its command channel."""

    def __init__(self, netns: str | None = None, *, max_rules: int = 16384, rx_frames: int = 2048,
                 send_slots: int = 8192, notify_pending: int = 1024) -> None:
        self.netns = netns
        ours, engine_end = channel.pair()
        self._channel = Channel(ours, "engine", EngineError)
        self._core = _engine.Engine(engine_end.detach(), max_rules=max_rules, rx_frames=rx_frames,
                                    send_slots=send_slots, notify_pending=notify_pending)
        self._ids = itertools.count(1)
        self._inputs: dict[str, int] = {}  # name -> ifindex
        self._holds = InputHolds(MembershipService())
        self._egress: dict[str, int] = {}
        self._queued: set[str] = set()  # output interfaces with a queued packet socket (QoS)
        self._rules: dict[int, Rule] = {}
        self._ifnames: dict[int, str] = {_engine.REGISTER_IFINDEX: REGISTER_INTERFACE}
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="mcr-engine", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._core.run()
        except BaseException as error:  # reported on the next command
            self.error = error

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Commands ---------------------------------------------------------------

    def _call(self, encode, *args, fd: int | None = None) -> dict:
        if not self._thread.is_alive():
            raise EngineError(f"engine is not running: {self.error or 'stopped'}")
        return self._channel.call(encode, *args, fd=fd)

    def _ifindex(self, ifname: str) -> int:
        if ifname == REGISTER_INTERFACE:
            return _engine.REGISTER_IFINDEX
        with in_netns(self.netns):
            try:
                return socket.if_nametoindex(ifname)
            except OSError:
                raise EngineError(f"no interface named '{ifname}'") from None

    def _ensure_input(self, ifname: str) -> int:
        if ifname == REGISTER_INTERFACE:  # the engine refuses the rule unless enable_register_input() ran
            return _engine.REGISTER_IFINDEX
        if ifname not in self._inputs:
            ifindex = self._ifindex(ifname)
            with in_netns(self.netns):
                sock = sockets.open_input_socket(ifname)
            with sock:
                self._call(_engine.encode_add_input, ifindex, fd=sock.fileno())
            self._inputs[ifname] = ifindex
            self._ifnames[ifindex] = ifname
        return self._inputs[ifname]

    def _ensure_egress(self, ifname: str) -> int:
        if ifname == REGISTER_INTERFACE:  # register outputs send on the register socket
            return _engine.REGISTER_IFINDEX
        if ifname not in self._egress:
            ifindex = self._ifindex(ifname)
            with in_netns(self.netns):
                opened = sockets.open_output_sockets(ifname)
            for sock, encode, args in opened:
                with sock:
                    self._call(encode, ifindex, *args, fd=sock.fileno())
            self._egress[ifname] = ifindex
            self._ifnames[ifindex] = ifname
        return self._egress[ifname]

    def _ensure_queued(self, ifname: str) -> None:
        """The interface's queued packet socket, for outputs with a priority (QoS)."""
        if ifname in self._queued:
            return
        with in_netns(self.netns):
            opened = sockets.open_queued_sockets(ifname)
        for sock, encode, args in opened:
            with sock:
                self._call(encode, self._egress[ifname], *args, fd=sock.fileno())
        self._queued.add(ifname)

    def refresh_link(self, ifname: str) -> None:
        """Re-read an output interface's address, MTU and MAC into the engine's
        header templates (after `ip addr`/`ip link set mtu`/`address`): frames
        then leave with the new source and never beyond the new MTU."""
        if ifname not in self._egress:
            raise EngineError(f"no output on interface '{ifname}'")
        try:
            with in_netns(self.netns):
                link = sockets.link_info(ifname)
        except OSError as error:
            raise EngineError(f"interface {ifname}: {error.strerror}") from None
        self._call(_engine.encode_update_link, self._egress[ifname], link["source"], link["mtu"], link["mac"])

    # PIM sockets --------------------------------------------------------------

    def enable_register_output(self) -> None:
        """Hand the engine the raw PIM socket its register outputs send on."""
        with in_netns(self.netns):
            sock = sockets.open_register_socket()
        with sock:
            self._call(_engine.encode_add_register_egress, fd=sock.fileno())

    def enable_register_input(self) -> None:
        """Hand the engine a raw PIM socket to read Registers from: their
        packets match rules whose input is REGISTER_INTERFACE."""
        with in_netns(self.netns):
            sock = sockets.open_register_input_socket()
        with sock:
            self._call(_engine.encode_add_register_input, fd=sock.fileno())

    def set_notify_window(self, seconds: float) -> None:
        """How long the engine stays quiet about a (rule, source, group) it reported."""
        if not 0 <= seconds <= 3600:
            raise EngineError(f"notify window {seconds} s is outside 0-3600 s")
        self._call(_engine.encode_set_notify_window, round(seconds * 1000))

    def take_notifications(self) -> list[dict]:
        """The new (source, group)s the engine saw under notify rules since the
        last call, oldest first: rule_id, source, group, input (interface name)
        and dr (a Register's outer source, else None)."""
        taken = self._call(_engine.encode_take_notifications)["notifications"]
        for entry in taken:
            entry["input"] = self._ifnames.get(entry.pop("ifindex"))
        return taken

    def trace(self, rule_id: int, count: int = 10, sample: int = 1, timeout: float = 10.0) -> None:
        """Start recording every `sample`-th packet of rule `rule_id`, `count` of
        them, for at most `timeout` seconds (count 0 stops a running trace);
        take_trace() collects the records."""
        self._call(_engine.encode_trace_rule, rule_id, count, sample, round(timeout * 1000))

    def take_trace(self) -> dict:
        """The trace records since the last call, oldest first (each with
        `input`, the interface name), `remaining` (packets the trace still
        records; 0 once it ended) and `missed` (packets its full ring dropped)."""
        taken = self._call(_engine.encode_take_trace)["trace"]
        for record in taken["records"]:
            record["input"] = self._ifnames.get(record["ifindex"])
        return taken

    # Joins --------------------------------------------------------------------

    def _join(self, rule: Rule) -> None:
        if rule.input_interface == REGISTER_INTERFACE:  # nothing to join: Registers come by unicast
            return
        if rule.prefix_len == 32:  # a range has no one group to join: its traffic is relayed if it arrives
            with in_netns(self.netns):
                self._holds.take(rule, rule.source)

    def _leave(self, rule: Rule) -> None:
        if rule.input_interface == REGISTER_INTERFACE:
            return
        if rule.prefix_len == 32:
            with in_netns(self.netns):
                self._holds.give_back(rule, rule.source)

    def add_rule(self, rule: Rule) -> int:
        """Start relaying `rule`; returns its id. Nothing changes if it is refused."""
        for out in rule.outputs:
            self._ifindex(out.interface)  # fail on an unknown name before touching anything (not "register")
        rule_id = next(self._ids)
        wire = rule.engine_tuple(rule_id, self._ensure_input(rule.input_interface), self._ensure_egress)
        for out in rule.outputs:
            if out.sends_priority(rule.priority):
                self._ensure_queued(out.interface)
        self._call(_engine.encode_add_rule, *wire)
        self._rules[rule_id] = rule
        try:
            self._join(rule)
        except OSError as error:
            self.remove_rule(rule_id)
            raise EngineError(f"cannot join {rule.group} on {rule.input_interface}: {error.strerror}") from None
        return rule_id

    def remove_rule(self, rule_id: int) -> None:
        if rule_id not in self._rules:
            raise EngineError(f"no rule with id {rule_id}")
        self._call(_engine.encode_remove_rule, rule_id)
        rule = self._rules.pop(rule_id)
        self._leave(rule)
        self._release_unused()

    def _release_unused(self) -> None:
        """Close the sockets (and unmap the rings) of interfaces no rule uses any more."""
        used = {name for r in self._rules.values() for name in (r.input_interface, *(o.interface for o in r.outputs))}
        for name in sorted((set(self._inputs) | set(self._egress)) - used):
            ifindex = self._inputs.pop(name, None) or self._egress.pop(name)
            self._egress.pop(name, None)
            self._queued.discard(name)
            self._call(_engine.encode_remove_interface, ifindex)

    def rules(self) -> dict[int, Rule]:
        return dict(self._rules)

    def stats(self) -> dict:
        """Counters per rule and output, per input interface, drops by reason:
        the same shape as the daemon's (mcr.stats)."""
        labels = {i: [str(o) for o in rule.outputs] for i, rule in self._rules.items()}
        counters = from_engine(self._call(_engine.encode_get_stats)["stats"], labels)
        return snapshot(self._rules, {i: {"state": "active"} for i in self._rules}, counters, self._ifnames)

    def close(self) -> None:
        """Stop the engine thread and release every socket; safe to call twice."""
        if self._thread.is_alive():
            try:
                self._call(_engine.encode_shutdown)
            except (EngineError, OSError):
                pass
            self._thread.join(timeout=channel.REPLY_TIMEOUT)
        self._channel.close()
        self._holds.close()
