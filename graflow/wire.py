"""The wire ``TaskSpec``: one activation, msgspec-JSON encoded, the payload of one rq job."""

from __future__ import annotations

import msgspec

WIRE_VERSION = 1


class TaskSpec(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Names the session, task, graph and attempt of one activation; holds no code."""

    v: int = WIRE_VERSION
    session_id: str
    task_id: str
    graph_hash: str
    trace_id: str = ""
    spec_id: str
    attempt: int = 1
    retry_count: int = 0
    redeliveries: int = 0
    enqueued_at: float = 0.0
    not_before: float = 0.0
    parent_task_id: str | None = None
    group_id: str | None = None
    group_run: str | None = None
    branch_id: str | None = None
    dynamic: bool = False
    #: The stored definition of a dynamic task this activation runs (graflow addition).
    dyn_version: str | None = None
    resuming: bool = False
    driver: str = "pool"
    #: "run" executes the task (or starts a group's branches); "finish" applies a
    #: group's policy once its last branch is done (graflow addition).
    phase: str = "run"
    #: > 0: the previous attempt (``attempt - 1``) ran past this timeout in code the
    #: worker could not interrupt and its process was killed; this activation fails at
    #: once with ``TaskTimeoutError`` (the task's retry policy decides), its body does
    #: not run (graflow addition).
    timed_out: float = 0.0
    queue: str = "graflow"
    key_prefix: str = "graflow"


_encoder = msgspec.json.Encoder()


def encode(spec: TaskSpec) -> bytes:
    return _encoder.encode(spec)


def decode(data: bytes | str) -> TaskSpec:
    """Decode a wire spec; unknown fields are ignored, bad input raises ``msgspec.DecodeError``."""
    return msgspec.json.decode(data, type=TaskSpec)


__all__ = ["WIRE_VERSION", "TaskSpec", "decode", "encode"]
