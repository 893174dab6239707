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
from typing import IO, Any, ClassVar, NamedTuple

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


# ------------------------------------------------------------------------- origin

#: Envelopes that always record their origin: they carry the tasks' code.
_CODE_PURPOSES = frozenset({Purpose.GRAPH, Purpose.TASK})
_BY_VALUE_UNKNOWN = 2


class Origin(NamedTuple):
    """Who wrote an envelope (version 0x02): read before anything is unpickled."""

    python: tuple[int, int]
    protocol: int
    #: Whether the payload holds code pickled by value; None when the sealer did not know.
    by_value: bool | None
    graflow: str

    @property
    def python_text(self) -> str:
        return f"{self.python[0]}.{self.python[1]}"


def _graflow_version() -> str:
    module = sys.modules.get("graflow")
    try:
        return str(getattr(module, "__version__", "unknown"))
    except Exception:  # metadata unreadable: the record is diagnostic only
        return "unknown"


def _origin_record(protocol: int, by_value: bool | None) -> bytes:
    flag = _BY_VALUE_UNKNOWN if by_value is None else int(by_value)
    version = _graflow_version().encode("ascii", "replace")[:200]
    body = bytes((sys.version_info[0], sys.version_info[1], protocol, flag)) + version
    return bytes((len(body),)) + body


def _parse_origin(blob: bytes, source: str) -> tuple[Origin, int]:
    """The origin record of a version-2 envelope and the full header length."""
    size = blob[HEADER_LEN] if len(blob) > HEADER_LEN else 0
    end = HEADER_LEN + 1 + size
    if size < 4 or len(blob) < end:
        raise PayloadError(f"{source} is not a graflow payload (foreign or corrupt)")
    body = blob[HEADER_LEN + 1 : end]
    by_value = None if body[3] == _BY_VALUE_UNKNOWN else bool(body[3])
    return Origin((body[0], body[1]), body[2], by_value, body[4:].decode("ascii", "replace")), end


def origin(data: bytes | bytearray | memoryview) -> Origin | None:
    """The origin record of an envelope, unverified (for diagnostics); None if it has none."""
    blob = bytes(data[: HEADER_LEN + 256])
    if len(blob) < HEADER_LEN or blob[:4] != MAGIC or blob[4] != VERSION_ORIGIN:
        return None
    try:
        return _parse_origin(blob, "payload")[0]
    except PayloadError:
        return None


def _check_origin(found: Origin, source: str) -> None:
    """Refuse what this interpreter cannot run safely, before it is unpickled."""
    here = sys.version_info[:2]
    here_text = f"{here[0]}.{here[1]}"
    if found.protocol > pickle.HIGHEST_PROTOCOL:
        raise PayloadError(
            f"{source} was pickled with protocol {found.protocol} by Python {found.python_text}, "
            f"and this Python {here_text} reads protocols up to {pickle.HIGHEST_PROTOCOL}; "
            "run the same Python minor version on producers and workers"
        )
    if found.by_value is not False and found.python != here:
        what = "carries" if found.by_value else "may carry"
        raise PayloadError(
            f"{source} {what} code pickled by value under Python {found.python_text} "
            f"(graflow {found.graflow}), but this process runs Python {here_text}: bytecode "
            "does not carry across Python minor versions (it could crash this process or "
            "compute a wrong result), so it was not loaded; run the same Python minor version "
            "on producers and workers, or define the tasks in a module the workers can "
            "import (not __main__, not inside a function), so that they travel by reference"
        )


_pickler_class: Any = None
#: Per thread: whether the pickling under way has pickled a code object (by value).
_tracking = threading.local()


def _tracking_pickler() -> Any:
    """cloudpickle's Pickler, noting (in ``_tracking``) when it pickles a code object,
    i.e. code by value: such a payload runs only under the producer's Python minor."""
    global _pickler_class
    if _pickler_class is None:
        import types
        from collections import ChainMap

        import cloudpickle

        base: Any = cloudpickle.Pickler
        code_reduce = base.dispatch_table[types.CodeType]

        def reduce_code(obj: Any) -> Any:
            _tracking.by_value = True
            return code_reduce(obj)

        class TrackingPickler(base):  # type: ignore[misc]
            # One table for all instances: nothing to build per pickling.
            dispatch_table: ClassVar[Any] = ChainMap({types.CodeType: reduce_code}, base.dispatch_table)

        _pickler_class = TrackingPickler
    return _pickler_class


def _dump_tracked(obj: Any, file: Any) -> bool:
    """Pickle ``obj`` into ``file``; returns whether any code went by value."""
    outer = getattr(_tracking, "by_value", False)  # a pickling inside a __reduce__
    _tracking.by_value = False
    try:
        _tracking_pickler()(file, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
        return bool(_tracking.by_value)
    finally:
        _tracking.by_value = outer


def pickle_payload(obj: Any) -> tuple[bytes, bool]:
    """cloudpickle bytes of ``obj`` and whether any code went by value (see ``Origin``)."""
    import io

    buffer = io.BytesIO()
    by_value = _dump_tracked(obj, buffer)
    return buffer.getvalue(), by_value


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
        by_value = _dump_tracked(obj, sink)
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
        return _origin_record(protocol, by_value)
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
    return [header, _mac(keys[0], header, *payload), *payload]


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
        found, header_len = _parse_origin(blob, source)
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
            raise PayloadSignatureError(_no_key(source))
        if not any(hmac.compare_digest(_mac(k, header, payload), signature) for k in keys):
            raise PayloadSignatureError(_bad_signature(source))
    else:
        payload = view[header_len:]
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
    if found is not None:
        _check_origin(found, source)
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
