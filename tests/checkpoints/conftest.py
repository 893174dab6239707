"""Fixtures of the checkpoint tests: a tmp working directory and the channel ``backend``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from graflow.core.context import ExecutionContext
from graflow.core.workflow import WorkflowContext

ENV = (
    "GRAFLOW_CHECKPOINT_DIR", "GRAFLOW_CHECKPOINT_TTL", "GRAFLOW_SECRET_KEY",
    "GRAFLOW_CRASH_AT", "GRAFLOW_CRASH_ONCE_FILE",
)  # fmt: skip


@pytest.fixture(autouse=True)
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run every test in its own directory, so relative ``checkpoints/`` lands there."""
    monkeypatch.chdir(tmp_path)
    for var in ENV:
        monkeypatch.delenv(var, raising=False)
    return tmp_path


class Backend:
    """The channel a test's runs use; ``contexts`` collects every context created."""

    def __init__(self, name: str, config: dict[str, Any] | None) -> None:
        self.name = name
        self.config = config
        self.contexts: list[Any] = []

    @property
    def ctx(self) -> Any:
        return self.contexts[-1]

    def kwargs(self) -> dict[str, Any]:
        if self.name == "memory":
            return {}
        return {"channel_backend": "redis", "config": dict(self.config or {})}


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def backend(request: Any, monkeypatch: pytest.MonkeyPatch) -> Backend:
    """Runs ``wf.execute(...)`` as written on a memory channel, or on a Redis channel.

    The product page's code is run unchanged: for "redis", ``WorkflowContext.execute``
    gets ``channel_backend="redis"`` and the test's Redis/key prefix as defaults.
    """
    config = None
    if request.param == "redis":
        request.getfixturevalue("redis_client")  # deletes the prefix's keys afterwards
        config = {"url": request.getfixturevalue("redis_url"),
                  "key_prefix": request.getfixturevalue("key_prefix")}  # fmt: skip
    chosen = Backend(request.param, config)
    create = ExecutionContext.create.__func__  # type: ignore[attr-defined]

    def recording_create(cls: type, *args: Any, **kwargs: Any) -> Any:
        ctx = create(cls, *args, **kwargs)
        chosen.contexts.append(ctx)
        return ctx

    monkeypatch.setattr(ExecutionContext, "create", classmethod(recording_create))
    if request.param == "redis":
        original = WorkflowContext.execute

        def execute(self: WorkflowContext, *args: Any, **kwargs: Any) -> Any:
            for key, value in chosen.kwargs().items():
                kwargs.setdefault(key, value)
            return original(self, *args, **kwargs)

        monkeypatch.setattr(WorkflowContext, "execute", execute)
    return chosen
