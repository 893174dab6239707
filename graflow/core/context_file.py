"""``ExecutionContext.save``/``load``: a run's context in one file, as upstream has it.

The file is the codec's signed envelope (purpose ``CONTEXT``), so a file saved for
another use, or tampered with under a signing key, is refused before it is unpickled.
"""

from __future__ import annotations

from typing import TypeVar

_C = TypeVar("_C", bound="SavedContext")

DEFAULT_PATH = "execution_context.pkl"


class SavedContext:
    """Mixed into ``ExecutionContext``: ``save()`` and ``load()`` with upstream's default path."""

    def save(self, path: str = DEFAULT_PATH) -> None:
        from graflow.codec import Purpose, dump  # cloudpickle: only when used

        dump(self, path, Purpose.CONTEXT)

    @classmethod
    def load(cls: type[_C], path: str = DEFAULT_PATH) -> _C:
        from graflow.codec import Purpose, load

        ctx = load(path, Purpose.CONTEXT)
        if not isinstance(ctx, cls):
            from graflow.exceptions import PayloadError

            raise PayloadError(
                f"{path} holds a {type(ctx).__name__}, not an {cls.__name__}; "
                f"load a file written by {cls.__name__}.save()"
            )
        return ctx


__all__ = ["DEFAULT_PATH", "SavedContext"]
