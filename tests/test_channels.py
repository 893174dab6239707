"""The Channel interface, checked identically on MemoryChannel and RedisChannel (real Redis).

Redis-only matters (encoding, foreign data, connections, passwords, signing) live in
tests/test_redis_channel.py.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import math
import pickle
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypedDict

import pytest

from graflow.channels import Channel, MemoryChannel
from graflow.channels.factory import ChannelBackend, ChannelFactory
from graflow.channels.redis_channel import RedisChannel
from graflow.channels.schemas import TaskResultMessage, WorkflowStateMessage
from graflow.channels.typed import ChannelTypeRegistry, TypedChannel
from graflow.exceptions import ConfigError


@dataclasses.dataclass
class Point:
    x: int
    y: tuple[int, ...]


@pytest.fixture(autouse=True)
def _no_env_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GRAFLOW_SECRET_KEY", raising=False)


@pytest.fixture(params=["memory", "redis"])
def channel(request: pytest.FixtureRequest) -> Iterator[Channel]:
    if request.param == "memory":
        yield MemoryChannel("run1")
        return
    url = request.getfixturevalue("redis_url")
    prefix = request.getfixturevalue("key_prefix")
    request.getfixturevalue("redis_client")  # deletes the prefix's keys afterwards
    ch = RedisChannel("run1", url=url, key_prefix=prefix)
    yield ch
    ch.close()


def eventually(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def same(a: Any, b: Any) -> bool:
    """Equal and of exactly the same types, recursively (a set stays a set)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, BaseException):
        return a.args == b.args
    return bool(a == b)


# --------------------------------------------------------------- set / get


def test_set_get_replace_default(channel: Channel) -> None:
    assert channel.get("k") is None
    assert channel.get("k", "dflt") == "dflt"
    channel.set("k", 1)
    channel.set("k", "two")
    assert channel.get("k") == "two"
    channel.append("lst", 1)
    channel.set("lst", "now a string")  # set replaces lists too
    assert channel.get("lst") == "now a string"


ROUND_TRIP = [
    None, True, False, 0, -1, 2**63 - 1, 2**64 - 1, 2**70, -(2**80), 1.5, -0.0,
    float("inf"), float("nan"), "", "héllo ✓", b"\x00\xffraw", [], {}, [1, [2, [3]]],
    {"a": {"b": [1.0, None, "x"]}}, {1, 2}, frozenset({"a"}), (1, "a"), ((),),
    [(1, 2), {3}], {"t": (1,)}, {1: "int key"}, datetime.datetime(2024, 5, 6, 7, 8, 9),
    datetime.date(2020, 1, 1), decimal.Decimal("1.10"), Point(1, (2, 3)),
    ValueError("bad", 7), range(3), complex(1, 2),
]  # fmt: skip


@pytest.mark.parametrize("value", ROUND_TRIP, ids=lambda v: type(v).__name__)
def test_exact_round_trip(channel: Channel, value: Any) -> None:
    channel.set("v", value)
    got = channel.get("v")
    assert same(got, value), (got, value)
    channel.append("l", value)
    assert same(channel.get("l"), [value])


def test_memory_stores_by_reference() -> None:
    ch = MemoryChannel("m", url="ignored", key_prefix="ignored")
    obj = {"a": [1]}
    ch.set("k", obj)
    assert ch.get("k") is obj


# --------------------------------------------------------------------- TTL


def test_ttl_expires(channel: Channel) -> None:
    channel.set("short", "v", ttl=0.2)
    channel.set("forever", "v")
    assert channel.get("short") == "v"
    assert eventually(lambda: not channel.exists("short"))
    assert channel.get("short", "gone") == "gone"
    assert channel.keys() == ["forever"]
    channel.set("short", "again")
    assert channel.get("short") == "again"


def test_set_without_ttl_clears_previous_ttl(channel: Channel) -> None:
    channel.set("k", 1, ttl=0.2)
    channel.set("k", 2)
    time.sleep(0.4)  # long enough for the old TTL to have fired
    assert channel.get("k") == 2


@pytest.mark.parametrize("ttl", [0, -1, "5", True])
def test_bad_ttl_is_config_error(channel: Channel, ttl: Any) -> None:
    with pytest.raises(ConfigError, match="ttl"):
        channel.set("k", 1, ttl=ttl)
    with pytest.raises(ConfigError):
        channel.append("k", 1, ttl=ttl)


# ----------------------------------------------- delete / exists / keys / clear


def test_delete_exists_keys_clear(channel: Channel) -> None:
    for key in ("a", "b", "c:d", "spaced key", "ü"):
        channel.set(key, key)
    channel.append("lst", 1)
    assert sorted(channel.keys()) == sorted(["a", "b", "c:d", "spaced key", "ü", "lst"])
    assert channel.exists("a") and "a" in channel
    assert channel.delete("a") is True
    assert channel.delete("a") is False
    assert not channel.exists("a")
    assert channel.delete("lst") is True
    channel.clear()
    assert channel.keys() == []
    assert channel.get("b") is None


def test_keys_of_other_channels_are_separate(channel: Channel) -> None:
    other: Channel
    if isinstance(channel, RedisChannel):
        other = RedisChannel(
            "run2", redis_client=channel.redis_client, key_prefix=channel.namespace
        )
    else:
        other = MemoryChannel("run2")
    channel.set("x", 1)
    other.set("y", 2)
    assert channel.keys() == ["x"] and other.keys() == ["y"]
    other.clear()
    assert channel.get("x") == 1


# ----------------------------------------------------------- append / prepend


def test_append_prepend_build_a_list(channel: Channel) -> None:
    assert channel.append("l", "b") == 1
    assert channel.append("l", ("c",)) == 2
    assert channel.prepend("l", {"a"}) == 3
    assert same(channel.get("l"), [{"a"}, "b", ("c",)])


def test_append_extends_a_list_stored_by_set(channel: Channel) -> None:
    channel.set("l", [1, (2,), {"x": 3}])
    assert channel.append("l", 4) == 4
    assert channel.prepend("l", 0) == 5
    assert same(channel.get("l"), [0, 1, (2,), {"x": 3}, 4])
    channel.set("empty", [])
    assert channel.append("empty", "only") == 1
    assert channel.get("empty") == ["only"]


@pytest.mark.parametrize("value", ["text", 5, {"a": 1}, (1, 2), {1}])
def test_append_to_non_list_is_type_error(channel: Channel, value: Any) -> None:
    channel.set("k", value)
    with pytest.raises(TypeError, match="'k'"):
        channel.append("k", 1)
    with pytest.raises(TypeError):
        channel.prepend("k", 1)
    assert same(channel.get("k"), value)


def test_append_ttl_applies_to_whole_key(channel: Channel) -> None:
    channel.append("l", 1)
    channel.append("l", 2, ttl=0.25)
    channel.append("l", 3)  # no ttl: the key keeps the one it has
    assert channel.get("l") == [1, 2, 3]
    assert eventually(lambda: channel.get("l") is None)


def test_conversion_keeps_ttl_of_set_list(channel: Channel) -> None:
    channel.set("l", [1], ttl=0.25)
    assert channel.append("l", 2) == 2
    assert channel.get("l") == [1, 2]
    assert eventually(lambda: not channel.exists("l"))


# ---------------------------------------------------------------- atomic_add


def test_atomic_add_types(channel: Channel) -> None:
    assert same(channel.atomic_add("n"), 1)
    assert same(channel.atomic_add("n", 5), 6)
    assert same(channel.get("n"), 6)
    assert same(channel.atomic_add("n", -10), -4)
    assert same(channel.atomic_add("f", 0.5), 0.5)
    assert same(channel.atomic_add("f", 1), 1.5)  # float + int is float
    assert same(channel.atomic_add("i", 1.0), 1.0)  # int 0 + float is float
    assert same(channel.get("i"), 1.0)
    channel.set("p", 0.1)
    assert same(channel.atomic_add("p", 0.2), 0.1 + 0.2)  # Python's float rounding
    assert same(channel.get("p"), 0.1 + 0.2)


def test_atomic_add_is_exact_to_64_bits(channel: Channel) -> None:
    channel.set("big", 2**62)
    assert same(channel.atomic_add("big", 1), 2**62 + 1)
    assert same(channel.atomic_add("big", 2**62 - 2), 2**63 - 1)
    assert same(channel.get("big"), 2**63 - 1)
    channel.set("mix", 2**62 + 1)
    assert same(channel.atomic_add("mix", 0.0), float(2**62 + 1))


def test_atomic_add_on_set_number_keeps_ttl(channel: Channel) -> None:
    channel.set("c", 10, ttl=0.25)
    assert channel.atomic_add("c", 2) == 12
    assert eventually(lambda: not channel.exists("c"))


@pytest.mark.parametrize("value", ["7", True, [1], {1}, None, decimal.Decimal(1)])
def test_atomic_add_on_non_number_is_type_error(channel: Channel, value: Any) -> None:
    channel.set("k", value)
    with pytest.raises(TypeError):
        channel.atomic_add("k")
    assert same(channel.get("k"), value)


def test_atomic_add_on_list_and_bad_amount(channel: Channel) -> None:
    channel.append("l", 1)
    with pytest.raises(TypeError):
        channel.atomic_add("l")
    with pytest.raises(TypeError):
        channel.atomic_add("n", "1")  # type: ignore[arg-type]


def test_atomic_add_concurrent_threads(channel: Channel) -> None:
    channel.set("n", 0)
    per_thread, threads = 100, 8

    def work() -> None:
        for _ in range(per_thread):
            channel.atomic_add("n")
            channel.append("log", 1)

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert channel.get("n") == per_thread * threads
    assert len(channel.get("log")) == per_thread * threads


# ---------------------------------------------------------------------- lock


def test_lock_times_out_while_held_elsewhere(channel: Channel) -> None:
    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        with channel.lock("res"):
            held.set()
            release.wait(10)

    t = threading.Thread(target=holder)
    t.start()
    try:
        assert held.wait(10)
        start = time.monotonic()
        with pytest.raises(TimeoutError, match="res"), channel.lock("res", timeout=0.2):
            pass
        assert time.monotonic() - start < 5
        with channel.lock("other", timeout=1):  # other keys are independent
            pass
    finally:
        release.set()
        t.join()
    with channel.lock("res", timeout=2):
        assert channel.keys() == []  # locks never show up as keys


def test_memory_channel_lock_is_re_entrant_for_its_holder() -> None:
    # As upstream's: the holding thread may nest the lock; another thread still waits.
    channel = MemoryChannel("reentrant")
    with channel.lock("res"), channel.lock("res", timeout=0.1):
        channel.set("inside", True)
        outcome: list[BaseException | None] = []

        def other() -> None:
            try:
                with channel.lock("res", timeout=0.1):
                    outcome.append(None)
            except TimeoutError as exc:
                outcome.append(exc)

        t = threading.Thread(target=other)
        t.start()
        t.join()
        assert isinstance(outcome[0], TimeoutError)
    with channel.lock("res", timeout=0.1):  # released by the outer block
        assert channel.get("inside") is True


# ------------------------------------------------------------------ pickling


def test_memory_channel_pickles_with_remaining_ttl() -> None:
    ch = MemoryChannel("m")
    ch.set("short", 1, ttl=0.3)
    ch.set("long", {2}, ttl=60)
    ch.set("plain", [3])
    ch.set("gone", 4, ttl=0.01)
    time.sleep(0.05)
    copy = pickle.loads(pickle.dumps(ch))
    assert copy.name == "m"
    assert sorted(copy.keys()) == ["long", "plain", "short"]
    assert copy.get("long") == {2} and copy.get("plain") == [3]
    assert eventually(lambda: not copy.exists("short"), timeout=2)
    assert copy.exists("long")
    copy.append("plain", 4)  # locks were rebuilt
    with copy.lock("x", timeout=1):
        pass


# -------------------------------------------------------------------- typed


class Note(TypedDict):
    title: str
    score: float
    tags: list[str]


def test_typed_channel_checks(channel: Channel) -> None:
    notes = TypedChannel(channel, Note)
    good: Note = {"title": "t", "score": 1, "tags": ["a"]}
    notes.send("n", good)
    assert notes.receive("n") == good
    assert notes.get("missing", None) is None
    for bad in (
        {"title": "t", "score": 1.0},  # missing key
        {"title": "t", "score": 1.0, "tags": [], "extra": 1},  # extra key
        {"title": 1, "score": 1.0, "tags": []},  # wrong type
        {"title": "t", "score": True, "tags": []},  # bool is not a number here
        "not a dict",
    ):
        with pytest.raises(TypeError):
            notes.send("n", bad)  # type: ignore[arg-type]
    channel.set("raw", {"title": "t"})
    assert notes.receive("raw") is None
    assert notes.append("lst", "anything") == 1  # append is not checked
    assert notes.name == channel.name and notes.channel is channel


def test_typed_channel_optional_field_and_schemas(channel: Channel) -> None:
    states = TypedChannel(channel, WorkflowStateMessage)
    msg: WorkflowStateMessage = {
        "workflow_id": "w", "state": "running", "current_task": None,
        "completed_tasks": ["a"], "timestamp": 1.0,
    }  # fmt: skip
    states.set("s", msg)
    assert states.get("s") == msg
    assert ChannelTypeRegistry.get("task_result") is TaskResultMessage
    typed = ChannelTypeRegistry.create_channel(channel, "task_result")
    assert typed.message_type is TaskResultMessage


def test_typed_channel_rejects_non_typeddict() -> None:
    with pytest.raises(ValueError):
        TypedChannel(MemoryChannel("m"), dict)
    with pytest.raises(ConfigError, match="nope"):
        ChannelTypeRegistry.get("nope")
    with pytest.raises(ConfigError):
        ChannelTypeRegistry.register("bad", int)
    ChannelTypeRegistry.register("note", Note)
    assert ChannelTypeRegistry.get("note") is Note


# ------------------------------------------------------------------ factory


def test_factory(redis_url: str, key_prefix: str, redis_client: Any) -> None:
    mem = ChannelFactory.create_channel("memory")
    assert isinstance(mem, MemoryChannel) and len(mem.name) == 32
    assert isinstance(ChannelFactory.create_channel(ChannelBackend.MEMORY, "n"), MemoryChannel)
    red = ChannelFactory.create_channel(
        ChannelBackend.REDIS, "s", url=redis_url, key_prefix=key_prefix
    )
    assert isinstance(red, RedisChannel) and red.key_prefix == f"{key_prefix}:channel:{{s}}:"
    red.set("k", 1)
    assert redis_client.exists(f"{key_prefix}:channel:{{s}}:k")
    with pytest.raises(ConfigError, match="unknown channel backend 'nope'"):
        ChannelFactory.create_channel("nope")
    assert {"memory", "redis"} <= set(ChannelFactory.get_available_backends())
    assert ChannelFactory.is_backend_available("redis")
    assert not ChannelFactory.is_backend_available("nope")

    class Custom(MemoryChannel):
        pass

    ChannelFactory.register_backend("custom", Custom)
    try:
        assert isinstance(ChannelFactory.create_channel("custom", "c"), Custom)
    finally:
        ChannelFactory._backends.pop("custom", None)
