"""`mcr daemon` as a child process inside a lab namespace, for tests and notebooks.

The daemon is started exactly as a user starts it (`python -m mcr daemon
--netns NS`), with its control socket and an empty state in a private
temporary directory, so two daemons (or two test runs) never share either.
It counts as ready once `mcr ping` answers on that socket, the same check an
operator would make, and it is stopped by its PID only: SIGTERM, then SIGKILL
if it has not exited within a bound.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

START_TIMEOUT = 20.0  # a Python interpreter, then workers and their sockets
STOP_TIMEOUT = 15.0
PING_INTERVAL = 0.1


class DaemonError(RuntimeError):
    """The lab daemon did not come up, exited by itself, or would not stop."""


class LabDaemon:
    """A running `mcr daemon` in namespace `ns`; `config` is a dict, a JSON file or None."""

    def __init__(self, ns: str, config: dict[str, Any] | str | Path | None = None, *, workers: int = 1,
                 args: tuple[str, ...] = (), start_timeout: float = START_TIMEOUT) -> None:
        if not ns:
            raise ValueError("a lab namespace is required; refusing to run a daemon in the root namespace")
        self.ns = ns
        # Short and private: a Unix socket path must fit in 108 bytes.
        self.dir = Path(tempfile.mkdtemp(prefix="mcr-lab-"))
        self.socket = str(self.dir / "control.sock")
        self.log = self.dir / "daemon.log"
        self.config = self._config_file(config)
        command = [sys.executable, "-m", "mcr", "daemon", "--netns", ns, "--socket", self.socket,
                   "--state", "", "--workers", str(workers), *args]
        if self.config is not None:
            command += ["--config", str(self.config)]
        with self.log.open("w") as log:
            self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        try:
            self._wait_ready(start_timeout)
        except BaseException:
            # The error from _wait_ready already carries the log; stop's own would repeat it.
            with contextlib.suppress(DaemonError):
                self.stop()
            raise

    def _config_file(self, config: dict[str, Any] | str | Path | None) -> Path | None:
        if config is None or isinstance(config, (str, Path)):
            return Path(config) if config is not None else None
        path = self.dir / "config.json"
        path.write_text(json.dumps(config, indent=1))
        return path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_text(self) -> str:
        """What the daemon wrote to stdout and stderr so far (JSON log lines)."""
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise DaemonError(f"mcr daemon exited with status {self.process.returncode}:\n"
                                  f"{self.log_text()[-3000:]}")
            if os.path.exists(self.socket) and self.mcr("ping", check=False).returncode == 0:
                return
            if time.monotonic() >= deadline:
                raise DaemonError(f"mcr daemon did not answer `mcr ping` within {timeout} s:\n"
                                  f"{self.log_text()[-3000:]}")
            time.sleep(PING_INTERVAL)

    def mcr(self, *args: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
        """Run the `mcr` CLI against this daemon (`--socket` is added); raises unless it exits 0 when `check`."""
        result = subprocess.run([sys.executable, "-m", "mcr", *args, "--socket", self.socket],
                                capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise DaemonError(f"mcr {' '.join(args)} exited with {result.returncode}: {result.stderr.strip()}")
        return result

    def client(self, timeout: float = 10):
        """An mcr.api.Client connected to this daemon (close it, or use it in `with`)."""
        from ..api import Client  # the control client is only needed by callers that ask for it

        return Client(self.socket, timeout=timeout)

    def stop(self) -> int:
        """SIGTERM to this daemon's PID (SIGKILL after STOP_TIMEOUT) and its files removed.

        Returns the exit status; raises DaemonError, with the log's tail, the
        first time that status is not 0 (it crashed, or would not stop).
        Safe to call twice.
        """
        killed = False
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT)
                killed = True
        log = self.log_text()
        first = self.dir.exists()
        shutil.rmtree(self.dir, ignore_errors=True)
        status = self.process.returncode
        if first and (killed or status != 0):
            what = f"ignored SIGTERM for {STOP_TIMEOUT} s and was killed" if killed else f"exited with {status}"
            raise DaemonError(f"mcr daemon (pid {self.pid}) {what}:\n{log[-3000:]}")
        return status

    def __enter__(self) -> LabDaemon:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
