"""Tag-byte encoding of values stored in Redis (``P:channel:{S}:<key>``, see docs/keys.md).

``0x01`` + MessagePack for plain data (fast, language-neutral, no code on load);
``0x02`` + a ``graflow.codec`` envelope for everything else, so a set stays a set and a tuple a
tuple. Untagged ASCII numbers (``atomic_add``, an outside ``INCR``) read back as
numbers, and any other foreign bytes as ``str`` or ``bytes``: reading never fails on
data graflow did not write, but a tampered envelope does fail (signature).
msgspec is imported on first use, keeping ``import graflow.channels`` light.
"""

from __future__ import annotations

import re
from typing import Any

from graflow import codec

__all__ = ["TAG_ENVELOPE", "TAG_MSGPACK", "decode_value", "encode_value", "parse_number"]

TAG_MSGPACK = 0x01
TAG_ENVELOPE = 0x02
_MAX_DEPTH = 64  # deeper (or cyclic) data goes through pickle, which handles it

_INT_RE = re.compile(rb"[+-]?[0-9]+")
# A number with '.', 'e', inf or nan reads as float; the Lua side mirrors this.
_FLOAT_RE = re.compile(
    rb"[+-]?(?:[0-9]+\.?[0-9]*(?:e[+-]?[0-9]+)?|\.[0-9]+(?:e[+-]?[0-9]+)?|inf|infinity|nan)",
    re.IGNORECASE,
)

_codec_cache: dict[str, Any] = {}


def _msgpack() -> tuple[Any, Any]:
    enc = _codec_cache.get("enc")
    if enc is None:
        import msgspec

        enc = _codec_cache["enc"] = msgspec.msgpack.Encoder()
        _codec_cache["dec"] = msgspec.msgpack.Decoder()
        _codec_cache["err"] = msgspec.DecodeError
    return enc, _codec_cache["dec"]


def _plain(value: Any, depth: int = 0) -> bool:
    """True if MessagePack round-trips ``value`` exactly (exact types, no subclasses)."""
    if depth > _MAX_DEPTH:
        return False
    t = type(value)
    if value is None or t is bool or t is str or t is bytes or t is float:
        return True
    if t is int:
        return bool(-(2**63) <= value < 2**64)
    if t is list:
        return all(_plain(v, depth + 1) for v in value)
    if t is dict:
        return all(type(k) is str and _plain(v, depth + 1) for k, v in value.items())
    return False


def encode_value(value: Any, *, secret_key: codec.SecretKey = None) -> bytes:
    """Bytes for one stored value (or one list element)."""
    if _plain(value):
        encoder, _ = _msgpack()
        return bytes((TAG_MSGPACK,)) + bytes(encoder.encode(value))
    return bytes((TAG_ENVELOPE,)) + codec.dumps(value, codec.Purpose.VALUE, secret_key=secret_key)


def parse_number(raw: bytes) -> int | float | None:
    """An untagged ASCII number as Python reads it, else None."""
    if len(raw) > 400:
        return None
    if _INT_RE.fullmatch(raw):
        return int(raw)
    if _FLOAT_RE.fullmatch(raw):
        return float(raw)
    return None


def decode_value(
    raw: bytes,
    *,
    secret_key: codec.SecretKey = None,
    source: str = "value",
    from_redis: bool = True,
) -> Any:
    """Inverse of ``encode_value``; foreign bytes come back as ``str``/``bytes``."""
    if raw[:1] == b"\x01":
        _, decoder = _msgpack()
        try:
            return decoder.decode(raw[1:])
        except _codec_cache["err"]:
            pass  # not ours after all: treat as foreign bytes below
    elif raw[:1] == b"\x02" and codec.is_envelope(raw[1:5]):
        return codec.loads(
            raw[1:],
            purpose=codec.Purpose.VALUE,
            secret_key=secret_key,
            source=source,
            from_redis=from_redis,
        )
    number = parse_number(raw)
    if number is not None:
        return number
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw
