"""The one pickle envelope graflow writes and reads (api-contract §15).

Layout: ``b"GFLW"``, version ``0x01``, flags (bit0 signed, bit1 zlib), purpose, then
-- if signed -- a 32-byte HMAC-SHA256 over header + payload, then the cloudpickle
payload. Loading a pickle runs code, so with a key the signature is checked *before*
anything is unpickled, and the purpose byte (covered by the HMAC) stops a payload
written for one use from being accepted for another.

This is a ground-floor module: it imports only the standard library and
``graflow.exceptions`` at import time; cloudpickle is imported when first needed.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import os
import pickle
import sys
import tempfile
import threading
import zlib
from collections.abc import Sequence
from enum import IntEnum
from typing import IO, Any

from graflow.exceptions import (
    ConfigError,
    PayloadError,
    PayloadSignatureError,
    SerializationError,
    UnsignedPayloadWarning,
    warn,
)

__all__ = [
    "MAGIC",
    "MIN_KEY_BYTES",
    "Purpose",
    "SecretKey",
    "dump",
    "dump_buffers",
    "dumps",
    "is_envelope",
    "load",
    "loads",
    "resolve_keys",
    "seal",
    "sign",
    "verify",
]

MAGIC = b"GFLW"
VERSION = 0x01
FLAG_SIGNED = 0x01
FLAG_ZLIB = 0x02
_KNOWN_FLAGS = FLAG_SIGNED | FLAG_ZLIB
HEADER_LEN = 7
SIG_LEN = 32
MIN_KEY_BYTES = 16
ENV_VAR = "GRAFLOW_SECRET_KEY"

#: ``secret_key=`` arguments: one key (str/bytes) or a sequence of keys (first signs).
SecretKey = str | bytes | Sequence[str | bytes] | None

security_log = logging.getLogger("graflow.security")


class Purpose(IntEnum):
    """What an envelope holds; signed, so a value blob cannot pose as a task blob."""

    CHECKPOINT = 1
    GRAPH = 2
    TASK = 3
    VALUE = 4
    CONTEXT = 5


# --------------------------------------------------------------------------- keys

_env_cache: tuple[str | None, list[bytes]] = (None, [])


def _check_key(key: str | bytes, where: str) -> bytes:
    raw = key.encode("utf-8") if isinstance(key, str) else bytes(key)
    if len(raw) < MIN_KEY_BYTES:
        # Never echo the key itself: error messages end up in logs.
        raise ConfigError(
            f"the secret key from {where} is too short ({len(raw)} bytes); "
            f"use at least {MIN_KEY_BYTES} bytes, e.g. the output of "
            "`python -c 'import secrets; print(secrets.token_hex(32))'`"
        )
    return raw


def resolve_keys(secret_key: SecretKey = None) -> list[bytes]:
    """The keys in force: ``secret_key`` if given, else ``GRAFLOW_SECRET_KEY``.

    The variable may hold comma-separated keys for rotation; the first one signs and
    any verifies. A ``str`` argument is one key (commas included); pass a sequence to
    rotate explicitly. An empty sequence means "no key" even if the variable is set.
    """
    global _env_cache
    if secret_key is not None:
        if isinstance(secret_key, (str, bytes, bytearray)):
            return [_check_key(secret_key, "secret_key=")]
        return [_check_key(k, "secret_key=") for k in secret_key]
    raw_env = os.environ.get(ENV_VAR)
    cached_raw, cached_keys = _env_cache
    if raw_env == cached_raw:
        return list(cached_keys)
    # Parse only when the variable changed since the last call (tests and
    # long-lived processes may change it); the parse itself is cheap anyway.
    keys = [
        _check_key(part.strip(), ENV_VAR) for part in (raw_env or "").split(",") if part.strip()
    ]
    _env_cache = (raw_env, keys)  # one tuple: readers never see half an update
    return list(keys)


def _mac(key: bytes, *pieces: bytes | memoryview) -> bytes:
    """HMAC-SHA256 over ``pieces`` in order, as if joined (nothing is joined)."""
    mac = hmac.new(key, digestmod=hashlib.sha256)
    for piece in pieces:
        mac.update(piece)
    return mac.digest()


# ----------------------------------------------------------------------- envelope


def is_envelope(data: bytes | bytearray | memoryview) -> bool:
    """True when ``data`` starts like a graflow envelope (cheap sniffing only)."""
    return bytes(data[:4]) == MAGIC


def dumps(
    obj: Any,
    purpose: Purpose | int = Purpose.VALUE,
    *,
    secret_key: SecretKey = None,
    compress: bool = False,
) -> bytes:
    """Pickle ``obj`` with cloudpickle into a (signed, if a key is set) envelope.

    ``purpose`` defaults to VALUE so upstream's ``dumps(obj)`` keeps working.
    """
    import cloudpickle

    purpose = Purpose(purpose)
    try:
        payload: bytes = cloudpickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        raise _pickling_error(obj, exc) from exc
    return seal(payload, purpose, secret_key=secret_key, compress=compress)


def dump_buffers(obj: Any, purpose: Purpose | int, *, secret_key: SecretKey = None) -> list[bytes]:
    """``dumps`` as the buffers making up the envelope, in order, never joined.

    For large payloads (a checkpoint of a big Memory channel): the pickler hands its
    frames and every large ``bytes`` value over by reference, so writing and hashing
    them costs no copy of the data (``dumps`` copies it into a growing buffer and then
    once more to add the header). Only immutable ``bytes`` are kept by reference;
    anything else the pickler passes (a ``bytearray``, a ``memoryview``) is copied, so
    a value changed after this call cannot change what gets written.
    """
    import cloudpickle

    purpose = Purpose(purpose)
    sink = _BufferSink()
    try:
        cloudpickle.Pickler(sink, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
    except Exception as exc:
        raise _pickling_error(obj, exc) from exc
    return _envelope(sink.parts, purpose, resolve_keys(secret_key), 0)


class _BufferSink:
    """The pickler's output file: keeps each write as one buffer."""

    __slots__ = ("parts",)

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: Any) -> int:
        self.parts.append(data if type(data) is bytes else bytes(data))
        return len(self.parts[-1])


def _pickling_error(obj: Any, exc: Exception) -> SerializationError:
    return SerializationError(
        f"cannot pickle an object of type {type(obj).__module__}."
        f"{type(obj).__qualname__}; make it picklable (module-level functions and "
        "classes, no open files, locks or connections)",
        exc,
    )


def _envelope(payload: list[bytes], purpose: Purpose, keys: list[bytes], flags: int) -> list[bytes]:
    """Header, then the signature over header and payload when a key is set, then the payload."""
    if keys:
        flags |= FLAG_SIGNED
    header = MAGIC + bytes((VERSION, flags, int(purpose)))
    if not keys:
        return [header, *payload]
    return [header, _mac(keys[0], header, *payload), *payload]


def seal(
    payload: bytes,
    purpose: Purpose | int = Purpose.VALUE,
    *,
    secret_key: SecretKey = None,
    compress: bool = False,
) -> bytes:
    """Wrap already-pickled bytes in an envelope (callers that hash the pickle first,
    e.g. content-addressed graph blobs, and must not pickle twice)."""
    flags = 0
    if compress:
        payload = zlib.compress(payload, 6)
        flags |= FLAG_ZLIB
    return b"".join(_envelope([payload], Purpose(purpose), resolve_keys(secret_key), flags))


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _user_stacklevel() -> int:
    """``stacklevel`` for ``exceptions.warn`` that points at the first frame outside
    graflow, so the warning names the user's line rather than ours."""
    level = 2  # 1 is exceptions.warn itself, 2 the frame calling it (ours)
    frame = sys._getframe(1)
    while frame.f_back is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back
        level += 1
    return level


class _WarnOnce:
    """Process-wide "first unsigned load from Redis" latch."""

    def __init__(self) -> None:
        self.done = False
        self.lock = threading.Lock()

    def fire(self, source: str) -> None:
        with self.lock:
            if self.done:
                return
            self.done = True
        warn(
            UnsignedPayloadWarning,
            f"loaded an unsigned pickle from Redis ({source}): anyone who can write to "
            "that Redis can run code in this process; set GRAFLOW_SECRET_KEY (the same "
            "value on producers and workers) to sign and verify payloads",
            security_log,
            stacklevel=_user_stacklevel(),
        )


_unsigned_warning = _WarnOnce()


def loads(
    data: bytes | bytearray | memoryview,
    purpose: Purpose | int | None = None,
    *,
    secret_key: SecretKey = None,
    source: str = "payload",
    from_redis: bool = False,
) -> Any:
    """Verify and unpickle an envelope; ``source`` names it in every error message."""
    blob = bytes(data)
    if len(blob) < HEADER_LEN or blob[:4] != MAGIC:
        raise PayloadError(f"{source} is not a graflow payload (foreign or corrupt)")
    version, flags, kind = blob[4], blob[5], blob[6]
    if version != VERSION:
        raise PayloadError(
            f"{source} is not a graflow payload (foreign or corrupt): envelope version "
            f"{version} is unknown to this graflow (it reads version {VERSION}); "
            "upgrade graflow where it is loaded"
        )
    signed = bool(flags & FLAG_SIGNED)
    if flags & ~_KNOWN_FLAGS or (signed and len(blob) < HEADER_LEN + SIG_LEN):
        raise PayloadError(f"{source} is not a graflow payload (foreign or corrupt)")
    header = blob[:HEADER_LEN]
    keys = resolve_keys(secret_key)
    view = memoryview(blob)  # slices of it share the data: no copy of a large payload
    payload: bytes | memoryview
    if signed:
        signature = blob[HEADER_LEN : HEADER_LEN + SIG_LEN]
        payload = view[HEADER_LEN + SIG_LEN :]
        if not keys:
            raise PayloadSignatureError(_no_key(source))
        if not any(hmac.compare_digest(_mac(k, header, payload), signature) for k in keys):
            raise PayloadSignatureError(_bad_signature(source))
    else:
        payload = view[HEADER_LEN:]
        if keys:
            raise PayloadSignatureError(_bad_signature(source))
        if from_redis:
            _unsigned_warning.fire(source)
    try:
        actual = Purpose(kind)
    except ValueError:
        raise PayloadError(
            f"{source} is not a graflow payload (foreign or corrupt): purpose {kind}"
        ) from None
    if purpose is not None and actual != Purpose(purpose):
        raise PayloadError(
            f"{source} holds a {actual.name.lower()} payload where a "
            f"{Purpose(purpose).name.lower()} payload was expected; check the key or file"
        )
    if flags & FLAG_ZLIB:
        try:
            payload = zlib.decompress(payload)
        except zlib.error as exc:
            raise PayloadError(f"{source} is corrupt (zlib stream)", exc) from exc
    try:
        # cloudpickle output is plain pickle data; pickle imports cloudpickle itself
        # when the payload references it.
        return pickle.loads(payload)
    except Exception as exc:
        raise PayloadError(
            f"{source} could not be unpickled; it may be corrupt or need code "
            "(modules, classes) that this process cannot import",
            exc,
        ) from exc


def _bad_signature(source: str) -> str:
    return (
        f"{source} is unsigned/tampered or signed with another key; set the same "
        "GRAFLOW_SECRET_KEY on producers and workers"
    )


def _no_key(source: str) -> str:
    return (
        f"{source} is signed but no key is set here; set GRAFLOW_SECRET_KEY "
        "(or pass secret_key=) to the key its producer used"
    )


# ----------------------------------------------------------- detached signatures


def sign(data: bytes, secret_key: SecretKey = None) -> str | None:
    """Hex HMAC-SHA256 of ``data`` with the signing key, or None without a key.

    For payloads that travel next to their signature (wire TaskSpecs as JSON).
    """
    keys = resolve_keys(secret_key)
    return _mac(keys[0], bytes(data)).hex() if keys else None


def verify(
    data: bytes,
    signature_hex: str | None,
    secret_key: SecretKey = None,
    *,
    source: str = "payload",
) -> None:
    """Check a detached signature; raises ``PayloadSignatureError`` if it does not hold."""
    keys = resolve_keys(secret_key)
    if not keys:
        if signature_hex:
            raise PayloadSignatureError(_no_key(source))
        return
    if not signature_hex:
        raise PayloadSignatureError(_bad_signature(source))
    try:
        signature = bytes.fromhex(signature_hex)
    except ValueError:
        raise PayloadSignatureError(_bad_signature(source)) from None
    raw = bytes(data)
    if not any(hmac.compare_digest(_mac(k, raw), signature) for k in keys):
        raise PayloadSignatureError(_bad_signature(source))


# ------------------------------------------------------------------------- files

PathOrFile = str | os.PathLike[str] | IO[bytes]


def dump(
    obj: Any,
    fp_or_path: PathOrFile,
    purpose: Purpose | int = Purpose.VALUE,
    *,
    secret_key: SecretKey = None,
    compress: bool = False,
) -> None:
    """Write an envelope to a binary file object, or atomically to a path.

    A path is written to a temporary file in the same directory and renamed over
    the target, so a crash never leaves a torn file behind.
    """
    data = dumps(obj, purpose, secret_key=secret_key, compress=compress)
    if not isinstance(fp_or_path, (str, os.PathLike)):
        fp_or_path.write(data)
        return
    path = os.fspath(fp_or_path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".graflow-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def load(
    fp_or_path: PathOrFile,
    purpose: Purpose | int | None = None,
    *,
    secret_key: SecretKey = None,
    source: str | None = None,
    from_redis: bool = False,
) -> Any:
    """Read and verify an envelope from a binary file object or a path."""
    if isinstance(fp_or_path, (str, os.PathLike)):
        path = os.fspath(fp_or_path)
        with open(path, "rb") as fh:
            data = fh.read()
        where = source or f"file {path!r}"
    else:
        data = fp_or_path.read()
        where = source or f"file {getattr(fp_or_path, 'name', '<stream>')!r}"
    return loads(data, purpose=purpose, secret_key=secret_key, source=where, from_redis=from_redis)
