"""A checkpoint's metadata and the helpers its writer and reader share (docs/checkpoints.md)."""

from __future__ import annotations

import datetime as _dt
import hashlib
import platform
import threading
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from graflow.codec import Purpose, SecretKey, dump_buffers, loads, resolve_keys
from graflow.exceptions import (
    CheckpointCorruptError,
    CheckpointError,
    CheckpointNotFoundError,
    CheckpointSignatureError,
    PayloadError,
    PayloadSignatureError,
)

if TYPE_CHECKING:
    from graflow.storage import CheckpointStore

_REQUIRED = ("checkpoint_id", "session_id", "created_at", "steps")


_last_stamp: _dt.datetime | None = None
_stamp_lock = threading.Lock()


def utc_now_iso() -> str:
    """ISO 8601 UTC with milliseconds, e.g. ``2026-05-01T12:00:00.123Z``.

    Strictly increasing within a process (bumped by 1 ms on a tie), so checkpoints
    written in quick succession still list in the order they were made.
    """
    global _last_stamp
    with _stamp_lock:
        current = _dt.datetime.now(_dt.timezone.utc)
        now = current.replace(microsecond=current.microsecond // 1000 * 1000)
        if _last_stamp is not None and now <= _last_stamp:
            now = _last_stamp + _dt.timedelta(milliseconds=1)
        _last_stamp = now
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


@dataclass
class CheckpointMetadata:
    """What a checkpoint is: identity, when, how far the run got, and your metadata."""

    checkpoint_id: str
    session_id: str
    created_at: str
    steps: int
    start_node: str | None
    backend: dict[str, str]
    graph_hash: str | None = None
    user_metadata: dict[str, Any] = field(default_factory=dict)
    graph_fingerprint: str | None = None

    @classmethod
    def create(
        cls,
        checkpoint_id: str,
        session_id: str,
        steps: int,
        start_node: str | None,
        backend: dict[str, str],
        user_metadata: dict[str, Any] | None = None,
        graph_hash: str | None = None,
        graph_fingerprint: str | None = None,
    ) -> CheckpointMetadata:
        return cls(
            checkpoint_id,
            session_id,
            utc_now_iso(),
            steps,
            start_node,
            dict(backend),
            graph_hash,
            dict(user_metadata or {}),
            graph_fingerprint,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "checkpoint_id": self.checkpoint_id,
            "session_id": self.session_id,
            "created_at": self.created_at,
            "steps": self.steps,
            "start_node": self.start_node,
            "backend": dict(self.backend),
            "graph_hash": self.graph_hash,
            "user_metadata": dict(self.user_metadata),
            "graph_fingerprint": self.graph_fingerprint,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "checkpoint metadata") -> CheckpointMetadata:
        missing = [k for k in _REQUIRED if k not in data]
        if missing:
            raise CheckpointCorruptError(
                f"{source} lacks required field(s) {missing}; the file is corrupt or not a "
                "graflow checkpoint — use another checkpoint"
            )
        try:
            return cls(
                checkpoint_id=str(data["checkpoint_id"]),
                session_id=str(data["session_id"]),
                created_at=str(data["created_at"]),
                steps=int(data["steps"]),
                start_node=data.get("start_node"),
                backend=dict(data.get("backend") or {}),
                graph_hash=data.get("graph_hash"),
                user_metadata=dict(data.get("user_metadata") or {}),
                graph_fingerprint=data.get("graph_fingerprint"),
            )
        except (TypeError, ValueError) as exc:
            raise CheckpointCorruptError(
                f"{source} has a field of the wrong type ({exc}); the file is corrupt or not a "
                "graflow checkpoint — use another checkpoint",
                exc,
            ) from exc


def sha256_hex(*pieces: bytes) -> str:
    """Hex sha256 of ``pieces`` in order, as if joined (nothing is joined)."""
    digest = hashlib.sha256()
    for piece in pieces:
        digest.update(piece)  # releases the GIL for large pieces
    return digest.hexdigest()


def new_checkpoint_id(session_id: str, steps: int) -> str:
    return f"{session_id}_{steps}_{uuid.uuid4().hex[:8]}"


def python_version() -> str:
    return platform.python_version()


def load_pickle(
    blob: bytes, source: str, secret_key: SecretKey, from_redis: bool
) -> Any:
    """Verify and unpickle a ``.pkl``, translating payload errors to checkpoint errors."""
    try:
        return loads(blob, Purpose.CHECKPOINT, secret_key=secret_key, source=source, from_redis=from_redis)
    except PayloadSignatureError as exc:
        message = exc.message if source in exc.message else f"{source}: {exc.message}"
        raise CheckpointSignatureError(message, exc.cause) from exc
    except PayloadError as exc:
        raise CheckpointCorruptError(
            f"{source} cannot be loaded: {exc.message} — the file is corrupt or was written "
            "by an incompatible version; use another checkpoint",
            exc.cause or exc,
        ) from exc


def dump_pickle(obj: Any, secret_key: SecretKey) -> tuple[list[bytes], bool]:
    """The ``.pkl`` as the buffers to write in order (never joined: see ``dump_buffers``),
    and whether it is signed."""
    return dump_buffers(obj, Purpose.CHECKPOINT, secret_key=secret_key), bool(resolve_keys(secret_key))


def read_part(store: CheckpointStore, base: str, part: str) -> bytes:
    try:
        return store.read(base, part)
    except CheckpointNotFoundError:
        raise
    except CheckpointError:
        raise
    except OSError as exc:
        raise CheckpointError(f"cannot read {store.display(base, part)}: {exc}", exc) from exc


__all__ = [
    "CheckpointMetadata", "dump_pickle", "load_pickle", "new_checkpoint_id", "python_version", "read_part",
    "sha256_hex", "utc_now_iso",
]
