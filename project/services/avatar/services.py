"""The avatar relay service: the live's chat, gifts and follows, said by the HeyGen avatar.

Registered by ``populate_initial_data`` as the ``avatar`` service (SYNC, so the
avatar says one thing at a time and in priority order; inactive until HeyGen is
configured). Comments are discardable like every chat line: when the avatar
falls behind, the oldest comments are shed by the queue's discard policy
before they reach this class.

- ``CommentEvent`` → the LLM's answer is said. It is asked as the LLM service asks
  (:mod:`project.integrations.llm.viewer_replies`): the viewer's words quoted and
  capped, ``max_tokens`` (Config ``avatar_max_tokens``, 120), at most one answer per
  viewer per ``avatar_reply_cooldown_seconds`` (60);
- ``GiftEvent`` / ``FollowEvent`` → a thank-you from the Config templates.

Moderation (docs/moderation.md): a blocked nickname is said as "amigo", a comment
with a blocked word is never sent to the LLM, an answer with one is never said;
the item's ``QueueItem.moderation`` says which.

The words go to the live avatar session shared through Redis, or to a session
the service opens itself and closes after ``avatar_idle_seconds`` of silence
(see :mod:`project.services.avatar.speaker`).

The LLM call and the speech together end within the service's time budget
(less a margin); should the worker still time an item out (and kill its SYNC
child), ``on_timeout`` stops the HeyGen session the item opened, or interrupts
the browser's session it was speaking through, from the record the speaker
left in Redis.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from project.integrations.deadlines import handler_deadline
from project.integrations.heygen.client import HeyGenError, HeyGenService
from project.integrations.llm.prompts import build_prompt
from project.integrations.llm.viewer_replies import ReplyLimits, ask_for_viewer
from project.moderation import check_reply, record, screen
from project.moderation.screening import REPLY_BLOCKED, because
from project.queue_system.base_service import BaseQueueService, TransientError
from project.services.avatar import replies
from project.services.avatar.configuration import AvatarSettings, load_settings
from project.services.avatar.item_sessions import ItemSessions
from project.services.avatar.session_registry import SessionRegistry
from project.services.avatar.speaker import CALL_TIMEOUT, AvatarSpeaker

if TYPE_CHECKING:
    from project.queue_system.models import QueueItem
    from project.tiktok_events.models import LiveEvent

HANDLED = ("CommentEvent", "GiftEvent", "FollowEvent")

logger = logging.getLogger("avatar.service")


class AvatarService(BaseQueueService):
    def __init__(self, service: Any = None, **options: Any) -> None:
        super().__init__(service, **options)
        self.speaker: AvatarSpeaker | None = None
        self.settings: AvatarSettings | None = None
        self._llm = None

    def on_start(self) -> None:
        self.settings = load_settings()
        missing = self.settings.missing_for_service()
        if missing:
            # Items fail with this reason (visible in the admin) rather than the worker dying in a loop.
            self.logger.error("avatar service is not configured: %s", "; ".join(missing), extra={"service": "avatar"})
            return
        self.speaker = AvatarSpeaker(self.settings)

    def on_stop(self) -> None:
        if self.speaker is not None:
            self.speaker.close()
            self.speaker = None

    def process_event(self, live_event: LiveEvent, queue_item: QueueItem) -> bool:
        deadline = handler_deadline(self.time_budget)
        if live_event.event_type not in HANDLED:
            raise ValueError(f"the avatar service does not handle {live_event.event_type}")
        if self.speaker is None:
            self.on_start()
            if self.speaker is None:
                assert self.settings is not None
                raise ValueError("avatar service not configured: " + "; ".join(self.settings.missing_for_service()))
        text = self.text_for(live_event, deadline, queue_item)
        if not text:
            self.logger.info("nothing to say for this event", extra={"service": "avatar", "event_id": live_event.pk})
            return True
        try:
            session_id = self.speaker.speak(
                text, deadline=deadline, item_key=str(queue_item.pk) if queue_item is not None else None
            )
        except HeyGenError as exc:
            if exc.retryable:
                raise TransientError(str(exc), retry_after=15) from None
            raise
        if not session_id:
            self.logger.info("skipped from the control room", extra={"service": "avatar", "event_id": live_event.pk})
            return True
        self.logger.info(
            "avatar said %s",
            live_event.event_type,
            extra={"service": "avatar", "event_id": live_event.pk, "session_id": session_id},
        )
        return True

    def cancel_current(self) -> None:
        """The control room's skip: the avatar stops saying what it says now and the item completes."""
        if self.speaker is not None:
            self.speaker.skip()

    def on_timeout(self, live_event: LiveEvent, queue_item: QueueItem) -> None:
        """Release the HeyGen session the overdue item was speaking through.

        Its own session (opened for it, or earlier by the same speaker) is
        withdrawn from the registry and stopped, so HeyGen stops billing it; a
        browser's session is only interrupted. Works from any process: what to
        stop comes from the speaker's record in Redis, not from this instance.
        """
        log = {"service": "avatar", "event_id": live_event.pk, "queue_item": queue_item.pk}
        items = ItemSessions()
        try:
            record = items.take(str(queue_item.pk))
        finally:
            items.close()
        if record is None:
            self.logger.info("timed-out item left no HeyGen session to release", extra=log)
            return
        log["session_id"] = record.session_id
        if record.own:
            registry = SessionRegistry()
            try:
                registry.withdraw(record.session_id)  # first: nobody may pick a session being stopped
            except Exception as exc:  # its TTL removes it anyway; stopping the billing matters more
                self.logger.warning("could not withdraw the session from the registry: %s", exc, extra=log)
            finally:
                registry.close()
        settings = self.settings or load_settings()
        action = "stopped" if record.own else "interrupted"
        if asyncio.run(_release(settings, record.session_id, stop=record.own)):
            self.logger.warning("timed-out item: its HeyGen session was %s", action, extra=log)
        else:
            self.logger.error("timed-out item: its HeyGen session could not be %s", action, extra=log)

    def text_for(
        self, live_event: LiveEvent, deadline: float | None = None, queue_item: QueueItem | None = None
    ) -> str:
        """What the avatar says for the event ('' for nothing), moderated (docs/moderation.md)."""
        from project.app_config.config import get_config

        log = {"service": "avatar", "event_id": live_event.pk}
        screening = screen(live_event)
        name = screening.spoken_name(replies.NEUTRAL_NAME)
        if live_event.event_type == "GiftEvent":
            record(queue_item, screening.note(), log=log)
            return replies.gift_thanks(live_event, get_config("avatar_gift_template"), user=name)
        if live_event.event_type == "FollowEvent":
            record(queue_item, screening.note(), log=log)
            return replies.follow_thanks(live_event, get_config("avatar_follow_template"), user=name)
        if screening.comment_blocked or not replies.comment_text(live_event):
            record(queue_item, screening.note(), log=log)  # a blocked comment is never sent to the LLM
            return ""
        answer = self._ask_llm(live_event, queue_item, name, deadline, log)
        if not answer:
            record(queue_item, screening.note(), log=log)
            return ""
        text = replies.spoken(answer)
        hit = check_reply(text, screening.settings)
        if hit is not None:
            record(queue_item, screening.note(), because(REPLY_BLOCKED, hit), log=log)
            return ""
        record(queue_item, screening.note(), log=log)
        return text

    def _ask_llm(
        self, live_event: LiveEvent, queue_item: QueueItem | None, name: str, deadline: float | None, log: dict
    ) -> str:
        """The LLM's answer to the comment ('' while the viewer is cooling down), as the LLM service asks it."""
        from project.integrations.llm.client import LLMClient

        if self._llm is None:
            self._llm = LLMClient()
        prompt = build_prompt(live_event, user=name)
        if prompt is None:
            return ""
        try:
            result = ask_for_viewer(
                self._llm,
                prompt,
                service_slug="avatar",
                live_event=live_event,
                queue_item=queue_item,
                limits=ReplyLimits.from_config("avatar"),
                time_budget=self.time_budget,
                deadline=deadline,
                logger=self.logger,
                log=log,
            )
        except Exception as exc:
            # LLMError says whether a later try may work (rate limit, outage) or not (bad config).
            if getattr(exc, "permanent", True) is False:
                raise TransientError(f"LLM: {exc}", retry_after=30) from None
            raise
        return result.text if result is not None else ""


async def _release(settings: AvatarSettings, session_id: str, *, stop: bool) -> bool:
    """Stop (``stop``) or interrupt one session with a client of its own; False when HeyGen refused."""
    async with HeyGenService(
        settings.heygen_api_key, settings.heygen_avatar_id, base_url=settings.heygen_base_url, timeout=CALL_TIMEOUT
    ) as heygen:
        if stop:
            return await heygen.stop_session(session_id)
        try:
            await heygen.interrupt(session_id)
        except HeyGenError as exc:
            # Closed meanwhile: nothing is being said. Anything else: logged, never raised into the worker.
            if not exc.session_unusable:
                logger.warning("could not interrupt HeyGen session %s: %s", session_id, exc)
                return False
        return True
