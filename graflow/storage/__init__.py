"""Storage of checkpoint artefacts: local files, Redis keys or fsspec URLs.

The ground floor under ``graflow.core.checkpoint``: it moves the bytes of the three
artefacts of a checkpoint (``<base>.pkl``, ``<base>.state.json``, ``<base>.meta.json``,
the last being the commit marker) and knows nothing of their contents. It does not
import ``graflow.core``; redis and fsspec are imported only when a store uses them.

    store, base = open_location("checkpoints/run_1.pkl")   # an explicit checkpoint
    store = open_directory()                               # GRAFLOW_CHECKPOINT_DIR
    base = store.auto_base(session_id, steps)
    store.write(base, {"pkl": ..., "state": ..., "meta": ...})
"""

from __future__ import annotations

from graflow.storage.base import PARTS, SUFFIXES, CheckpointStore, strip_suffix
from graflow.storage.fsspec_store import FsspecStore
from graflow.storage.local import LocalStore
from graflow.storage.locations import open_directory, open_location, scheme_of
from graflow.storage.redis_store import RedisStore

__all__ = [
    "PARTS",
    "SUFFIXES",
    "CheckpointStore",
    "FsspecStore",
    "LocalStore",
    "RedisStore",
    "open_directory",
    "open_location",
    "scheme_of",
    "strip_suffix",
]
