"""An analyst's decision through the real broker: written by `riskstream decide`, applied by the
worker in event time, audited as a limit adjustment, and seen in `riskstream user`."""

from __future__ import annotations

from base64 import b64decode
from pathlib import Path

import orjson
import pytest

from agents.replay import replay_files
from agents.settings import Settings
from pipeline.events import event_to_mapping
from pipeline.outputs import stable_id
from pipeline.timeutil import DAY, HOUR, format_time
from tests.conftest import assert_valid
from tests.integration.conftest import read_outputs, run_worker, settings_env
from tests.integration.test_cli import riskstream
from tests.unit.test_engine import T0, habitual_purchases, tx

pytestmark = pytest.mark.integration

BURST = T0 + 30 * DAY


def test_an_analyst_releases_a_hold_through_the_broker(settings: Settings,
                                                       tmp_path: Path) -> None:
    history = tmp_path / "history.jsonl"
    events = [*habitual_purchases("u1"), *habitual_purchases("u2"),
              tx("u1", BURST, 300_000, "unknown")]
    history.write_bytes(b"".join(orjson.dumps(event_to_mapping(event)) + b"\n"
                                 for event in sorted(events, key=lambda e: e.event_time)))
    replay_files(settings, [history], progress=False)
    run_worker(settings)
    (cut,) = [value for stream, value in read_outputs(settings)
              if stream == "limit-adjustments" and value["kind"] == "temporary_cut"]

    env = settings_env(settings)
    at = format_time(BURST + HOUR)
    decide = ("decide", "release", "--reason", "the user confirmed the purchase by phone",
              "--by", "analyst-7", "--at", at)
    for user, decision_id in (("u1", "dec-1"), ("u1", "dec-1"), ("nobody", "dec-2"),
                              ("u2", "dec-3")):
        done = riskstream(*decide[:2], user, *decide[2:], "--id", decision_id, env=env)
        assert done.returncode == 0, done.stderr
        assert f"decision {decision_id} (release user {user}) written to" in done.stdout
    run_worker(settings)

    outputs = read_outputs(settings, ("limit-adjustments", "dead-letter"))
    for stream, value in outputs:
        assert_valid(stream, value)
    (release,) = [value for stream, value in outputs
                  if stream == "limit-adjustments" and value["kind"] == "release"]
    assert release["adjustment_id"] == stable_id("adj", "dec-1", "release")
    assert release["decided_by"] == "analyst-7" and release["event_time"] == at
    assert release["cause_event_id"] == "dec-1" and release["alert_id"] == cut["alert_id"]
    assert release["available_after_minor"] == cut["available_before_minor"]
    assert "confirmed the purchase by phone" in release["reason"]
    refused = {orjson.loads(b64decode(value["original_b64"]))["event_id"]:
               value["error"] for stream, value in outputs if stream == "dead-letter"}
    assert refused == {"dec-1": "duplicate", "dec-2": "unknown-user",
                       "dec-3": "nothing-to-release"}

    done = riskstream("user", "u1", "--json", env=env)
    assert done.returncode == 0, done.stderr
    looked_up = orjson.loads(done.stdout)
    assert looked_up["state"]["hold"] is None
    assert looked_up["state"]["available_minor"] == cut["available_before_minor"]
    assert looked_up["recent_adjustments"][-1] == release
    assert [letter["error"] for letter in looked_up["recent_dead_letters"]] == ["duplicate"]
    done = riskstream("user", "u2", env=env)  # what the analyst sees of a refused decision
    assert "nothing-to-release: user u2 has no hold to release" in done.stdout, done.stdout


def test_a_malformed_decision_is_not_sent(settings: Settings) -> None:
    done = riskstream("decide", "set-limit", "u1", "lots", "--reason", "r", "--by", "a",
                      env=settings_env(settings))
    assert done.returncode != 0 and "is not an amount" in done.stderr
    done = riskstream("decide", "release", "u1", "--reason", " ", "--by", "a",
                      env=settings_env(settings))
    assert done.returncode == 1 and "not sent: reason must be" in done.stderr
