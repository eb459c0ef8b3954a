"""What the Python fuzz targets share: coverage for the modules under test,
the checksum fix-up, and the libFuzzer entry point (atheris).

Coverage comes from atheris.instrument_func on every function and method the
named modules define: instrument_imports() misses modules that the editable
install's import finder loads, and instrument_all() spends ~10 s on
everything else that is loaded.
"""

from __future__ import annotations

import inspect
import struct
import sys
from types import ModuleType
from typing import Callable

import atheris

from mcr.membership import inet_checksum


def instrument(*modules: ModuleType) -> None:
    for module in modules:
        for value in vars(module).values():
            members = vars(value).values() if inspect.isclass(value) else (value,)
            for member in members:
                if inspect.isfunction(member) and member.__module__ == module.__name__:
                    atheris.instrument_func(member)


def with_checksum(message: bytes) -> bytes:
    """`message` with a valid Internet checksum in bytes 2-3 (IGMP's and
    PIM's place for it); random bytes almost never carry one."""
    if len(message) < 4:
        return message
    zeroed = message[:2] + b"\0\0" + message[4:]
    return zeroed[:2] + struct.pack("!H", inet_checksum(zeroed)) + zeroed[4:]


def message_of(data: bytes) -> bytes:
    """The message a fuzz input stands for: its first byte odd means "fix the
    checksum" (so the decoder past the check is reached), the rest is the message."""
    if not data:
        return b""
    return with_checksum(data[1:]) if data[0] & 1 else data[1:]


def run(test_one: Callable[[bytes], None]) -> None:
    atheris.Setup(sys.argv, test_one)
    atheris.Fuzz()
