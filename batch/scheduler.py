"""The batch scheduler: the design's weekly retraining (Monday 09:00, Korea time).

It only publishes a ``retrain-requests`` event; the trainer consumes those, so a
scheduled retrain goes through the same path as one caused by drift or an operator.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from homeloop.events import RetrainRequest, utcnow
from homeloop.heartbeat import beat
from homeloop.publish import publish_async
from homeloop.settings import Settings

logger = logging.getLogger(__name__)

SEOUL = ZoneInfo("Asia/Seoul")
WEEKDAY = 0  # Monday
HOUR = 9


def next_weekly_run(after: datetime, weekday: int = WEEKDAY, hour: int = HOUR) -> datetime:
    """The first ``weekday`` at ``hour``:00 Seoul time strictly after ``after`` (aware)."""
    local = after.astimezone(SEOUL)
    candidate = local.replace(hour=hour, minute=0, second=0, microsecond=0)
    candidate += timedelta(days=(weekday - local.weekday()) % 7)
    if candidate <= local:
        candidate += timedelta(days=7)
    return candidate


HEARTBEAT_S = 60.0


async def _loop(settings: Settings) -> None:
    while True:
        due = next_weekly_run(utcnow())
        logger.info("next scheduled retrain request at %s", due.isoformat())
        while (remaining := (due - utcnow()).total_seconds()) > 0:
            beat(settings, "scheduler")
            await asyncio.sleep(min(remaining, HEARTBEAT_S))
        request = RetrainRequest(
            model_name=settings.model_name,
            reason="schedule",
            evidence={"schedule": "weekly Monday 09:00 Asia/Seoul", "due": due.isoformat()},
            requested_by="scheduler",
        )
        await publish_async(settings, request)
        logger.info("published retrain request event_id=%s", request.event_id)


def run_scheduler(settings: Settings) -> None:
    asyncio.run(_loop(settings))
