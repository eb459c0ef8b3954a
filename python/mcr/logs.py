"""Logging for every MCR process: stdlib logging, one JSON object per line.

Facilities are loggers under "mcr" ("mcr.supervisor", "mcr.control", ...);
levels change at run time per facility or for all ("default").
"""

from __future__ import annotations

import json
import logging
import sys

LEVELS = ("debug", "info", "warning", "error")
FACILITIES = ("supervisor", "control", "worker", "engine")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {"ts": round(record.created, 6), "level": record.levelname.lower(),
                "facility": record.name.removeprefix("mcr."), "msg": record.getMessage()}
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line)


def setup(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("mcr")
    root.handlers[:] = [handler]
    root.propagate = False
    root.setLevel(level.upper())


def set_level(level: str, facility: str | None) -> None:
    name = "mcr" if facility in (None, "default") else f"mcr.{facility}"
    logging.getLogger(name).setLevel(level.upper())


def level_number(level: str) -> int:
    """The engine's numbering: 0 debug .. 3 error."""
    return LEVELS.index(level)


def apply(levels: dict[str, str]) -> None:
    """Make the loggers' levels exactly `levels` ({"default": ..., facility: ...}):
    a facility without an entry follows the default again."""
    set_level(levels["default"], None)
    for facility in FACILITIES:
        logging.getLogger(f"mcr.{facility}").setLevel(levels[facility].upper() if facility in levels else logging.NOTSET)
