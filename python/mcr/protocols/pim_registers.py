"""Registers in the router (RFC 7761 4.4): the DR's Register machines
(mcr.protocols.pim_register.RegisterSender) driven by the tree's
CouldRegister(S,G), and the RP's handling of the Registers that arrive
(RegisterReceiver), which feeds the tree and answers with Register-Stops.

What it decides for the data plane is `encapsulating()`: the (S,G)s whose
packets the engine wraps in Registers to their RP (a register output on
the flow's route). Decapsulation at the RP is the engine's too (the
register input); the adapter's own sockets get a copy of each Register,
which is how the RP's state machine hears of them.
"""

from __future__ import annotations

from ipaddress import IPv4Address
from typing import Callable

from .pim_register import (RP_KEEPALIVE_PERIOD, Encapsulate, RegisterReceived, RegisterReceiver, RegisterSender,
                           SendNullRegister, SendRegisterStop)
from .pim_tree import PimTree
from .pim_wire_more import Register, RegisterStop

MAX_REGISTERED = 10000  # (S,G)s remembered as registered here, at most


class Registers:
    """Both ends of Register for one router."""

    def __init__(self, tree: PimTree, rp_of: Callable[[str], str | None], send: Callable[[str, bytes], None],
                 tree_outputs: Callable[[list], None], on_change: Callable[[], None]) -> None:
        self._tree = tree
        self._rp_of = rp_of
        self._send = send  # (unicast destination, PIM bytes)
        self._tree_outputs = tree_outputs
        self._on_change = on_change
        self.sender = RegisterSender()
        self.receiver = RegisterReceiver(self)
        self._encapsulating: dict[tuple[str, str], str] = {}  # (S,G) -> RP
        self._registered: dict[tuple[str, str], float] = {}  # at the RP: (S,G) -> when its last Register came

    # --- RegisterView (the RP's questions) ---

    def i_am_rp(self, group: str, address: str) -> bool:
        return self._rp_of(group) == address

    def spt_bit(self, source: str, group: str) -> bool:
        return self._tree.spt_bit(source, group)

    def switch_to_spt_desired(self, source: str, group: str) -> bool:
        return self._tree.switch_to_spt_desired(source, group)

    def has_receivers(self, source: str, group: str) -> bool:
        return self._tree.has_receivers(source, group)

    # --- inputs ---

    def follow_tree(self, now: float) -> None:
        """CouldRegister(S,G) as the tree has it now, for every flow."""
        could = self._tree.could_register(now)
        known = {(d["source"], d["group"]) for d in self.sender.describe(now)}
        for source, group in sorted(could | known):
            self._apply(self.sender.could_register(now, source, group, (source, group) in could,
                                                   self._rp_of(group)))

    def register_arrived(self, now: float, outer_source: str, outer_destination: str, message: Register) -> None:
        if self.i_am_rp(message.group, outer_destination) and IPv4Address(message.group).is_multicast:
            self._note_registered(now, (message.source, message.group))
        for output in self.receiver.receive(now, outer_source, outer_destination, message):
            if isinstance(output, SendRegisterStop):
                self._send(output.to, output.payload)
            elif isinstance(output, RegisterReceived):
                self._tree_outputs(self._tree.register_received(now, output.source, output.group))
            # ForwardDecapsulated: the engine's register input forwards the packet itself.

    def registered(self, now: float) -> set[tuple[str, str]]:
        """At the RP: the (S,G)s a DR registered (data or Null-Registers)
        within RP_Keepalive_Period: the sources MSDP advertises as ours."""
        self._registered = {key: at for key, at in self._registered.items() if now - at < RP_KEEPALIVE_PERIOD}
        return set(self._registered)

    def _note_registered(self, now: float, key: tuple[str, str]) -> None:
        if key not in self._registered and len(self._registered) >= MAX_REGISTERED:
            self.registered(now)  # forget the stale ones first
            if len(self._registered) >= MAX_REGISTERED:
                self.receiver.counters["registered_table_full"] += 1
                return
        self._registered[key] = now

    def register_stop_arrived(self, now: float, message: RegisterStop) -> None:
        self._apply(self.sender.receive_register_stop(now, message))

    def expire(self, now: float) -> None:
        self._apply(self.sender.expire(now))

    def next_deadline(self) -> float | None:
        return self.sender.next_deadline()

    def encapsulating(self) -> dict[tuple[str, str], str]:
        return dict(self._encapsulating)

    def _apply(self, outputs: list) -> None:
        changed = False
        for output in outputs:
            if isinstance(output, Encapsulate):
                key = (output.source, output.group)
                before = self._encapsulating.get(key)
                if output.on:
                    self._encapsulating[key] = output.rp
                else:
                    self._encapsulating.pop(key, None)
                changed |= before != self._encapsulating.get(key)
            elif isinstance(output, SendNullRegister):
                self._send(output.rp, output.payload)
        if changed:
            self._on_change()
