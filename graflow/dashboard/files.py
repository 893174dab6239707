"""What the dashboard tells of a checkpoint: its meta.json, never its pickle."""

from __future__ import annotations

from typing import Any

from graflow.exceptions import GraflowError


def checkpoint_meta(location: str) -> dict[str, Any]:
    """``{readable, session_id, steps, created_at, size, metadata}`` from the checkpoint's
    meta.json (plain JSON) wherever it is stored; ``readable`` False with ``error`` when this
    process cannot read it (the dashboard may run on another host than the worker that
    wrote a local file)."""
    from graflow.core.checkpoint_reader import read_meta
    from graflow.storage import open_location

    try:
        store, base = open_location(location)
        meta = read_meta(store, base)
    except (GraflowError, OSError, ValueError) as exc:
        return {"readable": False, "error": str(exc), "size": None}
    return {
        "readable": True, "session_id": meta.session_id, "steps": meta.steps, "created_at": meta.created_at,
        "size": sum(f.bytes for f in meta.files.values()), "metadata": meta.user_metadata,
    }  # fmt: skip


__all__ = ["checkpoint_meta"]
