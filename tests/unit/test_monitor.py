"""`riskstream alerts`' filter: adjustments take the severity of the alert behind them, and
freezes count as high."""

from __future__ import annotations

from agents.monitor import matches
from pipeline.outputs import ALERTS, LIMIT_ADJUSTMENTS


def _alert(alert_id: str, severity: str, user: str = "u1") -> tuple[str, dict]:
    return ALERTS, {"alert_id": alert_id, "severity": severity, "user_id": user}


def _adjustment(kind: str, alert_id: str | None = None, user: str = "u1") -> tuple[str, dict]:
    return LIMIT_ADJUSTMENTS, {"kind": kind, "alert_id": alert_id, "user_id": user}


STREAM = [
    _alert("a-medium", "medium"),
    _adjustment("temporary_cut", "a-medium"),
    _alert("a-high", "high"),
    _adjustment("temporary_cut", "a-high"),
    _adjustment("restore", "a-medium"),
    _adjustment("freeze"),  # a chargeback's: no alert behind it
    _adjustment("hold_confirmed", "a-medium"),
    _adjustment("increase"),
    _adjustment("release", "a-high"),
    _adjustment("restore", "a-unseen"),  # its alert was never read (--from-now)
]


def _kept(user: str | None, severity: str | None) -> list[tuple[str, str | None]]:
    keep = matches(user, severity)
    return [(record.get("kind") or record["severity"], record.get("alert_id"))
            for stream, record in STREAM if keep(stream, record)]


def test_high_keeps_high_alerts_what_they_caused_and_every_freeze() -> None:
    assert _kept(None, "high") == [
        ("high", "a-high"), ("temporary_cut", "a-high"), ("freeze", None),
        ("hold_confirmed", "a-medium"), ("release", "a-high"), ("restore", "a-unseen"),
    ]


def test_medium_adds_medium_alerts_and_their_cuts_but_not_raises() -> None:
    kept = _kept(None, "medium")
    assert ("temporary_cut", "a-medium") in kept and ("restore", "a-medium") in kept
    assert ("increase", None) not in kept


def test_without_a_severity_everything_of_the_user_is_kept() -> None:
    assert len(_kept("u1", None)) == len(STREAM)
    assert _kept("u2", None) == []
