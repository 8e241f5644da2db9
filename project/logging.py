"""Structured log lines and secret redaction.

Lines look like ``level=INFO logger=queue msg="..." service=dinochrome event_id=12``:
whatever a caller passes in ``extra`` is appended as key=value pairs, so logs
can be grepped by service, event and queue.

Redaction works twice over. By shape: URL passwords, bearer tokens, API-key
headers and any ``…token=`` / ``…secret=`` / ``password=`` pair (a query string
such as ``/hybrid?token=…``) are masked. By value: every credential read
through :func:`project.app_config.config.get_config` is remembered
(:func:`remember_secret`), and its literal text is masked wherever it shows up,
even in a SaaS error body that echoes it. The filter applies both to the
message, to every ``extra`` field (nine call sites put error texts there) and to
the exception text; the formatter redacts its whole line once more, so a
handler configured without the filter still writes no secret.
"""

from __future__ import annotations

import logging
import re
import threading

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}

_CREDENTIAL_NAMES = (
    r"(?:xi-api-key|x-api-key|api[_-]?key|authorization|[\w.-]*token|[\w.-]*secret|passw(?:or)?d|sessionid)"
)

# Shapes of credentials that must never reach a log line: URL passwords,
# bearer tokens, and name=value / "name": "value" pairs whose name says secret.
_PATTERNS = [
    (re.compile(r"(://[^:/\s]+:)[^@\s]+@"), r"\1***@"),
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=\-]+"), r"\1***"),
    (re.compile(rf"(?i)(\b{_CREDENTIAL_NAMES}[\"']?\s*[:=]\s*[\"']?)(?!\*\*\*)[^\s\"'&,;}}]+"), r"\1***"),
]

# Literal values shorter than this are not remembered: masking "1234" everywhere
# would blank out ids and counts, and such a value is no credential anyway.
_MIN_SECRET_LENGTH = 8
_known: frozenset[str] = frozenset()
_known_longest_first: tuple[str, ...] = ()
_known_lock = threading.Lock()


def remember_secret(value: str | None) -> None:
    """Mask ``value`` in every log line from now on (in this process)."""
    global _known, _known_longest_first
    value = (value or "").strip()
    if len(value) < _MIN_SECRET_LENGTH or value in _known:
        return
    with _known_lock:
        _known = _known | {value}
        _known_longest_first = tuple(sorted(_known, key=len, reverse=True))


# Every shape above contains one of these words: most lines hold none, and one scan for
# them costs a fraction of the three patterns (every record is redacted twice).
_HINT = re.compile(r"(?i)://|bearer|key|authorization|token|secret|passw|sessionid")


def redact(text: str) -> str:
    # Longest first: a key that contains another key is masked whole.
    for secret in _known_longest_first:
        if secret in text:
            text = text.replace(secret, "***")
    if not _HINT.search(text):
        return text
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactSecretsFilter(logging.Filter):
    """Redacts the message, every ``extra`` field, the exception and the stack of a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        for key, value in list(vars(record).items()):
            if key in _STANDARD or key.startswith("_") or value is None or isinstance(value, bool | int | float):
                continue
            setattr(record, key, redact(str(value)))
        if record.exc_info and not record.exc_text:
            # Formatters use exc_text when it is set: the traceback is written redacted.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        parts = [
            f"ts={self.formatTime(record, '%Y-%m-%dT%H:%M:%S')}",
            f"level={record.levelname}",
            f"logger={record.name}",
            f"msg={_quote(record.getMessage())}",
        ]
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                parts.append(f"{key}={_quote(str(value))}")
        line = " ".join(parts)
        if record.exc_info or record.exc_text:
            line += "\n" + (record.exc_text or self.formatException(record.exc_info))
        if record.stack_info:
            line += "\n" + record.stack_info
        return redact(line)


def _quote(value: str) -> str:
    if value and not any(c in value for c in ' "='):
        return value
    return '"' + value.replace('"', '\\"') + '"'
