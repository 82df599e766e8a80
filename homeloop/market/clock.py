"""Compressed simulated time: a simulated week per wall-clock minute at the default scale."""

from __future__ import annotations

import time
from datetime import datetime, timedelta


class SimClock:
    """Simulated now = start + wall seconds elapsed × ``time_scale`` (+ manual advances)."""

    def __init__(
        self,
        start: datetime,
        time_scale: float,
        *,
        running: bool = True,
        wall_origin: float | None = None,
    ) -> None:
        """``wall_origin``: the Unix time simulated time started, shared with the other
        processes of the simulation (:func:`homeloop.clock.event_clock`); default now."""
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        self.start = start
        self.time_scale = time_scale
        # monotonic seconds, anchored so that `wall_origin` maps to `start`
        self._wall_start = time.monotonic() - (time.time() - wall_origin if wall_origin else 0.0)
        self._running = running
        self._advanced = 0.0

    def advance(self, wall_seconds: float) -> None:
        """Move time as if ``wall_seconds`` had passed (for stepped runs and tests)."""
        self._advanced += wall_seconds

    def now(self) -> datetime:
        wall = self._advanced + (time.monotonic() - self._wall_start if self._running else 0.0)
        return self.start + timedelta(seconds=wall * self.time_scale)
