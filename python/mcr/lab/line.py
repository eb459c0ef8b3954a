"""A line of namespaces joined by veth links, with unicast routes end to
end: the smallest routed network, for multicast routing protocols (PIM
between routers, hosts at both ends).

    line(["src", "r1", "r2", "rcv"]) builds

    src --10.30.0.0/24-- r1 --10.30.1.0/24-- r2 --10.30.2.0/24-- rcv

where on link i the left end is 10.30.i.1 and the right end 10.30.i.2.
Every namespace gets a route to every subnet it is not on, through its
neighbor on that side, so RPF lookups (the kernel's, FRR's and MCR's)
find each address; every namespace has a route for 224.0.0.0/4 on its
first link, so sockets there can send without a default route.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .netns import Lab, _ip

SUBNET = "10.30.{}.{}"


@dataclass
class Line:
    """The namespaces by role, and each link's interface names and addresses."""

    lab: Lab
    roles: list[str]
    ns: dict[str, str] = field(default_factory=dict)  # role -> namespace
    links: list[tuple[str, str]] = field(default_factory=list)  # link i: (left ifname, right ifname)
    relay_ns: str = ""  # the namespace `mcr.lab` callers treat as the relay (tests' daemon helper)

    def left(self, i: int) -> tuple[str, str]:
        """Link i's left end: (ifname, address)."""
        return self.links[i][0], SUBNET.format(i, 1)

    def right(self, i: int) -> tuple[str, str]:
        """Link i's right end: (ifname, address)."""
        return self.links[i][1], SUBNET.format(i, 2)

    def interfaces(self, role: str) -> list[tuple[str, str]]:
        """(ifname, address) of `role`'s links: toward the left end first."""
        at = self.roles.index(role)
        out = []
        if at > 0:
            out.append(self.right(at - 1))
        if at < len(self.links):
            out.append(self.left(at))
        return out

    def __enter__(self) -> Line:
        return self

    def __exit__(self, *exc: object) -> None:
        self.lab.close()


def line(roles: list[str], prefix: str = "mcr") -> Line:
    if not 2 <= len(roles) <= 200 or len(set(roles)) != len(roles):
        raise ValueError("a line needs 2 to 200 distinct roles")
    lab = Lab(prefix)
    try:
        built = Line(lab, list(roles))
        for role in roles:
            built.ns[role] = lab.add_namespace(role)
        for i in range(len(roles) - 1):
            built.links.append(lab.add_link(built.ns[roles[i]], built.ns[roles[i + 1]],
                                            SUBNET.format(i, 1) + "/24", SUBNET.format(i, 2) + "/24"))
        _route_everything(built)
        return built
    except BaseException:
        lab.close()
        raise


def _route_everything(built: Line) -> None:
    count = len(built.links)
    for at, role in enumerate(built.roles):
        ns = built.ns[role]
        for i in range(count):
            if i in (at - 1, at):
                continue  # connected
            if i < at - 1:  # to the left, through the left neighbor
                _ip("-n", ns, "route", "add", f"10.30.{i}.0/24", "via", SUBNET.format(at - 1, 1))
            else:
                _ip("-n", ns, "route", "add", f"10.30.{i}.0/24", "via", SUBNET.format(at, 2))
        first = built.links[at - 1][1] if at > 0 else built.links[0][0]
        _ip("-n", ns, "route", "add", "224.0.0.0/4", "dev", first)
        built.lab.set_sysctl(ns, "net.ipv4.ip_forward", 1)
