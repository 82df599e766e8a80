"""``LocalStack``: start every service whose URL is not given, and stop what it started.

Processes are started from the calling thread, because a child's parent-death signal follows
the *thread* that forked it: started from a pool thread, the services would die with that
thread. So start (and keep) a stack from a long-lived thread, normally the main one. Only
PostgreSQL's ``initdb`` blocks while starting (about a second); the broker and Redis boot and
are health-checked meanwhile, each check in its own thread.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType

from homeloop.settings import Settings
from homeloop.stack.ports import wait_until
from homeloop.stack.process import ServiceExited
from homeloop.stack.services import Started, start_broker, start_postgres, start_redis

logger = logging.getLogger(__name__)

HEALTH_TIMEOUT_S = 60.0

# Setting name → how to start that service locally.
STARTERS: dict[str, Callable[[Path], Started]] = {
    "kafka_bootstrap_servers": start_broker,
    "redis_url": start_redis,
    "database_url": start_postgres,
}

# Scratch folders (``tempfile.mkdtemp(prefix=...)`` in services) and the file naming their owner.
SCRATCH_PREFIXES = ("homeloop-broker-", "homeloop-redis-", "homeloop-pg-")
OWNER_FILE = "homeloop-owner.pid"
UNOWNED_STALE_S = 3600.0


class LocalStack:
    """The services a run needs: given by URL, or started here for the duration."""

    def __init__(self, settings: Settings, workdir: Path) -> None:
        self.settings = settings
        self.workdir = workdir
        self.services: list[Started] = []
        # Seconds: per service from launch to healthy, and "start"/"stop" for the whole stack.
        self.timings: dict[str, float] = {}

    @property
    def started(self) -> list[str]:
        """Names of the services this stack started and has not stopped yet."""
        return [s.name for s in self.services]

    def start(self) -> Settings:
        """Start what is missing, wait until it answers, return settings with every URL set."""
        sweep_orphaned_scratch()
        logs = self.workdir / "logs"
        began = time.perf_counter()
        updates: dict[str, str] = {}
        atexit.register(self.stop)  # a normal exit without stop() still removes the data
        # Health checks start as soon as their service is launched, while the next one is
        # being set up. No ``with``: on Ctrl-C it would join checks still polling a hung
        # service; instead stop() below kills the processes and the checks end with
        # ServiceExited at once.
        pool = ThreadPoolExecutor(max_workers=len(STARTERS), thread_name_prefix="stack-health")
        try:
            waits = []
            for setting, starter in STARTERS.items():
                if getattr(self.settings, setting) is not None:
                    continue
                launched = time.perf_counter()
                service = _launch(starter, logs)
                self.services.append(service)
                updates[setting] = service.url
                waits.append(pool.submit(self._wait_healthy, service, launched))
            for wait in waits:
                wait.result()
        except BaseException:
            self.stop()
            raise
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        self.timings["start"] = time.perf_counter() - began
        if self.services:
            logger.info(
                "local stack up seconds=%.2f %s",
                self.timings["start"],
                " ".join(f"{s.name}={s.url}" for s in self.services),
            )
        return self.settings.model_copy(update=updates)

    def _wait_healthy(self, service: Started, launched: float) -> None:
        try:
            wait_until(
                lambda: service.process.check(service.healthy),
                HEALTH_TIMEOUT_S,
                f"{service.name} on port {service.port}",
                every=0.1,
                fatal=(ServiceExited,),
            )
        except TimeoutError as exc:
            raise TimeoutError(
                f"{exc}; {service.process.log_path}:\n{service.process.log_tail()}"
            ) from exc
        self.timings[service.name] = time.perf_counter() - launched
        logger.info(
            "healthy %s port=%d pid=%d seconds=%.2f",
            service.name,
            service.port,
            service.process.pid,
            self.timings[service.name],
        )

    def stop(self) -> None:
        """Stop and remove every service this stack started; idempotent, safe to call again."""
        began = time.perf_counter()
        stopped = bool(self.services)
        while self.services:
            service = self.services.pop()
            try:
                service.process.stop()
            finally:
                shutil.rmtree(service.scratch, ignore_errors=True)
        atexit.unregister(self.stop)
        if stopped:
            self.timings["stop"] = time.perf_counter() - began
            logger.info("local stack down seconds=%.2f", self.timings["stop"])

    def __enter__(self) -> Settings:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _launch(starter: Callable[[Path], Started], logs: Path) -> Started:
    """Run one starter; its setup commands' output goes into the error if one fails."""
    try:
        service = starter(logs)
    except subprocess.CalledProcessError as exc:
        output = b"\n".join(o for o in (exc.stdout, exc.stderr) if isinstance(o, bytes))
        raise RuntimeError(
            f"{exc.cmd[0]} exited with {exc.returncode}:\n{output.decode(errors='replace')}"
        ) from exc
    (service.scratch / OWNER_FILE).write_text(str(os.getpid()))
    return service


def sweep_orphaned_scratch(root: Path | None = None) -> list[Path]:
    """Remove scratch data left by stacks whose process was killed (no chance to clean up).

    A folder without an owner file belongs to a stack starting right now, or to a start that
    failed half-way; only the latter gets old, so such folders go after ``UNOWNED_STALE_S``.
    """
    removed = []
    for folder in Path(root or tempfile.gettempdir()).glob("homeloop-*"):
        if not folder.name.startswith(SCRATCH_PREFIXES):
            continue
        if _orphaned(folder):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    if removed:
        logger.info("removed orphaned scratch folders=%d", len(removed))
    return removed


def _orphaned(folder: Path) -> bool:
    try:
        owner = int((folder / OWNER_FILE).read_text())
    except (OSError, ValueError):
        try:
            return time.time() - folder.stat().st_mtime > UNOWNED_STALE_S
        except OSError:  # another stack swept it first
            return False
    return not _pid_alive(owner)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
