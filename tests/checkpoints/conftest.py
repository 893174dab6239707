"""Fixtures of the checkpoint tests: a tmp working directory and the channel ``backend``."""

from __future__ import annotations

from collections.abc import Iterator
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
    """The channel a test's runs use; ``contexts`` collects every context created.
    ``name`` is the channel backend ("memory"/"redis"), ``variant`` the fixture's param."""

    def __init__(self, variant: str, config: dict[str, Any] | None) -> None:
        self.variant = variant
        self.name = variant.split("-")[0]
        self.config = config
        self.contexts: list[Any] = []

    @property
    def ctx(self) -> Any:
        return self.contexts[-1]

    def kwargs(self) -> dict[str, Any]:
        if self.name == "memory":
            return {}
        return {"channel_backend": "redis", "config": dict(self.config or {})}


@pytest.fixture(params=["memory", *(pytest.param(v, marks=pytest.mark.redis)
                                     for v in ("redis", "redis-text", "redis-bytes"))])  # fmt: skip
def backend(request: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Backend]:
    """Runs ``wf.execute(...)`` as written on a memory channel, or on a Redis channel.

    The product page's code is run unchanged: for "redis*", ``WorkflowContext.execute``
    gets ``channel_backend="redis"`` and the test's Redis/key prefix as defaults; the
    Redis is named by URL ("redis") or by a client the user made, with
    ``decode_responses=True`` ("redis-text", as upstream's docs do) or the default
    ("redis-bytes"). Resuming must reconnect from the checkpoint alone in every case.
    """
    config = None
    client = None
    if request.param != "memory":
        request.getfixturevalue("redis_client")  # deletes the prefix's keys afterwards
        url = request.getfixturevalue("redis_url")
        config = {"url": url, "key_prefix": request.getfixturevalue("key_prefix")}
        if request.param != "redis":
            import redis

            client = redis.Redis.from_url(url, decode_responses=request.param == "redis-text")
            config = {"redis_client": client, "key_prefix": config["key_prefix"]}
    chosen = Backend(request.param, config)
    create = ExecutionContext.create.__func__  # type: ignore[attr-defined]

    def recording_create(cls: type, *args: Any, **kwargs: Any) -> Any:
        ctx = create(cls, *args, **kwargs)
        chosen.contexts.append(ctx)
        return ctx

    monkeypatch.setattr(ExecutionContext, "create", classmethod(recording_create))
    if chosen.name == "redis":
        original = WorkflowContext.execute

        def execute(self: WorkflowContext, *args: Any, **kwargs: Any) -> Any:
            for key, value in chosen.kwargs().items():
                kwargs.setdefault(key, value)
            return original(self, *args, **kwargs)

        monkeypatch.setattr(WorkflowContext, "execute", execute)
    yield chosen
    if client is not None:
        client.close()
