"""What a service may say or show of an event, and the record of what was filtered.

Every path that speaks or shows viewer text calls :func:`screen` on the event (the
nickname, and the comment of a ``CommentEvent``) and, before speaking a generated
reply, :func:`check_reply`. The filtered item still completes: moderation is the
service doing its job, not a failure. Why it was filtered goes on the item's
``QueueItem.moderation`` (:func:`record`), in the admin and counted per session
on the ``start_event_system`` dashboard (:mod:`project.moderation.counts`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from project.moderation import settings as moderation_settings
from project.moderation.blocklist import Hit
from project.moderation.settings import ModerationSettings
from project.services.event_fields import comment_text

logger = logging.getLogger("moderation")

# The notes' openings, which the dashboard counts (counts.py).
NICKNAME_MASKED = "nickname masked"
COMMENT_BLOCKED = "comment blocked"
COMMENT_MASKED = "comment masked"
COMMENT_HIDDEN = "comment hidden"
REPLY_BLOCKED = "reply blocked"
NOTE_MAX_LENGTH = 255


def because(what: str, hit: Hit) -> str:
    return f"{what} (matched {hit.entry!r})"


@dataclass(frozen=True)
class Screening:
    """The verdict on one event's viewer text."""

    settings: ModerationSettings
    name: str  # the nickname, else the @handle: the name a service would use
    comment: str
    name_hit: Hit | None = None
    comment_hit: Hit | None = None

    @property
    def comment_blocked(self) -> bool:
        return self.comment_hit is not None

    def spoken_name(self, neutral: str) -> str:
        """The name to say or send to an LLM: ``neutral`` (or Config moderation_neutral_name) when blocked,
        ``neutral`` also for a viewer without a name."""
        if self.name_hit is None:
            return self.name or neutral
        return self.settings.neutral_name or neutral

    def shown_name(self) -> str:
        """The name to show: masked where it matched ("P******_69")."""
        if self.name_hit is None:
            return self.name
        return self.settings.blocklist.mask(self.name)

    def shown_comment(self) -> str | None:
        """The comment to show: as written, masked, or None (Config moderation_comments = hide)."""
        if self.comment_hit is None:
            return self.comment
        if self.settings.comments == "hide":
            return None
        return self.settings.blocklist.mask(self.comment)

    def note(self, comment_outcome: str | None = COMMENT_BLOCKED, *, name: bool = True) -> str:
        """Why the item was filtered, for QueueItem.moderation ('' when it was not).

        ``comment_outcome`` None / ``name`` False: the path did not use the comment / the name.
        """
        parts = []
        if name and self.name_hit is not None:
            parts.append(because(NICKNAME_MASKED, self.name_hit))
        if comment_outcome is not None and self.comment_hit is not None:
            parts.append(because(comment_outcome, self.comment_hit))
        return "; ".join(parts)


def screen(live_event: Any, settings: ModerationSettings | None = None) -> Screening:
    """Check the event's nickname and (for a comment) its text against the blocklist."""
    settings = settings or moderation_settings.current()
    name = (getattr(live_event, "user_nickname", "") or getattr(live_event, "user_unique_id", "") or "").strip()
    comment = comment_text(live_event).strip() if live_event.event_type == "CommentEvent" else ""
    if not settings.enabled:
        return Screening(settings, name, comment)
    blocklist = settings.blocklist
    return Screening(settings, name, comment, blocklist.find(name), blocklist.find(comment))


def check_reply(text: str, settings: ModerationSettings | None = None) -> Hit | None:
    """The match that keeps a generated reply off the air, or None when it may be spoken."""
    settings = settings or moderation_settings.current()
    if not settings.enabled:
        return None
    return settings.blocklist.find(text)


def record(queue_item: Any, *notes: str, log: dict[str, Any] | None = None) -> None:
    """Write why the item was filtered on its QueueItem (the admin shows it), and log it."""
    note = "; ".join(n for n in notes if n)[:NOTE_MAX_LENGTH]
    if not note:
        return
    logger.info("moderated: %s", note, extra=log or {})
    if queue_item is None or getattr(queue_item, "pk", None) is None:
        return  # a direct call of the service, outside the queue
    from project.queue_system.models import QueueItem

    QueueItem.objects.filter(pk=queue_item.pk).update(moderation=note)
    queue_item.moderation = note
