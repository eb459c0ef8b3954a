"""Rules as users write them: validation and the text forms the CLI accepts.

Output form (as the original mcrctl `--outputs`): GROUP:PORT:IFACE, optionally
followed by :ttl=N, :dscp=N, :keep-source (send with the packet's own
source address, which SSM receivers filter on; multicast outputs only),
:vlan=N (tag the frames with 802.1Q VLAN N; multicast outputs only) and
:priority=N (the packets' priority, see below, instead of the rule's);
several outputs are separated by commas.
Rule form: `in=IFACE group=GROUP:PORT [source=ADDR] [vlan=N] [priority=P] out=OUTPUTS [name=NAME]`.

Priority (QoS): the Linux packet priority (SO_PRIORITY, skb->priority), 0-6,
the outputs give the packets, which qdiscs classify by (pfifo_fast and prio
through their priomap; tc filters and nftables' `meta priority` can match
it). 7 and above (TC_PRIO_CONTROL, tc class ids) need CAP_NET_ADMIN, which
workers shed. A rule's may also be `dscp`: each packet's priority is the
class of the DSCP it arrived with (DSCP >> 3, so CS1 gives 1, EF 46 5; CS6
and CS7 give 6). 0, the default, is none. Packets with a priority leave
through a TX ring whose socket keeps the qdisc (or the UDP socket), not the
packet path's own ring, which bypasses it; keep-source and vlan= outputs,
which only that ring writes, cannot carry one. An input with a rule of fixed priority above 0 is served
first by its worker: under overload the other inputs' packets are the ones
dropped (see docs/guide.md, QoS).
Receiver-driven outputs: `out=members:eth1,eth2` (mixed with static ones:
`out=239.2.2.2:5000:eth3,members:eth1,eth2`) sends the group, unchanged, out
of each listed interface where IGMP says members want it (from this source:
IGMPv3 INCLUDE/EXCLUDE lists are honoured per source), as igmpproxy does.
GROUP may also be a unicast address of IFACE (a unicast input: the other
half of multicast to unicast, for carrying a stream across a network
without multicast); the relay then holds that UDP port so the host does
not answer senders with ICMP port unreachable.
A rule without vlan= matches untagged frames only; with vlan=N, only frames
that arrived tagged with VLAN N (on a trunk, the tag the kernel stripped).

PIM-SM's data plane (RFC 7761): `register:RP[:source=ADDR]` is an output
that sends each packet to the RP inside a PIM Register (at a source's DR);
`in=register` is the virtual input of the packets Registers carry (at the
RP). Both name REGISTER_INTERFACE, which the engine maps to its register
sockets (its ifindex is mcr._engine.REGISTER_IFINDEX). A rule with `notify`
makes the engine report each new (source, group) it matches (rate-limited),
for the PIM state machines; such a rule may have no outputs.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Callable

MAX_IFNAME = 15  # IFNAMSIZ - 1
ANY_PORT = 0  # a rule's port: match every UDP port
REGISTER_INTERFACE = "register"  # PIM Registers: a register output's interface, the decapsulated packets' input


def _check_range(text: str) -> None:
    try:
        network = ipaddress.IPv4Network(text)
    except ValueError as error:
        raise RuleError(f"input group range {text}: {error}") from None
    if not network.is_multicast or network.prefixlen < 4:
        raise RuleError(f"input group range {text} must lie within 224.0.0.0/4")


class RuleError(ValueError):
    """A rule or output that cannot be relayed, with the reason."""


def _check_interface(name: str, what: str) -> None:
    if not name or len(name) > MAX_IFNAME or "/" in name or any(c.isspace() for c in name):
        raise RuleError(f"{what}: '{name}' is not a valid interface name (1-{MAX_IFNAME} characters, no '/' or spaces)")


def _check_port(port: int, what: str) -> None:
    if not 1 <= port <= 65535:
        raise RuleError(f"{what}: port {port} is outside 1-65535")


def _ipv4(text: str, what: str) -> ipaddress.IPv4Address:
    try:
        return ipaddress.IPv4Address(text)
    except ValueError:
        raise RuleError(f"{what}: '{text}' is not an IPv4 address") from None


def _check_vlan(vlan: int | None, what: str) -> None:
    if vlan is not None and not 1 <= vlan <= 4094:
        raise RuleError(f"{what}: VLAN id {vlan} is outside 1-4094")


MAX_PRIORITY = 6  # TC_PRIO_INTERACTIVE: SO_PRIORITY's limit without CAP_NET_ADMIN
DSCP_PRIORITY = -2  # a rule's priority: each packet's DSCP class (mcr._engine.DSCP_PRIORITY)


def parse_priority(value: int | str, what: str, dscp: bool = False) -> int:
    """A priority as users write it: a number or, where `dscp`, the word dscp (DSCP_PRIORITY)."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "dscp" and dscp:
            return DSCP_PRIORITY
        try:
            value = int(text, 10)
        except ValueError:
            raise RuleError(f"{what}: '{value}' is not a priority (0-{MAX_PRIORITY}"
                            + (" or dscp)" if dscp else ")")) from None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_PRIORITY:
        raise RuleError(f"{what}: priority {value!r} is outside 0-{MAX_PRIORITY}")
    return value


def format_priority(priority: int) -> str:
    return "dscp" if priority == DSCP_PRIORITY else str(priority)


def engine_rule_tail(notify: bool, priority: int) -> tuple:
    """An engine rule tuple's optional trailing fields (notify, priority):
    present only when set, so a rule without them keeps the tuple it had
    before PIM and QoS."""
    return (notify, priority) if priority else (True,) if notify else ()


def _int(text: str, what: str) -> int:
    try:
        return int(text, 10)
    except ValueError:
        raise RuleError(f"{what}: '{text}' is not a number") from None


@dataclass(frozen=True)
class Output:
    """Where a matched packet goes: a multicast group or a unicast host."""

    destination: str
    port: int
    interface: str
    ttl: int | None = None  # None: incoming TTL minus one
    dscp: int | None = None  # None: keep the incoming DSCP
    keep_source: bool = False  # send with the packet's own source address (multicast only)
    vlan: int | None = None  # tag frames with this 802.1Q VLAN id (multicast only)
    # Send to the packet's own group and port (a layer-3 route's output, for a
    # range or any-port rule's members); destination and port are then unused.
    follow: bool = False
    # A PIM Register to the RP at `destination` (port unused; interface
    # REGISTER_INTERFACE), from `register_source` or the kernel's choice.
    register: bool = False
    register_source: str | None = None
    priority: int | None = None  # the packets' priority (see above); None: the rule's

    def __post_init__(self) -> None:
        if self.priority is not None:
            parse_priority(self.priority, f"output {self.destination}")
            if self.register or (self.priority and self.bypasses_qdisc):
                raise RuleError(f"output {self.destination}: a register, keep-source or vlan= output cannot carry a "
                                "priority (they take the TX ring that bypasses the qdisc)")
        if self.register:
            self._check_register()
            return
        address = _ipv4(self.destination, "output destination")
        if address.is_unspecified or address == ipaddress.IPv4Address("255.255.255.255"):
            raise RuleError(f"output destination {self.destination} cannot be sent to")
        if not self.follow:
            _check_port(self.port, f"output {self.destination}")
        _check_interface(self.interface, "output interface")
        if self.ttl is not None and not 1 <= self.ttl <= 255:
            raise RuleError(f"output TTL {self.ttl} is outside 1-255")
        if self.dscp is not None and not 0 <= self.dscp <= 63:
            raise RuleError(f"output DSCP {self.dscp} is outside 0-63")
        if self.keep_source and not address.is_multicast:
            raise RuleError(f"output {self.destination}: keep-source needs a multicast destination "
                            "(a unicast host would need its link address resolved for the packet path)")
        _check_vlan(self.vlan, f"output {self.destination}")
        if self.vlan is not None and not address.is_multicast:
            raise RuleError(f"output {self.destination}: vlan= needs a multicast destination "
                            "(tagged frames are written by the packet path)")

    def _check_register(self) -> None:
        rp = _ipv4(self.destination, "register output RP")
        if rp.is_multicast or rp.is_unspecified or rp.is_loopback or rp == ipaddress.IPv4Address("255.255.255.255"):
            raise RuleError(f"register output: the RP {self.destination} must be a unicast address")
        if self.interface != REGISTER_INTERFACE:
            raise RuleError(f"register output: its interface is '{REGISTER_INTERFACE}', not '{self.interface}'")
        if self.keep_source or self.follow or self.vlan is not None or self.ttl is not None or self.dscp is not None:
            raise RuleError("register output: the packet goes as received (no keep-source, follow, vlan, ttl or dscp)")
        if self.register_source is not None:
            source = _ipv4(self.register_source, "register output source")
            if source.is_multicast or source.is_unspecified:
                raise RuleError(f"register output: source {self.register_source} must be a unicast address")

    @property
    def bypasses_qdisc(self) -> bool:
        """Only the qdisc-bypassing TX ring writes it (cpp: OutputSpec::needs_frame_path)."""
        return self.keep_source or self.vlan is not None

    def sends_priority(self, rule_priority: int) -> bool:
        """Whether its packets carry a priority under a rule of `rule_priority`."""
        return bool(rule_priority if self.priority is None else self.priority) and not self.register

    @classmethod
    def to_rp(cls, rp: str, source: str | None = None) -> Output:
        """A register output: each packet to the RP `rp` inside a PIM Register."""
        return cls(rp, 0, REGISTER_INTERFACE, register=True, register_source=source)

    @classmethod
    def parse(cls, text: str) -> Output:
        parts = text.strip().split(":")
        if parts[0] == "register" and len(parts) in (2, 3):  # register:RP[:source=ADDR]
            key, _, source = parts[2].partition("=") if len(parts) == 3 else ("source", "", None)
            if key != "source" or source == "":
                raise RuleError(f"output '{text}': expected register:RP[:source=ADDR]")
            return cls.to_rp(parts[1], source)
        if len(parts) < 3:
            raise RuleError(f"output '{text}': expected GROUP:PORT:IFACE[:ttl=N][:dscp=N][:keep-source][:vlan=N]")
        options: dict[str, int | bool] = {}
        for extra in parts[3:]:
            key, _, value = extra.partition("=")
            if extra == "keep-source":
                options["keep_source"] = True
            elif key in ("ttl", "dscp", "vlan") and value:
                options[key] = _int(value, f"output '{text}' {key}")
            elif key == "priority" and value:
                options[key] = parse_priority(value, f"output '{text}'")
            else:
                raise RuleError(f"output '{text}': unknown option '{extra}' (ttl=N, dscp=N, keep-source, vlan=N "
                                "or priority=N)")
        return cls(parts[0], _int(parts[1], f"output '{text}' port"), parts[2], **options)

    def engine_tuple(self, ifindex: int) -> tuple:
        """The output as the engine's bindings take it; a register output's ifindex is unused."""
        if self.register:
            return (self.destination, 0, 0, -1, -1, False, 0, False, True, self.register_source or "")
        plain = (self.destination, self.port, ifindex, -1 if self.ttl is None else self.ttl,
                 -1 if self.dscp is None else self.dscp, self.keep_source, self.vlan or 0, self.follow)
        return plain if self.priority is None else plain + (False, "", self.priority)

    def __str__(self) -> str:
        if self.register:
            return f"register:{self.destination}" + (f":source={self.register_source}" if self.register_source else "")
        if self.follow:
            return f"follow:{self.interface}"
        text = f"{self.destination}:{self.port}:{self.interface}"
        if self.ttl is not None:
            text += f":ttl={self.ttl}"
        if self.dscp is not None:
            text += f":dscp={self.dscp}"
        if self.keep_source:
            text += ":keep-source"
        if self.vlan is not None:
            text += f":vlan={self.vlan}"
        if self.priority is not None:
            text += f":priority={self.priority}"
        return text


def parse_outputs(text: str) -> tuple[Output, ...]:
    return tuple(Output.parse(part) for part in text.split(",") if part.strip())


def parse_destinations(text: str) -> tuple[tuple[Output, ...], tuple[str, ...]]:
    """`out=`'s value: static outputs, then the interfaces after `members:`
    (a bare name after members:IF continues the list)."""
    outputs: list[Output] = []
    members: list[str] = []
    for part in (p.strip() for p in text.split(",")):
        if part.startswith("members:"):
            members.append(part.removeprefix("members:"))
        elif members and ":" not in part and part:
            members.append(part)
        elif part:
            outputs.append(Output.parse(part))
    return tuple(outputs), tuple(members)


@dataclass(frozen=True)
class Rule:
    """Relay UDP to `group:port` arriving on `input_interface` (from `source` only, if set)."""

    input_interface: str
    group: str
    port: int
    outputs: tuple[Output, ...]
    source: str | None = None
    name: str | None = field(default=None, compare=False)
    vlan: int | None = None  # match frames tagged with this VLAN only; None: untagged only
    members: tuple[str, ...] = ()  # interfaces that get the group where IGMP members want it
    # Set on the rule a routing protocol's route is made of (mcr.mrib.protocol_routes): its
    # outputs are the route's, and it may have none (an entry that drops what it matches).
    protocol: str | None = None
    notify: bool = False  # the engine reports each new (source, group) it matches (mcr.engine.Engine.take_notifications)
    priority: int = 0  # its outputs' packet priority (see above): 0 none, a number, or DSCP_PRIORITY

    def __post_init__(self) -> None:
        _check_interface(self.input_interface, "input interface")
        group = _ipv4(self.group_address, "input group")
        if "/" in self.group:
            _check_range(self.group)
        if group.is_unspecified or group == ipaddress.IPv4Address("255.255.255.255") or group.is_loopback:
            raise RuleError(f"input group {self.group} is neither a multicast group nor a unicast address")
        if self.port != ANY_PORT:
            _check_port(self.port, f"input group {self.group}")
        elif not group.is_multicast:
            raise RuleError(f"input {self.group}: any port needs a multicast group")
        if self.source is not None:
            source = _ipv4(self.source, "source")
            if source.is_multicast or source.is_unspecified:
                raise RuleError(f"source {self.source} must be a unicast address")
        _check_vlan(self.vlan, "rule")
        if self.priority != DSCP_PRIORITY:
            parse_priority(self.priority, "rule")
        if self.priority:
            for out in self.outputs:
                if out.priority is None and (out.bypasses_qdisc or out.register):
                    raise RuleError(f"output {out} cannot carry the rule's priority (a register, keep-source or vlan= "
                                    "output bypasses the qdiscs): give it :priority=0")
        if not self.outputs and not self.members and not self.protocol and not self.notify:
            raise RuleError("a rule needs at least one output (or notify)")
        for name in self.members:
            _check_interface(name, "members interface")
            if name == self.input_interface:
                raise RuleError(f"members:{name} is the rule's input: it would loop")
        if len(set(self.members)) != len(self.members):
            raise RuleError("an interface is listed twice in members:")
        if self.members and not group.is_multicast:
            raise RuleError(f"members: needs a multicast group, not {self.group}")
        for out in self.outputs:
            same = (out.interface, out.destination, out.port, out.vlan) == \
                (self.input_interface, self.group, self.port, self.vlan)
            if same:
                raise RuleError(f"output {out} sends back to the rule's own input: it would loop")

    @classmethod
    def parse(cls, text: str) -> Rule:
        """Parse `in=IFACE group=GROUP:PORT [source=ADDR] [vlan=N] out=OUTPUTS [name=NAME]`."""
        fields: dict[str, str] = {}
        for token in text.split():
            key, sep, value = token.partition("=")
            if token == "notify":
                fields["notify"] = ""
                continue
            if not sep or key not in ("in", "group", "source", "vlan", "priority", "out", "name"):
                raise RuleError(f"rule '{text}': unexpected '{token}' "
                                "(in=, group=, source=, vlan=, priority=, out=, name=, notify)")
            fields[key] = value
        missing = [key for key in ("in", "group", "out") if key not in fields and (key != "out" or "notify" not in fields)]
        if missing:
            raise RuleError(f"rule '{text}': missing {', '.join(k + '=' for k in missing)}")
        group, _, port = fields["group"].rpartition(":")
        if not group:
            raise RuleError(f"rule '{text}': group must be GROUP:PORT (GROUP may be a prefix, PORT may be any)")
        port = "0" if port == "any" else port
        vlan = _int(fields["vlan"], "rule vlan") if "vlan" in fields else None
        outputs, members = parse_destinations(fields.get("out", ""))
        priority = parse_priority(fields["priority"], "rule", dscp=True) if "priority" in fields else 0
        return cls(fields["in"], group, _int(port, "input port"), outputs,
                   fields.get("source"), fields.get("name"), vlan, members, notify="notify" in fields,
                   priority=priority)

    @property
    def is_unicast_input(self) -> bool:
        return not ipaddress.IPv4Address(self.group_address).is_multicast

    @property
    def group_address(self) -> str:
        """The group, or the first address of a group range."""
        return self.group.split("/")[0]

    @property
    def prefix_len(self) -> int:
        """32 for one group; less for a range (239.1.0.0/16)."""
        return int(self.group.split("/")[1]) if "/" in self.group else 32

    def covers(self, group: str) -> bool:
        return ipaddress.IPv4Address(group) in ipaddress.IPv4Network(self.group)

    def engine_tuple(self, rule_id: int, input_ifindex: int, output_ifindex: Callable[[str], int]) -> tuple:
        """The rule as the engine's bindings take it (mcr._engine.encode_add_rule / encode_sync_rules)."""
        outputs = [o.engine_tuple(output_ifindex(o.interface)) for o in self.outputs]
        return (rule_id, input_ifindex, self.group_address, self.port, self.source or "", outputs, self.vlan or 0,
                self.prefix_len) + engine_rule_tail(self.notify, self.priority)

    def __str__(self) -> str:
        text = f"in={self.input_interface} group={self.group}:{'any' if self.port == ANY_PORT else self.port}"
        if self.source:
            text += f" source={self.source}"
        if self.vlan is not None:
            text += f" vlan={self.vlan}"
        if self.priority:
            text += f" priority={format_priority(self.priority)}"
        if self.outputs or self.members:
            text += " out=" + ",".join([str(o) for o in self.outputs]
                                       + ([f"members:{','.join(self.members)}"] if self.members else []))
        text += " notify" if self.notify else ""
        return text + (f" name={self.name}" if self.name else "")


@dataclass(frozen=True)
class Join:
    """A static group membership on an interface, as `smcroutectl join` makes:
    MCR reports itself a member (IGMP) and opens the NIC's filter, so an
    upstream router or snooping switch sends the group without a listener.
    With a source, a source-specific (IGMPv3 INCLUDE) membership."""

    interface: str
    group: str
    source: str | None = None

    def __post_init__(self) -> None:
        _check_interface(self.interface, "join interface")
        group = _ipv4(self.group, "join group")
        if not group.is_multicast or group in LINK_LOCAL_GROUPS:
            raise RuleError(f"join group {self.group} must be a multicast group outside 224.0.0.0/24 "
                            "(link-local groups are never joined)")
        if self.source is not None:
            source = _ipv4(self.source, "join source")
            if source.is_multicast or source.is_unspecified:
                raise RuleError(f"join source {self.source} must be a unicast address")
        elif group in SSM_GROUPS:
            raise RuleError(f"join group {self.group} is source-specific (232.0.0.0/8): give a source")

    def __str__(self) -> str:
        return f"{self.interface} {self.group}" + (f" from {self.source}" if self.source else "")


LINK_LOCAL_GROUPS = ipaddress.IPv4Network("224.0.0.0/24")
SSM_GROUPS = ipaddress.IPv4Network("232.0.0.0/8")
