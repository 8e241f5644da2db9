"""Overlays (ASYNC): one card per event on the OBS page, held for its display time.

Each event publishes one card to the Redis stream the /overlays/ page listens to, then
keeps its worker thread for the card's display time. The pool size
(``Service.concurrency``, 8 by default) is therefore the number of cards on screen at
once: in a flood the rest wait in the priority queue — gifts first — instead of
covering the stream, and discardable likes and comments are shed by the queue.
"""

from __future__ import annotations

import threading
from typing import Any

import redis

from project.queue_system.base_service import BaseQueueService, TransientError
from project.services.overlays.cards import build_card, display_seconds, display_times
from project.services.overlays.stream import publish_card


class OverlaysService(BaseQueueService):
    def __init__(self, service: Any = None, **options: Any) -> None:
        super().__init__(service, **options)
        self._stopping = threading.Event()

    def on_start(self) -> None:
        self._stopping.clear()
        self.logger.info("overlays ready", extra={"service": self._slug, "display_times": display_times(self.options)})

    def on_stop(self) -> None:
        # Wakes every thread holding a card, so a shutdown does not wait out display times.
        self._stopping.set()

    @property
    def _slug(self) -> str:
        return self.service.slug if self.service is not None else "overlays"

    def process_event(self, live_event: Any, queue_item: Any) -> bool:
        seconds = display_seconds(live_event.event_type, display_times(self.options))
        card = build_card(live_event, seconds)
        try:
            entry_id = publish_card(card)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            # Redis restarting must not cost a gift its card: the queue retries the event.
            raise TransientError(f"Redis unavailable for the overlay push: {exc}", retry_after=2) from exc
        self.logger.info(
            "card shown",
            extra={
                "service": self._slug,
                "event_id": live_event.pk,
                "event_type": live_event.event_type,
                "card": card["type"],
                "stream_id": entry_id,
                "display_seconds": seconds,
            },
        )
        self._stopping.wait(seconds)
        return True
