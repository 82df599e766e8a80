"""``LocalStack``: start every service whose URL is not given, and stop what it started.

Processes are started from the calling thread (a child's parent-death signal follows the
thread that forked it), then health-checked in parallel.
"""

from __future__ import annotations

import logging
import shutil
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


class LocalStack:
    """The services a run needs: given by URL, or started here for the duration."""

    def __init__(self, settings: Settings, workdir: Path) -> None:
        self.settings = settings
        self.workdir = workdir
        self.services: list[Started] = []
        self.timings: dict[str, float] = {}

    @property
    def started(self) -> list[str]:
        return [s.name for s in self.services]

    def start(self) -> Settings:
        """Start what is missing, wait until it answers, return settings with every URL set."""
        logs = self.workdir / "logs"
        began = time.perf_counter()
        try:
            for setting, starter in STARTERS.items():
                if getattr(self.settings, setting) is None:
                    self.services.append(starter(logs))
            with ThreadPoolExecutor(max_workers=max(1, len(self.services))) as pool:
                list(pool.map(self._wait_healthy, self.services))
        except BaseException:
            self.stop()
            raise
        self.timings["start"] = time.perf_counter() - began
        updates = {
            setting: service.url
            for setting, service in zip(
                [k for k in STARTERS if getattr(self.settings, k) is None],
                self.services,
                strict=True,
            )
        }
        if self.services:
            logger.info(
                "local stack up in %.1fs: %s",
                self.timings["start"],
                ", ".join(f"{s.name}={s.url}" for s in self.services),
            )
        return self.settings.model_copy(update=updates)

    def _wait_healthy(self, service: Started) -> None:
        began = time.perf_counter()
        wait_until(
            lambda: service.process.check(service.healthy),
            HEALTH_TIMEOUT_S,
            f"{service.name} on port {service.port}",
            every=0.1,
            fatal=(ServiceExited,),
        )
        self.timings[service.name] = time.perf_counter() - began

    def stop(self) -> None:
        """Stop and remove every service this stack started; idempotent."""
        while self.services:
            service = self.services.pop()
            try:
                service.process.stop()
            finally:
                shutil.rmtree(service.scratch, ignore_errors=True)

    def __enter__(self) -> Settings:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
