"""From a checkpoint location (path or URL) to a store.

* local paths and ``file://`` URLs → ``LocalStore``;
* ``redis://[user:pass@]host:port/db/<key>`` and ``rediss://…`` → ``RedisStore``;
* any other ``scheme://`` → ``FsspecStore`` when fsspec and the scheme's driver are
  installed, else ``UnsupportedCheckpointLocationError`` naming what to install.
"""

from __future__ import annotations

import os
import re

from graflow import settings
from graflow.defaults import DEFAULT_CHECKPOINT_DIRECTORY
from graflow.exceptions import CheckpointError, UnsupportedCheckpointLocationError
from graflow.redisconn import mask_url
from graflow.storage.base import CheckpointStore, strip_suffix
from graflow.storage.fsspec_store import FsspecStore, open_fsspec
from graflow.storage.local import LocalStore
from graflow.storage.redis_store import parse_redis_location

__all__ = ["DEFAULT_DIRECTORY", "open_directory", "open_location", "scheme_of"]

#: Where automatic checkpoints go without ``GRAFLOW_CHECKPOINT_DIR`` (relative to CWD).
DEFAULT_DIRECTORY = DEFAULT_CHECKPOINT_DIRECTORY

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")


def scheme_of(location: str) -> str | None:
    """The lower-cased URL scheme of ``location``, or ``None`` for a plain path.

    One-letter "schemes" are Windows drive letters (``C://x``), hence paths.
    """
    match = _SCHEME.match(location)
    if match is None or len(match.group(1)) < 2:
        return None
    return match.group(1).lower()


def _file_path(location: str) -> str:
    """The local path of a ``file://`` URL (``file:///abs``, ``file://localhost/abs``,
    and fsspec's relative ``file://rel``)."""
    rest = location.split("://", 1)[1]
    if rest.startswith("localhost/"):
        rest = rest[len("localhost") :]
    if not rest:
        raise UnsupportedCheckpointLocationError(
            f"checkpoint location {location!r} has no path; use file:///absolute/path"
        )
    return rest


def _as_text(location: str | os.PathLike[str]) -> str:
    text = os.fspath(location)
    if not isinstance(text, str) or not text:
        raise CheckpointError(
            f"checkpoint location {location!r} is empty or not text; pass a path or a URL"
        )
    return text


def _no_name(location: str) -> CheckpointError:
    return CheckpointError(
        f"checkpoint location {mask_url(location)} names a directory, not a checkpoint; "
        "give the checkpoint a name, e.g. checkpoints/run_1 (its .pkl, .state.json and "
        ".meta.json share that name)"
    )


def open_location(location: str | os.PathLike[str]) -> tuple[CheckpointStore, str]:
    """Parse a checkpoint location (explicit path of a checkpoint, with or without
    .pkl/.state.json/.meta.json suffix, which is stripped) into (store, base)."""
    text = _as_text(location)
    scheme = scheme_of(text)
    if scheme is None or scheme == "file":
        base = strip_suffix(_file_path(text) if scheme else text)
        directory, name = os.path.split(base)
        if not name:
            raise _no_name(text)
        return LocalStore(directory), base
    if scheme in ("redis", "rediss"):
        return parse_redis_location(text, directory=False)
    fs, url = open_fsspec(text, scheme)
    base = strip_suffix(url)
    root, _, name = base.split("://", 1)[1].rpartition("/")
    if not name:
        raise _no_name(text)
    root_url = base.rsplit("/", 1)[0] if root else f"{scheme}://"
    return FsspecStore(fs, root_url), base


def open_directory(location: str | os.PathLike[str] | None = None) -> CheckpointStore:
    """A store rooted at a directory/URL, for auto naming and listing. None → env
    GRAFLOW_CHECKPOINT_DIR or "checkpoints" (relative to CWD)."""
    if location is None:
        location = settings.current().checkpoint_dir
    text = _as_text(location)
    scheme = scheme_of(text)
    if scheme is None or scheme == "file":
        return LocalStore(_file_path(text) if scheme else text)
    if scheme in ("redis", "rediss"):
        return parse_redis_location(text, directory=True)[0]
    fs, url = open_fsspec(text, scheme)
    root = url if url.endswith("://") else url.rstrip("/")
    return FsspecStore(fs, root)
