"""Checkpoints on any fsspec filesystem (``s3://``, ``gs://``, ``memory://``, …).

Needs the ``graflow[fsspec]`` extra plus the scheme's driver (``s3fs``, ``gcsfs``, …);
fsspec is imported only when such a location is opened.

Weaker guarantee than ``LocalStore``: object stores have no atomic rename (fsspec's
``mv`` is copy + delete there), so the artefacts are written directly, in the order
pkl, state.json, meta.json, after the old meta.json has been removed. Object stores
make each PUT atomic, so a crash leaves a base without meta.json (reported as an
interrupted writer) but never a meta.json committing missing data. On filesystems
whose writes are not atomic per file (ftp, sftp) a crash during the meta.json write
can leave a truncated meta.json, which the checkpoint manager reports as corrupt.
"""

from __future__ import annotations

import re
from typing import Any

from graflow.crash import crash_point
from graflow.exceptions import (
    CheckpointError,
    CheckpointNotFoundError,
    UnsupportedCheckpointLocationError,
)
from graflow.redisconn import mask_url
from graflow.storage.base import (
    CheckpointStore,
    Part,
    check_part,
    materialize,
    stems_with,
    torn_stems,
)

__all__ = ["FsspecStore", "open_fsspec"]

# Drivers of common schemes, for the hint when fsspec itself is missing.
_DRIVERS = {
    "s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs",
    "abfs": "adlfs", "abfss": "adlfs", "adl": "adlfs", "hf": "huggingface_hub",
}  # fmt: skip


class FsspecStore(CheckpointStore):
    """Checkpoint artefacts as objects under the URL ``root`` of filesystem ``fs``.

    Bases are URLs (``memory://ck/run_1``); ``fs`` is the fsspec filesystem instance.
    """

    kind = "fsspec"

    def __init__(self, fs: Any, root: str) -> None:
        self.fs = fs
        self.root = root

    def __repr__(self) -> str:
        return f"FsspecStore({mask_url(self.root)!r})"

    # -- naming ------------------------------------------------------------------------
    def url(self, base: str, part: str) -> str:
        """The URL of ``part`` of ``base`` (with credentials, if the location had any)."""
        return base + check_part(part)

    def _path(self, base: str, part: str) -> str:
        return str(self.fs._strip_protocol(self.url(base, part)))

    def display(self, base: str, part: str = "pkl") -> str:
        return mask_url(self.url(base, part))

    def _join(self, name: str) -> str:
        return self.root + name if self.root.endswith("/") else f"{self.root}/{name}"

    # -- operations --------------------------------------------------------------------
    def _get(self, base: str, part: str) -> bytes | None:
        try:
            return bytes(self.fs.cat_file(self._path(base, part)))
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise CheckpointError(
                f"cannot read checkpoint artefact {self.display(base, part)}: {exc}", exc
            ) from exc

    def exists(self, base: str, part: str) -> bool:
        return bool(self.fs.exists(self._path(base, part)))

    def list_bases(self) -> list[str]:
        root_path = str(self.fs._strip_protocol(self.root))
        try:
            entries = self.fs.ls(root_path, detail=False)
        except FileNotFoundError as exc:
            raise CheckpointNotFoundError(
                f"checkpoint location {mask_url(self.root)} does not exist; pass the "
                "location the checkpoints were written to",
                exc,
            ) from exc
        except OSError as exc:
            raise CheckpointError(f"cannot list {mask_url(self.root)}: {exc}", exc) from exc
        return [self._join(stem) for stem in stems_with(self._names(entries), "meta")]

    @staticmethod
    def _names(entries: list[Any]) -> list[str]:
        return [str(entry).rstrip("/").rsplit("/", 1)[-1] for entry in entries]

    def list_torn(self) -> list[str]:
        try:
            names = self._names(self.fs.ls(str(self.fs._strip_protocol(self.root)), detail=False))
        except OSError:
            return []
        return [self._join(stem) for stem in torn_stems(names)]

    def write(self, base: str, files: dict[str, Part]) -> str:
        data = materialize(files)
        step = self.display(base, "meta")
        try:
            parent = self._path(base, "pkl").rsplit("/", 1)[0]
            if parent:
                self.fs.makedirs(parent, exist_ok=True)
            # Un-commit any checkpoint already at this base before replacing its data.
            meta = self._path(base, "meta")
            if self.fs.exists(meta):
                self.fs.rm_file(meta)
            for part, point in (("pkl", "after_pkl"), ("state", "after_state"), ("meta", "")):
                step = self.display(base, part)
                self.fs.pipe_file(self._path(base, part), data[part])
                if point:
                    crash_point(f"checkpoint.{point}")
        except OSError as exc:
            raise self._write_error(base, exc, step) from exc
        return self.display(base, "pkl")


def open_fsspec(location: str, scheme: str) -> tuple[Any, str]:
    """``(filesystem, location)`` for an fsspec URL, or UnsupportedCheckpointLocationError
    naming the scheme and what to install."""
    shown = mask_url(location)
    try:
        import fsspec
        from fsspec.core import url_to_fs
    except ImportError as exc:
        raise UnsupportedCheckpointLocationError(
            f"checkpoint location {shown} uses the scheme {scheme!r}, which needs fsspec: "
            f"pip install graflow[fsspec]{_driver_hint(scheme, None)}",
            exc,
        ) from exc
    try:
        fsspec.get_filesystem_class(scheme)
    except ValueError as exc:
        raise UnsupportedCheckpointLocationError(
            f"unsupported checkpoint location scheme {scheme!r} ({shown}): use a local path, "
            "file://, redis://host:port/<db>/<key>, rediss://…, or an fsspec URL such as "
            "s3://, gs:// or memory:// (fsspec knows no driver for this scheme)",
            exc,
        ) from exc
    except ImportError as exc:
        raise UnsupportedCheckpointLocationError(
            f"checkpoint location {shown} uses the scheme {scheme!r}, whose fsspec driver is "
            f"not installed ({exc}): pip install graflow[fsspec]{_driver_hint(scheme, exc)}",
            exc,
        ) from exc
    try:
        fs, _ = url_to_fs(location)
    except ImportError as exc:
        raise UnsupportedCheckpointLocationError(
            f"checkpoint location {shown} needs a driver that is not installed ({exc}): "
            f"pip install graflow[fsspec]{_driver_hint(scheme, exc)}",
            exc,
        ) from exc
    except (ValueError, TypeError) as exc:
        raise UnsupportedCheckpointLocationError(
            f"fsspec cannot open the checkpoint location {shown} ({exc}); check the URL",
            exc,
        ) from exc
    return fs, location


def _driver_hint(scheme: str, exc: ImportError | None) -> str:
    """`` s3fs`` (the pip package providing ``scheme``'s driver), or ``""``."""
    try:
        from fsspec.registry import known_implementations
    except ImportError:
        known_implementations = {}
    spec = known_implementations.get(scheme, {})
    top = str(spec.get("class", "")).split(".", 1)[0]
    if top and top != "fsspec":
        return f" {top}"
    missing = getattr(exc, "name", None)
    if not missing and exc is not None:  # e.g. 'SFTPFileSystem requires "paramiko" …'
        quoted = re.search(r"[\"']([A-Za-z][\w.-]*)[\"']", str(exc))
        missing = quoted.group(1) if quoted else None
    if missing:
        return f" {missing.split('.', 1)[0]}"
    if scheme in _DRIVERS:
        return f" {_DRIVERS[scheme]}"
    return "" if spec else f" (plus the fsspec driver for {scheme}:// if it is not built in)"
