"""Checkpoints: write a run's state as three artefacts and resume from them.

``<base>.pkl`` holds the context (memory channel: all of it; Redis channel: a small
stub naming the session), ``<base>.state.json`` the scheduling state, and
``<base>.meta.json`` the metadata plus a sha256 of the other two. meta.json is
written last and is the commit marker: a checkpoint without it, or whose files
disagree with it, is reported and never loaded. The format and the algorithms:
docs/checkpoints.md. The writing is in ``checkpoint_writer``, the reading in
``checkpoint_reader``; this module is their public face.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from graflow.codec import SecretKey
from graflow.core.checkpoint_meta import CheckpointMetadata
from graflow.core.checkpoint_reader import list_checkpoints, resume
from graflow.core.checkpoint_writer import write_checkpoint

if TYPE_CHECKING:
    from graflow.core.context import ExecutionContext
    from graflow.core.graph import TaskGraph


class CheckpointManager:
    """Create, resume and list checkpoints."""

    @classmethod
    def create_checkpoint(
        cls,
        context: ExecutionContext,
        *,
        path: str | None = None,
        metadata: dict[str, Any] | None = None,
        resuming_task_id: str | None = None,
        secret_key: SecretKey = None,
    ) -> tuple[str, CheckpointMetadata]:
        """Write the three artefacts of ``context`` now; returns (location of .pkl, metadata)."""
        return write_checkpoint(context, path, metadata, resuming_task_id, secret_key)

    @classmethod
    def resume_from_checkpoint(
        cls,
        checkpoint_path: str,
        *,
        redis_url: str | None = None,
        graph: TaskGraph | None = None,
        secret_key: SecretKey = None,
        strict_graph: bool = False,
    ) -> tuple[ExecutionContext, CheckpointMetadata]:
        """Validate a checkpoint and rebuild its context; ``WorkflowEngine().execute(ctx)`` finishes the run."""
        return resume(checkpoint_path, redis_url, graph, secret_key, strict_graph)

    @classmethod
    def list_checkpoints(cls, location: str = "checkpoints") -> list[tuple[str, CheckpointMetadata]]:
        """Checkpoints under ``location``, oldest first; reads only meta.json files."""
        return list_checkpoints(location)


__all__ = ["CheckpointManager", "CheckpointMetadata"]
