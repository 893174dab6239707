"""Helpers shared by the checkpoint tests (imported as ``ckutil``; not a test module).

Work is recorded in ``calls.log`` in the test's working directory (a tmp dir): restored
tasks are copies and may run in another process, so Python globals cannot observe them.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
from typing import Any

SUFFIXES = (".pkl", ".state.json", ".meta.json")

#: The exact keys of state.json, of one pending entry, and of meta.json (docs/checkpoints.md).
STATE_KEYS = {
    "schema_version", "checkpoint_id", "session_id", "trace_id", "start_node", "steps",
    "max_steps", "default_max_cycles", "default_max_retries", "completed_tasks",
    "cycle_counts", "retry_counts", "join_arrivals", "known_dynamic", "pending_tasks",
    "resuming_task_id", "backend", "stop_reason",
}  # fmt: skip
PENDING_KEYS = {
    "task_id", "spec_id", "status", "created_at", "attempt", "retry_count", "max_retries",
    "last_error", "dynamic", "parent_task_id", "trace_id",
}  # fmt: skip
METADATA_KEYS = {
    "checkpoint_id", "session_id", "created_at", "steps", "start_node", "backend",
    "graph_hash", "user_metadata", "graph_fingerprint",
}  # fmt: skip
META_KEYS = METADATA_KEYS | {"schema_version", "files", "signed", "graflow_version", "python_version"}
ISO_UTC = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"


def record(*what: Any) -> None:
    """Append one line to calls.log (in the current directory)."""
    with open("calls.log", "a") as fh:
        fh.write(" ".join(str(w) for w in what) + "\n")


def calls() -> list[str]:
    if not os.path.exists("calls.log"):
        return []
    with open("calls.log") as fh:
        return fh.read().splitlines()


def arm(name: str) -> None:
    """Make the next ``maybe_fail(name)`` raise (once)."""
    with open(f"fail.{name}", "w"):
        pass


def maybe_fail(name: str) -> None:
    marker = f"fail.{name}"
    if os.path.exists(marker):
        os.remove(marker)
        raise RuntimeError(f"injected failure in {name}")


def base_of(location: str) -> str:
    for suffix in SUFFIXES:
        if location.endswith(suffix):
            return location[: -len(suffix)]
    return location


def trio(base: str) -> list[str]:
    return [base + s for s in SUFFIXES]


def assert_trio(base: str) -> None:
    for path in trio(base):
        assert os.path.isfile(path), f"{path} missing"


def bases(directory: str = "checkpoints") -> list[str]:
    """Bases of every committed checkpoint in ``directory``, sorted by name."""
    return sorted(p[: -len(".meta.json")] for p in glob.glob(os.path.join(directory, "*.meta.json")))


def only_checkpoint(directory: str = "checkpoints") -> str:
    """The base of the single checkpoint in ``directory``; nothing else may be there."""
    names = sorted(os.listdir(directory))
    assert len(names) == 3, names
    base = os.path.join(directory, names[0].split(".")[0])
    assert sorted(trio(base)) == sorted(os.path.join(directory, n) for n in names)
    return base


def load_json(path: str) -> dict[str, Any]:
    with open(path) as fh:
        doc: dict[str, Any] = json.load(fh)
    return doc


def meta(base: str) -> dict[str, Any]:
    return load_json(base + ".meta.json")


def state(base: str) -> dict[str, Any]:
    return load_json(base + ".state.json")


def write_json(path: str, doc: dict[str, Any]) -> None:
    with open(path, "w") as fh:
        json.dump(doc, fh)


def refresh_hash(base: str, part: str) -> None:
    """Record the current bytes of ``part`` in meta.json, isolating later checks."""
    path = base + (".pkl" if part == "pkl" else ".state.json")
    with open(path, "rb") as fh:
        data = fh.read()
    doc = meta(base)
    doc["files"][part] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    write_json(base + ".meta.json", doc)


#: Objects tasks reach through this module (``ckutil.shared[...]``): a task's closure
#: would carry them into the checkpoint's pickle, a module reference does not.
shared: dict[str, Any] = {}
