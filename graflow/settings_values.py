"""How each setting's text becomes a value, and the error that names it when it cannot.

The checks behind ``graflow.settings.Settings.from_env``; a ground-floor module like it.
"""

from __future__ import annotations

from collections.abc import Sequence

from graflow import defaults as d
from graflow.exceptions import ConfigError

#: The shortest lease accepted: below it, ordinary GC pauses would expire leases.
MIN_HEARTBEAT = 0.5
#: The shortest secret key accepted (``GRAFLOW_SECRET_KEY``, ``secret_key=``).
MIN_KEY_BYTES = 16


def check_key(key: str | bytes, where: str) -> bytes:
    """A secret key as bytes; ``ConfigError`` when it is shorter than ``MIN_KEY_BYTES``."""
    raw = key.encode("utf-8") if isinstance(key, str) else bytes(key)
    if len(raw) < MIN_KEY_BYTES:
        # Never echo the key itself: error messages end up in logs.
        raise ConfigError(
            f"the secret key from {where} is too short ({len(raw)} bytes); "
            f"use at least {MIN_KEY_BYTES} bytes, e.g. the output of "
            "`python -c 'import secrets; print(secrets.token_hex(32))'`"
        )
    return raw


def non_empty(value: str | None) -> str | None:
    return value if value and value.strip() else None


def dedupe(items: Sequence[str]) -> list[str]:
    """Keep the first occurrence: repeated ``--queue`` flags are a priority order."""
    seen: list[str] = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return seen


def number(flag: float | None, env_value: str | None, default: float, what: str) -> float:
    if flag is not None:
        return float(flag)
    if env_value is None or not env_value.strip():
        return float(default)
    try:
        return float(env_value)
    except ValueError:
        raise ConfigError(f"{what} is {env_value!r}, not a number; set a number") from None


def concurrency(value: float) -> int:
    if value < 1 or value != int(value):
        raise ConfigError(
            f"--concurrency/GRAFLOW_CONCURRENCY {value:g} is invalid — use a whole number, 1 or more"
        )
    return int(value)


def heartbeat(value: float) -> float:
    if not value >= MIN_HEARTBEAT:
        raise ConfigError(f"--heartbeat {value} is too short — use at least {MIN_HEARTBEAT} seconds")
    return value


def redeliveries(value: float) -> int:
    if value < 0 or value != int(value):
        raise ConfigError(f"--max-redeliveries {value} is invalid — use 0 or more")
    return int(value)


def task_timeout(seconds: float) -> float | None:
    """Off when unset or 0; else seconds > 0."""
    if seconds == 0:
        return None
    if not (seconds > 0 and seconds != float("inf")):
        raise ConfigError(
            f"--task-timeout/GRAFLOW_TASK_TIMEOUT {seconds:g} is invalid; use seconds (more than 0), or 0 for no limit"
        )
    return seconds


def restart_policy(first: float, top: float, count: float, span: float) -> tuple[float, float, int, float]:
    if not 0 <= first <= top:
        raise ConfigError(
            f"--restart-backoff {first:g} / --restart-backoff-max {top:g} are invalid; "
            "use 0 or more seconds, the first no larger than the maximum"
        )
    if count < 1 or count != int(count):
        raise ConfigError(f"--crash-loop-deaths {count:g} is invalid; use a whole number, 1 or more")
    if not span > 0:
        raise ConfigError(f"--crash-loop-window {span:g} is invalid; use a number of seconds above 0")
    return first, top, int(count), span


def seconds(raw: str | None, default: float, name: str) -> float:
    text = (raw or "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise ConfigError(f"{name}={raw!r} is not a number of seconds; set 0 or more, e.g. {default:g}")
    return value


def ttl(raw: str | None, default: int, name: str) -> int:
    """Whole seconds above 0."""
    return _whole_seconds(raw, default, name, 1)


def keep_seconds(raw: str | None, default: int, name: str) -> int:
    """Whole seconds to keep something; 0 means not at all."""
    return _whole_seconds(raw, default, name, 0)


def _whole_seconds(raw: str | None, default: int, name: str, least: int) -> int:
    text = (raw or "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < least:
        what = "a positive whole number of seconds" if least else "a whole number of seconds (0 or more)"
        also = "" if least else " 0 to keep nothing,"
        raise ConfigError(f"{name}={raw!r} is not {what}; set it to e.g. {default},{also} or unset it for the default")
    return value


def checkpoint_ttl(raw: str | None) -> int | None:
    """Seconds, or None (checkpoint keys never expire)."""
    text = (raw or "").strip()
    if not text:
        return None
    try:
        ttl = int(text)
    except ValueError:
        ttl = 0
    if ttl <= 0:
        raise ConfigError(
            f"GRAFLOW_CHECKPOINT_TTL={text!r} is not a positive whole number of seconds; "
            "set it to e.g. 86400, or unset it to keep checkpoint keys without expiry"
        )
    return ttl


def capture_bytes(value: float) -> int:
    """A whole number of bytes, 0 or more (0: capture off)."""
    if not (value >= 0 and value == int(value)) or value == float("inf"):
        raise ConfigError(
            f"--log-capture-bytes/GRAFLOW_LOG_CAPTURE_BYTES {value:g} is invalid; use a whole number "
            f"of bytes, e.g. {d.DEFAULT_LOG_CAPTURE_BYTES}, or 0 to capture nothing"
        )
    return int(value)


def max_value_bytes(raw: str | None) -> int:
    """Unset, empty or 0: the default (64 MiB)."""
    text = (raw or "").strip()
    try:
        value = int(text) if text else 0
    except ValueError:
        value = -1
    if value < 0:
        default = d.DEFAULT_MAX_VALUE_BYTES
        raise ConfigError(
            f"GRAFLOW_MAX_VALUE_BYTES={raw!r} is not a number of bytes; set a whole number such as "
            f"{default} (0 or unset means the default, {default})"
        )
    return value or d.DEFAULT_MAX_VALUE_BYTES


__all__ = [
    "MIN_HEARTBEAT",
    "MIN_KEY_BYTES",
    "capture_bytes",
    "check_key",
    "checkpoint_ttl",
    "concurrency",
    "dedupe",
    "heartbeat",
    "keep_seconds",
    "max_value_bytes",
    "non_empty",
    "number",
    "redeliveries",
    "restart_policy",
    "seconds",
    "task_timeout",
    "ttl",
]


def port(value: float, what: str) -> int:
    """A TCP port, or 0 (off)."""
    if not 0 <= value <= 65535 or value != int(value):
        raise ConfigError(f"{what} {value:g} is invalid; use a TCP port (1-65535), or 0 for off")
    return int(value)


def flag(raw: str | None, default: bool, name: str) -> bool:
    """``1``/``true``/``yes``/``on`` or ``0``/``false``/``no``/``off``; unset: ``default``."""
    text = (raw or "").strip().lower()
    if not text:
        return default
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}={raw!r} is not a yes/no value; set 1 or 0")
