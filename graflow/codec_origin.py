"""Who pickled a payload: the origin record of version-2 envelopes, and the pickler that
notices code going by value (see ``graflow.codec`` for the envelope layout).

Bytecode does not carry across Python minor versions, so a payload records the
producer's Python, pickle protocol, graflow version and whether it holds code pickled by
value; ``check_origin`` refuses what this interpreter cannot run, before anything is
unpickled. Ground floor: standard library and ``graflow.exceptions`` (cloudpickle on first use).
"""

from __future__ import annotations

import pickle
import sys
import threading
from typing import Any, ClassVar, NamedTuple

from graflow.exceptions import PayloadError

__all__ = ["Origin", "check_origin", "dump_tracked", "origin_record", "parse_origin", "pickle_payload"]

_BY_VALUE_UNKNOWN = 2


class Origin(NamedTuple):
    """Who wrote an envelope (version 0x02): read before anything is unpickled."""

    python: tuple[int, int]
    protocol: int
    #: Whether the payload holds code pickled by value; None when the sealer did not know.
    by_value: bool | None
    graflow: str

    @property
    def python_text(self) -> str:
        return f"{self.python[0]}.{self.python[1]}"


def _graflow_version() -> str:
    module = sys.modules.get("graflow")
    try:
        return str(getattr(module, "__version__", "unknown"))
    except Exception:  # metadata unreadable: the record is diagnostic only
        return "unknown"


def origin_record(protocol: int, by_value: bool | None) -> bytes:
    flag = _BY_VALUE_UNKNOWN if by_value is None else int(by_value)
    version = _graflow_version().encode("ascii", "replace")[:200]
    body = bytes((sys.version_info[0], sys.version_info[1], protocol, flag)) + version
    return bytes((len(body),)) + body


def parse_origin(blob: bytes, at: int, source: str) -> tuple[Origin, int]:
    """The origin record that starts at offset ``at`` of ``blob`` and where it ends."""
    size = blob[at] if len(blob) > at else 0
    end = at + 1 + size
    if size < 4 or len(blob) < end:
        raise PayloadError(f"{source} is not a graflow payload (foreign or corrupt)")
    body = blob[at + 1 : end]
    by_value = None if body[3] == _BY_VALUE_UNKNOWN else bool(body[3])
    return Origin((body[0], body[1]), body[2], by_value, body[4:].decode("ascii", "replace")), end


def check_origin(found: Origin, source: str) -> None:
    """Refuse what this interpreter cannot run safely, before it is unpickled."""
    here = sys.version_info[:2]
    here_text = f"{here[0]}.{here[1]}"
    if found.protocol > pickle.HIGHEST_PROTOCOL:
        raise PayloadError(
            f"{source} was pickled with protocol {found.protocol} by Python {found.python_text}, "
            f"and this Python {here_text} reads protocols up to {pickle.HIGHEST_PROTOCOL}; "
            "run the same Python minor version on producers and workers"
        )
    if found.by_value is not False and found.python != here:
        what = "carries" if found.by_value else "may carry"
        raise PayloadError(
            f"{source} {what} code pickled by value under Python {found.python_text} "
            f"(graflow {found.graflow}), but this process runs Python {here_text}: bytecode "
            "does not carry across Python minor versions (it could crash this process or "
            "compute a wrong result), so it was not loaded; run the same Python minor version "
            "on producers and workers, or define the tasks in a module the workers can "
            "import (not __main__, not inside a function), so that they travel by reference"
        )


_pickler_class: Any = None
#: Per thread: whether the pickling under way has pickled a code object (by value).
_tracking = threading.local()


def _tracking_pickler() -> Any:
    """cloudpickle's Pickler, noting (in ``_tracking``) when it pickles a code object,
    i.e. code by value: such a payload runs only under the producer's Python minor."""
    global _pickler_class
    if _pickler_class is None:
        import types
        from collections import ChainMap

        import cloudpickle

        base: Any = cloudpickle.Pickler
        code_reduce = base.dispatch_table[types.CodeType]

        def reduce_code(obj: Any) -> Any:
            _tracking.by_value = True
            return code_reduce(obj)

        class TrackingPickler(base):  # type: ignore[misc]
            # One table for all instances: nothing to build per pickling.
            dispatch_table: ClassVar[Any] = ChainMap({types.CodeType: reduce_code}, base.dispatch_table)

        _pickler_class = TrackingPickler
    return _pickler_class


def dump_tracked(obj: Any, file: Any) -> bool:
    """Pickle ``obj`` into ``file``; returns whether any code went by value."""
    outer = getattr(_tracking, "by_value", False)  # a pickling inside a __reduce__
    _tracking.by_value = False
    try:
        _tracking_pickler()(file, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
        return bool(_tracking.by_value)
    finally:
        _tracking.by_value = outer


def pickle_payload(obj: Any) -> tuple[bytes, bool]:
    """cloudpickle bytes of ``obj`` and whether any code went by value (see ``Origin``)."""
    import io

    buffer = io.BytesIO()
    by_value = dump_tracked(obj, buffer)
    return buffer.getvalue(), by_value
