"""The metrics pieces without a daemon: ADDR:PORT parsing, the config key,
and the collector's families rendered in pieces and parsed back with
prometheus_client's own parsers (one family per name, every sample once).
The daemon end to end: test_daemon_metrics.py."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families

from metrics_support import StandIn

from mcr import listen_address
from mcr.config import Config, ConfigError, rule_from_dict
from mcr.supervisor.metrics import CHUNK, OutputCounts, RuleCounts, State, StateCollector, capture
from mcr.supervisor.metrics_http import render

RULES = 3 * CHUNK + 7  # several pieces per rule family, the last one short


@pytest.mark.parametrize("text, expected", [
    ("127.0.0.1:9464", ("127.0.0.1", 9464)), ("0.0.0.0:1", ("0.0.0.0", 1)), ("[::1]:65535", ("::1", 65535))])
def test_listen_address_parses(text, expected):
    assert listen_address.parse(text) == expected


@pytest.mark.parametrize("text, reason", [
    ("9464", "is not ADDR:PORT"), (":9464", "is not ADDR:PORT"), ("localhost:9464", "is not an IP address"),
    ("::1:9464", "go in brackets"), ("[10.0.0.1]:9464", "go in brackets"), ("10.0.0.1:0", "outside 1-65535"),
    ("10.0.0.1:65536", "outside 1-65535"), ("10.0.0.1:http", "outside 1-65535"), ("10.0.0.1:", "outside 1-65535")])
def test_listen_address_refuses(text, reason):
    with pytest.raises(ValueError, match=reason):
        listen_address.parse(text)


def test_config_key_round_trips_and_names_its_path():
    config = Config.from_dict({"metrics": "127.0.0.1:9464"})
    assert config.metrics == "127.0.0.1:9464"
    assert Config.from_dict(config.to_dict()) == config
    assert Config().metrics is None
    with pytest.raises(ConfigError, match=r"^metrics: '127.0.0.1' is not ADDR:PORT"):
        Config.from_dict({"metrics": "127.0.0.1"})
    with pytest.raises(ConfigError, match=r"^metrics: must be a string, not 9464"):
        Config.from_dict({"metrics": 9464})


def state() -> State:
    rules = [RuleCounts(str(i), f"r{i}", "active", 10 * i, 1000 * i) for i in range(1, RULES + 1)]
    outputs = [OutputCounts(str(i), f"r{i}", f"239.2.0.{i % 250}:6000:eth1", i, 100 * i, i % 2)
               for i in range(1, RULES + 1)]
    return State("1.2.3", rules=rules, outputs=outputs, drops={"no_rule": 4, "ttl_expired": 0}, events={"tx_ring_full": 1},
                 inputs={"eth0": {"frames": 9, "bytes": 900, "kernel_packets": 9, "kernel_drops": 2}},
                 workers=[{"id": 0, "state": "running", "restarts": 2, "crashes": 0, "log_lines_dropped": 0},
                          {"id": 1, "state": "backoff", "restarts": 3, "crashes": 2, "log_lines_dropped": 1}],
                 resyncs=5, task_faults={"health": 1},
                 igmp=[{"interface": "eth1", "querier": True, "groups": [{}, {}], "counters": {"own_query": 3},
                        "send_errors": 4}],
                 pim=[{"interface": "eth2", "address": "10.0.2.1", "dr": "10.0.2.1", "neighbors": [{}],
                       "counters": {}, "send_errors": 0}], pim_unicast_send_errors=2,
                 pim_upstream=[{"kind": "(S,G)", "state": "Joined"}, {"kind": "(S,G)", "state": "Joined"}],
                 pim_downstream=[{"kind": "(*,G)", "state": "Join"}])


def samples(families) -> dict[tuple, float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples}


def test_pieces_render_as_one_family_each_with_every_sample():
    body, content_type = asyncio.run(render(StateCollector(state()).pieces(), ""))
    assert content_type.startswith("text/plain; version=0.0.4")
    families = list(text_string_to_metric_families(body.decode()))
    names = [f.name for f in families]
    assert len(names) == len(set(names)), "a family split in two"
    assert body.count(b"# TYPE mcr_output_packets_total counter") == 1
    got = samples(families)
    assert len([k for k in got if k[0] == "mcr_rule_packets_total"]) == RULES
    assert got[("mcr_rule_packets_total", (("name", "r700"), ("rule", "700")))] == 7000
    assert got[("mcr_output_errors_total", (("name", "r7"), ("output", "239.2.0.7:6000:eth1"), ("rule", "7")))] == 1
    assert got[("mcr_drops_total", (("reason", "no_rule"),))] == 4
    assert got[("mcr_input_kernel_drops_total", (("interface", "eth0"),))] == 2
    assert got[("mcr_workers", (("state", "backoff"),))] == 1
    assert got[("mcr_workers", (("state", "idle"),))] == 0
    assert got[("mcr_worker_restarts_total", (("worker", "1"),))] == 3
    assert got[("mcr_resyncs_total", ())] == 5
    assert got[("mcr_igmp_groups", (("interface", "eth1"),))] == 2
    assert got[("mcr_igmp_ignored_messages_total", (("interface", "eth1"), ("reason", "own_query")))] == 3
    assert got[("mcr_igmp_send_errors_total", (("interface", "eth1"),))] == 4
    assert got[("mcr_pim_dr", (("interface", "eth2"),))] == 1
    assert got[("mcr_pim_send_errors_total", (("interface", "eth2"),))] == 0
    assert got[("mcr_pim_unicast_send_errors_total", ())] == 2
    assert got[("mcr_pim_upstream", (("kind", "(S,G)"), ("state", "Joined")))] == 2
    # The same text as the library renders the whole families in one go.
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StateCollector(state()))
    assert samples(text_string_to_metric_families(generate_latest(registry).decode())) == got


def test_openmetrics_when_asked_with_units_and_one_eof():
    body, content_type = asyncio.run(render(StateCollector(state()).pieces(),
                                            "application/openmetrics-text; version=1.0.0,text/plain;q=0.5"))
    assert content_type.startswith("application/openmetrics-text")
    assert body.endswith(b"# EOF\n") and body.count(b"# EOF") == 1
    families = {f.name: f for f in parse_openmetrics(body.decode())}  # the parser refuses a split family
    assert families["mcr_output_bytes"].unit == "bytes"
    assert len(families["mcr_output_bytes"].samples) == RULES
    assert families["mcr_build"].samples[0].labels == {"version": "1.2.3"}


def test_a_pruned_route_still_counts_for_its_rule():
    """A receiver-driven rule's route for one source went away (pruned); what
    it counted was carried into the worker's base under its engine id, and
    stays in the rule's and the output's counters."""
    sup = StandIn()
    derived = 1 << 30
    member = "239.1.1.1:5000:eth1"
    sup.rules = {1: rule_from_dict({"name": "tv", "input_interface": "eth0", "group": "239.1.1.1", "port": 5000,
                                    "outputs": ["239.9.9.9:5000:eth2"], "members": ["eth1"]})}
    sup.routes = {1: SimpleNamespace(rule_id=1, state="active")}
    sup._derived_ids = {(1, "239.1.1.1", "10.0.0.5"): derived}
    old = {"packets": 7, "bytes": 70, "outputs": {member: {"packets": 7, "bytes": 70, "errors": 0},
                                                  "239.9.9.9:5000:eth2": {"packets": 7, "bytes": 70, "errors": 1}}}
    now = {"packets": 2, "bytes": 20, "outputs": {"239.9.9.9:5000:eth2": {"packets": 2, "bytes": 20, "errors": 0}}}
    sup.pool = [SimpleNamespace(base={"rules": {derived: old}}, last={"rules": {1: now}})]
    state = asyncio.run(capture(sup))
    assert state.rules == [RuleCounts("1", "tv", "active", 9, 90)]
    assert sorted(state.outputs) == [OutputCounts("1", "tv", member, 7, 70, 0),
                                     OutputCounts("1", "tv", "239.9.9.9:5000:eth2", 9, 90, 1)]
