"""Structured log lines and secret redaction.

Lines look like ``level=INFO logger=queue msg="..." service=dinochrome event_id=12``:
whatever a caller passes in ``extra`` is appended as key=value pairs, so logs
can be grepped by service, event and queue.
"""

from __future__ import annotations

import logging
import re

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}

# Shapes of credentials that must never reach a log line: URL passwords,
# bearer tokens and API-key headers.
_PATTERNS = [
    (re.compile(r"(://[^:/\s]+:)[^@\s]+@"), r"\1***@"),
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._\-]+"), r"\1***"),
    (
        re.compile(r"(?i)((?:xi-api-key|x-api-key|api[_-]?key|authorization)[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]+"),
        r"\1***",
    ),
]


def redact(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactSecretsFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
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
        if record.exc_info:
            line += "\n" + redact(self.formatException(record.exc_info))
        return line


def _quote(value: str) -> str:
    if value and not any(c in value for c in ' "='):
        return value
    return '"' + value.replace('"', '\\"') + '"'
