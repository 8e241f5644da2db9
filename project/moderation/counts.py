"""Per-session moderation counts, for the ``start_event_system`` dashboard.

A blocked comment or nickname is counted once per event, however many services
filtered it; a dropped reply once per item (each reply path generates its own).
"""

from __future__ import annotations

from dataclasses import dataclass

from project.moderation.screening import (
    COMMENT_BLOCKED,
    COMMENT_HIDDEN,
    COMMENT_MASKED,
    NICKNAME_MASKED,
    REPLY_BLOCKED,
)


@dataclass(frozen=True)
class ModerationCounts:
    comments: int = 0  # comments blocked (not spoken, not sent to an LLM; masked or hidden on screen)
    nicknames: int = 0  # nicknames masked
    replies: int = 0  # LLM / avatar replies dropped

    @property
    def total(self) -> int:
        return self.comments + self.nicknames + self.replies

    @classmethod
    def for_session(cls, session_id: int) -> ModerationCounts:
        """One query on the moderated items (a partial index holds only those)."""
        from project.queue_system.models import QueueItem

        rows = (
            QueueItem.objects.filter(live_event__session_id=session_id)
            .exclude(moderation="")
            .values_list("live_event_id", "moderation")
        )
        comments: set[int] = set()
        nicknames: set[int] = set()
        replies = 0
        for event_id, note in rows:
            if any(what in note for what in (COMMENT_BLOCKED, COMMENT_MASKED, COMMENT_HIDDEN)):
                comments.add(event_id)
            if NICKNAME_MASKED in note:
                nicknames.add(event_id)
            replies += REPLY_BLOCKED in note
        return cls(comments=len(comments), nicknames=len(nicknames), replies=replies)
