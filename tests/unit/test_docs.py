"""The documentation a newcomer reads stays true: the configuration reference is what the code
declares, every example message is valid, every schema field is described, and the README
stays short."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from agents.reference import configuration_reference
from schemas import SCHEMA_TOPICS, load_schema
from tests.conftest import assert_valid

ROOT = Path(__file__).resolve().parents[2]


def test_the_configuration_reference_is_current() -> None:
    written = (ROOT / "docs" / "configuration.md").read_text()
    assert written == configuration_reference(), (
        "docs/configuration.md is out of date: python -m agents.reference > "
        "docs/configuration.md")


def _examples() -> dict[str, list[dict]]:
    text = (ROOT / "docs" / "events.md").read_text()
    examples: dict[str, list[dict]] = {}
    for section in re.split(r"^## ", text, flags=re.MULTILINE)[1:]:
        topic = section.split("\n", 1)[0].strip().strip("`")
        blocks = re.findall(r"```json\n(.*?)\n```", section, flags=re.DOTALL)
        examples[topic] = [json.loads(block) for block in blocks]
    return examples


def test_every_topic_has_an_example_message_that_its_schema_accepts() -> None:
    examples = _examples()
    assert set(examples) == set(SCHEMA_TOPICS)
    for topic, messages in examples.items():
        assert messages, topic
        for message in messages:
            assert_valid(topic, message)


def test_a_broken_example_would_be_caught() -> None:
    (alert,) = _examples()["alerts"]
    del alert["severity"]
    with pytest.raises(AssertionError, match="severity"):
        assert_valid("alerts", alert)


@pytest.mark.parametrize("topic", SCHEMA_TOPICS)
def test_every_schema_field_has_a_description(topic: str) -> None:
    schema = load_schema(topic)
    assert schema.get("title")
    missing = [name for name, spec in schema["properties"].items()
               if not spec.get("description")]
    assert not missing, f"{topic}: fields without a description: {missing}"


def test_the_readme_is_a_short_page_for_a_newcomer() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    for command in ("make demo", "make test", "riskstream broker", "riskstream worker",
                    "riskstream replay", "riskstream alerts", "riskstream decide",
                    "riskstream user"):
        assert command in readme, command
    for link in re.findall(r"\]\((docs/[^)#]+)", readme):
        assert (ROOT / link).exists(), link
