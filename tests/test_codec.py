"""graflow.codec's envelope: layout, purposes, signing, key handling, files, import weight."""

from __future__ import annotations

import io
import logging
import os
import pickle
import subprocess
import sys
import threading
import warnings
import zlib
from pathlib import Path
from typing import Any

import pytest

from graflow import codec
from graflow.codec import Purpose
from graflow.exceptions import (
    ConfigError,
    PayloadError,
    PayloadSignatureError,
    SerializationError,
    UnsignedPayloadWarning,
)

KEY_A = "a" * 16 + "-key-A"
KEY_B = "b" * 16 + "-key-B"

SIDE_EFFECTS: list[str] = []


def _record(what: str) -> None:
    SIDE_EFFECTS.append(what)


class _Boom:
    """Unpickling this records a side effect: proves what was (not) unpickled."""

    def __reduce__(self) -> Any:
        return (_record, ("unpickled",))


@pytest.fixture(autouse=True)
def _no_env_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GRAFLOW_SECRET_KEY", raising=False)
    SIDE_EFFECTS.clear()


@pytest.fixture
def fresh_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(codec, "_unsigned_warning", codec._WarnOnce())


# ------------------------------------------------------------------ layout


@pytest.mark.parametrize("purpose", list(Purpose))
def test_round_trip_every_purpose(purpose: Purpose) -> None:
    value = {"a": (1, 2), "b": {3, 4}}
    blob = codec.dumps(value, purpose)
    assert blob[:4] == b"GFLW"
    # Graph and task envelopes always carry the origin record (version 2).
    assert blob[4] == (0x02 if purpose in (Purpose.GRAPH, Purpose.TASK) else 0x01)
    assert blob[5] == 0  # unsigned, not compressed
    assert blob[6] == int(purpose)
    assert codec.loads(blob, purpose=purpose) == value
    assert codec.loads(blob) == value  # purpose=None accepts any


def test_purpose_values() -> None:
    assert [(p.name, p.value) for p in Purpose] == [
        ("CHECKPOINT", 1), ("GRAPH", 2), ("TASK", 3), ("VALUE", 4), ("CONTEXT", 5)
    ]  # fmt: skip


def test_compression_flag_and_zlib_level() -> None:
    value = ["x" * 1000] * 50
    blob = codec.dumps(value, Purpose.GRAPH, compress=True)
    assert blob[5] == 0x02
    assert len(blob) < len(codec.dumps(value, Purpose.GRAPH))
    assert pickle.loads(zlib.decompress(blob[8 + blob[7] :])) == value  # after the origin record
    assert codec.loads(blob, purpose=Purpose.GRAPH) == value


def test_seal_wraps_pickled_bytes() -> None:
    raw = pickle.dumps({"g": 1})
    blob = codec.seal(raw, Purpose.GRAPH, secret_key=KEY_A, compress=True)
    assert blob[5] == 0x03 and blob[6] == Purpose.GRAPH
    assert codec.loads(blob, Purpose.GRAPH, secret_key=KEY_A) == {"g": 1}


def test_cloudpickle_carries_lambdas() -> None:
    factor = 3
    fn = codec.loads(codec.dumps(lambda x: x * factor, Purpose.TASK), purpose=Purpose.TASK)
    assert fn(2) == 6


def test_purpose_mismatch_is_payload_error() -> None:
    blob = codec.dumps(1, Purpose.VALUE)
    with pytest.raises(PayloadError, match="value payload where a task payload"):
        codec.loads(blob, purpose=Purpose.TASK)


@pytest.mark.parametrize(
    "data", [b"", b"GFL", b"\x80\x04K\x01.", b"hello world", b"GFLW", b"XXXX\x01\x00\x04"]
)
def test_foreign_data_is_payload_error(data: bytes) -> None:
    with pytest.raises(
        PayloadError, match=r"^thing 'x' is not a graflow payload \(foreign or corrupt\)"
    ):
        codec.loads(data, source="thing 'x'")


def test_unknown_version_and_flags() -> None:
    blob = bytearray(codec.dumps(1))
    blob[4] = 9
    with pytest.raises(PayloadError, match="version 9"):
        codec.loads(bytes(blob))
    blob = bytearray(codec.dumps(1))
    blob[5] = 0x80
    with pytest.raises(PayloadError, match="not a graflow payload"):
        codec.loads(bytes(blob))


def test_unpicklable_object_names_its_type() -> None:
    with pytest.raises(SerializationError, match="lock") as info:
        codec.dumps(threading.Lock(), Purpose.TASK)
    assert info.value.cause is not None


def test_unpickling_failure_is_payload_error_with_cause() -> None:
    bad = pickle.dumps(_Boom, protocol=0)  # a text global reference ...
    bad = bad.replace(b"test_codec", b"no_such_mod")  # ... to a module that is missing
    blob = b"GFLW\x01\x00\x04" + bad
    with pytest.raises(PayloadError, match="could not be unpickled") as info:
        codec.loads(blob)
    assert isinstance(info.value.cause, ModuleNotFoundError)
    assert isinstance(info.value, pickle.UnpicklingError)  # upstream except clauses


def test_corrupt_zlib_is_payload_error() -> None:
    with pytest.raises(PayloadError, match="zlib"):
        codec.loads(b"GFLW\x01\x02\x04not-zlib")


# ----------------------------------------------------------------- signing


def test_signed_layout_and_round_trip() -> None:
    blob = codec.dumps({"v": 1}, Purpose.CHECKPOINT, secret_key=KEY_A)
    assert blob[5] & 0x01
    import hashlib
    import hmac

    expected = hmac.new(KEY_A.encode(), blob[:7] + blob[39:], hashlib.sha256).digest()
    assert blob[7:39] == expected
    assert codec.loads(blob, secret_key=KEY_A) == {"v": 1}


@pytest.mark.parametrize("where", [8, -1, 6])
def test_tampered_payload_is_rejected_before_unpickling(where: int) -> None:
    blob = bytearray(codec.dumps(_Boom(), Purpose.VALUE, secret_key=KEY_A))
    blob[where] ^= 0x01  # signature, payload or purpose byte
    with pytest.raises(PayloadSignatureError, match="GRAFLOW_SECRET_KEY"):
        codec.loads(bytes(blob), secret_key=KEY_A, source="blob")
    assert SIDE_EFFECTS == []
    # the untouched payload does unpickle (and so would run its code)
    codec.loads(codec.dumps(_Boom(), secret_key=KEY_A), secret_key=KEY_A)
    assert SIDE_EFFECTS == ["unpickled"]


def test_unsigned_payload_refused_when_key_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    blob = codec.dumps(_Boom())
    monkeypatch.setenv("GRAFLOW_SECRET_KEY", KEY_A)
    with pytest.raises(PayloadSignatureError) as info:
        codec.loads(blob, source="checkpoint 'x.pkl'")
    assert "checkpoint 'x.pkl' is unsigned/tampered or signed with another key" in str(info.value)
    assert SIDE_EFFECTS == []


def test_wrong_key_refused() -> None:
    blob = codec.dumps(1, secret_key=KEY_A)
    with pytest.raises(PayloadSignatureError, match="another key"):
        codec.loads(blob, secret_key=KEY_B)


def test_signed_payload_without_key_says_set_the_key() -> None:
    blob = codec.dumps(_Boom(), secret_key=KEY_A)
    with pytest.raises(PayloadSignatureError, match="set GRAFLOW_SECRET_KEY"):
        codec.loads(blob)
    assert SIDE_EFFECTS == []


def test_env_key_rotation(monkeypatch: pytest.MonkeyPatch) -> None:
    old_blob = codec.dumps("old", secret_key=KEY_A)
    monkeypatch.setenv("GRAFLOW_SECRET_KEY", f"{KEY_B}, {KEY_A}")
    assert codec.loads(old_blob) == "old"  # any key verifies
    new_blob = codec.dumps("new")
    assert codec.loads(new_blob, secret_key=KEY_B) == "new"  # the first key signs
    with pytest.raises(PayloadSignatureError):
        codec.loads(new_blob, secret_key=KEY_A)
    monkeypatch.setenv("GRAFLOW_SECRET_KEY", KEY_B)  # the env is re-read when it changes
    with pytest.raises(PayloadSignatureError):
        codec.loads(old_blob)
    assert codec.loads(old_blob, secret_key=[KEY_B, KEY_A.encode()]) == "old"


def test_resolve_keys_sources(monkeypatch: pytest.MonkeyPatch) -> None:
    assert codec.resolve_keys() == []
    monkeypatch.setenv("GRAFLOW_SECRET_KEY", f"{KEY_A},,{KEY_B},")
    assert codec.resolve_keys() == [KEY_A.encode(), KEY_B.encode()]
    assert codec.resolve_keys(KEY_B) == [KEY_B.encode()]
    assert codec.resolve_keys("x" * 16 + ",y") == [b"x" * 16 + b",y"]  # a str is one key
    assert codec.resolve_keys([]) == []  # explicit "no key"
    monkeypatch.setenv("GRAFLOW_SECRET_KEY", "")
    assert codec.resolve_keys() == []


@pytest.mark.parametrize("source", ["env", "arg", "bytes", "list"])
def test_short_key_is_config_error(monkeypatch: pytest.MonkeyPatch, source: str) -> None:
    short = "tooshort-s3cr3t"  # 15 bytes
    arg: Any = None
    if source == "env":
        monkeypatch.setenv("GRAFLOW_SECRET_KEY", f"{KEY_A},{short}")
    else:
        arg = {"arg": short, "bytes": short.encode(), "list": [KEY_A, short]}[source]
    with pytest.raises(ConfigError) as info:
        codec.dumps(1, secret_key=arg)
    message = str(info.value)
    assert "too short" in message and "16 bytes" in message
    assert short not in message and KEY_A not in message
    assert isinstance(info.value, ValueError)


# --------------------------------------------------- unsigned-from-Redis warning


def test_unsigned_from_redis_warns_once(
    fresh_warning: None, caplog: pytest.LogCaptureFixture
) -> None:
    blob = codec.dumps([1, 2])
    with warnings.catch_warnings(record=True) as seen, caplog.at_level(logging.WARNING):
        warnings.simplefilter("always")
        codec.loads(blob)  # not from Redis: silent
        assert codec.loads(blob, from_redis=True, source="Redis key 'k'") == [1, 2]
        codec.loads(blob, from_redis=True)
    ours = [w for w in seen if issubclass(w.category, UnsignedPayloadWarning)]
    assert len(ours) == 1
    assert "anyone who can write to that Redis can run code" in str(ours[0].message)
    assert "GRAFLOW_SECRET_KEY" in str(ours[0].message)
    assert ours[0].filename == __file__  # points at the caller, not at graflow
    records = [r for r in caplog.records if r.name == "graflow.security"]
    assert len(records) == 1 and records[0].levelno == logging.WARNING


def test_no_warning_with_a_key(fresh_warning: None) -> None:
    blob = codec.dumps(1, secret_key=KEY_A)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnsignedPayloadWarning)
        codec.loads(blob, from_redis=True, secret_key=KEY_A)


# ------------------------------------------------------- detached signatures


def test_sign_and_verify() -> None:
    data = b'{"v":1,"task_id":"a"}'
    assert codec.sign(data) is None
    codec.verify(data, None)  # no key, no signature: fine
    sig = codec.sign(data, KEY_A)
    assert sig is not None and len(sig) == 64
    codec.verify(data, sig, KEY_A)
    codec.verify(data, sig, [KEY_B, KEY_A])  # rotation
    with pytest.raises(PayloadSignatureError, match="another key"):
        codec.verify(data + b" ", sig, KEY_A)
    with pytest.raises(PayloadSignatureError):
        codec.verify(data, None, KEY_A)
    with pytest.raises(PayloadSignatureError):
        codec.verify(data, "not-hex", KEY_A)
    with pytest.raises(PayloadSignatureError, match="set GRAFLOW_SECRET_KEY"):
        codec.verify(data, sig)


# -------------------------------------------------------------------- files


def test_dump_and_load_path(tmp_path: Path) -> None:
    target = tmp_path / "ctx.pkl"
    codec.dump({"a": 1}, target, Purpose.CONTEXT)
    codec.dump({"a": 2}, str(target), Purpose.CONTEXT)  # replaces atomically
    assert os.listdir(tmp_path) == ["ctx.pkl"]  # no temp file left behind
    assert codec.load(target, Purpose.CONTEXT) == {"a": 2}
    with pytest.raises(PayloadError, match=r"ctx\.pkl"):
        codec.load(target, purpose=Purpose.CHECKPOINT)


def test_dump_and_load_file_objects(tmp_path: Path) -> None:
    buf = io.BytesIO()
    codec.dump((1, 2), buf, secret_key=KEY_A)
    buf.seek(0)
    assert codec.load(buf, secret_key=KEY_A) == (1, 2)
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"not ours")
    with pytest.raises(PayloadError, match=r"junk\.bin"):
        codec.load(junk)


def test_failed_dump_keeps_old_file(tmp_path: Path) -> None:
    target = tmp_path / "x.pkl"
    codec.dump("old", target)
    with pytest.raises(SerializationError):
        codec.dump(threading.Lock(), target)
    assert codec.load(target) == "old"
    assert os.listdir(tmp_path) == ["x.pkl"]


def test_core_serialization_reexports_codec() -> None:
    from graflow.core import serialization

    assert serialization.dumps is codec.dumps
    assert serialization.loads is codec.loads
    assert serialization.dump is codec.dump
    assert serialization.load is codec.load
    assert serialization.loads(serialization.dumps({1})) == {1}  # upstream's call shape


def test_imports_stay_light() -> None:
    code = (
        "import sys\n"
        "import graflow.codec, graflow.redisconn, graflow.channels\n"
        "import graflow.channels.memory_channel, graflow.channels.base\n"
        "import graflow.channels.typed, graflow.channels.factory, graflow.channels.schemas\n"
        "heavy = [m for m in ('redis', 'msgspec', 'rq', 'cloudpickle') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=root, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"imported eagerly: {out.stdout.strip()}"


# ------------------------------------------------------------------ dump_buffers


@pytest.mark.parametrize("key", [None, KEY_A])
def test_dump_buffers_joined_is_the_envelope_dumps_writes(key: str | None) -> None:
    value = {"big": os.urandom(300_000), "small": list(range(50)), "text": "x" * 70_000}
    buffers = codec.dump_buffers(value, Purpose.CHECKPOINT, secret_key=key)
    joined = b"".join(buffers)
    assert joined == codec.dumps(value, Purpose.CHECKPOINT, secret_key=key)
    assert codec.loads(joined, Purpose.CHECKPOINT, secret_key=key) == value


def test_dump_buffers_keeps_large_bytes_by_reference() -> None:
    big = os.urandom(1 << 20)
    buffers = codec.dump_buffers({"big": big}, Purpose.CHECKPOINT)
    assert any(b is big for b in buffers)  # handed over, not copied
    assert all(type(b) is bytes for b in buffers)


def test_dump_buffers_copies_mutable_buffers() -> None:
    """A bytearray changed after the dump cannot change what gets written."""
    data = bytearray(os.urandom(1 << 18))
    buffers = codec.dump_buffers({"data": data}, Purpose.CHECKPOINT)
    expected = bytes(data)
    data[:4] = b"XXXX"
    assert codec.loads(b"".join(buffers), Purpose.CHECKPOINT)["data"] == expected


def test_dump_buffers_names_what_cannot_be_pickled() -> None:
    with pytest.raises(SerializationError, match=r"_thread\.lock"):
        codec.dump_buffers({"lock": threading.Lock()}, Purpose.CHECKPOINT)
