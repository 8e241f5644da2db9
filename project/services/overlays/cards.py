"""What the overlay shows for an event: one card, and how long it stays on screen."""

from __future__ import annotations

import json
import logging
from typing import Any

from project.app_config.config import get_config
from project.moderation import Screening, screen
from project.services.event_fields import gift_fields, like_count, nickname

logger = logging.getLogger("services.overlays")

# Seconds a card stays on screen (and holds one slot of the ASYNC pool, so a flood of
# cards waits in the queue, gifts first, instead of covering the stream). Overridden per
# type by the Config key below or the service option ``display_times``.
DEFAULT_DISPLAY_SECONDS: dict[str, float] = {
    "GiftEvent": 8,
    "SubscribeEvent": 8,
    "FollowEvent": 6,
    "ShareEvent": 5,
    "CommentEvent": 6,
    "LikeEvent": 3,
    "JoinEvent": 3,
}
FALLBACK_DISPLAY_SECONDS = 4.0
DISPLAY_TIMES_CONFIG_KEY = "overlays_display_times"

CARD_TYPES = {
    "GiftEvent": "gift",
    "SubscribeEvent": "subscribe",
    "FollowEvent": "follow",
    "ShareEvent": "share",
    "CommentEvent": "comment",
    "LikeEvent": "like",
    "JoinEvent": "join",
}

_reported_bad_values: set[str] = set()


class DisplayTimesError(ValueError):
    pass


def parse_display_times(raw: str | dict[str, Any]) -> dict[str, float]:
    """``{"GiftEvent": 10, "LikeEvent": 2.5}`` (seconds), as JSON text or a dict."""
    try:
        data = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError as exc:
        raise DisplayTimesError(f"not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise DisplayTimesError('expected a JSON object like {"GiftEvent": 10, "LikeEvent": 3}')
    times: dict[str, float] = {}
    for event_type, seconds in data.items():
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0 < seconds <= 600:
            raise DisplayTimesError(f"{event_type}: {seconds!r} is not a number of seconds between 0 and 600")
        times[str(event_type)] = float(seconds)
    return times


def display_times(options: dict[str, Any] | None = None) -> dict[str, float]:
    """Defaults, then the Config key ``overlays_display_times``, then the service option."""
    times = dict(DEFAULT_DISPLAY_SECONDS)
    raw = get_config(DISPLAY_TIMES_CONFIG_KEY)
    if raw:
        try:
            times.update(parse_display_times(raw))
        except DisplayTimesError as exc:
            # A typo in the admin must not stop the overlay: say it once, keep the defaults.
            if raw not in _reported_bad_values:
                _reported_bad_values.add(raw)
                logger.error("Config %s ignored: %s", DISPLAY_TIMES_CONFIG_KEY, exc, extra={"service": "overlays"})
    if options and options.get("display_times"):
        times.update(parse_display_times(options["display_times"]))
    return times


def display_seconds(event_type: str, times: dict[str, float]) -> float:
    return times.get(event_type, FALLBACK_DISPLAY_SECONDS)


def build_card(live_event: Any, duration_seconds: float, screening: Screening | None = None) -> dict[str, Any] | None:
    """The card for one event, or None when moderation hides it (a blocked comment with
    Config moderation_comments = hide). A blocked nickname or comment is masked ("f***").
    Text is plain: the page inserts it as text, never as HTML."""
    screening = screening or screen(live_event)
    event_type = live_event.event_type
    card_type = CARD_TYPES.get(event_type, "other")
    shown_comment = screening.shown_comment() if card_type == "comment" else ""
    if shown_comment is None:
        return None
    card: dict[str, Any] = {
        "id": f"event-{live_event.pk}",
        "event_id": live_event.pk,
        "type": card_type,
        "event_type": event_type,
        "nickname": screening.shown_name() if screening.name_hit else nickname(live_event),
        "duration_ms": max(1, round(duration_seconds * 1000)),
    }
    if card_type == "gift":
        gift = gift_fields(live_event)
        card.update(gift=gift["name"], count=gift["count"], image=gift["image"])
        card["text"] = f"sent {gift['name']} ×{gift['count']}" if gift["count"] > 1 else f"sent {gift['name']}"
    elif card_type == "comment":
        card["text"] = shown_comment
    elif card_type == "like":
        count = like_count(live_event)
        card["count"] = count
        card["text"] = "sent a like" if count == 1 else f"sent {count} likes"
    else:
        card["text"] = {
            "follow": "followed the live",
            "subscribe": "subscribed!",
            "share": "shared the live",
            "join": "joined",
        }.get(card_type, event_type.removesuffix("Event"))
    return card
