"""The avatar relay service: the live's chat, gifts and follows, said by the HeyGen avatar.

Registered by ``populate_initial_data`` as the ``avatar`` service (SYNC, so the
avatar says one thing at a time and in priority order; inactive until HeyGen is
configured). Comments are discardable like every chat line: when the avatar
falls behind, the oldest comments are shed by the queue's discard policy
before they reach this class.

- ``CommentEvent`` → the LLM's answer (``LLMClient().chat``) is said;
- ``GiftEvent`` / ``FollowEvent`` → a thank-you from the Config templates.

The words go to the live avatar session shared through Redis, or to a session
the service opens itself and closes after ``avatar_idle_seconds`` of silence
(see :mod:`project.services.avatar.speaker`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from project.integrations.heygen.client import HeyGenError
from project.queue_system.base_service import BaseQueueService, TransientError
from project.services.avatar import replies
from project.services.avatar.configuration import AvatarSettings, load_settings
from project.services.avatar.speaker import AvatarSpeaker

if TYPE_CHECKING:
    from project.queue_system.models import QueueItem
    from project.tiktok_events.models import LiveEvent

HANDLED = ("CommentEvent", "GiftEvent", "FollowEvent")


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
        if live_event.event_type not in HANDLED:
            raise ValueError(f"the avatar service does not handle {live_event.event_type}")
        if self.speaker is None:
            self.on_start()
            if self.speaker is None:
                assert self.settings is not None
                raise ValueError("avatar service not configured: " + "; ".join(self.settings.missing_for_service()))
        text = self.text_for(live_event)
        if not text:
            self.logger.info("nothing to say for this event", extra={"service": "avatar", "event_id": live_event.pk})
            return True
        try:
            session_id = self.speaker.speak(text)
        except HeyGenError as exc:
            if exc.retryable:
                raise TransientError(str(exc), retry_after=15) from None
            raise
        self.logger.info(
            "avatar said %s",
            live_event.event_type,
            extra={"service": "avatar", "event_id": live_event.pk, "session_id": session_id},
        )
        return True

    def text_for(self, live_event: LiveEvent) -> str:
        from project.app_config.config import get_config

        if live_event.event_type == "GiftEvent":
            return replies.gift_thanks(live_event, get_config("avatar_gift_template"))
        if live_event.event_type == "FollowEvent":
            return replies.follow_thanks(live_event, get_config("avatar_follow_template"))
        if not replies.comment_text(live_event):
            return ""
        return replies.spoken(self._ask_llm(replies.comment_prompt(live_event)))

    def _ask_llm(self, prompt: str) -> str:
        from project.integrations.llm.client import LLMClient

        if self._llm is None:
            self._llm = LLMClient()
        try:
            return self._llm.chat(prompt)
        except Exception as exc:
            # LLMError says whether a later try may work (rate limit, outage) or not (bad config).
            if getattr(exc, "permanent", True) is False:
                raise TransientError(f"LLM: {exc}", retry_after=30) from None
            raise
