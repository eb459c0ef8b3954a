"""libFuzzer (atheris) target: the PIM decoder, mcr.protocols.pim_wire,
through parse_message (so message types added there are covered too).
Whatever the bytes, it returns a message or raises Malformed with a reason;
a message that has an encoder re-encodes to one that parses the same."""

from __future__ import annotations

import atheris_target
from mcr import membership
from mcr.protocols import pim_wire

atheris_target.instrument(pim_wire, membership)

ENCODERS = {pim_wire.Hello: pim_wire.encode_hello, pim_wire.JoinPrune: pim_wire.encode_join_prune}


def test_one(data: bytes) -> None:
    try:
        message = pim_wire.parse_message(atheris_target.message_of(data))
    except pim_wire.Malformed as error:
        assert error.reason, "a Malformed without a reason"
        return
    encode = ENCODERS.get(type(message))
    if encode is not None:
        assert pim_wire.parse_message(encode(message)) == message, message


if __name__ == "__main__":
    atheris_target.run(test_one)
