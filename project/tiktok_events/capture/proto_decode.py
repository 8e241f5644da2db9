"""A faster decoding loop for betterproto2 messages: the same result as ``Message.load``.

Under a flood, decoding TikTok's protobuf frames was half of the capture's main
process (2,000 likes/s: 40 % of a core). betterproto2 decodes from a ``BytesIO``
one byte at a time (``load_varint`` reads and concatenates each byte), wraps
every field in a ``ParsedField`` dataclass with its raw bytes, and copies every
nested message out of its parent before parsing it.

``decode(cls, data)`` does what ``Message.load`` does, field by field, on the
bytes themselves: the same field lookup, the same conversions (sign and
zig-zag, enums, bools, fixed-width numbers, UTF-8 strings), nested messages
decoded in place, repeated fields appended, unknown fields kept raw in
``_unknown_fields``, and the message's ``_validate()`` at the end. What is
rare it hands to betterproto2's own code for that one field: packed repeated
fields, maps, wrapped well-known types, a wire type other than the field's
own. Anything else that is not a plain well-formed message (a truncated
buffer, a wire type 3, 4, 6 or 7, a varint over 10 bytes) raises ``Unusual``,
and the caller parses the whole message again with betterproto2, whose result
or error is then the answer: malformed frames behave exactly as before.

``tests/capture/test_proto_decode.py`` compares the two on every TikTokLive message class
filled at random, on a class with every field type, and on corrupted bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import betterproto2
from betterproto2 import (
    PACKED_TYPES,
    TYPE_BOOL,
    TYPE_BYTES,
    TYPE_DOUBLE,
    TYPE_ENUM,
    TYPE_FIXED32,
    TYPE_FIXED64,
    TYPE_FLOAT,
    TYPE_INT32,
    TYPE_INT64,
    TYPE_MESSAGE,
    TYPE_SFIXED32,
    TYPE_SFIXED64,
    TYPE_SINT32,
    TYPE_SINT64,
    TYPE_STRING,
    TYPE_UINT32,
    TYPE_UINT64,
    WIRE_FIXED_32,
    WIRE_FIXED_64,
    WIRE_LEN_DELIM,
    WIRE_VARINT,
    decode_varint,
)


class Unusual(Exception):
    """Not a message this loop decodes itself: betterproto2 parses it instead."""


# What the loop does with a field's value (its wire type matching the field's type).
(
    SIGNED32,
    SIGNED64,
    ENUM,
    UNSIGNED32,
    UNSIGNED64,
    ZIGZAG32,
    ZIGZAG64,
    BOOL,
    FIXED,
    STRING,
    BYTES,
    MESSAGE,
    GENERIC,
) = range(13)

_VARINT_KINDS = {
    TYPE_INT32: SIGNED32,
    TYPE_INT64: SIGNED64,
    TYPE_ENUM: ENUM,
    TYPE_UINT32: UNSIGNED32,
    TYPE_UINT64: UNSIGNED64,
    TYPE_SINT32: ZIGZAG32,
    TYPE_SINT64: ZIGZAG64,
    TYPE_BOOL: BOOL,
}
_FIXED_FORMATS = {
    TYPE_DOUBLE: ("<d", WIRE_FIXED_64),
    TYPE_FLOAT: ("<f", WIRE_FIXED_32),
    TYPE_FIXED32: ("<I", WIRE_FIXED_32),
    TYPE_FIXED64: ("<Q", WIRE_FIXED_64),
    TYPE_SFIXED32: ("<i", WIRE_FIXED_32),
    TYPE_SFIXED64: ("<q", WIRE_FIXED_64),
}
_MASK32 = (1 << 32) - 1
_MASK64 = (1 << 64) - 1
_SIGN32 = 1 << 31
_SIGN64 = 1 << 63


class _Field:
    __slots__ = ("kind", "meta", "name", "packable", "repeated", "target", "wire")

    def __init__(self, name: str, meta: betterproto2.FieldMetadata, wire: int, kind: int, target: Any) -> None:
        self.name = name
        self.meta = meta
        self.wire = wire  # the wire type this field's values come with
        self.kind = kind
        self.target = target  # the enum class, (message class, decoded in place), the unpacker
        self.repeated = bool(meta.repeated)
        self.packable = meta.proto_type in PACKED_TYPES


class _Plan:
    __slots__ = ("direct", "fields", "validate")

    def __init__(self, fields: dict[int, _Field], direct: bool, validate: bool) -> None:
        self.fields = fields
        self.direct = direct  # plain attribute assignment: write into __dict__
        self.validate = validate


_plans: dict[type, _Plan] = {}


def _plan(cls: type) -> _Plan:
    plan = _plans.get(cls)
    if plan is None:
        plan = _plans[cls] = _build_plan(cls)
    return plan


def _build_plan(cls: type) -> _Plan:
    proto_meta = cls._betterproto
    fields: dict[int, _Field] = {}
    for number, name in proto_meta.field_name_by_number.items():
        meta = proto_meta.meta_by_field_name[name]
        proto_type = meta.proto_type
        if proto_type in _VARINT_KINDS:
            kind = _VARINT_KINDS[proto_type]
            target = proto_meta.cls_by_field[name] if kind == ENUM else None
            fields[number] = _Field(name, meta, WIRE_VARINT, kind, target)
        elif proto_type in _FIXED_FORMATS:
            fmt, wire = _FIXED_FORMATS[proto_type]
            fields[number] = _Field(name, meta, wire, FIXED, struct.Struct(fmt).unpack)
        elif proto_type == TYPE_STRING:
            fields[number] = _Field(name, meta, WIRE_LEN_DELIM, STRING, None)
        elif proto_type == TYPE_BYTES:
            fields[number] = _Field(name, meta, WIRE_LEN_DELIM, BYTES, None)
        elif proto_type == TYPE_MESSAGE and not meta.unwrap:
            nested = proto_meta.cls_by_field[name]
            fields[number] = _Field(name, meta, WIRE_LEN_DELIM, MESSAGE, (nested, _inherits_parse(nested)))
        else:  # maps, wrapped well-known types
            fields[number] = _Field(name, meta, -1, GENERIC, None)
    message = object.__new__(cls)
    return _Plan(
        fields,
        direct=cls.__setattr__ is object.__setattr__,
        validate=message._is_pydantic(),
    )


def _inherits_parse(cls: type) -> bool:
    """Whether ``cls.parse`` is ``Message.parse`` (the one installed with this loop): a nested
    message of such a class is decoded in place; another class's own ``parse`` is called."""
    return not any("parse" in klass.__dict__ for klass in cls.__mro__ if klass is not betterproto2.Message)


def _varint(data: bytes, i: int, end: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while shift < 64:
        if i >= end:
            raise Unusual
        byte = data[i]
        i += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, i
        shift += 7
    raise Unusual  # over 10 bytes: betterproto2 raises its own error


def decode(cls: type, data: bytes, empty: Callable[[type], Any]) -> Any:
    """The message ``cls.parse(data)`` gives, or ``Unusual``; ``empty(cls)`` makes the instance to fill."""
    if type(data) is not bytes:
        data = bytes(data)
    return _decode(cls, data, 0, len(data), empty)


def _decode(cls: type, data: bytes, i: int, end: int, empty: Callable[[type], Any]) -> Any:
    plan = _plan(cls)
    fields = plan.fields
    message = empty(cls)
    values = message.__dict__
    direct = plan.direct
    unknown = b""
    while i < end:
        start = i
        tag = data[i]
        i += 1
        if tag >= 0x80:
            tag, i = _varint(data, start, end)
        wire = tag & 7
        if wire == WIRE_VARINT:
            if i >= end:
                raise Unusual
            value = data[i]
            i += 1
            if value >= 0x80:
                value, i = _varint(data, i - 1, end)
        elif wire == WIRE_LEN_DELIM:
            if i >= end:
                raise Unusual
            length = data[i]
            i += 1
            if length >= 0x80:
                length, i = _varint(data, i - 1, end)
            value_start, i = i, i + length
            if i > end:
                raise Unusual
            value = None  # sliced below only when needed (a nested message is decoded in place)
        elif wire == WIRE_FIXED_64 or wire == WIRE_FIXED_32:
            value_start, i = i, i + (8 if wire == WIRE_FIXED_64 else 4)
            if i > end:
                raise Unusual
            value = data[value_start:i]
        else:
            raise Unusual
        field = fields.get(tag >> 3)
        if field is None:
            unknown += data[start:i]
            continue
        if field.wire != wire:  # maps, wrapped types, and packed repeated numbers among them
            if value is None:
                value = data[value_start:i]
            _generic(message, field, wire, value)
            continue
        kind = field.kind
        if kind == MESSAGE:
            nested, in_place = field.target
            if in_place:
                value = _decode(nested, data, value_start, i, empty)
            else:
                value = nested.parse(data[value_start:i])
        elif kind == STRING:
            value = str(data[value_start:i], "utf-8")
        elif kind == BYTES:
            value = data[value_start:i]
        elif kind == SIGNED64:
            value &= _MASK64
            value = (value ^ _SIGN64) - _SIGN64
        elif kind == SIGNED32:
            value &= _MASK32
            value = (value ^ _SIGN32) - _SIGN32
        elif kind == UNSIGNED64:
            value &= _MASK64
        elif kind == UNSIGNED32:
            value &= _MASK32
        elif kind == BOOL:
            value = value > 0
        elif kind == ENUM:
            value &= _MASK64
            value = field.target((value ^ _SIGN64) - _SIGN64)
        elif kind == ZIGZAG64:
            value &= _MASK64
            value = (value >> 1) ^ (-(value & 1))
        elif kind == ZIGZAG32:
            value &= _MASK32
            value = (value >> 1) ^ (-(value & 1))
        else:  # FIXED (GENERIC fields have no wire type of their own: always the branch above)
            value = field.target(value)[0]
        if field.repeated:
            getattr(message, field.name).append(value)
        elif direct:
            values[field.name] = value
        else:
            setattr(message, field.name, value)
    if unknown:
        message._unknown_fields += unknown
    if plan.validate:
        message._validate()
    return message


def _generic(message: Any, field: _Field, wire: int, value: Any) -> None:
    """One field the way ``Message.load`` handles it, with betterproto2's own conversion."""
    meta, name = field.meta, field.name
    packed = wire == WIRE_LEN_DELIM and field.packable
    if packed:
        pos = 0
        items = []
        while pos < len(value):
            if meta.proto_type in (TYPE_FLOAT, TYPE_FIXED32, TYPE_SFIXED32):
                decoded, pos, item_wire = value[pos : pos + 4], pos + 4, WIRE_FIXED_32
            elif meta.proto_type in (TYPE_DOUBLE, TYPE_FIXED64, TYPE_SFIXED64):
                decoded, pos, item_wire = value[pos : pos + 8], pos + 8, WIRE_FIXED_64
            else:
                decoded, pos = decode_varint(value, pos)
                item_wire = WIRE_VARINT
            items.append(message._postprocess_single(item_wire, meta, name, decoded))
        value = items
    else:
        value = message._postprocess_single(wire, meta, name, value)
    current = getattr(message, name)
    if meta.proto_type == betterproto2.TYPE_MAP:
        current[value.key] = value.value
    elif meta.repeated:
        if packed:
            current.extend(value)
        else:
            current.append(value)
    else:
        setattr(message, name, value)
