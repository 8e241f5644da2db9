"""LLMService: answers comments, gifts and follows with generated text.

Registered by ``populate_initial_data`` as the inactive service ``llm`` (SYNC:
spoken replies must not talk over each other). Each reply is stored as an
``LLMReply`` next to its event and shown in the admin; with Config
``llm_speak_replies`` = true it is also spoken through ElevenLabs and the
worker waits for the end of playback.

Behaviour settings (Config, empty = default): ``llm_reply_cooldown_seconds``
(60; at most one reply per viewer per interval, 0 = no limit),
``llm_max_tokens`` (120), ``llm_max_reply_characters`` (300; what TTS is paid
for), ``llm_speak_replies`` (false), plus the prompt templates of
:mod:`project.integrations.llm.prompts`.

Retries are safe: a stored reply is never generated twice — a retry after a
TTS failure only speaks it.

Moderation (docs/moderation.md): a comment with a blocked word is never sent to
the model; a blocked nickname is sent as "espectador"; a reply with a blocked
word is stored with status ``blocked`` and never spoken. The item's
``QueueItem.moderation`` says which.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from project.integrations.config_values import config_bool, config_int
from project.integrations.deadlines import handler_deadline
from project.integrations.elevenlabs.client import ElevenLabsClient
from project.integrations.elevenlabs.errors import ElevenLabsError
from project.integrations.errors import IntegrationError
from project.integrations.llm.client import ChatResult, LLMClient
from project.integrations.llm.cooldown import CooldownUnavailable
from project.integrations.llm.models import LLMReply
from project.integrations.llm.prompts import build_prompt, viewer_name
from project.integrations.llm.viewer_replies import ReplyLimits, ask_for_viewer, viewer_key
from project.moderation import check_reply, record, screen
from project.moderation.screening import REPLY_BLOCKED, because
from project.queue_system.base_service import BaseQueueService

if TYPE_CHECKING:
    from project.queue_system.models import QueueItem
    from project.tiktok_events.models import LiveEvent


# Said to the model instead of a blocked nickname (Config moderation_neutral_name overrides it).
NEUTRAL_NAME = "espectador"


def trim_reply(text: str, limit: int) -> str:
    """One line, at most ``limit`` characters, cut after a sentence or a word rather than mid-word."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    cut = flat[:limit]
    sentence_end = max(cut.rfind(mark) for mark in ".!?")
    if sentence_end >= limit // 2:
        return cut[: sentence_end + 1]
    return cut.rsplit(" ", 1)[0] if " " in cut else cut


class LLMService(BaseQueueService):
    @cached_property
    def llm(self) -> LLMClient:
        return LLMClient()

    @cached_property
    def tts(self) -> ElevenLabsClient:
        return ElevenLabsClient()

    @property
    def slug(self) -> str:
        return self.service.slug if self.service is not None else type(self).__name__.lower()

    def process_event(self, live_event: LiveEvent, queue_item: QueueItem) -> bool:
        # The LLM call, the speech and the wait for the player end by it: the worker never has to kill us.
        deadline = handler_deadline(self.time_budget)
        log = {"service": self.slug, "event_id": live_event.pk, "event_type": live_event.event_type}
        reply = LLMReply.objects.filter(
            live_event=live_event, service=self.service, status=LLMReply.Status.REPLIED
        ).first()
        if reply is None:
            reply = self._generate(live_event, queue_item, log, deadline)
            if reply is None:
                return True
        if config_bool("llm_speak_replies", False) and not reply.spoken:
            self._speak(reply, live_event, log, deadline)
        return True

    def _generate(
        self, live_event: LiveEvent, queue_item: QueueItem, log: dict[str, Any], deadline: float | None = None
    ) -> LLMReply | None:
        screening = screen(live_event)
        if screening.comment_blocked:
            # Never sent to the model: what it would answer could only repeat it.
            record(queue_item, screening.note(), log=log)
            return None
        prompt = build_prompt(live_event, user=screening.spoken_name(NEUTRAL_NAME))
        if prompt is None:
            self.logger.info("nothing to answer for this event", extra=log)
            return None
        viewer = viewer_key(live_event)
        try:
            result = ask_for_viewer(
                self.llm,
                prompt,
                service_slug=self.slug,
                live_event=live_event,
                queue_item=queue_item,
                limits=ReplyLimits.from_config("llm"),
                time_budget=self.time_budget,
                deadline=deadline,
                logger=self.logger,
                log=log,
            )
        except CooldownUnavailable:
            raise  # Redis away: nothing was asked, nothing to store; the item is retried
        except IntegrationError as exc:
            self._store(live_event, viewer, prompt, LLMReply.Status.FAILED, error=str(exc))
            self.logger.warning(
                "LLM reply failed (%s): %s", "permanent" if exc.permanent else "will retry", exc, extra=log
            )
            raise
        if result is None:
            record(queue_item, screening.note(), log=log)
            return None
        text = trim_reply(result.text, config_int("llm_max_reply_characters", 300, minimum=20))
        hit = check_reply(text, screening.settings)
        if hit is not None:
            # Kept for the admin to read, never spoken.
            self._store(live_event, viewer, prompt, LLMReply.Status.BLOCKED, result=result, text=text)
            record(queue_item, screening.note(), because(REPLY_BLOCKED, hit), log=log)
            return None
        reply = self._store(live_event, viewer, prompt, LLMReply.Status.REPLIED, result=result, text=text)
        record(queue_item, screening.note(), log=log)
        self.logger.info(
            "LLM replied to %s", viewer, extra={**log, "tokens": result.total_tokens, "latency_ms": result.latency_ms}
        )
        return reply

    def _store(
        self,
        live_event: LiveEvent,
        viewer_id: str,
        prompt: str,
        status: str,
        *,
        result: ChatResult | None = None,
        text: str = "",
        error: str = "",
    ) -> LLMReply:
        fields: dict[str, Any] = {
            "session_id": live_event.session_id,
            "event_type": live_event.event_type,
            "viewer": viewer_name(live_event),
            "viewer_id": viewer_id,
            "prompt": prompt,
            "status": status,
            "reply": text,
            "error": error,
        }
        if result is not None:
            fields.update(
                model=result.model,
                prompt_tokens=result.prompt_tokens,
                completion_tokens=result.completion_tokens,
                total_tokens=result.total_tokens,
                latency_ms=result.latency_ms,
            )
        reply, _ = LLMReply.objects.update_or_create(live_event=live_event, service=self.service, defaults=fields)
        return reply

    def _speak(
        self, reply: LLMReply, live_event: LiveEvent, log: dict[str, Any], deadline: float | None = None
    ) -> None:
        try:
            path = self.tts.text_to_speech_and_save(
                reply.reply, play_audio=True, wait=True, session=live_event.session_id, deadline=deadline
            )
        except ElevenLabsError as exc:
            reply.tts_error = str(exc)
            reply.save(update_fields=["tts_error", "updated_at"])
            if not exc.permanent:
                raise  # retried by the queue; the stored reply is spoken then, not regenerated
            self.logger.warning("reply stored but not spoken: %s", exc, extra=log)
            return
        if path is None:
            reply.tts_error = "not spoken: the session's ElevenLabs character cap is reached"
            reply.save(update_fields=["tts_error", "updated_at"])
            return
        reply.spoken, reply.audio_file, reply.tts_error = True, path.name, ""
        reply.save(update_fields=["spoken", "audio_file", "tts_error", "updated_at"])
