"""The allowed form of ids that become part of Redis key names and rq job ids.

A session id, key prefix or queue name given by a user is data, never a pattern: it is
checked here, at every entry point, before anything is written. The forms:

* session id: ``[A-Za-z0-9_-]{1,64}`` — the rq job id ``gf-{session}-{spec}-a{n}`` allows
  only letters, digits, ``_`` and ``-``; a uuid4 hex (the default) fits;
* key prefix and queue name: ``[A-Za-z0-9_.:-]{1,64}``.

None of these characters is special in a Redis glob pattern or a cluster hash tag, so one
run's id can never select another run's keys.
"""

from __future__ import annotations

import re

from graflow.exceptions import InvalidIdentifierError

MAX_LENGTH = 64
SESSION_ID_FORM = "1-64 characters from A-Z, a-z, 0-9, '_' and '-'"
NAME_FORM = "1-64 characters from A-Z, a-z, 0-9, '_', '.', ':' and '-'"
_SESSION_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


def _check(value: object, pattern: re.Pattern[str], what: str, form: str, source: str) -> str:
    if not isinstance(value, str) or pattern.fullmatch(value) is None:
        where = f" ({source})" if source else ""
        raise InvalidIdentifierError(f"{what} {value!r}{where} is not allowed; use {form}")
    return value


def check_session_id(session_id: object, source: str = "") -> str:
    """``session_id`` if it has the allowed form, else ``InvalidIdentifierError``
    (``source`` names where it came from, e.g. a flag)."""
    return _check(session_id, _SESSION_ID, "session id", SESSION_ID_FORM, source)


def check_key_prefix(prefix: object, source: str = "") -> str:
    """``prefix`` if it has the allowed form, else ``InvalidIdentifierError``."""
    return _check(prefix, _NAME, "key prefix", NAME_FORM, source)


def check_queue_name(queue: object, source: str = "") -> str:
    """``queue`` if it has the allowed form, else ``InvalidIdentifierError``."""
    return _check(queue, _NAME, "queue name", NAME_FORM, source)


__all__ = ["MAX_LENGTH", "NAME_FORM", "SESSION_ID_FORM", "check_key_prefix", "check_queue_name", "check_session_id"]
