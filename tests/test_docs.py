"""Keeps the user documentation in docs/ honest: it fails when the docs drift
from the code.

- every ```json block that is a daemon config loads through Config.from_dict
  (and passes `mcr config check` run for real);
- every `mcr ...` line in ```sh / ```console blocks parses with the real CLI
  parser (parse only, nothing runs), and its rule specs and outputs parse
  with mcr.rules;
- docs/reference.md names every verb, long option, config key, drop reason,
  engine event and log facility the code knows;
- the examples that need neither root nor network run: `mcr --version` as a
  process, `mcr config check FILE` on each config example and each `--help`
  line through the CLI's main in this process.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from mcr import _engine
from mcr.cli import build_parser, main
from mcr.config import IGMP_SETTINGS, JOIN_KEYS, PIM_KEYS, PIM_SETTINGS, RULE_KEYS, Config
from mcr.logs import FACILITIES
from mcr.rules import Output, Rule, parse_destinations

DOCS = Path(__file__).resolve().parent.parent / "docs"
PAGES = ("guide.md", "reference.md", "troubleshooting.md", "architecture.md")
CONFIG_KEYS = {f.name for f in dataclasses.fields(Config)}
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
ENV_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")


def blocks(kinds: tuple[str, ...]) -> list[tuple[str, str]]:
    """(page, text) of every fenced block of one of `kinds` in the docs."""
    found = []
    for path in sorted(DOCS.glob("*.md")):
        for kind, text in FENCE.findall(path.read_text(encoding="utf-8")):
            if kind in kinds:
                found.append((path.name, text))
    return found


def command_lines(text: str, console: bool) -> list[str]:
    """The shell lines of a block, continuations joined; in a console block only `$ ` lines."""
    lines, current = [], ""
    for raw in text.splitlines():
        if console:
            if not raw.startswith("$ ") and not current:
                continue
            raw = raw.removeprefix("$ ")
        current += raw.rstrip()
        if current.endswith("\\"):
            current = current[:-1] + " "
            continue
        if current.strip():
            lines.append(current.strip())
        current = ""
    return lines


def mcr_argv(line: str) -> list[str] | None:
    """The arguments after `mcr` when the line runs mcr (after any VAR=value), else None."""
    tokens = shlex.split(line, comments=True)
    while tokens and ENV_ASSIGNMENT.match(tokens[0]):
        tokens = tokens[1:]
    if tokens[:1] != ["mcr"]:
        return None
    return tokens[1:]


def documented_commands() -> list[tuple[str, list[str]]]:
    commands = []
    for kind in ("sh", "console"):
        for page, text in blocks((kind,)):
            for line in command_lines(text, console=kind == "console"):
                argv = mcr_argv(line)
                if argv is not None:
                    commands.append((page, argv))
    return commands


def daemon_configs() -> list[tuple[str, dict]]:
    configs = []
    for page, text in blocks(("json",)):
        data = json.loads(text)  # every json block must at least be JSON
        if isinstance(data, dict) and CONFIG_KEYS & data.keys():
            configs.append((page, data))
    return configs


def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def walk(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(path, parser) of the top-level parser and every verb and action below it."""
    yield path, parser
    for name, sub in subparsers(parser).items():
        yield from walk(sub, path + (name,))


def reference() -> str:
    return (DOCS / "reference.md").read_text(encoding="utf-8")


@functools.cache
def parser() -> argparse.ArgumentParser:
    return build_parser()  # one parser for every example: building it is most of a parse's time


def parse(argv: list[str]) -> argparse.Namespace:
    """Parse as `mcr` would; an argparse error (exit status 2) fails with the line."""
    try:
        return parser().parse_args(argv)
    except SystemExit as stop:
        if stop.code == 0:  # --help and --version end parsing successfully
            return argparse.Namespace()
        raise AssertionError(f"`mcr {shlex.join(argv)}` does not parse") from None


def check_rule_values(args: argparse.Namespace) -> None:
    if getattr(args, "verb", None) not in ("relay", "rules", "add"):  # `mcr trace RULE` names a rule instead
        return
    specs = getattr(args, "rule", None)
    for spec in [specs] if isinstance(specs, str) else specs or []:
        Rule.parse(spec)
    if getattr(args, "outputs", None):
        for part in args.outputs.split(","):
            Output.parse(part)


# The examples ------------------------------------------------------------------

def test_the_docs_have_examples_to_check() -> None:
    assert len(daemon_configs()) >= 5
    assert len(documented_commands()) >= 40


@pytest.mark.parametrize("page, data", daemon_configs(), ids=lambda v: v if isinstance(v, str) else "")
def test_each_config_example_loads(page: str, data: dict) -> None:
    Config.from_dict(data)


@pytest.mark.parametrize("page, argv", documented_commands(), ids=lambda v: v if isinstance(v, str) else "")
def test_each_command_example_parses(page: str, argv: list[str]) -> None:
    args = parse(argv)
    check_rule_values(args)


def test_a_wrong_command_is_caught(capsys) -> None:
    with pytest.raises(AssertionError):
        parse(["rules", "add", "--no-such-option"])
    with pytest.raises(ValueError):
        Rule.parse("in=eth0 group=239.1.1.1:5000 out=239.2.2.2:5000:eth1:bogus")
    assert parse_destinations("members:eth1,eth2")[1] == ("eth1", "eth2")


def test_config_examples_pass_config_check(tmp_path: Path, capsys) -> None:
    """`mcr config check FILE` through the CLI's own main, for each config example."""
    for index, (page, data) in enumerate(daemon_configs()):
        path = tmp_path / f"{index}.json"
        path.write_text(json.dumps(data))
        assert main(["config", "check", str(path)]) == 0, f"{page}: {capsys.readouterr().err}"
        assert f"{path}: ok" in capsys.readouterr().out


def test_help_examples_print_help(capsys) -> None:
    helps = [argv for _, argv in documented_commands() if argv[-1:] == ["--help"]]
    assert ["--help"] in helps
    for argv in helps:
        with pytest.raises(SystemExit) as stop:
            main(argv)
        assert stop.value.code == 0, argv
        assert capsys.readouterr().out.startswith("usage: mcr")


def test_version_example_runs_for_real() -> None:
    """`mcr --version` as its own process (one only: importing the CLI takes a
    second or two on a loaded machine; `config check` runs in-process above)."""
    assert ["--version"] in [argv for _, argv in documented_commands()]
    done = subprocess.run([sys.executable, "-m", "mcr", "--version"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert re.fullmatch(r"mcr \S+\n", done.stdout)


# The reference names everything ------------------------------------------------

def named(text: str, name: str) -> bool:
    """`name` in backticks, or at the start of a backticked option with its metavar."""
    return re.search(r"`" + re.escape(name) + r"(`|[ \[])", text) is not None


def test_reference_names_every_verb_and_action() -> None:
    text = reference()
    missing = [" ".join(path) for path, _ in walk(build_parser()) if path and not named(text, path[-1])]
    assert not missing, f"not in docs/reference.md: {missing}"


def test_reference_names_every_long_option() -> None:
    text = reference()
    missing = sorted({option for path, parser in walk(build_parser()) for action in parser._actions
                      for option in action.option_strings if option.startswith("--") and not named(text, option)})
    assert not missing, f"not in docs/reference.md: {missing}"


def test_reference_names_every_config_key() -> None:
    keys = (CONFIG_KEYS | set(RULE_KEYS) | set(JOIN_KEYS) | set(IGMP_SETTINGS) | set(PIM_SETTINGS) | set(PIM_KEYS)
            | {"address", "groups"})
    text = reference()
    missing = sorted(key for key in keys if not named(text, key))
    assert not missing, f"not in docs/reference.md: {missing}"


def test_reference_names_every_drop_reason_event_and_facility() -> None:
    text = reference()
    names = [*_engine.DROP_REASONS, *_engine.EVENTS, *FACILITIES, "kernel_drops", "kernel_packets"]
    missing = [name for name in names if not named(text, name)]
    assert not missing, f"not in docs/reference.md: {missing}"


def test_reference_names_every_event_the_daemon_publishes() -> None:
    source = Path(__file__).resolve().parent.parent / "python" / "mcr"
    kinds = set()
    for path in source.rglob("*.py"):
        kinds.update(re.findall(r"publish\(\s*\"([a-z-]+)\"", path.read_text(encoding="utf-8")))
    assert {"rule", "worker", "link"} <= kinds
    text = reference()
    missing = sorted(kind for kind in kinds if not named(text, kind))
    assert not missing, f"not in docs/reference.md: {missing}"


def test_every_page_links_and_readme_lists_them() -> None:
    readme = (DOCS.parent / "README.md").read_text(encoding="utf-8")
    for page in PAGES:
        assert (DOCS / page).stat().st_size > 1000
        assert f"docs/{page}" in readme


def test_reference_names_every_metric_family() -> None:
    source = (Path(__file__).resolve().parent.parent / "python" / "mcr" / "supervisor" / "metrics.py").read_text()
    families = set(re.findall(r"\"(mcr_[a-z_]+)", source))  # "mcr_output_" is an f-string's prefix
    assert {"mcr_drops", "mcr_rules"} <= families
    text = reference()
    missing = sorted(name for name in families if f"`{name}" not in text)
    assert not missing, f"not in docs/reference.md: {missing}"
