"""mcr.lab as a pytest plugin, used the way a user uses it.

The example suite in examples/pytest is run in a child pytest, once named
on the command line (`-p mcr.lab`, with the entry point also there, so the
plugin is named twice and must load once; the README's example runs along)
and the fixtures listed through the `pytest11` entry point alone. An editable install made before pyproject.toml declared
the entry point has no such metadata; then the tests give the child a
distribution of their own declaring exactly what pyproject.toml declares, so
what is tested is the declaration, not the state of one venv.

The small tests at the end check the Topology and LabDaemon errors: bad
arguments (no namespaces needed) and a daemon that refuses its config.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

import mcr
from mcr.lab import DaemonError, Lab, LabDaemon, Topology, TopologyError, topology

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = "examples/pytest"
EXAMPLE_TESTS = 4  # tests in examples/pytest
ENTRY_POINT = "mcr.lab"
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the example suite needs root (network namespaces)")


def declared_entry_point() -> str:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return project["entry-points"]["pytest11"][ENTRY_POINT]


@pytest.fixture(scope="module")
def child_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for a child pytest that finds the mcr.lab entry point and this tree's mcr."""
    out = subprocess.run([sys.executable, "-c", "import mcr; print(mcr.__file__)"],
                         capture_output=True, text=True, timeout=60, check=True).stdout.strip()
    if Path(out).resolve() != Path(mcr.__file__).resolve():
        pytest.fail(f"{sys.executable} imports mcr from {out}, not from this tree ({mcr.__file__}): "
                    "run these tests with a Python that has this tree installed")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_ADDOPTS", "PYTEST_DISABLE_PLUGIN_AUTOLOAD")}
    if not importlib.metadata.entry_points(group="pytest11", name=ENTRY_POINT):
        dist = tmp_path_factory.mktemp("entry-point") / "mcr_lab_entry_point-0.dist-info"
        dist.mkdir()
        (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: mcr-lab-entry-point\nVersion: 0\n")
        (dist / "entry_points.txt").write_text(f"[pytest11]\n{ENTRY_POINT} = {declared_entry_point()}\n")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(dist.parent), env.get("PYTHONPATH")]))
    return env


def run_pytest(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def assert_passed(result: subprocess.CompletedProcess, count: int) -> None:
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    assert result.returncode == 0 and re.fullmatch(rf"{count} passed in [\d.]+s", summary), (
        f"exit {result.returncode}, summary {summary!r}\n{result.stdout[-4000:]}\n{result.stderr[-2000:]}")


def test_pyproject_declares_the_plugin_under_the_name_p_uses() -> None:
    # One name for both ways in: pytest skips an entry point whose name is already
    # registered, so `-p mcr.lab` and the entry point never load it twice.
    assert declared_entry_point() == "mcr.lab"


def readme_example(tmp_path: Path) -> Path:
    """The README's Python block as a test file of its own (the docs' example is run too)."""
    text = (ROOT / EXAMPLES / "README.md").read_text()
    (block,) = re.findall(r"^```python\n(.*?)^```", text, re.M | re.S)
    path = tmp_path / "test_readme_example.py"
    path.write_text(block)
    return path


@needs_root
def test_example_suite_with_p_option(child_env: dict[str, str], tmp_path: Path) -> None:
    result = run_pytest(child_env, "-p", "mcr.lab", EXAMPLES, str(readme_example(tmp_path)), "-q")
    assert_passed(result, EXAMPLE_TESTS + 1)


def test_the_entry_point_alone_brings_the_fixtures(child_env: dict[str, str]) -> None:
    # The suite itself runs once (above); here only that the entry point loads
    # the same fixtures without -p, which is cheaper than a second run.
    listed = run_pytest(child_env, "--fixtures", EXAMPLES)
    assert listed.returncode == 0, listed.stdout[-3000:] + listed.stderr[-2000:]
    assert re.search(r"^mcr_topology\b", listed.stdout, re.M), listed.stdout[-3000:]


def test_p_option_loads_it_without_entry_points(child_env: dict[str, str]) -> None:
    env = {**child_env, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    listed = run_pytest(env, "-p", "mcr.lab", "-p", "mcr.lab.plugin", "--fixtures", EXAMPLES)
    assert listed.returncode == 0, listed.stdout[-3000:] + listed.stderr[-2000:]
    for name in ("mcr_topology", "mcr_relay", "mcr_daemon", "mcr_sender", "mcr_receiver",
                 "mcr_frame_sender", "mcr_capture"):
        assert re.search(rf"^{name}\b", listed.stdout, re.M), f"{name} not listed:\n{listed.stdout[-3000:]}"


def test_no_option_turns_it_off(child_env: dict[str, str]) -> None:
    listed = run_pytest(child_env, "-p", "no:mcr.lab", "--fixtures", EXAMPLES)
    assert listed.returncode == 0, listed.stdout[-3000:] + listed.stderr[-2000:]
    assert "mcr_topology" not in listed.stdout


@pytest.mark.parametrize("links, message", [
    ([("a", "a")], "two different roles"),
    ([("a", "b", "10.0.0.1/24")], "expected (a, b)"),
    ([("a/b", "c")], "use 1-20 letters"),
    ([("a", "b", "10.0.0.1/24", None)], "both addresses or neither"),
])
def test_bad_topology_is_refused_before_anything_exists(links: list, message: str) -> None:
    with pytest.raises(TopologyError, match=re.escape(message)):
        topology(links, prefix="mcrt")


def test_topology_names_a_missing_link() -> None:
    with pytest.raises(TopologyError, match="no link between 'a' and 'b'"):
        Topology(Lab("mcrt")).interface("a", "b")


def test_daemon_refuses_the_root_namespace() -> None:
    with pytest.raises(ValueError, match="root namespace"):
        LabDaemon("")


@needs_root
def test_daemon_with_a_bad_config_says_why() -> None:
    with topology([("relay", "rcv")], prefix="mcrt") as net:
        bad = {"rules": [{"input_interface": "eth0", "group": "0.0.0.0", "port": 5000, "outputs": []}]}
        with pytest.raises(DaemonError, match=r"exited with status \d+:(.|\n)*rules\[0\]"):
            LabDaemon(net.ns["relay"], bad)
