"""The error type every SaaS integration raises.

Each error says whether retrying can help (``permanent``). Transient errors are
also :class:`~project.queue_system.base_service.TransientError`, so a service
that lets one escape from ``process_event`` gets the item retried by the queue
worker (with ``retry_after`` when the API said how long to wait), while a
permanent one fails the item for good with this message stored on it.
Messages never contain credentials: they are built here from status codes and
the API's own error text, passed through :func:`project.logging.redact`.
"""

from __future__ import annotations

from project.logging import redact
from project.queue_system.base_service import TransientError


class IntegrationError(Exception):
    """A call to an external API failed; ``permanent`` says a retry cannot help."""

    permanent: bool = True

    def __init__(self, message: str, *, retry_after: float | None = None, status_code: int | None = None) -> None:
        message = redact(message)
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after
        self.status_code = status_code

    def __str__(self) -> str:
        return self.message


class TransientIntegrationError(IntegrationError, TransientError):
    """Worth retrying later: rate limits, quota resets, network and server failures."""

    permanent = False


def shorten(text: object, limit: int = 300) -> str:
    """An API's error text, on one line and bounded, for messages and logs."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
