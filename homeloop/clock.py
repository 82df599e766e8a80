"""Event time: the wall clock, or a simulation's compressed clock shared by its processes.

Every component that stamps an event asks :func:`event_clock`, so a simulation's
predictions, listings and user events share one time line (the feedback loop's windows
compare them) without any component knowing it is simulated.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from homeloop.settings import Settings

# Where simulated time starts (the market simulator's start, after its calibration window).
SIM_START = datetime(2026, 6, 1, tzinfo=UTC)


def simulated_now(origin: float, time_scale: float, start: datetime = SIM_START) -> datetime:
    return start + timedelta(seconds=(time.time() - origin) * time_scale)


def event_clock(settings: Settings) -> Callable[[], datetime]:
    """Now, in event time, under these settings."""
    origin = settings.sim_started_at
    if origin is None:
        return lambda: datetime.now(UTC)
    scale = settings.time_scale
    return lambda: simulated_now(origin, scale)
