"""graflow.storage: where checkpoint artefacts live and how they fail (see docs/checkpoints.md).

Every store is exercised for real: files under tmp_path, a real Redis (keys under the
test's key prefix), and fsspec's memory:// filesystem.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from graflow.crash import CRASH_EXIT_CODE
from graflow.exceptions import (
    CheckpointError,
    CheckpointNotFoundError,
    ConfigError,
    RedisUnavailableError,
    UnsupportedCheckpointLocationError,
)
from graflow.storage import (
    PARTS,
    CheckpointStore,
    FsspecStore,
    LocalStore,
    RedisStore,
    open_directory,
    open_location,
)

REPO = Path(__file__).resolve().parents[1]
SUFFIXES = (".pkl", ".state.json", ".meta.json")
OLD = {"pkl": b"old-pkl\x00\xff", "state": b'{"old": 1}', "meta": b'{"old": "meta"}'}
NEW = {"pkl": b"new-pkl\x01", "state": b'{"new": 2}', "meta": b'{"new": "meta"}'}


def _redis_location(redis_url: str, key: str) -> str:
    parts = urlsplit(redis_url)
    db = parts.path.strip("/") or "0"
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}/{key}", parts.query, ""))


@pytest.fixture(params=["local", "file", "redis", "memory"])
def directory(request: Any, tmp_path: Path) -> Iterator[str]:
    """A checkpoint directory location of each kind."""
    kind = request.param
    if kind == "local":
        yield str(tmp_path / "ck")
    elif kind == "file":
        yield "file://" + (tmp_path / "ck").as_posix()
    elif kind == "redis":
        request.getfixturevalue("redis_client")  # deletes the prefix's keys afterwards
        redis_url = request.getfixturevalue("redis_url")
        yield _redis_location(redis_url, request.getfixturevalue("key_prefix") + "/ck")
    else:
        import fsspec

        root = f"memory://gftest-{uuid.uuid4().hex[:12]}"
        yield root + "/ck"
        fs = fsspec.filesystem("memory")
        if fs.exists(root):
            fs.rm(root, recursive=True)


def _plant(store: CheckpointStore, base: str, part: str, data: bytes) -> None:
    """Put one artefact in place behind the store's back (a stray or torn file)."""
    if isinstance(store, LocalStore):
        path = Path(store.path(base, part))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    elif isinstance(store, RedisStore):
        store._client().set(store.key(base, part), data)
    else:
        assert isinstance(store, FsspecStore)
        store.fs.pipe_file(store._path(base, part), data)


def _remove(store: CheckpointStore, base: str, part: str) -> None:
    if isinstance(store, LocalStore):
        os.unlink(store.path(base, part))
    elif isinstance(store, RedisStore):
        store._client().delete(store.key(base, part))
    else:
        assert isinstance(store, FsspecStore)
        store.fs.rm_file(store._path(base, part))


# -- round trips ----------------------------------------------------------------------


def test_round_trip_and_suffix_stripping(directory: str) -> None:
    store, base = open_location(f"{directory}/run_1")
    kinds = {LocalStore: "file", RedisStore: "redis", FsspecStore: "fsspec"}
    assert store.kind == kinds[type(store)]
    shown = store.write(base, dict(OLD))
    assert shown == store.display(base, "pkl") and shown.endswith("run_1.pkl")
    for part in PARTS:
        assert store.exists(base, part)
        assert store.read(base, part) == OLD[part]
    for suffix in SUFFIXES:
        other, same = open_location(f"{directory}/run_1{suffix}")
        assert same == base and type(other) is type(store)
        assert other.read(same, "state") == OLD["state"]
    assert store.display(base, "meta").endswith("run_1.meta.json")
    # Writing again at the same base replaces the checkpoint.
    store.write(base, dict(NEW))
    assert [store.read(base, p) for p in PARTS] == [NEW[p] for p in PARTS]


def test_file_url_and_plain_path_are_the_same_files(tmp_path: Path) -> None:
    store, base = open_location("file://" + (tmp_path / "a" / "b" / "run.meta.json").as_posix())
    assert isinstance(store, LocalStore) and base == str(tmp_path / "a" / "b" / "run")
    store.write(base, dict(OLD))  # parent directories are created
    assert sorted(os.listdir(tmp_path / "a" / "b")) == [
        "run.meta.json",
        "run.pkl",
        "run.state.json",
    ]
    plain, same = open_location(str(tmp_path / "a" / "b" / "run.pkl"))
    assert same == base and plain.read(same, "pkl") == OLD["pkl"]


def test_auto_base_appends_n_while_any_artefact_exists(directory: str) -> None:
    store = open_directory(directory)
    first = store.auto_base("abc123", 3)
    assert first == f"{store._join('session_abc123_step_3')}"
    assert first.endswith("/session_abc123_step_3")
    store.write(first, dict(OLD))
    assert store.auto_base("abc123", 3) == first + "_1"
    _plant(store, first + "_1", "state", b"stray")  # any artefact counts, not only meta
    assert store.auto_base("abc123", 3) == first + "_2"
    assert store.auto_base("abc123", 4).endswith("session_abc123_step_4")


def test_list_bases_returns_committed_bases_by_name(directory: str) -> None:
    store = open_directory(directory)
    for name in ("b_run", "a_run"):
        store.write(store._join(name), dict(OLD))
    _plant(store, store._join("torn"), "pkl", b"x")  # no meta.json: not a checkpoint
    _plant(store, store._join("torn"), "state", b"x")
    _plant(store, store._join("sub/nested"), "meta", b"x")  # below the directory
    assert store.list_bases() == [store._join("a_run"), store._join("b_run")]
    reopened, base = open_location(f"{directory}/a_run.pkl")
    assert base == store._join("a_run")
    assert reopened.list_bases() == store.list_bases()


def test_list_bases_of_missing_local_directory(tmp_path: Path) -> None:
    with pytest.raises(CheckpointNotFoundError, match="nope"):
        open_directory(tmp_path / "nope").list_bases()


def test_write_needs_exactly_the_three_parts(tmp_path: Path) -> None:
    store, base = open_location(tmp_path / "x")
    with pytest.raises(ValueError, match="parts"):
        store.write(base, {"pkl": b"", "state": b""})
    assert list(tmp_path.iterdir()) == []


# -- missing artefacts -----------------------------------------------------------------


def test_each_missing_artefact_is_named(directory: str) -> None:
    store, base = open_location(f"{directory}/run_1")
    with pytest.raises(CheckpointNotFoundError) as nothing:
        store.read(base, "meta")
    assert isinstance(nothing.value, FileNotFoundError)
    assert "run_1.meta.json" in str(nothing.value) and "interrupted" not in str(nothing.value)
    store.write(base, dict(OLD))
    for part in PARTS:
        _remove(store, base, part)
        with pytest.raises(FileNotFoundError) as info:
            store.read(base, part)
        err = info.value
        assert isinstance(err, CheckpointNotFoundError)
        assert store.display(base, part) in str(err)
        if part == "meta":
            assert "interrupted" in str(err) and "cannot be used" in str(err)
        else:
            assert "interrupted" not in str(err)
        _plant(store, base, part, OLD[part])


# -- write failures and crashes --------------------------------------------------------


def test_unwritable_location_raises_and_leaves_nothing(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a regular file, so no directory can be created below it")
    store, base = open_location(blocker / "sub" / "run_1")
    with pytest.raises(CheckpointError) as info:
        store.write(base, dict(OLD))
    text = str(info.value)
    assert str(blocker / "sub" / "run_1.pkl") in text
    assert "Not a directory" in text or "File exists" in text  # the OS error
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker"]


def test_failed_rename_removes_temporaries_and_partial_files(tmp_path: Path) -> None:
    store, base = open_location(tmp_path / "run_1")
    (tmp_path / "run_1.state.json").mkdir()  # the state rename fails, after the pkl's
    with pytest.raises(CheckpointError, match="run_1"):
        store.write(base, dict(OLD))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run_1.state.json"]


@pytest.mark.parametrize("point", ["checkpoint.after_pkl", "checkpoint.after_state"])
def test_crash_between_renames_leaves_an_uncommitted_base(tmp_path: Path, point: str) -> None:
    store = open_directory(tmp_path / "ck")
    keep, torn = store._join("keep"), store._join("run")
    store.write(keep, dict(OLD))
    store.write(torn, dict(OLD))
    code = f"""
        from graflow.storage import open_location
        store, base = open_location({torn + ".pkl"!r})
        store.write(base, {NEW!r})
        raise SystemExit("the crash point did not fire")
        """
    env = {k: v for k, v in os.environ.items() if k != "GRAFLOW_CRASH_ONCE_FILE"}
    env["GRAFLOW_CRASH_AT"] = point
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == CRASH_EXIT_CODE, proc.stderr
    with pytest.raises(CheckpointNotFoundError, match="interrupted") as info:
        store.read(torn, "meta")
    assert store.display(torn, "meta") in str(info.value)
    assert store.read(torn, "pkl") == NEW["pkl"]  # renamed before the crash
    expected_state = NEW["state"] if point.endswith("after_state") else OLD["state"]
    assert store.read(torn, "state") == expected_state
    assert [store.read(keep, p) for p in PARTS] == [OLD[p] for p in PARTS]
    assert store.list_bases() == [keep]
    leftovers = [n for n in os.listdir(tmp_path / "ck") if not n.startswith(("keep.", "run."))]
    assert leftovers and all(n.startswith(".") and n.endswith(".tmp") for n in leftovers)


# -- unsupported locations -------------------------------------------------------------


@pytest.mark.parametrize(
    "location", ["redis://localhost:6379", "redis://localhost:6379/0", "rediss://h:1/0/"]
)
def test_redis_location_needs_db_and_key(location: str) -> None:
    for opener in (open_location, open_directory):
        with pytest.raises(UnsupportedCheckpointLocationError) as info:
            opener(location)
        assert isinstance(info.value, NotImplementedError)
        assert "redis" in str(info.value) and "/0/" in str(info.value)


def test_unknown_scheme_is_unsupported() -> None:
    for opener in (open_location, open_directory):
        with pytest.raises(NotImplementedError) as info:
            opener("foo://x/run_1")
        assert isinstance(info.value, UnsupportedCheckpointLocationError)
        assert "'foo'" in str(info.value)


def test_missing_driver_names_the_package() -> None:
    import importlib.util

    if importlib.util.find_spec("s3fs") is not None:
        pytest.skip("s3fs is installed")
    with pytest.raises(UnsupportedCheckpointLocationError) as info:
        open_location("s3://bucket/ck/run_1")
    assert "'s3'" in str(info.value) and "pip install graflow[fsspec] s3fs" in str(info.value)


def test_missing_fsspec_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "fsspec", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "fsspec.core", None)
    with pytest.raises(UnsupportedCheckpointLocationError) as info:
        open_directory("gs://bucket/ck")
    assert "'gs'" in str(info.value) and "pip install graflow[fsspec] gcsfs" in str(info.value)


# -- Redis specifics -------------------------------------------------------------------


def test_redis_keys_are_plain_and_have_no_ttl_by_default(
    redis_url: str, key_prefix: str, redis_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GRAFLOW_CHECKPOINT_TTL", raising=False)
    store, base = open_location(_redis_location(redis_url, f"{key_prefix}/ck/run_1.pkl"))
    assert isinstance(store, RedisStore) and base == f"{key_prefix}/ck/run_1"
    store.write(base, dict(OLD))
    for part, suffix in zip(PARTS, SUFFIXES, strict=True):
        key = f"{key_prefix}/ck/run_1{suffix}"
        assert redis_client.get(key) == OLD[part]
        assert redis_client.ttl(key) == -1


def test_redis_ttl_from_environment(
    redis_url: str, key_prefix: str, redis_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRAFLOW_CHECKPOINT_TTL", "120")
    store = open_directory(_redis_location(redis_url, f"{key_prefix}/ck"))
    base = store.auto_base("s1", 2)
    assert base == f"{key_prefix}/ck/session_s1_step_2"
    store.write(base, dict(OLD))
    for suffix in SUFFIXES:
        assert 0 < redis_client.ttl(base + suffix) <= 120
    monkeypatch.setenv("GRAFLOW_CHECKPOINT_TTL", "soon")
    with pytest.raises(ConfigError, match="GRAFLOW_CHECKPOINT_TTL"):
        store.write(base, dict(NEW))


def test_unreachable_redis_is_reported_with_the_password_masked() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    store, base = open_location(f"redis://user:s3cr3t-pw@127.0.0.1:{port}/0/ck/run_1")
    assert "s3cr3t-pw" not in repr(store) and "s3cr3t-pw" not in store.display(base)
    assert store.display(base) == f"redis://user:***@127.0.0.1:{port}/0/ck/run_1.pkl"
    for action in (lambda: store.write(base, dict(OLD)), lambda: store.read(base, "pkl")):
        with pytest.raises(RedisUnavailableError) as info:
            action()
        assert isinstance(info.value, ConnectionError)
        assert "s3cr3t-pw" not in str(info.value) and "***" in str(info.value)
        assert str(port) in str(info.value)


# -- default directory -----------------------------------------------------------------


def test_open_directory_default_and_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GRAFLOW_CHECKPOINT_DIR", raising=False)
    store = open_directory()
    base = store.auto_base("s1", 1)
    assert base == os.path.join("checkpoints", "session_s1_step_1")
    store.write(base, dict(OLD))
    assert (tmp_path / "checkpoints" / "session_s1_step_1.meta.json").exists()
    monkeypatch.setenv("GRAFLOW_CHECKPOINT_DIR", str(tmp_path / "elsewhere"))
    assert open_directory().auto_base("s1", 1) == str(tmp_path / "elsewhere" / "session_s1_step_1")
    monkeypatch.setenv("GRAFLOW_CHECKPOINT_DIR", "memory://gftest-env/ck")
    remote = open_directory()
    assert isinstance(remote, FsspecStore) and remote.kind == "fsspec"
    assert remote.auto_base("s1", 1) == "memory://gftest-env/ck/session_s1_step_1"
    assert open_directory(tmp_path / "explicit").auto_base("s", 0).startswith(str(tmp_path))


def test_storage_is_ground_floor_and_light(tmp_path: Path) -> None:
    for source in (REPO / "graflow" / "storage").glob("*.py"):
        imports = re.findall(r"^\s*(?:from|import)\s+(\S+)", source.read_text(), re.M)
        assert not [m for m in imports if m.startswith("graflow.core")], source
    code = (
        "import sys, graflow.storage\n"
        "from graflow.storage import open_location\n"
        "open_location('redis://h:1/0/ck/x'); open_location('ck/x')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('redis', 'fsspec')))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
    assert list(tmp_path.iterdir()) == []
