"""libFuzzer (atheris) target: the MSDP stream decoder, mcr.protocols.msdp_wire,
as a session feeds it from TCP. The input's first byte is the read size in
16-byte steps (0: the whole input in one read), the rest is the byte stream. Whatever the
bytes, feeding raises nothing but MsdpDecodeError (with a message); reads of
any size decode to what one read of the whole stream does; every decoded
message encodes to a TLV that decodes back to it."""

from __future__ import annotations

import atheris_target
from mcr.protocols import msdp_wire

atheris_target.instrument(msdp_wire)


def decode(stream: bytes, size: int) -> tuple[list[msdp_wire.Message], bool]:
    """The messages `stream` read `size` bytes at a time decodes to, and whether it ended in an error."""
    decoder, messages = msdp_wire.StreamDecoder(), []
    try:
        for start in range(0, len(stream), size or max(len(stream), 1)):
            messages += decoder.feed(stream[start:start + (size or len(stream))])
    except msdp_wire.MsdpDecodeError as error:
        assert str(error), "an MsdpDecodeError without a message"
        return messages, True
    return messages, False


def test_one(data: bytes) -> None:
    if not data:
        return
    # Reads of 16-byte steps: every split point within a TLV is the property
    # tests' (tests/test_msdp_wire_properties.py); feeding one byte at a time
    # here made the target too slow for its 10^6 inputs. A read size of at
    # least the stream is one read already: decoded once, not twice.
    stream, size = data[1:], data[0] * 16
    messages, failed = decode(stream, size)
    if 0 < size < len(stream):  # several reads: they must decode as one read of the whole does
        whole, whole_failed = decode(stream, 0)
        assert failed == whole_failed, (failed, whole_failed)
        if not failed:
            assert messages == whole, (messages, whole)
    for message in messages:
        assert msdp_wire.decode_tlv(msdp_wire.encode(message)) == message, message


if __name__ == "__main__":
    atheris_target.run(test_one)
