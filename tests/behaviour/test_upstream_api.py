"""Details of upstream Graflow's public API that upstream programs rely on."""

from __future__ import annotations

import os
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, TypedDict

import pytest

from graflow import RetryPolicy, task, workflow
from graflow.channels.base import Channel
from graflow.channels.memory_channel import MemoryChannel
from graflow.channels.typed import TypedChannel
from graflow.core.context import ExecutionContext
from graflow.core.queue import TaskQueue, TaskSpec


def test_execution_context_has_get_channel() -> None:
    with workflow("ch") as wf:

        @task
        def only() -> int:
            return 1

    ctx = wf.create_context()
    assert ctx.get_channel() is ctx.channel


def test_a_queue_written_for_upstream_needs_only_its_three_methods() -> None:
    class FifoQueue(TaskQueue):
        def __init__(self) -> None:
            self.items: list[TaskSpec] = []

        def enqueue(self, task_spec: TaskSpec) -> bool:
            self.items.append(task_spec)
            return True

        def dequeue(self) -> TaskSpec | None:
            return self.items.pop(0) if self.items else None

        def is_empty(self) -> bool:
            return not self.items

    queue = FifoQueue()
    assert queue.size() == 0 and queue.to_list() == [] and queue.get_next_task() is None


def test_a_channel_written_for_upstream_may_leave_out_lock() -> None:
    class DictChannel(Channel):
        def __init__(self, name: str) -> None:
            super().__init__(name)
            self.values: dict[str, Any] = {}

        def set(self, key: str, value: Any, ttl: float | None = None) -> None:
            self.values[key] = value

        def get(self, key: str, default: Any = None) -> Any:
            return self.values.get(key, default)

        def delete(self, key: str) -> bool:
            return self.values.pop(key, None) is not None

        def exists(self, key: str) -> bool:
            return key in self.values

        def keys(self) -> list[str]:
            return list(self.values)

        def clear(self) -> None:
            self.values.clear()

        def append(self, key: str, value: Any, ttl: float | None = None) -> int:
            self.values.setdefault(key, []).append(value)
            return len(self.values[key])

        def prepend(self, key: str, value: Any, ttl: float | None = None) -> int:
            self.values.setdefault(key, []).insert(0, value)
            return len(self.values[key])

        def atomic_add(self, key: str, amount: int | float = 1) -> int | float:
            self.values[key] = self.values.get(key, 0) + amount
            return self.values[key]

    channel = DictChannel("mine")
    lock = channel.lock("k")
    assert isinstance(lock, AbstractContextManager)
    with lock:
        channel.set("k", 1)
    assert channel.get("k") == 1


def test_a_retry_policy_sets_the_tasks_max_retries() -> None:
    @task(retry_policy=RetryPolicy(max_retries=3))
    def flaky() -> None:
        return None

    @task(max_retries=2)
    def counted() -> None:
        return None

    assert flaky.max_retries == 3 and counted.max_retries == 2


def test_typed_channel_adds_atomically_and_memory_channel_shows_its_data() -> None:
    class Counter(TypedDict):
        n: int

    channel = MemoryChannel("typed")
    typed: TypedChannel[Counter] = TypedChannel(channel, Counter)
    assert typed.atomic_add("n", 2) == 2 and typed.atomic_add("n") == 3
    assert channel.data == {"n": 3}


def test_save_and_load_default_to_upstreams_file_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    ctx = ExecutionContext.create(workflow("saved").graph, None)
    ctx.channel.set("kept", 7)
    ctx.save()
    assert os.path.exists(tmp_path / "execution_context.pkl")
    assert ExecutionContext.load().channel.get("kept") == 7


def test_a_workflow_keeps_the_redis_client_it_is_given() -> None:
    wf = workflow("client")
    marker = object()
    wf.set_redis_client(marker)
    assert wf.get_redis_client() is marker
