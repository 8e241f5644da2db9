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
the client; ``tests/capture/test_proto_validation.py`` checks the errors stay the same.

It also gives ``Message.parse`` an empty instance without pydantic's
``__init__``: betterproto2 parses into ``cls()``, which runs the whole
validator over the defaults (34 µs for an empty ``User``, a fifth of the
capture's CPU under a flood), only for ``load`` to fill the fields and
validate them again at its end. The empty instance is what ``cls()`` makes
(each field's default or a fresh ``default_factory()``, then
``_unknown_fields = b""`` as ``__post_init__`` sets it); the validation at
the end of ``load`` is the one that checks what was parsed, unchanged.
And it decodes with ``proto_decode``'s loop (the same result as ``load``,
about twice as fast), handing anything unusual back to ``load``.

The fast path is proven equal to betterproto2's own decoding on the versions in
``PROVEN_ON`` (``tests/capture/test_decoder_proof.py`` compares the two on every message
of recordings of every simulator scenario). ``install()`` checks the installed
versions first: on any other version it leaves betterproto2 as it is and says
so once — the capture keeps working, only slower — until the proof is run
again on the new versions and ``PROVEN_ON`` follows requirements.txt.

``warm_up(classes)`` builds, before the live's first frame, what betterproto2
and pydantic otherwise build on the first message of each class (field
metadata, type hints, the validator): ≈ 0.2 s of parsing stalled on the
first frame, while the frames behind it piled up.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib.metadata
import logging
import threading
from collections.abc import Iterable
from io import BytesIO

import betterproto2
import pydantic_core

from project.tiktok_events.capture import proto_decode

log = logging.getLogger("capture.proto")

# The versions the fast decoder was proven on: requirements.txt's pins (a test keeps them equal).
PROVEN_ON = {"betterproto2": "0.9.1", "TikTokLive": "7.0.1", "TikTokLiveProto": "0.2.2"}

_validators: dict[type, pydantic_core.SchemaValidator] = {}
_lock = threading.Lock()
_original = betterproto2.Message._validate
_original_parse = betterproto2.Message.__dict__["parse"]

# Defaults that can be shared by every empty instance (the others come from their factory each time).
_IMMUTABLE = (type(None), bool, int, float, str, bytes, enum.Enum)
_PYDANTIC_INIT_MODULE = "pydantic._internal._dataclasses"
# Per class: (every field's shared default, None for the others, and "_unknown_fields",
# in cls()'s order; (field name, factory) of the others); None = use cls().
_empty_specs: dict[type, tuple[dict, tuple] | None] = {}
_warned = False  # the unproven-version warning is said once per process


def _validator(cls: type) -> pydantic_core.SchemaValidator:
    validator = _validators.get(cls)
    if validator is None:
        with _lock:
            validator = _validators.get(cls)
            if validator is None:
                validator = _validators[cls] = pydantic_core.SchemaValidator(_schema(cls))
    return validator


def _schema(cls: type) -> dict:
    schema = cls.__pydantic_core_schema__
    if not isinstance(schema, dict):
        # A placeholder: pydantic completes a class's schema on its first instance, which
        # betterproto2's own parse always makes (cls()) and empty() does not.
        cls()
        schema = cls.__pydantic_core_schema__
    return schema


def _validate(self: betterproto2.Message) -> None:
    if not self._is_pydantic():
        raise TypeError("Validation is only available for pydantic dataclasses.")
    values = self.__dict__.copy()
    del values["_unknown_fields"]
    _validator(type(self)).validate_python(values)


def _empty_spec(cls: type) -> tuple[dict, tuple] | None:
    if cls not in _empty_specs:
        _empty_specs[cls] = _build_empty_spec(cls)
    return _empty_specs[cls]


def _build_empty_spec(cls: type) -> tuple[dict, tuple] | None:
    # Only where cls() is pydantic's own __init__ (TikTokLive's ExtendedGift has its own).
    if not (dataclasses.is_dataclass(cls) and getattr(cls.__init__, "__module__", "") == _PYDANTIC_INIT_MODULE):
        return None
    shared: dict = {}
    factories = []
    for field in dataclasses.fields(cls):
        if not field.init:
            return None
        if field.default is not dataclasses.MISSING:
            shared[field.name] = field.default
        elif field.default_factory is not dataclasses.MISSING:
            value = field.default_factory()
            if isinstance(value, _IMMUTABLE):
                shared[field.name] = value
            else:
                shared[field.name] = None  # keeps the field's place; filled per instance
                factories.append((field.name, field.default_factory))
        else:
            return None  # a required field: only the real constructor knows
    shared["_unknown_fields"] = b""  # as __post_init__ sets it
    return shared, tuple(factories)


def empty(cls: type) -> betterproto2.Message:
    """``cls()`` without running pydantic's validator over the defaults."""
    spec = _empty_spec(cls)
    if spec is None:
        return cls()
    shared, factories = spec
    message = object.__new__(cls)
    values = message.__dict__
    values.update(shared)
    for name, factory in factories:
        values[name] = factory()
    return message


def _parse(cls, data: bytes) -> betterproto2.Message:
    try:
        return proto_decode.decode(cls, data, empty)
    except Exception:  # betterproto2 decides: its result, or its own error
        return _load(cls, data)


def _load(cls, data: bytes) -> betterproto2.Message:
    """betterproto2's own decoding (into an empty instance made without pydantic's ``__init__``)."""
    with BytesIO(data) as stream:
        return empty(cls).load(stream)


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
            _empty_spec(cls)
        except Exception as exc:  # a class we cannot prepare is prepared on first use, as before
            log.debug("not warmed up", extra={"class": cls.__name__, "error": str(exc)[:200]})
    return len(_validators)


def install() -> bool:
    """The fast path, on the versions it was proven on (True when installed); idempotent."""
    unproven = unproven_versions()
    if unproven:
        global _warned
        if not _warned:
            _warned = True
            reasons = [
                f"{name} {installed} is not the version the fast decoder was proven on ({proven})"
                for name, (installed, proven) in unproven.items()
            ]
            log.warning("; ".join(reasons) + "; using betterproto2's own decoding")
        return False
    betterproto2.Message._validate = _validate
    betterproto2.Message.parse = classmethod(_parse)
    return True


def installed_version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "(not installed)"


def unproven_versions() -> dict[str, tuple[str, str]]:
    """{distribution: (installed, proven)} for each one installed in a version the proof did not run on."""
    installed = {name: installed_version(name) for name in PROVEN_ON}
    return {name: (installed[name], proven) for name, proven in PROVEN_ON.items() if installed[name] != proven}


def uninstall() -> None:
    betterproto2.Message._validate = _original
    betterproto2.Message.parse = _original_parse
