"""Every replica follows the registry: when ``model-events`` says an alias moved, it loads
the new version; a poll of the aliases catches an event it missed (the broker was down,
the replica was starting)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from pydantic import ValidationError

from homeloop.events import ModelEvent
from homeloop.model_store import alias_version
from homeloop.registry import CHALLENGER, CHAMPION
from homeloop.settings import Settings

logger = logging.getLogger(__name__)

SLOTS = (CHAMPION, CHALLENGER)
MOVES = {"promoted", "staged", "switched", "rolled_back"}


def alias_moved(event: ModelEvent, model_name: str) -> str | None:
    """The slot to reload for an event, if any (pure)."""
    if event.model_name != model_name or event.alias not in SLOTS or event.action not in MOVES:
        return None
    return event.alias


class RegistryFollower:
    def __init__(
        self,
        settings: Settings,
        reload: Callable[[str], Awaitable[object]],
        loaded_version: Callable[[str], str | None],
    ) -> None:
        self._settings = settings
        self._reload = reload
        self._loaded = loaded_version

    async def run(self) -> None:
        await asyncio.gather(self._follow_events(), self._poll())

    async def _apply(self, slot: str) -> None:
        try:
            await self._reload(slot)
        except Exception as exc:  # the old model keeps serving; the next event or poll retries
            logger.error("reloading %s failed: %s", slot, exc)

    async def _follow_events(self) -> None:
        from aiokafka import AIOKafkaConsumer
        from aiokafka.errors import KafkaError

        delay = 1.0
        while True:
            consumer = AIOKafkaConsumer(
                self._settings.topic("model-events"),
                bootstrap_servers=self._settings.require().kafka_bootstrap_servers,
                auto_offset_reset="latest",  # no group: every replica sees every event
            )
            try:
                await consumer.start()
                delay = 1.0
                async for message in consumer:
                    try:
                        event = ModelEvent.model_validate_json(message.value or b"")
                    except (ValidationError, ValueError):
                        continue  # not ours to judge; the producer's dead letters say why
                    slot = alias_moved(event, self._settings.model_name)
                    if slot is not None:
                        logger.info("model-events: %s moved to v%s", slot, event.version)
                        await self._apply(slot)
            except KafkaError as exc:
                logger.warning("model-events consumer: %s; retrying in %.0fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
            finally:
                with contextlib.suppress(Exception):
                    await consumer.stop()

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self._settings.serving_registry_poll_s)
            for slot in SLOTS:
                try:
                    current = await asyncio.to_thread(alias_version, self._settings, slot)
                except Exception as exc:
                    logger.warning("registry poll failed: %s", exc)
                    break
                if current is not None and current != self._loaded(slot):
                    logger.info("registry poll: %s is v%s, loading it", slot, current)
                    await self._apply(slot)
