"""Celery tasks. Thin: decode ids, call a plain function, declare the retry policy."""

from tasks.events import drain, process_event

__all__ = ["drain", "process_event"]
