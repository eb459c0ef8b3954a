"""Properties of rule and destination parsing (mcr.rules, and the config
form in mcr.config): a rule or output written out parses back to itself,
and any text or JSON value is either a rule or a RuleError / ConfigError
that says why, never another exception."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mcr.config import ConfigError, rule_from_dict, rule_to_dict
from mcr.rules import Output, Rule, RuleError, parse_destinations, parse_outputs

FAST = settings(max_examples=200, deadline=None)

names = st.sampled_from(["eth0", "eth1", "veth-a.10", "wg0", "br0"])
groups = st.sampled_from(["239.1.1.1", "232.1.2.3", "224.0.1.9"])
ranges = st.sampled_from(["239.1.0.0/16", "239.0.0.0/8", "224.0.0.0/4", "239.255.1.0/24"])
unicast = st.sampled_from(["10.0.0.2", "192.0.2.7"])
ports = st.integers(1, 65535)
optional = st.none().__or__


@st.composite
def outputs(draw) -> Output:
    destination = draw(groups | unicast)
    multicast = not destination.startswith(("10.", "192."))
    return Output(destination, draw(ports), draw(names), draw(optional(st.integers(1, 255))),
                  draw(optional(st.integers(0, 63))), multicast and draw(st.booleans()),
                  draw(optional(st.integers(1, 4094))) if multicast else None)


@st.composite
def rules(draw) -> Rule:
    input_interface = draw(names)
    group = draw(groups | ranges)
    port = draw(st.sampled_from([0, 5000, 65535]))
    outs = tuple(o for o in draw(st.lists(outputs(), max_size=3, unique=True))
                 if (o.interface, o.destination, o.port) != (input_interface, group, port))
    members = tuple(draw(st.lists(names.filter(lambda n: n != input_interface), max_size=3, unique=True)))
    if not outs and not members:
        members = ("tun9",)
    return Rule(input_interface, group, port, outs, draw(optional(unicast)), draw(optional(st.just("feed-a"))),
                draw(optional(st.integers(1, 4094))), members)


@FAST
@given(st.lists(outputs(), min_size=1, max_size=4))
def test_outputs_written_out_parse_back(outs) -> None:
    assert parse_outputs(",".join(str(o) for o in outs)) == tuple(outs)


@FAST
@given(rules())
def test_a_rule_written_out_parses_back(rule) -> None:
    parsed = Rule.parse(str(rule))
    assert parsed == rule and parsed.name == rule.name


@FAST
@given(rules())
def test_a_rule_in_config_form_reads_back(rule) -> None:
    assert rule_from_dict(rule_to_dict(rule)) == rule


# Pieces users type, shuffled: most combinations are wrong, some are rules.
pieces = st.sampled_from(["in=", "group=", "source=", "vlan=", "out=", "name=", "members:", "eth0", "eth1", ":",
                          ",", "/", " ", "239.1.1.1", "239.1.0.0/16", "10.0.0.1", "5000", "any", "0", "-1",
                          "ttl=", "dscp=", "keep-source", "vlan=", "4095", "999999999999", "٣", "\t", "=", "x"])
texts = st.lists(pieces, max_size=20).map("".join) | st.text(max_size=40)


@FAST
@given(texts)
def test_any_rule_text_is_a_rule_or_a_rule_error(text) -> None:
    try:
        Rule.parse(text)
    except RuleError as error:
        assert str(error)


@FAST
@given(texts)
def test_any_destination_text_is_parsed_or_a_rule_error(text) -> None:
    try:
        parse_destinations(text)
    except RuleError as error:
        assert str(error)


json_values = st.recursive(st.none() | st.booleans() | st.integers(-2, 70000) | st.floats() | st.text(max_size=8)
                           | texts | groups | names, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=8)
rule_keys = st.sampled_from(["name", "input_interface", "group", "port", "source", "vlan", "outputs", "members",
                             "extra"])


@FAST
@given(st.dictionaries(rule_keys, json_values | texts, max_size=8) | json_values)
def test_any_json_value_is_a_rule_or_a_config_error(data) -> None:
    try:
        rule_from_dict(data)
    except ConfigError as error:
        assert error.errors
