"""The HMAC over a checkpoint's meta.json, which covers every artefact through its hashes.

The ``.pkl`` carries its own signature, but ``state.json`` (completed tasks, pending
work) is only hashed in meta.json. Signing meta.json closes that gap: whoever can edit
state.json and recompute its hash cannot forge the signature without the key. The
signature is a ``signature`` field of meta.json, present only with a key, so unsigned
checkpoints stay byte-for-byte what they were.

It is computed over a canonical form of the document without that field (msgspec JSON
with sorted keys, after one JSON round trip so the writer's Python values and the
reader's decoded ones encode alike), prefixed with a domain tag so a signature made for
another graflow payload can never pass for a meta.json one.
"""

from __future__ import annotations

from typing import Any

import msgspec

from graflow.codec import SecretKey, resolve_keys, sign, verify
from graflow.core.checkpoint_schema import encode
from graflow.exceptions import CheckpointSignatureError, PayloadSignatureError

SIGNATURE_FIELD = "signature"
_DOMAIN = b"graflow checkpoint meta.json\x00"


def canonical(doc: dict[str, Any]) -> bytes:
    """The bytes the signature covers: ``doc`` without its signature, canonically encoded."""
    body = {k: v for k, v in doc.items() if k != SIGNATURE_FIELD}
    return _DOMAIN + encode(msgspec.json.decode(encode(body)))


def sign_meta(doc: dict[str, Any], secret_key: SecretKey) -> None:
    """Add the signature to ``doc`` when a key is in force (the first key signs)."""
    signature = sign(canonical(doc), secret_key)
    if signature is not None:
        doc[SIGNATURE_FIELD] = signature


def verify_meta(
    doc: dict[str, Any], secret_key: SecretKey, checkpoint: str, meta_source: str
) -> None:
    """Refuse a meta.json whose signature does not hold, before any of its hashes is trusted.

    With a key: a missing or wrong signature (any edit, or another key) is refused. Without
    a key: a signed meta.json is refused (as a signed ``.pkl`` is). Any key of a rotation
    list verifies. Raises ``CheckpointSignatureError`` naming ``checkpoint`` (the ``.pkl``).
    """
    signature = doc.get(SIGNATURE_FIELD)
    if signature is not None and not isinstance(signature, str):
        signature = ""  # not something we wrote: fails below with a key, or as signed without
    keys = resolve_keys(secret_key)
    if not keys:
        if signature is not None:
            raise CheckpointSignatureError(
                f"{checkpoint} is signed but no key is set here ({meta_source} carries a signature); "
                "set GRAFLOW_SECRET_KEY (or pass secret_key=) to the key its producer used"
            )
        return
    try:
        verify(canonical(doc), signature, keys, source=meta_source)
    except PayloadSignatureError as exc:
        raise CheckpointSignatureError(
            f"{checkpoint} is unsigned/tampered or signed with another key ({meta_source} "
            f"{'has no signature' if not signature else 'does not match its signature'}: it, or a "
            "file whose hash it records, was edited); set the same GRAFLOW_SECRET_KEY on producers "
            "and workers, and resume from a checkpoint nobody edited",
            exc,
        ) from exc


__all__ = ["SIGNATURE_FIELD", "canonical", "sign_meta", "verify_meta"]
