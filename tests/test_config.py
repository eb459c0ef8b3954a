"""The config file (mcr.config): round trips, and every rejection names its key path."""

from __future__ import annotations

import json
import os
import stat

import pytest

from mcr.config import Config, ConfigError, rule_from_dict, rule_to_dict
from mcr.rules import Output, Rule

RULE = {"name": "feed-a", "input_interface": "eth0", "group": "239.1.1.1", "port": 5000, "source": "10.1.1.1",
        "outputs": ["239.2.2.2:5000:eth1:keep-source", "10.9.0.7:7000:eth2:ttl=16:dscp=46"]}
FULL = {"workers": 2, "pin_cores": [0, 1], "log_level": "debug", "user": "mcr",
        "rules": [RULE, {"input_interface": "eth0", "group": "239.1.1.2", "port": 5000,
                         "outputs": ["239.3.3.3:5000:eth1"]}]}


def test_the_documented_example_builds_rules():
    config = Config.from_dict(FULL)
    assert config.workers == 2 and config.pin_cores == (0, 1) and config.log_level == "debug"
    first = config.rules[0]
    assert first == Rule("eth0", "239.1.1.1", 5000, (Output("239.2.2.2", 5000, "eth1", keep_source=True),
                                                     Output("10.9.0.7", 7000, "eth2", ttl=16, dscp=46)), "10.1.1.1")
    assert first.name == "feed-a" and config.rules[1].name is None


def test_defaults():
    assert Config.from_dict({}) == Config(workers=None, pin_cores=None, log_level="info", user="nobody", rules=())


@pytest.mark.parametrize("data", [FULL, {}, {"workers": None, "pin_cores": None}, {"rules": [RULE]}])
def test_dict_round_trip_keeps_everything_including_names(data):
    config = Config.from_dict(data)
    again = Config.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config
    assert [r.name for r in again.rules] == [r.name for r in config.rules]


def test_rule_round_trip_leaves_out_unset_keys():
    assert rule_to_dict(rule_from_dict(RULE)) == RULE
    bare = {k: v for k, v in RULE.items() if k not in ("name", "source")}
    assert rule_to_dict(rule_from_dict(bare)) == bare


def test_save_is_pretty_atomic_and_loads_back(tmp_path):
    path = tmp_path / "mcr.json"
    config = Config.from_dict(FULL)
    config.save(path)
    text = path.read_text()
    assert text.endswith("}\n") and "\n  " in text
    assert Config.load(path) == config
    assert [r.name for r in Config.load(path).rules] == ["feed-a", None]
    os.chmod(path, 0o600)
    Config().save(path)  # replaces the file, keeping its mode
    assert Config.load(path) == Config()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mcr.json"], "a temporary file was left behind"


def problems(data) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        Config.from_dict(data)
    assert str(caught.value) == "\n".join(caught.value.errors)
    return list(caught.value.errors)


def with_rule(**changes) -> dict:
    rule = {**RULE, **changes}
    return {"rules": [{k: v for k, v in rule.items() if v is not ...}]}


@pytest.mark.parametrize("data, expected", [
    ([], "config: must be an object"),
    ({"wokers": 2}, "wokers: unknown key"),
    ({"workers": 0}, "workers: 0 is not a worker count"),
    ({"workers": "2"}, "workers: must be an integer"),
    ({"workers": True}, "workers: must be an integer, not true"),
    ({"pin_cores": []}, "pin_cores: list at least one core"),
    ({"pin_cores": [0, -1]}, "pin_cores[1]: -1 is not a core number"),
    ({"pin_cores": [1, 1]}, "pin_cores[1]: core 1 is listed twice"),
    ({"pin_cores": [0, "1"]}, "pin_cores[1]: must be an integer"),
    ({"workers": 2, "pin_cores": [0, 1, 2]}, "pin_cores: 3 cores for 2 workers"),
    ({"log_level": "verbose"}, "log_level: 'verbose' is not a log level"),
    ({"user": "no body"}, "user: 'no body' is not a user name"),
    ({"rules": {}}, "rules: must be a list"),
    ({"rules": ["in=eth0"]}, "rules[0]: must be an object"),
    (with_rule(colour="red"), "rules[0].colour: unknown key"),
    (with_rule(group=...), "rules[0]: missing group"),
    (with_rule(group="127.0.0.1"), "rules[0].group: '127.0.0.1' is neither a multicast group nor a unicast"),
    (with_rule(group="239.1.1"), "rules[0].group: '239.1.1' is not an IPv4 address"),
    (with_rule(input_interface="a-very-long-interface"), "rules[0].input_interface: 'a-very-long-interface' is not"),
    (with_rule(input_interface="eth 0"), "rules[0].input_interface"),
    (with_rule(port=70000), "rules[0].port: 70000 is outside 1-65535"),
    (with_rule(port="5000"), "rules[0].port: must be an integer"),
    (with_rule(source="239.9.9.9"), "rules[0].source: '239.9.9.9' must be a unicast address"),
    (with_rule(name="feed a"), "rules[0].name: 'feed a' is not a valid name"),
    (with_rule(name="42"), "rules[0].name: '42' is all digits"),
    (with_rule(name="x" * 65), "rules[0].name"),
    (with_rule(outputs=[]), "rules[0].outputs: a rule needs at least one output"),
    (with_rule(outputs="239.2.2.2:5000:eth1"), "rules[0].outputs: must be a list"),
    (with_rule(outputs=["239.2.2.2:5000:eth1", "239.2.2.2:5000"]), "rules[0].outputs[1]: output '239.2.2.2:5000'"),
    (with_rule(outputs=["239.2.2.2:5000:eth1:ttl=0"]), "rules[0].outputs[0]: output TTL 0 is outside 1-255"),
    (with_rule(outputs=["10.9.0.7:7000:eth2:keep-source"]), "rules[0].outputs[0]: output 10.9.0.7: keep-source needs a multicast"),
    (with_rule(outputs=["239.2.2.2:5000:eth1:keep-src"]), "rules[0].outputs[0]: output '239.2.2.2:5000:eth1:keep-src': unknown option"),
    (with_rule(outputs=["239.2.2.2:5000:eth1", "239.2.2.2:5000:eth1:ttl=4"]), "rules[0].outputs[1]: same destination"),
    (with_rule(source=..., outputs=["239.1.1.1:5000:eth0"]), "rules[0]: output 239.1.1.1:5000:eth0 sends back"),
])
def test_each_rejection_names_the_key_path_and_reason(data, expected):
    found = problems(data)
    assert any(p.startswith(expected) for p in found), found


def test_duplicate_rules_and_names_point_at_the_first():
    other = {**RULE, "name": "feed-b"}
    assert problems({"rules": [RULE, other]}) == [
        "rules[1]: same input as rules[0] (eth0 239.1.1.1:5000 source 10.1.1.1)"]
    renamed = {**RULE, "group": "239.1.1.9"}
    assert problems({"rules": [RULE, renamed]}) == ["rules[1].name: 'feed-a' is already used by rules[0]"]
    # The same group from another source, or any source, is a different input.
    any_source = {k: v for k, v in RULE.items() if k not in ("name", "source")}
    assert len(Config.from_dict({"rules": [RULE, any_source]}).rules) == 2


def test_all_problems_are_reported_at_once():
    found = problems({"workers": 0, "log_level": "loud",
                      "rules": [{**RULE, "group": "0.0.0.0"}, {**RULE, "name": "b", "port": 0}]})
    assert [p.split(":")[0] for p in found] == ["workers", "log_level", "rules[0].group", "rules[1].port"]


def test_rule_from_dict_uses_the_given_path():
    with pytest.raises(ConfigError, match=r"^rule\.group: '127\.0\.0\.1'"):
        rule_from_dict({**RULE, "group": "127.0.0.1"})


def test_load_names_the_file_and_json_syntax_errors_their_position(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{\n  "workers": 2,\n  "rules": [,]\n}\n')
    with pytest.raises(ConfigError, match=r"bad\.json: line 3 column 13: Expecting value"):
        Config.load(path)
    path.write_text(json.dumps({"rules": [{**RULE, "port": 0}]}))
    with pytest.raises(ConfigError, match=r"bad\.json: rules\[0\]\.port: 0 is outside"):
        Config.load(path)
    with pytest.raises(ConfigError, match=r"missing\.json: No such file"):
        Config.load(tmp_path / "missing.json")
