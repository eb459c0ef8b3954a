"""ADDR:PORT, where the daemon listens for a service of its own (`--metrics`).

An address literal is required, IPv4 (`127.0.0.1:9464`, `0.0.0.0:9464` for
every address) or IPv6 in brackets (`[::1]:9464`): a host name could resolve
to something else tomorrow, and an endpoint that serves counters should
listen exactly where its operator said. The port is 1-65535; an ephemeral
port (0) would leave the scraper nothing to point at.
"""

from __future__ import annotations

import ipaddress


def parse(text: str) -> tuple[str, int]:
    """(address, port) from ADDR:PORT; a ValueError says what is wrong."""
    host, colon, port = text.rpartition(":")
    if not colon or not host:
        raise ValueError(f"'{text}' is not ADDR:PORT (e.g. 127.0.0.1:9464 or [::1]:9464)")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        version = 6
    else:
        version = 4
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"'{text}': '{host}' is not an IP address (names are not resolved)") from None
    if address.version != version:
        raise ValueError(f"'{text}': IPv6 addresses, and only they, go in brackets, as in [::1]:9464")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"'{text}': port '{port}' is outside 1-65535")
    return str(address), int(port)
