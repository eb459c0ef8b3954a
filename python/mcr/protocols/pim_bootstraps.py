"""The BSR listener in the router (RFC 5059): Bootstraps from the adapter
to mcr.protocols.pim_bsr.BsrListener, the copies it forwards sent on every
other PIM interface (or unicast to a neighbor that just came up), and the
RP-set it learns put into the router's RpMapping, after which the tree
and the Register machines look at RP(G) again.

Always on: a listener originates nothing, and a router that ignored its
domain's BSR would disagree with its neighbors on RP(G).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Callable

from .pim import PimInterface
from .pim_bsr import BsrListener, ForwardBootstrap, RpSetChanged, SendBootstrap
from .pim_rp import RpMapping
from .pim_rpf import Rpf
from .pim_wire_more import Bootstrap


class Bootstraps:
    """One router's BSR listener and what carries out its outputs."""

    def __init__(self, rps: RpMapping, rpf: Callable[[str], Rpf | None],
                 interfaces: Callable[[], Mapping[str, PimInterface]], send: Callable[[str, bytes], None],
                 send_unicast: Callable[[str, bytes], None], rp_set_changed: Callable[[float], None]) -> None:
        self._rps = rps
        self._rpf = rpf
        self._interfaces = interfaces
        self._send = send  # (interface, PIM bytes) to ALL-PIM-ROUTERS there
        self._send_unicast = send_unicast  # (destination, PIM bytes)
        self._rp_set_changed = rp_set_changed
        self.listener = BsrListener(self)

    # --- BsrView (what the listener reads) ---

    def rpf(self, address: str) -> Rpf | None:
        return self._rpf(address)

    def is_neighbor(self, interface: str, address: str) -> bool:
        pim = self._interfaces().get(interface)
        return pim is not None and address in pim.neighbors()

    def pim_interfaces(self) -> list[str]:
        return sorted(self._interfaces())

    def my_addresses(self) -> set[str]:
        return {pim.address for pim in self._interfaces().values()}

    # --- inputs ---

    def receive(self, now: float, interface: str, source: str, destination: str, message: Bootstrap,
                payload: bytes) -> None:
        self._apply(now, self.listener.receive(now, interface, source, destination, message, payload))

    def neighbor_up(self, now: float, interface: str, neighbor: str) -> None:
        """A new or restarted neighbor gets our Bootstrap at once (RFC 5059 3.5)."""
        self._apply(now, self.listener.new_neighbor(interface, neighbor))

    def expire(self, now: float) -> None:
        self._apply(now, self.listener.expire(now))

    def next_deadline(self) -> float | None:
        return self.listener.next_deadline()

    def _apply(self, now: float, outputs: list) -> None:
        for output in outputs:
            if isinstance(output, ForwardBootstrap):
                self._send(output.interface, output.payload)
            elif isinstance(output, SendBootstrap):
                self._send_unicast(output.to, output.payload)
            elif isinstance(output, RpSetChanged):
                self._rps.set_bsr_rp_set(output.rp_set, output.hash_mask_len)
                self._rp_set_changed(now)
