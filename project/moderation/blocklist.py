"""The blocklist: entries compiled into one regular expression over folded text.

Folding (:func:`fold`) keeps one character per character of the input, so a match's
span is also the span to mask in the text as the viewer wrote it. It lower-cases,
strips accents (NFKD without the combining marks: "maricón" → "maricon") and maps
Cyrillic and Greek letters that look Latin ("рutа" → "puta"). Input is the capture's
cleaned text (NFKC already: 𝓯𝓾𝓬𝓴 and ｆｕｃｋ are plain letters by then).

Leetspeak, spacing and stretching are in the compiled pattern rather than in the
folded text, because they are ambiguous there ("1" is i or l; the "!" of "ass!" is
punctuation, the "!" of "sh!t" an i; "ass" must not shrink to "as"):

- every letter of an entry accepts its look-alikes (a: a @ 4, i: i 1 ! |, s: s 5 $, …);
- a run of the same letter accepts longer runs ("fuuuck") but never shorter ones;
- up to three punctuation marks may sit between letters ("f.u.c.k", "f-u-c-k", "n1gg@");
- an entry of three letters or more also matches spaced out ("f u c k", "p. u. t. a");
- a whole entry only matches as a whole word, so "class", "assistant", "Scunthorpe"
  and "computadora" do not match ass, cunt or puta; a plural s (es after n, l, r, d, z,
  s, x, ch, sh) is accepted, and
  ``word*`` accepts any ending ("fucking", "pendejos");
- ``re:<regex>`` entries are regular expressions on the folded text, as written.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

DEFAULT_LIST_PATH = Path(__file__).with_name("default_blocklist.txt")
REGEX_PREFIX = "re:"

# Look-alikes of each letter in what viewers type (after folding).
LEET: dict[str, str] = {
    "a": "a@4",
    "b": "b8",
    "e": "e3€",
    "g": "g9",
    "i": "i1!|",
    "l": "l1|",
    "o": "o0",
    "s": "s5$",
    "t": "t7+",
    "u": "uv",
    "z": "z2",
}
# Cyrillic and Greek letters drawn like Latin ones; NFKC leaves them as they are.
_LOOKALIKES = str.maketrans(
    {
        "а": "a",
        "в": "b",
        "е": "e",
        "ё": "e",
        "к": "k",
        "м": "m",
        "н": "h",
        "о": "o",
        "р": "p",
        "с": "c",
        "т": "t",
        "у": "y",
        "х": "x",
        "і": "i",
        "ї": "i",
        "ј": "j",
        "ѕ": "s",
        "α": "a",
        "β": "b",
        "ε": "e",
        "ι": "i",
        "κ": "k",
        "ν": "v",
        "ο": "o",
        "ρ": "p",
        "τ": "t",
        "υ": "u",
        "χ": "x",
    }
)
_WORD_CHAR = "a-z0-9"
_GAP = rf"[^{_WORD_CHAR}\s]{{0,3}}"  # punctuation inside a word: f.u.c.k, f-u-c-k
_SPACED_GAP = rf"[^{_WORD_CHAR}]{{1,3}}"  # f u c k, p. u. t. a
_PLURAL = "(?:[e3]?[s5$]+)?"
_PLURAL_S = "(?:[s5$]+)?"
_ANY_ENDING = rf"[{_WORD_CHAR}@$|€]*"  # word*: the rest of the word, leetspeak included ("n1gg@")
_BEFORE = rf"(?<![{_WORD_CHAR}])"
_AFTER = rf"(?![{_WORD_CHAR}])"


class BlocklistError(ValueError):
    """An entry cannot be used; the message names its line."""


@dataclass(frozen=True)
class Entry:
    text: str  # as written (folded for words), shown as the reason in QueueItem.moderation
    pattern: str  # its regular expression on folded text


@dataclass(frozen=True)
class Hit:
    entry: str
    start: int
    end: int


@functools.lru_cache(maxsize=8192)
def _fold_char(char: str) -> str:
    decomposed = unicodedata.normalize("NFKD", char.lower())
    base = "".join(c for c in decomposed if not unicodedata.combining(c)).translate(_LOOKALIKES)
    return base[:1] or char


def fold(text: str) -> str:
    """Lower-case, unaccented, look-alikes mapped; exactly one character per input character."""
    if text.isascii():
        return text.lower()
    return "".join(map(_fold_char, text))


def _letter(char: str) -> str:
    return "[" + re.escape(LEET.get(char, char)) + "]"


def _compact(word: str) -> str:
    runs = [(match.group(1), len(match.group(0))) for match in re.finditer(r"(.)\1*", word)]
    # Possessive runs: a run never gives characters back, or "$$$…" (500 of them, each the
    # start of an s-word) would backtrack quadratically (97 ms a check instead of 1).
    parts = [_letter(char) + ("++" if count == 1 else f"{{{count},}}+") for char, count in runs]
    return _GAP.join(parts)


def _spaced(word: str) -> str:
    return _SPACED_GAP.join(_letter(char) for char in word)


def word_pattern(entry: str) -> str:
    """The expression of a plain entry (already folded); see the module docstring."""
    prefix = entry.endswith("*")
    words = re.findall(rf"[{_WORD_CHAR}]+", entry)
    if not words:
        raise ValueError("no letters")
    body = r"[^a-z0-9]+".join(_compact(word) for word in words)
    if len(words) == 1 and len(words[0]) >= 3:
        body = f"(?:{body}|{_spaced(words[0])})"
    if prefix:
        return body + _ANY_ENDING
    last = words[-1]
    # "es" only where a plural takes it (cabrones, imbéciles, asses): "spic" + "es" is "spices".
    return body + (_PLURAL if last[-1] in "nlrdzsx" or last.endswith(("ch", "sh")) else _PLURAL_S)


def parse_entries(text: str, *, source: str, errors: list[str] | None = None) -> tuple[list[Entry], set[str]]:
    """The entries of a list (one a line) and the ``-word`` removals.

    A bad line raises BlocklistError, or with ``errors`` is skipped and its message appended.
    """
    entries: list[Entry] = []
    removed: set[str] = set()
    for number, raw in enumerate(text.splitlines(), 1):
        try:
            _parse_line(raw, number, source, entries, removed)
        except BlocklistError as exc:
            if errors is None:
                raise
            errors.append(str(exc))
    return entries, removed


def _parse_line(raw: str, number: int, source: str, entries: list[Entry], removed: set[str]) -> None:
    stripped = raw.strip()
    # A regular expression keeps its '#' (it may be part of the pattern); any other line loses its comment.
    line = stripped if stripped.startswith(REGEX_PREFIX) else stripped.split("#", 1)[0].strip()
    if not line:
        return
    if line.startswith(REGEX_PREFIX):
        expression = line[len(REGEX_PREFIX) :].strip()
        try:
            # Compiled as it is used: case-insensitive in a group, where a global flag like (?i) is an error.
            compiled = re.compile(f"(?i:{expression})")
        except re.error as exc:
            if "global flags" in str(exc):
                raise BlocklistError(
                    f"{source} line {number}: {line!r}: leave out the flags, matching already ignores case"
                ) from None
            raise BlocklistError(
                f"{source} line {number}: {line!r} is not a valid regular expression ({exc})"
            ) from None
        if compiled.search("") is not None:
            raise BlocklistError(f"{source} line {number}: {line!r} matches empty text, so it would block everything")
        entries.append(Entry(line, f"(?i:{expression})"))
    elif line.startswith("-"):
        removed.add(fold(line[1:].strip()))
    else:
        folded = fold(line)
        try:
            entries.append(Entry(folded, word_pattern(folded)))
        except ValueError:
            raise BlocklistError(f"{source} line {number}: {line!r} has no letters or digits to match") from None


@functools.cache
def default_entries() -> tuple[Entry, ...]:
    entries, _ = parse_entries(DEFAULT_LIST_PATH.read_text(encoding="utf-8"), source="default_blocklist.txt")
    return tuple(entries)


class Blocklist:
    def __init__(self, entries: list[Entry] | tuple[Entry, ...]) -> None:
        self.entries = tuple(entries)
        words = [e for e in self.entries if not e.text.startswith(REGEX_PREFIX)]
        # One lookbehind for all the words: the alternatives are only tried where a word starts.
        self._words_pattern = (
            re.compile(_BEFORE + "(?:" + "|".join(e.pattern for e in words) + ")" + _AFTER) if words else None
        )
        self._words = [(e, re.compile(_BEFORE + e.pattern + _AFTER)) for e in words]
        # Each regular expression on its own: joined, one entry's groups would renumber the next one's \1.
        self._regexes = [(e, re.compile(e.pattern)) for e in self.entries if e.text.startswith(REGEX_PREFIX)]

    def __len__(self) -> int:
        return len(self.entries)

    def find(self, text: str) -> Hit | None:
        """The first match in ``text``, or None."""
        hits = self._matches(text, first=True)
        return min(hits, key=lambda hit: hit.start) if hits else None

    def find_all(self, text: str) -> list[Hit]:
        return self._matches(text, first=False)

    def mask(self, text: str, hits: list[Hit] | None = None) -> str:
        """``text`` with every match's letters after the first replaced by ``*`` ("f***", "p*****_69")."""
        hits = self.find_all(text) if hits is None else hits
        if not hits:
            return text
        chars = list(text)
        for hit in hits:
            first = True
            for index in range(hit.start, hit.end):
                if chars[index].isspace():
                    continue
                if first:
                    first = False
                    continue
                chars[index] = "*"
        return "".join(chars)

    def _matches(self, text: str, *, first: bool) -> list[Hit]:
        if not text or not self.entries:
            return []
        folded = fold(text)
        hits: list[Hit] = []
        if self._words_pattern is not None:
            matches = self._words_pattern.finditer(folded)
            for match in matches:
                hits.append(Hit(self._word_entry(folded, match), *match.span()))
                if first:
                    break
        for entry, pattern in self._regexes:
            for match in pattern.finditer(folded):
                if match.end() > match.start():
                    hits.append(Hit(entry.text, *match.span()))
                    if first:
                        break
        return hits

    def _word_entry(self, folded: str, match: re.Match[str]) -> str:
        # Name the entry: the combined pattern does not say which alternative matched.
        for entry, pattern in self._words:
            found = pattern.match(folded, match.start())
            if found is not None and found.end() == match.end():
                return entry.text
        return "?"


@functools.lru_cache(maxsize=8)
def build(use_default_list: bool, extra: str) -> tuple[Blocklist, tuple[str, ...]]:
    """The blocklist for these settings, compiled once per value (the cache key), and the
    lines of ``extra`` it had to skip (a value the admin's check did not see: set_config, SQL)."""
    errors: list[str] = []
    entries, removed = parse_entries(extra, source="Config moderation_blocklist", errors=errors)
    defaults = [e for e in default_entries() if e.text.rstrip("*") not in removed and e.text not in removed]
    return Blocklist([*(defaults if use_default_list else []), *entries]), tuple(errors)
