"""The storage interface for checkpoint artefacts (see docs/checkpoints.md).

A checkpoint is three artefacts sharing a *base*: ``<base>.pkl``, ``<base>.state.json``
and ``<base>.meta.json``. meta.json is the commit marker: it is written last, and a
base without it is not a checkpoint. Stores only move bytes; the checkpoint manager
produces and parses the contents.

What a base looks like depends on the store: a filesystem path for ``LocalStore``, a
Redis key for ``RedisStore``, a URL for ``FsspecStore``. Callers treat it as opaque
and pass back what ``open_location``, ``auto_base`` or ``list_bases`` gave them.
"""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping

from graflow.exceptions import CheckpointError, CheckpointNotFoundError

__all__ = [
    "PARTS",
    "SUFFIXES",
    "CheckpointStore",
    "check_files",
    "check_part",
    "stems_with",
    "strip_suffix",
]

#: The artefacts of one checkpoint, in write order (meta.json, the commit marker, last).
PARTS: tuple[str, str, str] = ("pkl", "state", "meta")

#: File/key suffix of each part.
SUFFIXES: dict[str, str] = {"pkl": ".pkl", "state": ".state.json", "meta": ".meta.json"}


def strip_suffix(name: str) -> str:
    """``name`` without a trailing ``.pkl``, ``.state.json`` or ``.meta.json``."""
    for suffix in SUFFIXES.values():
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def stems_with(names: Iterable[str], part: str) -> list[str]:
    """The sorted stems of the visible ``names`` ending in ``part``'s suffix (temporary
    files start with a dot and are skipped)."""
    suffix = SUFFIXES[part]
    return sorted(
        {
            n[: -len(suffix)]
            for n in names
            if n.endswith(suffix) and len(n) > len(suffix) and not n.startswith(".")
        }
    )


def check_part(part: str) -> str:
    """The suffix of ``part``; ``ValueError`` for anything but ``PARTS``."""
    try:
        return SUFFIXES[part]
    except KeyError:
        raise ValueError(f"unknown checkpoint part {part!r}; expected one of {PARTS}") from None


#: A part's bytes; or the buffers making them up, in order (a large ``.pkl`` is written
#: without ever being joined); or a function producing them (meta.json may be finished
#: while the store is already writing the ``.pkl``, whose hash is computed alongside).
Part = bytes | list[bytes] | Callable[[], bytes]


def check_files(files: Mapping[str, Part]) -> None:
    """A write carries exactly the three parts, as bytes (or a function for bytes)."""
    if set(files) != set(PARTS):
        raise ValueError(f"a checkpoint write needs exactly the parts {PARTS}, got {sorted(files)}")
    for part, data in files.items():
        if not isinstance(data, (bytes, bytearray, memoryview, list)) and not callable(data):
            raise TypeError(f"checkpoint part {part!r} must be bytes, not {type(data).__name__}")


def torn_stems(names: list[str]) -> list[str]:
    """Stems with a ``.pkl`` or ``.state.json`` but no ``.meta.json``: interrupted writes."""
    committed = set(stems_with(names, "meta"))
    torn = set(stems_with(names, "pkl")) | set(stems_with(names, "state"))
    return sorted(torn - committed)


def part_bytes(data: Part) -> bytes:
    return b"".join(part_buffers(data))  # one buffer: itself, no copy


def part_buffers(data: Part) -> list[bytes]:
    """A part as buffers to write in order (no join)."""
    if isinstance(data, list):
        return data
    return [data() if callable(data) else bytes(data)]


def materialize(files: Mapping[str, Part]) -> dict[str, bytes]:
    """Every part as bytes (stores that write all parts in one step)."""
    check_files(files)
    return {part: part_bytes(data) for part, data in files.items()}


class CheckpointStore(ABC):
    """Where checkpoint artefacts live: a directory, a Redis key prefix or an fsspec URL."""

    #: ``backend.storage`` in state.json: ``"file"``, ``"redis"`` or ``"fsspec"``.
    kind: str

    @abstractmethod
    def write(self, base: str, files: dict[str, Part]) -> str:
        """Write the three artefacts of ``base`` (meta.json last, so it commits them)
        and return the display location of the ``.pkl``. An existing checkpoint at
        ``base`` is replaced. Failures raise ``CheckpointError`` naming the location."""

    @abstractmethod
    def exists(self, base: str, part: str) -> bool:
        """Does the artefact ``part`` of ``base`` exist (committed or not)?"""

    @abstractmethod
    def list_bases(self) -> list[str]:
        """Bases directly under this store's location that have a meta.json, by name."""

    def list_torn(self) -> list[str]:
        """Bases directly under this store's location that have a ``.pkl`` or
        ``.state.json`` but no meta.json: checkpoints whose writer was interrupted."""
        return []

    @abstractmethod
    def display(self, base: str, part: str = "pkl") -> str:
        """Human location of an artefact (password masked)."""

    def absolute(self, location: str) -> str:
        """``location`` (as ``write`` returned it) as a process in another working
        directory must name it: what a pooled run records. URLs are already absolute."""
        return location

    @abstractmethod
    def _get(self, base: str, part: str) -> bytes | None:
        """The artefact's bytes, or ``None`` when it does not exist."""

    @abstractmethod
    def _join(self, name: str) -> str:
        """The base called ``name`` directly under this store's location."""

    def read(self, base: str, part: str) -> bytes:
        """The bytes of an artefact; ``CheckpointNotFoundError`` naming it when missing."""
        check_part(part)
        data = self._get(base, part)
        if data is None:
            raise self._missing(base, part)
        return data

    def auto_base(self, session_id: str, steps: int) -> str:
        """``{dir}/session_{session_id}_step_{steps}``, with ``_{n}`` appended (n = 1, 2,
        …) while any artefact with that base exists."""
        stem = self._join(f"session_{session_id}_step_{steps}")
        for n in itertools.count():
            candidate = stem if n == 0 else f"{stem}_{n}"
            if not self._any_exists(candidate):
                return candidate
        raise AssertionError("unreachable")  # pragma: no cover

    def _any_exists(self, base: str) -> bool:
        return any(self.exists(base, part) for part in PARTS)

    def read_error(self, base: str, part: str) -> CheckpointNotFoundError:
        """The error ``read`` raises when ``part`` of ``base`` is missing."""
        return self._missing(base, part)

    def _missing(self, base: str, part: str) -> CheckpointNotFoundError:
        """The error for a missing artefact, telling a torn checkpoint from an absent one."""
        where = self.display(base, part)
        present = [p for p in PARTS if p != part and self.exists(base, p)]
        if "meta" not in present and present:
            shown = " and ".join(self.display(base, p) for p in present)
            return CheckpointNotFoundError(
                f"checkpoint {self.display(base, 'meta')} is missing: the writer was "
                f"interrupted before it committed this checkpoint ({shown} "
                f"{'exist' if len(present) > 1 else 'exists'} without a meta.json: a torn "
                "checkpoint), so it cannot be used; resume from "
                "an earlier checkpoint"
            )
        if not present:
            return CheckpointNotFoundError(
                f"no checkpoint at {where}; check the location (a checkpoint is the three "
                f"artefacts {', '.join(self.display(base, p) for p in PARTS)})"
            )
        return CheckpointNotFoundError(
            f"checkpoint artefact {where} is missing although {self.display(base, 'meta')} "
            "exists (deleted or copied incompletely); copy all three artefacts of the "
            "checkpoint together"
        )

    def _write_error(self, base: str, exc: BaseException, detail: str = "") -> CheckpointError:
        """``CheckpointError`` for a failed write; ``str()`` appends ``exc`` (the OS error)."""
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        extra = f" at {detail}" if detail else ""
        return CheckpointError(
            f"cannot write checkpoint {self.display(base)}: {reason}{extra}; check that the "
            "location is writable and has space",
            exc,
        )
