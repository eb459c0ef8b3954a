"""A topology described by its links: namespaces by role, veth pairs, addresses.

    topo = topology([("src", "relay"), ("relay", "rcv")])
    topo.ns["relay"]                 # the namespace's real name, unique to this run
    topo.interface("relay", "rcv")   # relay's interface toward rcv
    topo.address("rcv", "relay")     # rcv's address on that link

Link i gets 10.100.i.0/24 with .1 at its first role and .2 at its second,
unless the link gives its own addresses. Every namespace gets a route for
224.0.0.0/4 on its first link, so an application's plain multicast socket
can send without a default route, as on a host with one uplink. Built on
mcr.lab.Lab, which never touches the root namespace and removes everything
on close.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence, Union

from .netns import Lab

SUBNET = "10.100.{}.{}/24"
MULTICAST_NET = "224.0.0.0/4"
ROLE = re.compile(r"[A-Za-z0-9_]{1,20}")

# A link: (role_a, role_b) or (role_a, role_b, "cidr_a", "cidr_b").
LinkSpec = Union[tuple[str, str], tuple[str, str, str, str]]


class TopologyError(ValueError):
    """A topology description that cannot be built, with the reason."""


@dataclass(frozen=True)
class Link:
    """One veth pair: each end's namespace role, interface name and address (no prefix length)."""

    a: str
    b: str
    a_if: str
    b_if: str
    a_addr: str
    b_addr: str


class Topology:
    """Namespaces by role and the links between them; close() removes all of it."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab  # for what this class does not wrap: bridges, sysctls, more routes
        self.ns: dict[str, str] = {}
        self.links: list[Link] = []

    def namespace(self, role: str) -> str:
        """The namespace for `role`, created on first use."""
        if role not in self.ns:
            if not ROLE.fullmatch(role):
                raise TopologyError(f"role {role!r}: use 1-20 letters, digits or '_'")
            self.ns[role] = self.lab.add_namespace(role)
        return self.ns[role]

    def link(self, a: str, b: str, a_cidr: str | None = None, b_cidr: str | None = None,
             mtu: int = 1500) -> Link:
        """A veth pair between roles `a` and `b` (created if new), addressed and up."""
        if a == b:
            raise TopologyError(f"link {a!r}-{b!r}: a link needs two different roles")
        if (a_cidr is None) != (b_cidr is None):
            raise TopologyError(f"link {a!r}-{b!r}: give both addresses or neither")
        index = len(self.links)
        a_cidr = a_cidr or SUBNET.format(index, 1)
        b_cidr = b_cidr or SUBNET.format(index, 2)
        first_a, first_b = a not in self.ns, b not in self.ns
        a_if, b_if = self.lab.add_link(self.namespace(a), self.namespace(b), a_cidr, b_cidr, mtu)
        for is_first, role, ifname in ((first_a, a, a_if), (first_b, b, b_if)):
            if is_first:
                self.lab.add_route(self.ns[role], MULTICAST_NET, ifname)
        link = Link(a, b, a_if, b_if, a_cidr.split("/")[0], b_cidr.split("/")[0])
        self.links.append(link)
        return link

    def _end(self, role: str, peer: str) -> tuple[str, str]:
        for link in self.links:
            if (link.a, link.b) == (role, peer):
                return link.a_if, link.a_addr
            if (link.b, link.a) == (role, peer):
                return link.b_if, link.b_addr
        raise TopologyError(f"no link between {role!r} and {peer!r}")

    def interface(self, role: str, peer: str) -> str:
        """`role`'s interface on its (first) link to `peer`."""
        return self._end(role, peer)[0]

    def address(self, role: str, peer: str) -> str:
        """`role`'s address on its (first) link to `peer`."""
        return self._end(role, peer)[1]

    def close(self) -> None:
        self.lab.close()

    def __enter__(self) -> Topology:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def topology(links: Sequence[LinkSpec] = (), prefix: str = "mcr", mtu: int = 1500) -> Topology:
    """Build the namespaces and links `links` name; on any failure nothing is left behind."""
    topo = Topology(Lab(prefix))
    try:
        for spec in links:
            if len(spec) not in (2, 4):
                raise TopologyError(f"link {spec!r}: expected (a, b) or (a, b, cidr_a, cidr_b)")
            topo.link(*spec, mtu=mtu)
        return topo
    except BaseException:
        topo.close()
        raise
