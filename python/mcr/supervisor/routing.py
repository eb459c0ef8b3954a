"""The supervisor's PIM side: PIM runs on the interfaces configured under
`pim.interfaces` that exist with an IPv4 address, and follows them.

A part of Supervisor (a mixin, for a file per concern), on its loop.
"""

from __future__ import annotations

import logging

log = logging.getLogger("mcr.supervisor")


class Routing:
    """PIM for the Supervisor."""

    def sync_pim(self) -> None:
        """PIM on each configured interface that exists with an IPv4 address, none elsewhere."""
        wanted = self.config.pim
        for name in self.pim.interfaces():
            iface = self.network.by_name(name)
            if name not in wanted or iface is None or not iface.addresses:
                self.pim.disable(name)
        for name, settings in wanted.items():
            iface = self.network.by_name(name)
            if iface is not None and iface.addresses:
                try:
                    self.pim.enable(name, settings, iface.addresses[0].split("/")[0])
                except OSError as error:  # e.g. gone again meanwhile: netlink will tell
                    log.warning("PIM on %s: %s", name, error)
