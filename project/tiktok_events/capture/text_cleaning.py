"""The seeds' "limpieza automática de caracteres especiales" for names and chat.

TikTok nicknames are decorated on purpose: mathematical alphabets (𝓕𝓪𝓷𝓬𝔂),
full-width letters, zalgo (stacks of combining marks), right-to-left
overrides, zero-width and control characters. Services want plain text they
can print, speak (TTS) and draw on an overlay, so the cleaned form:

1. is NFKC-normalised (𝓕𝓪𝓷𝓬𝔂 → Fancy, ＦＵＬＬ → FULL, e + ◌́ → é);
2. drops control (Cc), format (Cf: bidi overrides and isolates, zero-width
   spaces, BOM, soft hyphen), private-use and surrogate characters — except a
   zero-width joiner or emoji tag that holds an emoji sequence together;
3. collapses zalgo: at most one *generic* combining mark (the Combining
   Diacritical Marks blocks zalgo generators draw from) per base character —
   after NFKC composition ordinary accented text needs no more — and at most
   ``MAX_MARKS_PER_BASE`` script marks, so Thai or Devanagari stay intact;
4. folds every run of whitespace to one space and strips the ends;
5. caps the length (adding "…").

Emoji stay emoji. The raw value is stored next to the cleaned one; only NUL is
replaced there, because PostgreSQL text and jsonb cannot hold it.
"""

from __future__ import annotations

import functools
import unicodedata

MAX_MARKS_PER_BASE = 3
NICKNAME_MAX_LENGTH = 64
TEXT_MAX_LENGTH = 500

_DROPPED_CATEGORIES = {"Cc", "Cf", "Co", "Cs"}
_MARK_CATEGORIES = {"Mn", "Me", "Mc"}
_ZWJ = "\u200d"
_VARIATION_SELECTORS = {"\ufe0e", "\ufe0f"}
_TAGS = range(0xE0020, 0xE0080)  # emoji tag sequences (subdivision flags like 🏴󠁧󠁢󠁳󠁣󠁴󠁿)
_BLACK_FLAG = "\U0001f3f4"
_GENERIC_MARK_BLOCKS = ((0x0300, 0x036F), (0x1AB0, 0x1AFF), (0x1DC0, 0x1DFF), (0x20D0, 0x20FF), (0xFE20, 0xFE2F))


def _is_generic_mark(char: str) -> bool:
    code = ord(char)
    return any(low <= code <= high for low, high in _GENERIC_MARK_BLOCKS)


def db_safe(raw: str) -> str:
    """``raw`` as PostgreSQL can store it: NUL is the one character text/jsonb refuse."""
    return raw.replace("\x00", "\ufffd") if "\x00" in raw else raw


def _is_pictographic(char: str) -> bool:
    # "So" covers emoji and other symbols; Sk covers skin-tone modifiers.
    return unicodedata.category(char) in ("So", "Sk") or char in _VARIATION_SELECTORS


def clean_text(raw: str, max_length: int = TEXT_MAX_LENGTH) -> str:
    """Clean one chat message or name (see the module docstring). May return ''."""
    if not raw:
        return ""
    if raw.isascii() and raw.isprintable():
        # Fast path for the common case: nothing to normalise or drop.
        text = " ".join(raw.split())
    else:
        text = _clean_unicode(raw)
    if len(text) > max_length:
        text = text[: max_length - 1].rstrip(" " + _ZWJ) + "…"
    return text


def _clean_unicode(raw: str) -> str:
    normalised = unicodedata.normalize("NFKC", raw)
    out: list[str] = []
    marks = generic_marks = 0
    for index, char in enumerate(normalised):
        if char.isspace():
            out.append(" ")
            marks = generic_marks = 0
            continue
        category = unicodedata.category(char)
        if category in _MARK_CATEGORIES:
            if char in _VARIATION_SELECTORS or char == "\u20e3":
                out.append(char)  # emoji presentation / keycap: part of the emoji
            elif not out or out[-1] == " ":
                pass  # a mark with no base character to sit on
            elif _is_generic_mark(char):
                if generic_marks < 1:
                    out.append(char)
                    generic_marks += 1
            elif marks < MAX_MARKS_PER_BASE:
                out.append(char)
                marks += 1
            continue
        if category in _DROPPED_CATEGORIES:
            if _keeps_emoji_together(char, normalised, index, out):
                out.append(char)
            continue
        out.append(char)
        marks = generic_marks = 0
    return " ".join("".join(out).split())


def _keeps_emoji_together(char: str, text: str, index: int, out: list[str]) -> bool:
    if char == _ZWJ:
        following = text[index + 1] if index + 1 < len(text) else ""
        return bool(out) and _is_pictographic(out[-1]) and bool(following) and _is_pictographic(following)
    if ord(char) in _TAGS:
        return bool(out) and (out[-1] == _BLACK_FLAG or ord(out[-1]) in _TAGS)
    return False


@functools.lru_cache(maxsize=4096)
def clean_nickname(raw: str, fallback: str = "") -> str:
    """A display name: cleaned, capped, or ``fallback`` (the @handle) when nothing is left.

    Cached because the same viewers send hundreds of likes in a row.
    """
    cleaned = clean_text(raw, NICKNAME_MAX_LENGTH)
    if cleaned:
        return cleaned
    return clean_text(fallback, NICKNAME_MAX_LENGTH)
