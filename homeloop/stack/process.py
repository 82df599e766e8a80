"""A child process we own: logs to a file, dies with its parent, stops cleanly."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

logger = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1


def _die_with_parent(stop_signal: signal.Signals) -> Callable[[], None]:
    """Linux: signal the child when the process that started it dies, even by SIGKILL."""

    def arrange() -> None:
        with contextlib.suppress(OSError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, stop_signal)

    return arrange


class ServiceExited(RuntimeError):
    """The service's process ended while we waited for it to answer."""


class ServiceProcess:
    """One child process of the local stack."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        user: str | None = None,
        cwd: Path | None = None,
        stop_signal: signal.Signals = signal.SIGTERM,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.stop_signal = stop_signal
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:
            self.popen = subprocess.Popen(
                list(argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent(stop_signal),
                user=user,
                cwd=cwd,
                env=env,
            )
        logger.info("started %s pid=%d", name, self.popen.pid)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def check(self, healthy: Callable[[], bool]) -> bool:
        """``healthy()``, or an error with the log tail if the process has exited."""
        if not self.alive():
            raise ServiceExited(
                f"{self.name} exited with {self.popen.returncode} while starting; "
                f"{self.log_path}:\n{self.log_tail()}"
            )
        return healthy()

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, wait, then SIGKILL. Safe to call twice."""
        if self.popen.poll() is not None:
            return
        self.popen.send_signal(self.stop_signal)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            logger.warning("%s did not stop in %.0fs; killing pid=%d", self.name, timeout, self.pid)
            self.popen.kill()
            self.popen.wait()
        logger.info("stopped %s pid=%d", self.name, self.pid)


def is_root() -> bool:
    return os.geteuid() == 0


def terminate_all(children: list[subprocess.Popen[bytes]], timeout: float = 15.0) -> None:
    """Ask every child to stop at once, then wait for each (killing what does not stop)."""
    for child in children:
        child.terminate()
    for child in children:
        try:
            child.wait(timeout)
        except subprocess.TimeoutExpired:
            child.kill()
