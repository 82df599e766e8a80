"""The batch scheduler: the daily market job and the weekly retraining (Korea time).

Every day at 00:05 it runs the market job (the day's market figures, offline and
materialized online). On Monday at 09:00 it publishes a ``retrain-requests`` event; the
trainer consumes those, so a scheduled retrain goes through the same path as one caused
by drift or an operator.
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


def next_daily_run(after: datetime, hour: int = 0, minute: int = 5) -> datetime:
    """The first ``hour:minute`` Seoul time strictly after ``after`` (aware)."""
    local = after.astimezone(SEOUL)
    candidate = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
    return candidate if candidate > local else candidate + timedelta(days=1)


MARKET_DAYS = 7  # each run recomputes the last week: late-reported deals change it


async def _daily_market(settings: Settings) -> None:
    from batch.market import run_market_job

    while True:
        due = next_daily_run(utcnow())
        logger.info("next market job at %s", due.isoformat())
        await asyncio.sleep(max(0.0, (due - utcnow()).total_seconds()))
        try:
            run = await asyncio.to_thread(
                run_market_job, settings, utcnow() - timedelta(days=MARKET_DAYS), utcnow()
            )
            logger.info("market job done: %s", run)
        except Exception:  # one failed day must not stop the schedule; the next run redoes it
            logger.exception("market job failed")


async def _both(settings: Settings) -> None:
    await asyncio.gather(_loop(settings), _daily_market(settings))


def run_scheduler(settings: Settings) -> None:
    asyncio.run(_both(settings))
