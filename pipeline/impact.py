"""What alerts, temporary cuts and raises do, in money.

- **Alerted fraud**: the amount of the fraudulent purchases scored at or above the alert
  threshold.
- **Stopped by cuts**: during each temporary cut (from the cut until it is restored, released,
  confirmed as fraud -- from then on a person's review holds the line, not the cut -- or
  replaced by a freeze), the user's later purchases are authorised against
  the available credit the cut left, as an authorisation system would: a purchase larger than
  what is left is declined, one that fits uses it up. Declined frauds are money the cut
  stopped; declined legitimate purchases are its friction.
- **Raises**: the extra credit granted, and the share of it granted to users who later
  defaulted.

Pure functions of the records, so both evaluation reports and the simulator's histories count
money the same way.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pipeline.timeutil import parse_time

__all__ = ["Purchase", "cut_effects", "raise_effects"]

#: Adjustments that end a temporary cut's window: lifted, confirmed as fraud, or replaced by a
#: freeze.
_ENDS_CUT = frozenset({"restore", "release", "hold_confirmed", "unfreeze", "freeze",
                       "risk_freeze"})


@dataclass(frozen=True, slots=True)
class Purchase:
    transaction_id: str
    user_id: str
    event_time: int
    amount_minor: int
    fraud: bool


def cut_effects(purchases: Iterable[Purchase], adjustments: Iterable[dict[str, Any]]
                ) -> dict[str, int]:
    """Money the temporary cuts stopped and the legitimate purchases they declined (see the
    module's docstring), with the purchases ``purchases`` and ``adjustments`` describe.

    >>> cut = {"kind": "temporary_cut", "user_id": "u", "event_time": "2026-01-01T00:00:00Z",
    ...        "available_after_minor": 100}
    >>> lift = {"kind": "restore", "user_id": "u", "event_time": "2026-01-04T00:00:00Z"}
    >>> day = parse_time("2026-01-02T00:00:00Z")
    >>> cut_effects([Purchase("t1", "u", day, 80, True), Purchase("t2", "u", day + 1, 50, False),
    ...              Purchase("t3", "u", day + 2, 20, True),
    ...              Purchase("t4", "u", parse_time("2026-01-05T00:00:00Z"), 900, True)],
    ...             [cut, lift])
    {'cuts': 1, 'fraud_stopped_minor': 0, 'legitimate_declined_minor': 50, \
'fraud_after_cuts_minor': 100}
    """
    # A user has one hold at a time: each cut's window runs until the next change of hold.
    windows: dict[str, list[tuple[int, int | None, int]]] = {}  # user -> (start, end, left)
    open_cut: dict[str, tuple[int, int]] = {}
    cuts = 0
    timed = sorted(((parse_time(a["event_time"]), a) for a in adjustments),
                   key=lambda item: item[0])
    for when, adjustment in timed:
        kind, user = adjustment["kind"], adjustment["user_id"]
        if kind in _ENDS_CUT and user in open_cut:
            start, left = open_cut.pop(user)
            windows.setdefault(user, []).append((start, when, left))
        if kind == "temporary_cut":
            cuts += 1
            open_cut[user] = (when, adjustment["available_after_minor"])
    for user, (start, left) in open_cut.items():  # still on at the end of the history
        windows.setdefault(user, []).append((start, None, left))
    stopped = declined = after = 0
    left_in: dict[tuple[str, int], int] = {}
    for purchase in sorted(purchases, key=lambda p: (p.event_time, p.transaction_id)):
        for start, end, left in windows.get(purchase.user_id, ()):
            if purchase.event_time <= start or (end is not None and purchase.event_time >= end):
                continue
            key = (purchase.user_id, start)
            available = left_in.get(key, left)
            if purchase.fraud:
                after += purchase.amount_minor
            if purchase.amount_minor > available:
                if purchase.fraud:
                    stopped += purchase.amount_minor
                else:
                    declined += purchase.amount_minor
            else:
                left_in[key] = available - purchase.amount_minor
            break
    return {"cuts": cuts, "fraud_stopped_minor": stopped, "legitimate_declined_minor": declined,
            "fraud_after_cuts_minor": after}


def raise_effects(adjustments: Iterable[dict[str, Any]], defaulted: dict[str, bool]
                  ) -> dict[str, float]:
    """The extra credit the raises granted (minor units), and the share of it granted to
    users who later defaulted (of the users ``defaulted`` knows).

    >>> raise_effects([{"kind": "increase", "user_id": "a", "limit_before_minor": 100,
    ...                 "limit_after_minor": 120}, {"kind": "increase", "user_id": "b",
    ...                 "limit_before_minor": 100, "limit_after_minor": 160}],
    ...               {"a": True, "b": False})
    {'raises': 2, 'extra_credit_minor': 80, 'extra_credit_to_defaulters_share': 0.25}
    """
    extra = to_defaulters = raises = 0
    for adjustment in adjustments:
        if adjustment["kind"] != "increase" or adjustment["user_id"] not in defaulted:
            continue
        raises += 1
        grant = adjustment["limit_after_minor"] - adjustment["limit_before_minor"]
        extra += grant
        if defaulted[adjustment["user_id"]]:
            to_defaulters += grant
    return {"raises": raises, "extra_credit_minor": extra,
            "extra_credit_to_defaulters_share": to_defaulters / extra if extra else float("nan")}
