"""What an event must pass before it changes anything: its time against the partition's clock,
its currency against the line's, its id against what its user has already applied, and, for a
person's decision, that there is something to act on. A refused event raises
:class:`InvalidEvent` with its reason and leaves no trace."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from pipeline.decisions import check_decision
from pipeline.events import Decision, Event, Label, Transaction
from pipeline.exceptions import InvalidEvent
from pipeline.state import id_hash
from pipeline.timeutil import HOUR, format_time

if TYPE_CHECKING:
    from pipeline.engine import RiskEngine

__all__ = ["admit"]


def admit(engine: RiskEngine, event: Event) -> tuple[Event, int]:
    """The event as it will be applied, and its id's hash (which the user's state keeps to
    recognise a re-delivery); raises :class:`InvalidEvent` if it cannot be applied."""
    if isinstance(event, Decision):
        event = _as_of_now(engine, event)
    _check_time(engine, event.event_time)
    if event.__class__ is not Label:
        currency = event.currency  # type: ignore[union-attr]
        if currency is not None and currency != engine.config.currency:
            # (A decision carries a currency only with an amount.)
            raise InvalidEvent(
                "currency-mismatch",
                f"currency {currency} is not the credit line's currency "
                f"{engine.config.currency}",
            )
    event_hash = _check_new(engine, event)
    if isinstance(event, Decision):
        check_decision(engine, event)
    return event, event_hash


def _as_of_now(engine: RiskEngine, decision: Decision) -> Decision:
    """A person decides on the line as it stands: a decision behind the partition's event
    time applies at that time (never as late), as an unchanged record when it is not."""
    watermark = engine.watermark
    if watermark is None or decision.event_time >= watermark:
        return decision
    return replace(decision, event_time=watermark)


def _check_time(engine: RiskEngine, event_time: int) -> None:
    watermark = engine.watermark
    if watermark is None:
        return
    cfg = engine.config
    if event_time < watermark - cfg.allowed_lateness:
        raise InvalidEvent(
            "late",
            f"event time {format_time(event_time)} is more than "
            f"{cfg.allowed_lateness // HOUR} h behind the partition's event time "
            f"{format_time(watermark)}",
        )
    horizon = engine.horizon()
    if horizon is not None and event_time > horizon:
        raise InvalidEvent(
            "future",
            f"event time {format_time(event_time)} is more than "
            f"{cfg.max_future_skew // HOUR} h ahead of the partition's event time "
            f"{format_time(watermark)}",
        )


def _check_new(engine: RiskEngine, event: Event) -> int:
    """Refuse an event this user's state has already applied (a re-delivery)."""
    event_hash = id_hash(event.event_id)
    user = engine.users.get(event.user_id)
    if user is None:
        return event_hash
    seen = (
        user.windows.holds(event_hash)
        if isinstance(event, Transaction)
        else user.seen_other(event_hash)
    )
    if seen:
        raise InvalidEvent(
            "duplicate",
            f"event id {event.event_id} was already applied for this user; not counted twice",
        )
    return event_hash
