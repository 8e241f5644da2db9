"""What the avatar says for a TikTok event: an LLM answer to a comment, thanks for a gift or a follow.

Templates are Config values (``avatar_gift_template``, ``avatar_follow_template``)
with ``{user}``, ``{gift}`` and ``{count}`` placeholders; the defaults are in
Spanish like the streamer's live. A comment's question to the LLM is the LLM
service's prompt (``prompts.build_prompt``: the viewer's words quoted and capped).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from project.tiktok_events.models import LiveEvent

DEFAULT_GIFT_TEMPLATE = "¡Muchas gracias {user} por {count} {gift}!"
DEFAULT_FOLLOW_TEMPLATE = "¡Gracias por seguirme, {user}!"
# Said for a viewer without a name, or with a blocked one (Config moderation_neutral_name overrides the latter).
NEUTRAL_NAME = "amigo"
# An LLM answer longer than this is cut at a sentence end: the avatar reads it out loud.
MAX_SPOKEN_CHARS = 600


def user_name(event: LiveEvent) -> str:
    return event.user_nickname or event.user_unique_id or NEUTRAL_NAME


def comment_text(event: LiveEvent) -> str:
    data = event.event_data or {}
    value = data.get("comment") or data.get("text")
    if isinstance(value, dict):
        value = value.get("text") or value.get("content")
    return str(value or "").strip()


def gift_thanks(event: LiveEvent, template: str | None = None, user: str | None = None) -> str:
    """``user``: the name to say instead of the event's (moderation's neutral name)."""
    gift = (event.event_data or {}).get("gift") or {}
    name = gift.get("name") if isinstance(gift, dict) else str(gift)
    count = event.repeat_count or 1
    return _fill(
        template or DEFAULT_GIFT_TEMPLATE, user=user or user_name(event), gift=name or "el regalo", count=count
    )


def follow_thanks(event: LiveEvent, template: str | None = None, user: str | None = None) -> str:
    return _fill(template or DEFAULT_FOLLOW_TEMPLATE, user=user or user_name(event), gift="", count=1)


def spoken(text: str) -> str:
    text = " ".join(text.split())
    if len(text) <= MAX_SPOKEN_CHARS:
        return text
    cut = text[:MAX_SPOKEN_CHARS]
    end = max(cut.rfind(". "), cut.rfind("! "), cut.rfind("? "))
    return cut[: end + 1] if end > MAX_SPOKEN_CHARS // 2 else cut.rstrip() + "…"


def _fill(template: str, **values: object) -> str:
    try:
        return template.format(**values)
    except (KeyError, IndexError, ValueError):
        # A typo in the admin's template must not silence the thanks: fall back to a plain line.
        return f"¡Gracias {values['user']}!"
