"""Overlays (ASYNC): one card per event on the OBS page, held for its display time.

Each event publishes one card to the Redis stream the /overlays/ page listens to, then
keeps its worker thread for the card's display time. The pool size
(``Service.concurrency``, 8 by default) is therefore the number of cards on screen at
once: in a flood the rest wait in the priority queue — gifts first — instead of
covering the stream, and discardable likes and comments are shed by the queue.

While Redis is away the card waits in its thread (see :mod:`project.redis_outage`)
and is published within seconds of Redis' return, with its whole display time.

Moderation (docs/moderation.md): a blocked nickname or comment is masked on the
card ("f***"); with Config ``moderation_comments`` = hide a blocked comment gets no card.
"""

from __future__ import annotations

import threading
from typing import Any

from project.moderation import record, screen
from project.moderation.screening import COMMENT_HIDDEN, COMMENT_MASKED
from project.queue_system.base_service import BaseQueueService, TransientError
from project.redis_outage import RedisOutage, call_through_outage, plan_for
from project.services.overlays.cards import build_card, display_seconds, display_times
from project.services.overlays.stream import publish_card

# Seconds of the time budget kept for the work after the push, beside the display time.
BUDGET_MARGIN = 10.0


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
        log = {"service": self._slug, "event_id": live_event.pk, "event_type": live_event.event_type}
        screening = screen(live_event)
        card = build_card(live_event, seconds, screening)
        record(queue_item, screening.note(COMMENT_HIDDEN if card is None else COMMENT_MASKED), log=log)
        if card is None:
            return True  # hidden by moderation: no card, and no slot held for it
        plan = plan_for(queue_item, time_budget=self.time_budget, reserve=seconds + BUDGET_MARGIN)
        try:
            entry_id = call_through_outage(
                lambda: publish_card(card),
                what="overlay card",
                wait_seconds=plan.wait_seconds,
                stop=self._stopping,
                log_extra=log,
            )
        except RedisOutage as exc:
            # Redis restarting must not cost a gift its card: the queue tries again.
            raise TransientError(str(exc), retry_after=plan.retry_after) from None
        self.logger.info(
            "card shown",
            extra={
                **log,
                "card": card["type"],
                "stream_id": entry_id,
                "display_seconds": seconds,
            },
        )
        self._stopping.wait(seconds)
        return True
