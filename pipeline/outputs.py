"""What the core emits: alerts and limit adjustments, with ids derived from their causes.

Ids are hashes of the event that caused the output, so a re-delivered event after a crash
produces a byte-identical record with the same id, and consumers can de-duplicate on it.
"""

from __future__ import annotations

from hashlib import blake2b
from typing import Any, Literal, NamedTuple

__all__ = [
    "ALERTS", "CREDIT_SCORES", "LIMIT_ADJUSTMENTS", "SCORES", "AdjustmentKind", "Output",
    "stable_id",
]

#: Logical output streams; the shell maps them to topic names.
ALERTS = "alerts"
LIMIT_ADJUSTMENTS = "limit-adjustments"
#: Every purchase's score, when ``RiskConfig.emit_scores`` is on (for evaluation).
SCORES = "scores"
#: Every default-risk review (one per statement), with ``emit_scores`` too.
CREDIT_SCORES = "credit-scores"

AdjustmentKind = Literal[
    "temporary_cut", "restore", "increase", "hold_confirmed", "freeze", "risk_freeze",
    # a person's decisions (``decisions`` topic)
    "release", "unfreeze", "set_limit",
]


class Output(NamedTuple):
    stream: str
    key: str
    value: dict[str, Any]


def stable_id(prefix: str, *parts: str) -> str:
    """A short id that is a pure function of ``parts``.

    >>> stable_id("alr", "tx-1") == stable_id("alr", "tx-1")
    True
    >>> stable_id("alr", "tx-1")
    'alr_1dade1d9878de5fc0049'
    """
    digest = blake2b("\x1f".join(parts).encode(), digest_size=10).hexdigest()
    return f"{prefix}_{digest}"
