"""JSON Schemas (draft 2020-12) of every topic's message value: the contracts of riskstream.

``load_schema("alerts")`` returns the parsed schema of the ``alerts`` topic.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

__all__ = ["SCHEMA_TOPICS", "load_schema"]

SCHEMA_TOPICS = (
    "transactions",
    "repayments",
    "statements",
    "labels",
    "decisions",
    "alerts",
    "limit-adjustments",
    "scores",
    "credit-scores",
    "dead-letter",
)


@cache
def load_schema(topic: str) -> dict[str, Any]:
    if topic not in SCHEMA_TOPICS:
        raise KeyError(f"no schema for topic {topic!r}; known: {SCHEMA_TOPICS}")
    text = resources.files(__name__).joinpath(f"{topic}.schema.json").read_text("utf-8")
    return json.loads(text)
