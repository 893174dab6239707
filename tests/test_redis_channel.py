"""RedisChannel specifics on a real Redis: the tag encoding, foreign data, clients,
connection failures with masked passwords, pickling without the password, and
payload signing. Also the helpers of graflow.redisconn.
"""

from __future__ import annotations

import logging
import pickle
import shutil
import socket
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from graflow import codec
from graflow.channels.redis_channel import RedisChannel
from graflow.exceptions import (
    ChannelError,
    ConfigError,
    PayloadSignatureError,
    RedisUnavailableError,
    UnsignedPayloadWarning,
)
from graflow.redisconn import (
    ConnectionDescriptor,
    client_from,
    loader_redis_url,
)

KEY_A = "A" * 16 + "-signing-key"
KEY_B = "B" * 16 + "-signing-key"
SECRET = "pw-Zq81xT"  # distinctive, so it can be searched for in messages


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("GRAFLOW_SECRET_KEY", "GRAFLOW_REDIS_URL", "REDIS_URL", "REDIS_PASSWORD"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def ch(redis_url: str, key_prefix: str, redis_client: Any) -> Iterator[RedisChannel]:
    channel = RedisChannel("s1", url=redis_url, key_prefix=key_prefix)
    yield channel
    channel.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def auth_redis() -> Iterator[int]:
    """A private redis-server that requires the password SECRET; yields its port."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    port, workdir = free_port(), tempfile.mkdtemp(prefix="graflow-auth-redis-")
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--requirepass", SECRET,
         "--save", "", "--appendonly", "no", "--dir", workdir],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    probe = redis.Redis(port=port, password=SECRET, socket_connect_timeout=1)
    deadline = time.monotonic() + 10
    while True:
        try:
            probe.ping()
            break
        except redis.RedisError:
            if time.monotonic() > deadline:
                proc.kill()
                pytest.fail("private redis-server with a password did not start")
            time.sleep(0.05)
    probe.close()
    try:
        yield port
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


# ------------------------------------------------------------------ layout


def test_key_layout_and_tags(ch: RedisChannel, redis_client: Any, key_prefix: str) -> None:
    assert ch.namespace == key_prefix
    assert ch.key_prefix == f"{key_prefix}:channel:{{s1}}:"
    ch.set("plain", {"a": [1, 2.5, "x", b"y", None, True]})
    ch.set("maxint", 2**63 - 1)
    ch.set("bigint", 2**64)
    ch.set("tuple", (1,))
    ch.append("lst", "e")
    ch.append("lst", {1})
    raw = redis_client.get(f"{key_prefix}:channel:{{s1}}:plain")
    assert raw[0] == 0x01
    assert redis_client.get(f"{key_prefix}:channel:{{s1}}:maxint")[0] == 0x01
    assert redis_client.get(f"{key_prefix}:channel:{{s1}}:bigint")[:5] == b"\x02GFLW"
    assert redis_client.get(f"{key_prefix}:channel:{{s1}}:tuple")[:5] == b"\x02GFLW"
    assert redis_client.type(f"{key_prefix}:channel:{{s1}}:lst") == b"list"
    elements = redis_client.lrange(f"{key_prefix}:channel:{{s1}}:lst", 0, -1)
    assert [e[0] for e in elements] == [0x01, 0x02]
    assert ch.get("bigint") == 2**64
    with ch.lock("k"):
        assert redis_client.exists(f"{key_prefix}:lock:{{s1}}:k")
        assert sorted(ch.keys()) == ["bigint", "lst", "maxint", "plain", "tuple"]


def test_atomic_add_writes_plain_ascii(
    ch: RedisChannel, redis_client: Any, key_prefix: str
) -> None:
    ch.atomic_add("n", 41)
    ch.atomic_add("f", 1.0)
    assert redis_client.get(f"{key_prefix}:channel:{{s1}}:n") == b"41"
    assert redis_client.get(f"{key_prefix}:channel:{{s1}}:f") == b"1.0"
    ch.set("s", 7)  # tagged: atomic_add converts it once, in place
    assert ch.atomic_add("s", 1) == 8
    assert redis_client.get(f"{key_prefix}:channel:{{s1}}:s") == b"8"
    ch.set("ovf", 2**63 - 1)
    with pytest.raises(OverflowError):
        ch.atomic_add("ovf")
    assert ch.get("ovf") == 2**63 - 1


def test_foreign_data(ch: RedisChannel, redis_client: Any, key_prefix: str) -> None:
    p = f"{key_prefix}:channel:{{s1}}:"
    redis_client.set(p + "text", "hello")
    redis_client.set(p + "bin", b"\xff\x00\xfe")
    redis_client.set(p + "empty", b"")
    redis_client.set(p + "badtag", b"\x02not an envelope")
    redis_client.incr(p + "counter", 5)
    redis_client.incrbyfloat(p + "fl", 2.5)
    redis_client.set(p + "exp", "1e3")
    redis_client.set(p + "minus", "-12")
    redis_client.rpush(p + "flist", "a", "7", b"\xff")
    redis_client.hset(p + "hash", "f", "v")
    assert ch.get("text") == "hello"
    assert ch.get("bin") == b"\xff\x00\xfe"
    assert ch.get("empty") == ""
    assert ch.get("badtag") == "\x02not an envelope"
    assert ch.get("counter") == 5 and type(ch.get("counter")) is int
    assert ch.get("fl") == 2.5
    assert ch.get("exp") == 1000.0 and type(ch.get("exp")) is float
    assert ch.get("minus") == -12
    assert ch.get("flist") == ["a", 7, b"\xff"]
    assert ch.atomic_add("counter", 1) == 6  # INCR-written numbers keep counting
    assert ch.atomic_add("fl", 1) == 3.5
    assert ch.append("flist", "b") == 4
    with pytest.raises(TypeError):
        ch.atomic_add("text")
    with pytest.raises(TypeError):
        ch.append("hash", 1)
    with pytest.raises(ChannelError, match="hash"):
        ch.get("hash")


def test_glob_characters_in_names(redis_url: str, key_prefix: str, redis_client: Any) -> None:
    a = RedisChannel("r*[x]?", url=redis_url, key_prefix=key_prefix)
    b = RedisChannel("r1[x]?", url=redis_url, key_prefix=key_prefix)
    a.set("k*", 1)
    b.set("k2", 2)
    assert a.keys() == ["k*"] and b.keys() == ["k2"]
    a.clear()
    assert b.get("k2") == 2


# ----------------------------------------------------------------- clients


def test_any_client_is_accepted(ch: RedisChannel, redis_url: str, key_prefix: str) -> None:
    decoding = redis.Redis.from_url(redis_url, decode_responses=True)
    other = RedisChannel("s1", redis_client=decoding, key_prefix=key_prefix)
    ch.set("v", {1, 2})
    ch.set("b", b"\x00\xff")
    assert other.get("v") == {1, 2} and other.get("b") == b"\x00\xff"
    assert other.redis_client is decoding
    assert other.ping()
    binary = redis.Redis.from_url(redis_url)
    other.redis_client = binary
    assert other.redis_client is binary and other.get("v") == {1, 2}
    other.close()
    assert binary.ping()  # a client passed in is never closed by the channel
    decoding.close()
    binary.close()


def test_client_from_derives_binary_client(redis_url: str) -> None:
    decoding = redis.Redis.from_url(redis_url, decode_responses=True)
    derived = client_from(redis_client=decoding)
    assert derived is not decoding
    assert derived.connection_pool.connection_kwargs.get("decode_responses") is False
    assert derived.echo(b"\xff") == b"\xff"
    assert client_from(redis_client=derived) is derived
    assert client_from(redis_client=derived, decode=True).echo("x") == "x"
    desc = ConnectionDescriptor.from_client(decoding)
    assert desc == ConnectionDescriptor.from_url(redis_url)
    derived.close()
    decoding.close()


# -------------------------------------------------------- connection errors


def test_unreachable_redis_masks_password() -> None:
    port = free_port()  # nothing listens there
    ch = RedisChannel("s", url=f"redis://user:{SECRET}@127.0.0.1:{port}/0")
    start = time.monotonic()
    with pytest.raises(RedisUnavailableError) as info:
        ch.set("k", 1)
    assert time.monotonic() - start < 10
    message = str(info.value)
    assert SECRET not in message and SECRET not in repr(info.value)
    assert f"redis://user:***@127.0.0.1:{port}/0" in message
    assert info.value.url == f"redis://user:***@127.0.0.1:{port}/0"
    assert isinstance(info.value, ConnectionError)
    for call in (
        lambda: ch.get("k"),
        ch.keys,
        lambda: ch.atomic_add("n"),
        lambda: ch.append("l", 1),
    ):
        with pytest.raises(RedisUnavailableError):
            call()
    assert ch.ping() is False
    assert SECRET not in ch.url and SECRET not in repr(ch)


def test_wrong_or_missing_password(auth_redis: int) -> None:
    wrong = RedisChannel("s", url=f"redis://:{SECRET}-wrong@127.0.0.1:{auth_redis}/0")
    with pytest.raises(RedisUnavailableError, match="authentication failed") as info:
        wrong.get("k")
    assert SECRET not in str(info.value)
    assert f"redis://:***@127.0.0.1:{auth_redis}/0" in str(info.value)
    missing = RedisChannel("s", port=auth_redis, host="127.0.0.1")
    with pytest.raises(RedisUnavailableError):
        missing.get("k")
    assert not wrong.ping() and not missing.ping()
    separate = RedisChannel("s", url=f"redis://127.0.0.1:{auth_redis}/0", password=SECRET)
    assert separate.ping() and separate.url == f"redis://:***@127.0.0.1:{auth_redis}/0"


def test_pickled_channel_drops_password_and_reconnects(
    auth_redis: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    ch = RedisChannel("s", host="127.0.0.1", port=auth_redis, password=SECRET, key_prefix="gfauth")
    ch.set("k", (1, 2))
    blob = pickle.dumps(ch)
    assert SECRET.encode() not in blob
    for via in ("none", "REDIS_PASSWORD", "GRAFLOW_REDIS_URL", "REDIS_URL", "loader"):
        for var in ("REDIS_PASSWORD", "GRAFLOW_REDIS_URL", "REDIS_URL"):
            monkeypatch.delenv(var, raising=False)
        if via == "REDIS_PASSWORD":
            monkeypatch.setenv(via, SECRET)
        elif via.endswith("URL"):
            monkeypatch.setenv(via, f"redis://:{SECRET}@localhost:{auth_redis}/3")
        if via == "loader":
            with loader_redis_url(f"redis://:{SECRET}@elsewhere:1/0"):
                copy = pickle.loads(blob)
        else:
            copy = pickle.loads(blob)
        assert (copy.name, copy.namespace, copy.key_prefix) == ("s", "gfauth", "gfauth:channel:{s}:")
        if via == "none":
            with pytest.raises(RedisUnavailableError):
                copy.get("k")
        else:
            assert copy.get("k") == (1, 2), via
        copy.close()
    # an env URL for another server does not lend its password
    monkeypatch.setenv("GRAFLOW_REDIS_URL", f"redis://:{SECRET}@127.0.0.1:{auth_redis + 1}/0")
    monkeypatch.delenv("REDIS_URL", raising=False)
    with pytest.raises(RedisUnavailableError):
        pickle.loads(blob).get("k")
    ch.clear()
    ch.close()


def test_pickled_channel_without_password(ch: RedisChannel) -> None:
    ch.set("v", {"x": {1}})
    copy = pickle.loads(pickle.dumps(ch))
    assert copy.get("v") == {"x": {1}}
    assert copy.descriptor == ch.descriptor


# ------------------------------------------------------------------ signing


def test_signed_values_and_tampering(
    ch: RedisChannel, redis_client: Any, key_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRAFLOW_SECRET_KEY", KEY_A)
    ch.set("v", {1, 2})
    ch.append("l", (3,))
    raw_key = f"{key_prefix}:channel:{{s1}}:v"
    raw = redis_client.get(raw_key)
    assert raw[:5] == b"\x02GFLW" and raw[6] & 0x01
    assert ch.get("v") == {1, 2} and ch.get("l") == [(3,)]
    tampered = raw[:-1] + bytes([raw[-1] ^ 0x01])
    redis_client.set(raw_key, tampered)
    with pytest.raises(PayloadSignatureError, match=raw_key):
        ch.get("v")
    # rotation: old key still verifies as the second key, not once it is dropped
    monkeypatch.setenv("GRAFLOW_SECRET_KEY", f"{KEY_B},{KEY_A}")
    assert ch.get("l") == [(3,)]
    monkeypatch.setenv("GRAFLOW_SECRET_KEY", KEY_B)
    with pytest.raises(PayloadSignatureError):
        ch.get("l")
    # unsigned (written without a key) is refused while a key is set
    monkeypatch.delenv("GRAFLOW_SECRET_KEY")
    ch.set("u", {0})
    monkeypatch.setenv("GRAFLOW_SECRET_KEY", KEY_A)
    with pytest.raises(PayloadSignatureError):
        ch.get("u")


def test_secret_key_argument(redis_url: str, key_prefix: str, redis_client: Any) -> None:
    ch = RedisChannel("s2", url=redis_url, key_prefix=key_prefix, secret_key=KEY_A)
    ch.set("v", (1,))
    assert ch.get("v") == (1,)
    reader = RedisChannel("s2", url=redis_url, key_prefix=key_prefix)
    with pytest.raises(PayloadSignatureError, match="set GRAFLOW_SECRET_KEY"):
        reader.get("v")
    short = RedisChannel("s2", url=redis_url, key_prefix=key_prefix, secret_key="short")
    with pytest.raises(ConfigError, match="too short"):
        short.set("v", (1,))
    ch.set("plain", 1)  # plain data is not pickled, so it needs no signature
    assert reader.get("plain") == 1


def test_unsigned_from_redis_warns_once(
    ch: RedisChannel, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(codec, "_unsigned_warning", codec._WarnOnce())
    ch.set("v", {1})
    ch.set("p", [1])
    with warnings.catch_warnings(record=True) as seen, caplog.at_level(logging.WARNING):
        warnings.simplefilter("always")
        ch.get("p")  # plain msgpack: nothing unpickled, no warning
        ch.get("v")
        ch.get("v")
    ours = [w for w in seen if issubclass(w.category, UnsignedPayloadWarning)]
    assert len(ours) == 1 and "anyone who can write to that Redis" in str(ours[0].message)
    assert ours[0].filename == __file__
    assert len([r for r in caplog.records if r.name == "graflow.security"]) == 1
