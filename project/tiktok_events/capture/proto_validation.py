"""One pydantic validator per TikTok message class instead of one per message.

TikTokLive's protobuf classes are betterproto2 messages compiled as pydantic
dataclasses, and betterproto2 validates every message it parses
(``Message._validate``, called at the end of ``Message.load``). That method
builds ``pydantic_core.SchemaValidator(cls.__pydantic_core_schema__)`` anew
each time: building the validator, not running it, was a third of the
capture's CPU under a flood (a WebcastLikeMessage and its nested user,
badges and images are a dozen messages, each validated).

``install()`` replaces ``Message._validate`` with the same check against a
validator built once per class: same schema, same input (the instance's
fields without ``_unknown_fields``), same errors. Parsing, the wire format
and TikTokLive itself are untouched. The capture calls it before it builds
the client; ``tests/test_proto_validation.py`` checks the errors stay the same.

``warm_up(classes)`` builds, before the live's first frame, what betterproto2
and pydantic otherwise build on the first message of each class (field
metadata, type hints, the validator): ≈ 0.2 s of parsing stalled on the
first frame, while the frames behind it piled up.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

import betterproto2
import pydantic_core

log = logging.getLogger("capture.proto")

_validators: dict[type, pydantic_core.SchemaValidator] = {}
_lock = threading.Lock()
_original = betterproto2.Message._validate


def _validator(cls: type) -> pydantic_core.SchemaValidator:
    validator = _validators.get(cls)
    if validator is None:
        with _lock:
            validator = _validators.get(cls)
            if validator is None:
                validator = _validators[cls] = pydantic_core.SchemaValidator(cls.__pydantic_core_schema__)
    return validator


def _validate(self: betterproto2.Message) -> None:
    if not self._is_pydantic():
        raise TypeError("Validation is only available for pydantic dataclasses.")
    values = self.__dict__.copy()
    del values["_unknown_fields"]
    _validator(type(self)).validate_python(values)


def warm_up(classes: Iterable[type]) -> int:
    """Prepare ``classes`` and every message class their fields reach; returns how many are ready."""
    seen: set[type] = set()
    stack = list(classes)
    while stack:
        cls = stack.pop()
        if cls in seen or not (isinstance(cls, type) and issubclass(cls, betterproto2.Message)):
            continue
        seen.add(cls)
        try:
            stack.extend(cls._betterproto.cls_by_field.values())
            cls()  # pydantic completes a deferred schema on first use
            _validator(cls)
        except Exception as exc:  # a class we cannot prepare is prepared on first use, as before
            log.debug("not warmed up", extra={"class": cls.__name__, "error": str(exc)[:200]})
    return len(_validators)


def install() -> None:
    """Idempotent."""
    betterproto2.Message._validate = _validate


def uninstall() -> None:
    betterproto2.Message._validate = _original
