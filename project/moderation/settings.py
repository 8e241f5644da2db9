"""The moderation settings: Config keys the streamer edits in the admin (empty = the default).

Read in one query per event, so an edit in the admin applies to the next event; the
blocklist itself is compiled only when its value changes (``blocklist.build`` is cached
on it). As everywhere in Config, the environment variable of the same name, upper-cased,
is the fallback for an empty value.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from project.env import EnvError, env_str, parse_bool
from project.moderation.blocklist import Blocklist, BlocklistError, build, parse_entries

logger = logging.getLogger("moderation")

ENABLED_KEY = "moderation_enabled"
DEFAULT_LIST_KEY = "moderation_default_list"
BLOCKLIST_KEY = "moderation_blocklist"
COMMENTS_KEY = "moderation_comments"
NEUTRAL_NAME_KEY = "moderation_neutral_name"
KEYS = (ENABLED_KEY, DEFAULT_LIST_KEY, BLOCKLIST_KEY, COMMENTS_KEY, NEUTRAL_NAME_KEY)

COMMENT_MODES = ("mask", "hide")

# For populate_initial_data (seed_data.CONFIG_KEYS).
DESCRIPTIONS: dict[str, str] = {
    ENABLED_KEY: "Moderation of what viewers make the live say or show; empty = true (false turns it off).",
    DEFAULT_LIST_KEY: "Use the built-in English and Spanish blocklist; empty = true.",
    BLOCKLIST_KEY: "More blocked words, one a line: word, word* (any ending), re:<regex>, -word (drop a "
    "built-in one). See docs/moderation.md.",
    COMMENTS_KEY: "A blocked comment on the overlay: mask (f***) or hide (no card); empty = mask. It is "
    "never spoken nor sent to an LLM.",
    NEUTRAL_NAME_KEY: "Said instead of a blocked nickname; empty = each voice's own word (friend, amigo, "
    "un espectador).",
}

_reported: set[str] = set()


class ModerationConfigError(ValueError):
    """A moderation Config value that cannot be used; the message names the key and the fix."""


@dataclass(frozen=True)
class ModerationSettings:
    enabled: bool = True
    default_list: bool = True
    blocklist_text: str = ""
    comments: str = "mask"
    neutral_name: str = ""

    @property
    def blocklist(self) -> Blocklist:
        blocklist, skipped = build(self.default_list, self.blocklist_text)
        for message in skipped:
            _report_once(f"{message}: the line is ignored; fix it in the admin (Config {BLOCKLIST_KEY}).")
        return blocklist


def _report_once(message: str) -> None:
    # A bad value is read for every event: say it once per process, not per event.
    if message not in _reported:
        _reported.add(message)
        logger.error(message, extra={"service": "moderation"})


def _bool(key: str, raw: str, default: bool) -> bool:
    if not raw.strip():
        return default
    try:
        return parse_bool(key, raw)
    except EnvError:
        _report_once(f"Config {key}={raw!r} is not true or false; using {str(default).lower()}.")
        return default


def current() -> ModerationSettings:
    """The settings now (one query)."""
    from project.app_config.models import Config

    stored = dict(Config.objects.filter(key__in=KEYS).values_list("key", "value"))
    raw = {key: stored.get(key) or env_str(key.upper(), "") for key in KEYS}
    comments = raw[COMMENTS_KEY].strip().lower() or "mask"
    if comments not in COMMENT_MODES:
        _report_once(f"Config {COMMENTS_KEY}={raw[COMMENTS_KEY]!r} is not mask or hide; using hide.")
        comments = "hide"  # the safer reading of a typo
    return ModerationSettings(
        enabled=_bool(ENABLED_KEY, raw[ENABLED_KEY], True),
        default_list=_bool(DEFAULT_LIST_KEY, raw[DEFAULT_LIST_KEY], True),
        blocklist_text=raw[BLOCKLIST_KEY],
        comments=comments,
        neutral_name=" ".join(raw[NEUTRAL_NAME_KEY].split()),
    )


def validate(key: str, value: str) -> None:
    """Raise ModerationConfigError when ``value`` is not usable for ``key`` (the admin's check on save)."""
    if key == BLOCKLIST_KEY:
        try:
            parse_entries(value, source=f"Config {BLOCKLIST_KEY}")
        except BlocklistError as exc:
            raise ModerationConfigError(str(exc)) from None
    elif key in (ENABLED_KEY, DEFAULT_LIST_KEY) and value.strip():
        try:
            parse_bool(key, value)
        except EnvError as exc:
            raise ModerationConfigError(str(exc)) from None
    elif key == COMMENTS_KEY and value.strip() and value.strip().lower() not in COMMENT_MODES:
        raise ModerationConfigError(f"{key}={value!r}: use mask (f*** on the overlay) or hide (no card).")
