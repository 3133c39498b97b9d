"""Shared test helpers: schema validation of everything the system produces."""

from __future__ import annotations

import json
import os
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from schemas import SCHEMA_TOPICS, load_schema

# Workers started by tests (several at once, in this process or in subprocesses that inherit
# the environment) serve their metrics on a free port each, not on the default one.
os.environ["RISKSTREAM_HTTP_PORT"] = "0"

#: The shared data beside the project root (absent from a user's clone: tests skip).
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@cache
def _validator(topic: str) -> Draft202012Validator:
    text = resources.files("schemas").joinpath("_defs.schema.json").read_text("utf-8")
    defs_schema = json.loads(text)
    registry = Registry().with_resource(defs_schema["$id"], Resource.from_contents(defs_schema))
    schema = load_schema(topic)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, registry=registry, format_checker=None)


def assert_valid(topic: str, record: dict[str, Any]) -> None:
    """Fail with every schema violation of ``record`` as a message of ``topic``."""
    errors = sorted(_validator(topic).iter_errors(record), key=str)
    assert not errors, f"{topic} record violates its schema: {[e.message for e in errors]}"


@pytest.fixture(scope="session")
def schema_topics() -> tuple[str, ...]:
    return SCHEMA_TOPICS
