"""The JSON documents of a checkpoint (see docs/checkpoints.md), as msgspec Structs.

msgspec validates on decode: a missing required field or a wrong type is a
``msgspec.ValidationError``, which the manager reports as ``CheckpointCorruptError``
naming the file. Unknown fields are ignored so newer minor versions stay readable.
"""

from __future__ import annotations

from typing import Any

import msgspec

SCHEMA_VERSION = "2.0"
SCHEMA_MAJOR = 2


class PendingEntry(msgspec.Struct, kw_only=True):
    task_id: str
    spec_id: str
    status: str = "ready"
    created_at: float
    attempt: int = 1
    retry_count: int = 0
    max_retries: int = 0
    last_error: str | None = None
    dynamic: bool = False
    parent_task_id: str | None = None
    trace_id: str | None = None


class BackendInfo(msgspec.Struct, kw_only=True):
    channel: str
    queue: str
    storage: str


class StateDoc(msgspec.Struct, kw_only=True):
    schema_version: str
    checkpoint_id: str
    session_id: str
    trace_id: str
    start_node: str | None
    steps: int
    max_steps: int
    default_max_cycles: int
    default_max_retries: int
    completed_tasks: list[str]
    cycle_counts: dict[str, int]
    retry_counts: dict[str, int]
    join_arrivals: dict[str, list[str]]
    known_dynamic: list[str]
    pending_tasks: list[PendingEntry]
    resuming_task_id: str | None
    backend: BackendInfo
    stop_reason: str | None


class FileInfo(msgspec.Struct):
    bytes: int
    sha256: str


class MetaDoc(msgspec.Struct, kw_only=True):
    schema_version: str
    checkpoint_id: str
    session_id: str
    created_at: str
    steps: int
    start_node: str | None
    backend: dict[str, str]
    graph_hash: str | None = None
    user_metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    graph_fingerprint: str | None = None
    files: dict[str, FileInfo]
    signed: bool = False
    graflow_version: str = ""
    python_version: str = ""


class VersionProbe(msgspec.Struct):
    """Just enough to read the version of any checkpoint document, ours or upstream's."""

    schema_version: str | None = None
    version: str | None = None


_encoder = msgspec.json.Encoder(order="deterministic")


def encode(doc: Any) -> bytes:
    return _encoder.encode(doc)


def to_builtins(doc: Any) -> Any:
    return msgspec.to_builtins(doc)


__all__ = [
    "SCHEMA_MAJOR",
    "SCHEMA_VERSION",
    "BackendInfo",
    "FileInfo",
    "MetaDoc",
    "PendingEntry",
    "StateDoc",
    "VersionProbe",
    "encode",
    "to_builtins",
]
