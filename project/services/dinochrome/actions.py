"""The DinoChrome action map: what each event does to the game and the voice.

This is the one place that says it (a test keeps the table in docs/services/dinochrome.md equal to these
defaults). Keys are an event type, or ``GiftEvent:<gift name>`` for one gift (matched
without regard to case); a specific gift key wins over ``GiftEvent``. Values are lists
of actions run in order:

- ``restart``: start a new run of the game
- ``jump`` / ``duck``: make the dino jump or duck
- ``say:<text>``: speak the text through ElevenLabs and wait until it is spoken;
  ``{nickname}``, ``{gift}``, ``{count}`` and ``{comment}`` are filled from the event

Moderation (docs/moderation.md): a blocked nickname is said as "friend" (Config
``moderation_neutral_name``), and a ``say:`` with ``{comment}`` is skipped when the
comment has a blocked word.

An event type missing from the map does nothing (the item still completes). The
streamer can override entries with the Config key ``dinochrome_actions``: a JSON object
of the same shape, merged over these defaults (``[]`` turns an entry off).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from project.services.event_fields import comment_text, gift_fields, nickname

ACTIONS_CONFIG_KEY = "dinochrome_actions"
GAME_ACTIONS = ("restart", "jump", "duck")
ROSE_ACTIONS = ["restart", "say:Thank you {nickname} for the rose! New game!"]

DEFAULT_ACTION_MAP: dict[str, list[str]] = {
    "GiftEvent:Rose": ROSE_ACTIONS,
    "GiftEvent:Rosa": ROSE_ACTIONS,
    "GiftEvent": ["say:Thank you {nickname} for the {gift}!"],
    "SubscribeEvent": ["say:{nickname}, thank you for subscribing!"],
    "FollowEvent": ["say:Thanks for the follow, {nickname}!"],
    "ShareEvent": ["jump"],
    "CommentEvent": ["duck"],
    "LikeEvent": ["jump"],
}

_PLACEHOLDER = re.compile(r"\{(nickname|gift|count|comment)\}")


class ActionMapError(ValueError):
    """The action map (usually the Config override) cannot be used; the message says where."""


@dataclass(frozen=True)
class Action:
    kind: str  # "restart", "jump", "duck" or "say"
    text: str = ""

    def __str__(self) -> str:
        return f"say:{self.text}" if self.kind == "say" else self.kind


def parse_action(spec: Any, where: str) -> Action:
    if not isinstance(spec, str):
        raise ActionMapError(f"{where}: {spec!r} is not an action string")
    name, sep, text = spec.partition(":")
    name = name.strip().lower()
    if name in GAME_ACTIONS and not sep:
        return Action(name)
    if name == "say" and text.strip():
        return Action("say", text.strip())
    raise ActionMapError(f"{where}: unknown action {spec!r} (use restart, jump, duck or say:<text>)")


def parse_action_map(data: Any) -> dict[str, list[Action]]:
    """Validate a whole map (a dict, or JSON text of one) into actions."""
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except ValueError as exc:
            raise ActionMapError(f"not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ActionMapError('expected a JSON object like {"LikeEvent": ["jump"]}')
    parsed: dict[str, list[Action]] = {}
    for key, specs in data.items():
        event_type, _, gift = str(key).partition(":")
        if not re.fullmatch(r"[A-Z][A-Za-z0-9]*Event", event_type) or (gift and event_type != "GiftEvent"):
            raise ActionMapError(f"{key!r} is not an event type (like LikeEvent) or GiftEvent:<gift name>")
        if not isinstance(specs, list):
            raise ActionMapError(f"{key}: expected a list of actions, got {specs!r}")
        normalized = f"GiftEvent:{gift.strip().casefold()}" if gift else event_type
        parsed[normalized] = [parse_action(spec, str(key)) for spec in specs]
    return parsed


def build_action_map(override: str = "") -> dict[str, list[Action]]:
    """The defaults with the streamer's override (JSON text, may be empty) merged over them."""
    action_map = parse_action_map(DEFAULT_ACTION_MAP)
    if override.strip():
        action_map.update(parse_action_map(override))
    return action_map


def actions_for(live_event: Any, action_map: dict[str, list[Action]]) -> list[Action]:
    event_type = live_event.event_type
    if event_type == "GiftEvent":
        specific = f"GiftEvent:{gift_fields(live_event)['name'].strip().casefold()}"
        if specific in action_map:
            return action_map[specific]
    return action_map.get(event_type, [])


def placeholders(template: str) -> set[str]:
    """The placeholders a ``say:`` text uses, e.g. {"nickname"}."""
    return set(_PLACEHOLDER.findall(template))


def render_text(template: str, live_event: Any, name: str | None = None) -> str:
    """Fill the placeholders; user text is substituted, never parsed as a template.

    ``name``: said for ``{nickname}`` instead of the event's (moderation's neutral name).
    """
    gift = gift_fields(live_event) if live_event.event_type == "GiftEvent" else {"name": "", "count": 1}
    values = {
        "nickname": nickname(live_event) if name is None else name,
        "gift": gift["name"],
        "count": str(gift["count"]),
        "comment": comment_text(live_event),
    }
    return _PLACEHOLDER.sub(lambda match: values[match.group(1)], template)
