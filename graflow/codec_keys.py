"""The secret keys of graflow's signed payloads, and detached signatures.

``GRAFLOW_SECRET_KEY`` (comma-separated for rotation: the first signs, any verifies) or a
``secret_key=`` argument; HMAC-SHA256 over the pieces of a payload without joining them.
Used by the envelope (``graflow.codec``) and by payloads that travel next to their
signature (wire TaskSpecs, checkpoint meta.json). Ground floor: standard library,
``graflow.exceptions`` and ``graflow.settings`` (+ ``settings_values``) only.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

from graflow import settings
from graflow.exceptions import PayloadSignatureError
from graflow.settings_values import MIN_KEY_BYTES, check_key

__all__ = ["ENV_VAR", "MIN_KEY_BYTES", "SecretKey", "bad_signature", "mac", "no_key", "resolve_keys", "sign", "verify"]

ENV_VAR = "GRAFLOW_SECRET_KEY"

#: ``secret_key=`` arguments: one key (str/bytes) or a sequence of keys (first signs).
SecretKey = str | bytes | Sequence[str | bytes] | None

def resolve_keys(secret_key: SecretKey = None) -> list[bytes]:
    """The keys in force: ``secret_key`` if given, else ``GRAFLOW_SECRET_KEY`` (read and
    checked with the process's settings, ``graflow.settings``).

    The variable may hold comma-separated keys for rotation; the first one signs and
    any verifies. A ``str`` argument is one key (commas included); pass a sequence to
    rotate explicitly. An empty sequence means "no key" even if the variable is set.
    """
    if secret_key is not None:
        if isinstance(secret_key, (str, bytes, bytearray)):
            return [check_key(secret_key, "secret_key=")]
        return [check_key(k, "secret_key=") for k in secret_key]
    return list(settings.current().secret_keys)


def mac(key: bytes, *pieces: bytes | memoryview) -> bytes:
    """HMAC-SHA256 over ``pieces`` in order, as if joined (nothing is joined)."""
    mac = hmac.new(key, digestmod=hashlib.sha256)
    for piece in pieces:
        mac.update(piece)
    return mac.digest()


def bad_signature(source: str) -> str:
    return (
        f"{source} is unsigned/tampered or signed with another key; set the same "
        "GRAFLOW_SECRET_KEY on producers and workers"
    )


def no_key(source: str) -> str:
    return (
        f"{source} is signed but no key is set here; set GRAFLOW_SECRET_KEY "
        "(or pass secret_key=) to the key its producer used"
    )


def sign(data: bytes, secret_key: SecretKey = None) -> str | None:
    """Hex HMAC-SHA256 of ``data`` with the signing key, or None without a key.

    For payloads that travel next to their signature (wire TaskSpecs as JSON).
    """
    keys = resolve_keys(secret_key)
    return mac(keys[0], bytes(data)).hex() if keys else None


def verify(
    data: bytes,
    signature_hex: str | None,
    secret_key: SecretKey = None,
    *,
    source: str = "payload",
) -> None:
    """Check a detached signature; raises ``PayloadSignatureError`` if it does not hold."""
    keys = resolve_keys(secret_key)
    if not keys:
        if signature_hex:
            raise PayloadSignatureError(no_key(source))
        return
    if not signature_hex:
        raise PayloadSignatureError(bad_signature(source))
    try:
        signature = bytes.fromhex(signature_hex)
    except ValueError:
        raise PayloadSignatureError(bad_signature(source)) from None
    raw = bytes(data)
    if not any(hmac.compare_digest(mac(k, raw), signature) for k in keys):
        raise PayloadSignatureError(bad_signature(source))
