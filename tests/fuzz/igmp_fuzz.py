"""libFuzzer (atheris) target: the IGMP decoder, mcr.protocols.igmp_wire.
Whatever the bytes, parse_message returns a message or raises Malformed
with a reason; anything else is a crash."""

from __future__ import annotations

import atheris_target
from mcr import membership
from mcr.protocols import igmp_wire

atheris_target.instrument(igmp_wire, membership)


def test_one(data: bytes) -> None:
    try:
        message = igmp_wire.parse_message(atheris_target.message_of(data))
    except igmp_wire.Malformed as error:
        assert error.reason, "a Malformed without a reason"
        return
    assert isinstance(message, (igmp_wire.Query, igmp_wire.V3Report, igmp_wire.OldReport, igmp_wire.Leave))


if __name__ == "__main__":
    atheris_target.run(test_one)
