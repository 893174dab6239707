"""Checkpoints on the local filesystem (plain paths and ``file://`` URLs).

Write protocol (crash-safe; see docs/checkpoints.md):

1. each artefact goes to a temporary file in the target directory (``.<name>.<hex>.tmp``),
   which is flushed and fsynced;
2. an existing ``<base>.meta.json`` is unlinked: the old checkpoint at this base is
   un-committed before any of its files is replaced, so a crashed process can never
   leave the old meta.json paired with new data;
3. the temporaries are renamed (``os.replace``) over ``.pkl``, then ``.state.json``,
   then ``.meta.json``, which commits the new checkpoint; the directory is fsynced,
   once: when ``write`` returns, the checkpoint survives a power loss.

A crash at any point leaves either the complete new checkpoint or a base without
meta.json, which ``read`` reports as an interrupted writer. Other checkpoints in the
directory are never touched. (Step 2 is not synced on its own: journaling filesystems
keep the unlink ahead of the renames, and where one would not, a power loss in
between leaves the old meta.json beside new files, which its sha256s reject as a
mixed checkpoint rather than load. Either way the overwritten checkpoint is gone.)
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets

from graflow.crash import crash_point
from graflow.exceptions import CheckpointError, CheckpointNotFoundError
from graflow.storage.base import (
    PARTS,
    SUFFIXES,
    CheckpointStore,
    Part,
    check_files,
    check_part,
    part_buffers,
    stems_with,
    torn_stems,
)

__all__ = ["LocalStore"]


class LocalStore(CheckpointStore):
    """Checkpoints as files under ``root`` (``""`` means the current directory)."""

    kind = "file"

    def __init__(self, root: str) -> None:
        self.root = root

    def __repr__(self) -> str:
        return f"LocalStore({self.root!r})"

    # -- paths -------------------------------------------------------------------------
    def path(self, base: str, part: str) -> str:
        """The file holding ``part`` of ``base``."""
        return base + check_part(part)

    def display(self, base: str, part: str = "pkl") -> str:
        return self.path(base, part)

    def absolute(self, location: str) -> str:
        return os.path.abspath(location)

    def _join(self, name: str) -> str:
        return os.path.join(self.root, name)

    # -- reading -----------------------------------------------------------------------
    def _get(self, base: str, part: str) -> bytes | None:
        path = self.path(base, part)
        try:
            with open(path, "rb") as fh:
                return fh.read()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise CheckpointError(
                f"cannot read checkpoint artefact {path}: {exc.strerror or exc}; check "
                "its permissions",
                exc,
            ) from exc

    def exists(self, base: str, part: str) -> bool:
        return os.path.exists(self.path(base, part))

    def list_bases(self) -> list[str]:
        directory = self.root or "."
        try:
            names = os.listdir(directory)
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise CheckpointNotFoundError(
                f"checkpoint directory {directory} does not exist; pass the directory the "
                "checkpoints were written to (default: GRAFLOW_CHECKPOINT_DIR or ./checkpoints)",
                exc,
            ) from exc
        except OSError as exc:
            raise CheckpointError(
                f"cannot list checkpoint directory {directory}: {exc.strerror or exc}", exc
            ) from exc
        return [self._join(stem) for stem in stems_with(names, "meta")]

    def list_torn(self) -> list[str]:
        try:
            names = os.listdir(self.root or ".")
        except OSError:
            return []
        return [self._join(stem) for stem in torn_stems(names)]

    # -- writing -----------------------------------------------------------------------
    def write(self, base: str, files: dict[str, Part]) -> str:
        check_files(files)
        directory, name = os.path.split(base)
        if not name:
            raise CheckpointError(
                f"checkpoint location {base!r} names a directory; give the checkpoint a "
                "file name, e.g. checkpoints/run_1"
            )
        temps: dict[str, str] = {}
        placed: list[str] = []  # final names this write has put in place
        step = directory or "."
        try:
            if directory:
                os.makedirs(directory, exist_ok=True)
            for part in PARTS:
                step = f"temporary file for {self.path(base, part)}"
                temps[part] = _write_temp(directory, name + SUFFIXES[part], part_buffers(files[part]))
            step = self.path(base, "meta")
            _unlink(step, strict=True)
            for part, point in (("pkl", "after_pkl"), ("state", "after_state"), ("meta", "")):
                step = self.path(base, part)
                os.replace(temps[part], step)
                del temps[part]
                placed.append(step)
                if point:
                    crash_point(f"checkpoint.{point}")
            step = directory or "."
            _fsync_dir(directory)
        except OSError as exc:
            for leftover in (*temps.values(), *placed):
                _unlink(leftover)
            raise self._write_error(base, exc, step) from exc
        return self.display(base, "pkl")


def _write_temp(directory: str, final_name: str, buffers: list[bytes]) -> str:
    """Write ``buffers`` to a fresh fsynced file next to ``final_name``; return its path.

    ``os.open`` with mode 0o666 lets the umask decide the permissions, as for any file
    the user's process creates (mkstemp would force 0o600).
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        path = os.path.join(directory, f".{final_name}.{secrets.token_hex(6)}.tmp")
        try:
            fd = os.open(path, flags, 0o666)
        except FileExistsError:
            continue
        try:
            with os.fdopen(fd, "wb") as fh:
                for buffer in buffers:  # large ones go straight to the file, uncopied
                    fh.write(buffer)
                fh.flush()
                _datasync(fh.fileno())
        except BaseException:
            _unlink(path)
            raise
        return path
    raise FileExistsError(errno.EEXIST, "no free temporary file name", directory)


def _unlink(path: str, strict: bool = False) -> bool:
    """Remove ``path``; False if it was not there (or, unless ``strict``, if that failed)."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    except OSError:
        if strict:
            raise
        return False
    return True


def _fsync_dir(directory: str) -> None:
    """Make renames and unlinks in ``directory`` durable (no-op where unsupported)."""
    try:
        fd = os.open(directory or ".", os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return  # e.g. Windows, which cannot open a directory
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def _datasync(fd: int) -> None:
    """Flush a file's data (and the metadata needed to read it back) to disk.

    ``fdatasync`` skips timestamps, which a checkpoint does not need; ``fsync`` where
    the platform has no ``fdatasync``."""
    getattr(os, "fdatasync", os.fsync)(fd)
