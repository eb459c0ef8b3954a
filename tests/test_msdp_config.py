"""The "msdp" config section: it reads back from its own dict form, and
every mistake names its key and reason."""

from __future__ import annotations

import pytest

from mcr.config import Config, ConfigError

GOOD = {"originator": "10.0.0.1", "keepalive": 5, "hold": 15, "connect_retry": 2, "advertisement_period": 10,
        "sa_hold": 30, "max_sa": 100,
        "peers": [{"address": "10.0.1.1", "local": "10.0.1.2", "mesh_group": "dc1",
                   "sa_filter_in": ["deny 10.9.0.0/16 any", "permit any any"], "sa_filter_out": []},
                  {"address": "10.0.2.1", "local": "10.0.2.2"}]}


def test_the_section_reads_back_from_its_dict_form():
    config = Config.from_dict({"msdp": GOOD})
    assert Config.from_dict(config.to_dict()) == config
    assert config.msdp.peers[0].sa_filter_in.permits("10.8.0.1", "239.1.1.1")
    assert not config.msdp.peers[0].sa_filter_in.permits("10.9.0.1", "239.1.1.1")
    assert Config.from_dict({}).msdp.peers == ()


@pytest.mark.parametrize("change, message", [
    ({"peerz": []}, "msdp: unknown key(s) peerz"),
    ({"keepalive": 80}, "keepalive (80 s) must be shorter than hold"),
    ({"sa_hold": 5}, "sa_hold (5 s) must be at least advertisement_period"),
    ({"max_sa": 0}, "max_sa: expected 1 to 1000000"),
    ({"hold": "75"}, "hold: expected seconds"),
    ({"originator": "239.1.1.1"}, "originator: 239.1.1.1 is not a unicast address"),
    ({"peers": {}}, "msdp.peers: expected a list"),
    ({"peers": [{"address": "10.0.1.1"}]}, "msdp.peers[0]: missing key(s) local"),
    ({"peers": [{"address": "x", "local": "10.0.1.2"}]}, "msdp.peers[0]: peer address: 'x' is not an IPv4 address"),
    ({"peers": [{"address": "10.0.1.1", "local": "10.0.1.1"}]}, "is our own (local) address"),
    ({"peers": [{"address": "10.0.1.1", "local": "10.0.1.2", "sa_filter_in": ["allow any any"]}]},
     "msdp.peers[0]: SA filter line 'allow any any'"),
    ({"peers": [{"address": "10.0.1.1", "local": "10.0.1.2", "colour": 1}]}, "unknown key(s) colour"),
    ({"peers": [{"address": "10.0.1.1", "local": "10.0.1.2"}, {"address": "10.0.1.1", "local": "10.0.1.3"}]},
     "peer 10.0.1.1 configured more than once"),
])
def test_mistakes_name_the_key_and_the_reason(change, message):
    with pytest.raises(ConfigError) as error:
        Config.from_dict({"msdp": {**GOOD, **change}})
    assert any(message in problem for problem in error.value.errors), error.value.errors
