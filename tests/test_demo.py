"""The README's demo command works and reports what it relayed."""

from __future__ import annotations

import subprocess
import sys


def test_demo_relays_everything_and_cleans_up():
    before = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    result = subprocess.run([sys.executable, "-m", "mcr", "demo", "--packets", "2000", "--rate", "4000"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[-1] == "sent 2000 from a UDP socket / relayed 2000 / received 2000 + 2000 (per sink)"
    assert lines[-2] == "receivers' UDP checksum errors (InCsumErrors): 0"
    assert result.stdout.count("RULE / OUTPUT") >= 2  # live counters were shown, then the totals
    after = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert after == before, "the demo left namespaces behind"
