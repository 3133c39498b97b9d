"""The risk policy as a file: every key documented, validated with errors naming the key, and
a digest that tells policies apart."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from agents.settings import Settings
from pipeline.config import RiskConfig, policy_fields
from pipeline.engine import RiskEngine
from pipeline.exceptions import PolicyError
from pipeline.policy_file import load_policy, parse_policy, policy_digest, render_policy
from pipeline.timeutil import DAY, HOUR
from tests.unit.test_engine import T0, adjustments, habitual_purchases, run, tx

ROOT = Path(__file__).resolve().parents[2]


def test_the_rendered_defaults_read_back_as_the_defaults() -> None:
    text = render_policy()
    assert parse_policy(tomllib.loads(text)) == RiskConfig()
    for item in policy_fields():  # every key is in the file, with its meaning above it
        assert f"\n{item.name} = " in text
        assert item.metadata["doc"].split()[0] in text


def test_a_policy_file_changes_what_the_engine_does(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text('[alerts]\ncut_keep_bp = 5000\ncut_duration = "24h"\n')
    config = load_policy(path)
    assert config.cut_keep_bp == 5000 and config.cut_duration == 24 * HOUR
    engine = RiskEngine(config)
    outputs = run(engine, [*habitual_purchases("u1"),
                           tx("u1", T0 + 30 * DAY, 300_000, "unknown")])
    (cut,) = adjustments(outputs, "temporary_cut")
    assert cut["available_after_minor"] == cut["available_before_minor"] // 2
    assert cut["policy"] == policy_digest(config) != policy_digest(RiskConfig())


@pytest.mark.parametrize(("text", "message"), [
    ('[alerts]\ncut_treshold = 0.5\n', "[alerts] cut_treshold: unknown key (did you mean "
     "'cut_threshold'?)"),
    ('[alerts]\ncut_threshold = "high"\n', "[alerts] cut_threshold: expected a number"),
    ('[alerts]\ncut_duration = 72\n', "[alerts] cut_duration: expected a duration"),
    ('[alerts]\ncut_duration = "3 weeks"\n', "[alerts] cut_duration: expected a duration"),
    ('[raises]\ncut_threshold = 0.8\n', "[raises] cut_threshold: belongs in [alerts]"),
    ('[alert]\ncut_threshold = 0.8\n', "unknown section [alert] (did you mean 'alerts'?)"),
    ('[line]\ncurrency = "XYZ"\n', "[line] currency: unknown currency 'XYZ'"),
    ('[alerts]\ncut_threshold = 0.5\n', "need 0 < alert_threshold <= cut_threshold"),
    ('[alerts\n', "not valid TOML"),
])
def test_a_bad_policy_is_refused_naming_the_key(tmp_path: Path, text: str,
                                                 message: str) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(text)
    with pytest.raises(PolicyError) as refused:
        load_policy(path)
    assert str(refused.value).startswith(f"{path}: ") and message in str(refused.value)


def test_variables_override_single_keys_of_the_file(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text('[line]\ncurrency = "TWD"\n[alerts]\ncut_keep_bp = 0\n')
    config = Settings(policy_file=path, alert_threshold=0.6).risk_config()
    assert (config.currency, config.cut_keep_bp, config.alert_threshold) == ("TWD", 0, 0.6)
    with pytest.raises(PolicyError, match="RISKSTREAM_CUT_THRESHOLD"):
        Settings(policy_file=path, cut_threshold=0.65, alert_threshold=0.7).risk_config()


def test_the_shipped_policy_file_is_the_current_defaults() -> None:
    shipped = ROOT / "deploy" / "policy.toml"
    assert shipped.read_text() == render_policy(), (
        "deploy/policy.toml is out of date: riskstream policy > deploy/policy.toml")
