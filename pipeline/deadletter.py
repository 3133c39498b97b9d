"""The dead-letter record: the original bytes, why they were refused, and where they came from."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from pipeline.exceptions import InvalidEvent

__all__ = ["MAX_ORIGINAL_BYTES", "dead_letter"]

#: Originals up to this size travel whole (base64) inside the record; larger ones -- only
#: possible for payloads the validator refused as oversized -- keep their first bytes, their
#: size and SHA-256, and stay retrievable whole at their source topic/partition/offset.
MAX_ORIGINAL_BYTES = 256 * 1024


def dead_letter(
    error: InvalidEvent,
    original: bytes,
    *,
    source_topic: str | None = None,
    source_partition: int | None = None,
    source_offset: int | None = None,
    source_key: bytes | None = None,
    source_file: str | None = None,
    source_line: int | None = None,
) -> dict[str, Any]:
    truncated = len(original) > MAX_ORIGINAL_BYTES
    kept = original[:MAX_ORIGINAL_BYTES] if truncated else original
    record: dict[str, Any] = {
        "error": error.kind,
        "reason": error.reason,
        "original_b64": base64.b64encode(kept).decode("ascii"),
        "original_size": len(original),
        "original_sha256": hashlib.sha256(original).hexdigest(),
        "original_truncated": truncated,
    }
    if source_topic is not None:
        record["source_topic"] = source_topic
        record["source_partition"] = source_partition
        record["source_offset"] = source_offset
        record["source_key"] = source_key.decode("utf-8", "replace") if source_key else None
    if source_file is not None:
        record["source_file"] = source_file
        record["source_line"] = source_line
    return record
