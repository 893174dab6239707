"""The one pickle envelope graflow writes and reads (see docs/architecture.md).

Layout: ``b"GFLW"``, version ``0x01``, flags (bit0 signed, bit1 zlib), purpose, then
-- if signed -- a 32-byte HMAC-SHA256 over header + payload, then the cloudpickle
payload. Loading a pickle runs code, so with a key the signature is checked *before*
anything is unpickled, and the purpose byte (covered by the HMAC) stops a payload
written for one use from being accepted for another.

Version ``0x02`` adds the producer's *origin record* right after those 7 bytes (and so
under the HMAC): a length byte N, then N bytes -- Python major, Python minor, pickle
protocol, "code by value" (0 no, 1 yes, 2 unknown), then graflow's version in ASCII.
Graph and task envelopes always carry it; other envelopes only when the pickler had to
pickle code by value (a ``__main__`` function, a closure, a lambda). Bytecode does not
carry across Python minor versions -- run on another one it can crash the interpreter
or compute a wrong answer -- so ``loads`` refuses by-value code from another minor
version *before* unpickling anything. Envelopes without code stay version ``0x01``.

Keys and detached signatures live in ``graflow.codec_keys``, the origin record and the
pickler that notices code by value in ``graflow.codec_origin``; this module re-exports
their public names. Ground floor: the standard library, those two and
``graflow.exceptions`` at import time; cloudpickle is imported when first needed.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import os
import pickle
import sys
import tempfile
import threading
import zlib
from enum import IntEnum
from typing import IO, Any

from graflow.codec_keys import (
    MIN_KEY_BYTES,
    SecretKey,
    bad_signature,
    mac,
    no_key,
    resolve_keys,
    sign,
    verify,
)
from graflow.codec_origin import (
    Origin,
    check_origin,
    dump_tracked,
    origin_record,
    parse_origin,
    pickle_payload,
)
from graflow.exceptions import (
    PayloadError,
    PayloadSignatureError,
    SerializationError,
    UnsignedPayloadWarning,
    warn,
)

__all__ = [
    "MAGIC",
    "MIN_KEY_BYTES",
    "Origin",
    "Purpose",
    "SecretKey",
    "dump",
    "dump_buffers",
    "dumps",
    "is_envelope",
    "load",
    "loads",
    "origin",
    "pickle_payload",
    "resolve_keys",
    "seal",
    "sign",
    "verify",
]

MAGIC = b"GFLW"
VERSION = 0x01
#: The version of envelopes whose header carries the producer's origin record.
VERSION_ORIGIN = 0x02
FLAG_SIGNED = 0x01
FLAG_ZLIB = 0x02
_KNOWN_FLAGS = FLAG_SIGNED | FLAG_ZLIB
HEADER_LEN = 7
SIG_LEN = 32

security_log = logging.getLogger("graflow.security")


class Purpose(IntEnum):
    """What an envelope holds; signed, so a value blob cannot pose as a task blob."""

    CHECKPOINT = 1
    GRAPH = 2
    TASK = 3
    VALUE = 4
    CONTEXT = 5


#: Envelopes that always record their origin: they carry the tasks' code.
_CODE_PURPOSES = frozenset({Purpose.GRAPH, Purpose.TASK})


def origin(data: bytes | bytearray | memoryview) -> Origin | None:
    """The origin record of an envelope, unverified (for diagnostics); None if it has none."""
    blob = bytes(data[: HEADER_LEN + 256])
    if len(blob) < HEADER_LEN or blob[:4] != MAGIC or blob[4] != VERSION_ORIGIN:
        return None
    try:
        return parse_origin(blob, HEADER_LEN, "payload")[0]
    except PayloadError:
        return None


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
    purpose = Purpose(purpose)
    try:
        payload, by_value = pickle_payload(obj)
    except Exception as exc:
        raise _pickling_error(obj, exc) from exc
    return seal(payload, purpose, secret_key=secret_key, compress=compress, by_value=by_value)


def dump_buffers(obj: Any, purpose: Purpose | int, *, secret_key: SecretKey = None) -> list[bytes]:
    """``dumps`` as the buffers making up the envelope, in order, never joined.

    For large payloads (a checkpoint of a big Memory channel): the pickler hands its
    frames and every large ``bytes`` value over by reference, so writing and hashing
    them costs no copy of the data (``dumps`` copies it into a growing buffer and then
    once more to add the header). Only immutable ``bytes`` are kept by reference;
    anything else the pickler passes (a ``bytearray``, a ``memoryview``) is copied, so
    a value changed after this call cannot change what gets written.
    """
    purpose = Purpose(purpose)
    sink = _BufferSink()
    try:
        by_value = dump_tracked(obj, sink)
    except Exception as exc:
        raise _pickling_error(obj, exc) from exc
    record = _record_for(purpose, pickle.HIGHEST_PROTOCOL, by_value)
    return _envelope(sink.parts, purpose, resolve_keys(secret_key), 0, record)


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


def _record_for(purpose: Purpose, protocol: int, by_value: bool | None) -> bytes:
    """The origin record an envelope of ``purpose`` carries (empty: none, version 0x01)."""
    if by_value or purpose in _CODE_PURPOSES:
        return origin_record(protocol, by_value)
    return b""


def _envelope(
    payload: list[bytes], purpose: Purpose, keys: list[bytes], flags: int, record: bytes = b""
) -> list[bytes]:
    """Header (with the origin record, if any), then the signature over header and payload
    when a key is set, then the payload."""
    if keys:
        flags |= FLAG_SIGNED
    version = VERSION_ORIGIN if record else VERSION
    header = MAGIC + bytes((version, flags, int(purpose))) + record
    if not keys:
        return [header, *payload]
    return [header, mac(keys[0], header, *payload), *payload]


def seal(
    payload: bytes,
    purpose: Purpose | int = Purpose.VALUE,
    *,
    secret_key: SecretKey = None,
    compress: bool = False,
    by_value: bool | None = None,
) -> bytes:
    """Wrap already-pickled bytes in an envelope (callers that hash the pickle first,
    e.g. content-addressed graph blobs, and must not pickle twice).

    ``by_value``: whether the payload holds code pickled by value (``pickle_payload``
    tells); None means unknown, which a reader on another Python minor treats as yes.
    """
    purpose = Purpose(purpose)
    protocol = payload[1] if len(payload) > 1 and payload[0] == pickle.PROTO[0] else 0
    record = _record_for(purpose, protocol, by_value)
    flags = 0
    if compress:
        payload = zlib.compress(payload, 6)
        flags |= FLAG_ZLIB
    return b"".join(_envelope([payload], purpose, resolve_keys(secret_key), flags, record))


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
    if version not in (VERSION, VERSION_ORIGIN):
        raise PayloadError(
            f"{source} is not a graflow payload (foreign or corrupt): envelope version "
            f"{version} is unknown to this graflow (it reads versions {VERSION} and "
            f"{VERSION_ORIGIN}); upgrade graflow where it is loaded"
        )
    found: Origin | None = None
    header_len = HEADER_LEN
    if version == VERSION_ORIGIN:
        found, header_len = parse_origin(blob, HEADER_LEN, source)
    signed = bool(flags & FLAG_SIGNED)
    if flags & ~_KNOWN_FLAGS or (signed and len(blob) < header_len + SIG_LEN):
        raise PayloadError(f"{source} is not a graflow payload (foreign or corrupt)")
    header = blob[:header_len]
    keys = resolve_keys(secret_key)
    view = memoryview(blob)  # slices of it share the data: no copy of a large payload
    payload: bytes | memoryview
    if signed:
        signature = blob[header_len : header_len + SIG_LEN]
        payload = view[header_len + SIG_LEN :]
        if not keys:
            raise PayloadSignatureError(no_key(source))
        if not any(hmac.compare_digest(mac(k, header, payload), signature) for k in keys):
            raise PayloadSignatureError(bad_signature(source))
    else:
        payload = view[header_len:]
        if keys:
            raise PayloadSignatureError(bad_signature(source))
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
    if found is not None:
        check_origin(found, source)
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


# ------------------------------------------------------------------------- files

PathOrFile = str | os.PathLike[str] | IO[bytes]


def dump(
    obj: Any,
    file: PathOrFile,
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
    if not isinstance(file, (str, os.PathLike)):
        file.write(data)
        return
    path = os.fspath(file)
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
    file: PathOrFile,
    purpose: Purpose | int | None = None,
    *,
    secret_key: SecretKey = None,
    source: str | None = None,
    from_redis: bool = False,
) -> Any:
    """Read and verify an envelope from a binary file object or a path."""
    if isinstance(file, (str, os.PathLike)):
        path = os.fspath(file)
        with open(path, "rb") as fh:
            data = fh.read()
        where = source or f"file {path!r}"
    else:
        data = file.read()
        where = source or f"file {getattr(file, 'name', '<stream>')!r}"
    return loads(data, purpose=purpose, secret_key=secret_key, source=where, from_redis=from_redis)
