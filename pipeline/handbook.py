"""The Fraud Detection Handbook's features, computed by riskstream's own streaming code.

:data:`HANDBOOK_FEATURES` names, for every feature the handbook defines (its chapter 3
feature transformation), the riskstream feature that computes it and the unit conversion.
:func:`stream_features` runs the handbook's transactions through a :class:`RiskEngine` -- the
same code a worker runs -- and reports each purchase's handbook features. A parity check then
compares them with the handbook's own table.

Interpretations, following the handbook's code: windows include the current purchase and end
at it; terminal windows end ``delay`` (7 days) before it and count frauds among the terminal's
purchases in that window (``TX_FRAUD`` known after 7 days); risk is 0 when the window is empty;
night is ``hour <= 6``; weekend is Saturday and Sunday; ``TX_DATETIME`` is read as UTC.
"""

from __future__ import annotations

import heapq
import zlib
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Collection, Iterator, Sequence
from operator import attrgetter
from pathlib import Path
from typing import NamedTuple

from pipeline.adapters import fdh_amount_minor, parquet_columns, read_fdh
from pipeline.config import RiskConfig
from pipeline.engine import RiskEngine
from pipeline.evaluation import (
    FIRST_DAY,
    TRAIN_START_DAY,
    ScoredPurchase,
    handbook_test_set,
    ranking_metrics,
)
from pipeline.events import Event, Label, Transaction
from pipeline.exceptions import MisorderedHistories
from pipeline.replica import MerchantReplica
from pipeline.scoring import Scored
from pipeline.sources import Rejection
from pipeline.timeutil import DAY, format_time

__all__ = [
    "HANDBOOK_FEATURES",
    "SCENARIO_COLUMN",
    "Truth",
    "ceiling_scores",
    "delay_ceiling",
    "handbook_metrics",
    "handbook_truth",
    "hidden_by_delay",
    "hidden_frauds",
    "histories_truth",
    "history_paths",
    "revealed_metrics",
    "score_history",
    "stream_features",
]

_PER_MAJOR_UNIT = 100.0  # the handbook's amounts are in currency units; ours in cents

#: Handbook column -> (riskstream feature, divisor).
HANDBOOK_FEATURES: dict[str, tuple[str, float]] = {
    "TX_DURING_WEEKEND": ("weekend", 1.0),
    "TX_DURING_NIGHT": ("night", 1.0),
    "CUSTOMER_ID_NB_TX_1DAY_WINDOW": ("count_24h", 1.0),
    "CUSTOMER_ID_AVG_AMOUNT_1DAY_WINDOW": ("mean_24h", _PER_MAJOR_UNIT),
    "CUSTOMER_ID_NB_TX_7DAY_WINDOW": ("count_7d", 1.0),
    "CUSTOMER_ID_AVG_AMOUNT_7DAY_WINDOW": ("mean_7d", _PER_MAJOR_UNIT),
    "CUSTOMER_ID_NB_TX_30DAY_WINDOW": ("count_30d", 1.0),
    "CUSTOMER_ID_AVG_AMOUNT_30DAY_WINDOW": ("mean_30d", _PER_MAJOR_UNIT),
    "TERMINAL_ID_NB_TX_1DAY_WINDOW": ("merchant_count_1d", 1.0),
    "TERMINAL_ID_RISK_1DAY_WINDOW": ("merchant_risk_1d", 1.0),
    "TERMINAL_ID_NB_TX_7DAY_WINDOW": ("merchant_count_7d", 1.0),
    "TERMINAL_ID_RISK_7DAY_WINDOW": ("merchant_risk_7d", 1.0),
    "TERMINAL_ID_NB_TX_30DAY_WINDOW": ("merchant_count_30d", 1.0),
    "TERMINAL_ID_RISK_30DAY_WINDOW": ("merchant_risk_30d", 1.0),
}


def handbook_row(features: dict[str, float]) -> dict[str, float]:
    return {column: features[name] / divisor
            for column, (name, divisor) in HANDBOOK_FEATURES.items()}


#: The column naming each fraud's scenario; the ceiling and the recall per scenario need it.
SCENARIO_COLUMN = "TX_FRAUD_SCENARIO"


class Truth(NamedTuple):
    customer: str
    event_time: int
    fraud: bool
    #: The handbook's fraud scenario (0 for a legitimate purchase); None if the file has no
    #: ``TX_FRAUD_SCENARIO`` column.
    scenario: int | None
    terminal: int
    #: The purchase's amount in minor units (cents), as the replay sends it.
    amount_minor: int = 0

    def scored(self, transaction_id: str, score: float) -> ScoredPurchase:
        """This purchase, given ``score``, as the evaluation protocol counts it."""
        return ScoredPurchase(transaction_id, self.customer, self.event_time // DAY - FIRST_DAY,
                              score, self.fraud, self.scenario)


_AMOUNT_COLUMN = "TX_AMOUNT"


def handbook_truth(path: Path) -> dict[str, Truth]:
    """Transaction id -> what really happened, from the handbook's file itself. The scenario
    and amount columns are optional: a labelled history without them still has its frauds
    (its money figures are then zero)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = ["TRANSACTION_ID", "CUSTOMER_ID", "TX_DATETIME", "TX_FRAUD", "TERMINAL_ID"]
    present = parquet_columns(path, columns, "a labelled handbook history")
    optional = [name for name in (_AMOUNT_COLUMN, SCENARIO_COLUMN) if name in present]
    table = pq.read_table(path, columns=columns + optional)
    times = table.column("TX_DATETIME").cast(pa.timestamp("us")).cast(pa.int64()).to_pylist()
    rows = table.num_rows
    scenarios = (table.column(SCENARIO_COLUMN).to_pylist() if SCENARIO_COLUMN in present
                 else [None] * rows)
    amounts = ([fdh_amount_minor(amount, "CNY")
                for amount in table.column(_AMOUNT_COLUMN).to_pylist()]
               if _AMOUNT_COLUMN in present else [0] * rows)
    return {
        str(tx): Truth(str(customer), micros, bool(fraud), scenario, terminal, amount)
        for tx, customer, micros, fraud, terminal, amount, scenario in zip(
            table.column(0).to_pylist(), table.column(1).to_pylist(), times,
            table.column(3).to_pylist(), table.column(4).to_pylist(), amounts, scenarios,
            strict=True)
    }


def history_paths(history: str | Path | Sequence[str | Path]) -> list[Path]:
    """A history's file, or the files of histories that follow one another, as a list."""
    if isinstance(history, str | Path):
        return [Path(history)]
    return [Path(path) for path in history]


def histories_truth(paths: Sequence[Path]) -> dict[str, Truth]:
    """:func:`handbook_truth` of histories that follow one another, oldest first, as one (a
    hold-out after the history that warms the models up). Refused if one starts before the
    one before it ends, or repeats one of its transaction ids: replayed in that order, their
    purchases would not be in event time, or one would stand for another."""
    truth: dict[str, Truth] = {}
    previous: tuple[Path, int] | None = None
    for path in paths:
        part = handbook_truth(path)
        if not part:
            continue
        first = min(known.event_time for known in part.values())
        if previous is not None and first < previous[1]:
            raise MisorderedHistories(
                f"{path} starts at {format_time(first)}, before {previous[0]} ends at "
                f"{format_time(previous[1])}: give the histories oldest first, without overlap")
        repeated = part.keys() & truth.keys()
        if repeated:
            raise MisorderedHistories(
                f"{path} repeats {len(repeated):,} transaction ids of the histories before it "
                f"(such as {min(repeated)})")
        truth.update(part)
        previous = path, max(known.event_time for known in part.values())
    return truth


def _events(history: Path | Sequence[Path], label_delay: int) -> Iterator[Event]:
    """The events of one history, or of histories that follow one another, in event time
    (a history's last fraud labels are released among the next one's purchases). The files
    are known to be valid, so a rejection is a bug."""
    paths = history_paths(history)
    if len(paths) == 1:
        return _file_events(paths[0], label_delay)
    # At equal times the earlier history's event comes first: its label, say, before the
    # next one's purchase, as in one history (read_fdh).
    return heapq.merge(*(_file_events(path, label_delay) for path in paths),
                       key=attrgetter("event_time"))


def _file_events(path: Path, label_delay: int) -> Iterator[Event]:
    for record in read_fdh(path, label_delay=label_delay):
        if isinstance(record.item, Rejection):
            raise ValueError(f"{record.path}:{record.line}: {record.item.error}")
        yield record.item


def stream_features(
    history: Path | Sequence[Path], config: RiskConfig | None = None,
    share: tuple[int, int] = (0, 1),
) -> Iterator[tuple[int, dict[str, float]]]:
    """(TRANSACTION_ID, handbook features) of every purchase in the handbook file, in order
    (or in histories that follow one another, oldest first: :func:`histories_truth`).

    One engine sees every purchase and keeps its own merchants' activity: the reference that
    partitioned engines sharing a merchant replica reproduce (``tests/unit/test_replica.py``).
    With ``share=(k, n)``, only the purchases of the users in the k-th of n partitions (by a
    hash of the user id), as a worker reading that partition computes them: its engine sees
    its users' events only and queries a :class:`MerchantReplica` fed with every partition's
    purchases and labels. The n shares can run in n processes at once.
    """
    index, partitions = share
    if not 0 <= index < partitions:
        raise ValueError(f"share {share}: want (k, n) with 0 <= k < n")
    engine = RiskEngine(config if config is not None else RiskConfig())
    replica = None
    if partitions > 1:
        replica = MerchantReplica(engine.config, partitions)
        engine.attach_merchants(replica.book)
    seen: list[tuple[int, dict[str, float]]] = []

    def observe(tx: Transaction, features: dict[str, float], _scored: object) -> None:
        seen.append((int(tx.event_id), handbook_row(features)))

    engine.observer = observe
    day = None
    for event in _events(history, engine.config.label_delay):
        if replica is not None:
            if event.event_time // DAY != day:
                # As a worker does at each checkpoint: forget what the engine will not need.
                day = event.event_time // DAY
                before = replica.oldest_needed([engine.watermark])
                if before is not None:
                    replica.evict(before)
            partition = zlib.crc32(event.user_id.encode()) % partitions
            if isinstance(event, Transaction | Label):
                refused = replica.apply(partition, event)
                if refused is not None:
                    raise ValueError(f"the merchant replica refused {event!r}: {refused}")
            if partition != index:
                continue
        engine.process(event)
        if seen:
            yield from seen
            seen.clear()


def score_history(
    history: Path | Sequence[Path], config: RiskConfig | None = None,
    until_day: int | None = None,
) -> list[ScoredPurchase]:
    """Every purchase of the handbook file (or of histories that follow one another, oldest
    first) with the score the engine gave it when it arrived, learning online from the fraud
    labels as they are released (``config.label_delay``)."""
    truth = histories_truth(history_paths(history))
    engine = RiskEngine(config if config is not None else RiskConfig())
    scored: list[ScoredPurchase] = []

    def observe(tx: Transaction, _features: dict[str, float], result: Scored) -> None:
        scored.append(truth[tx.event_id].scored(tx.event_id, result.score))

    engine.observer = observe
    for event in _events(history, engine.config.label_delay):
        if until_day is not None and event.event_time // DAY - FIRST_DAY > until_day:
            break
        engine.process(event)
    return scored


def handbook_metrics(purchases: list[ScoredPurchase], train_start_day: int = TRAIN_START_DAY
                     ) -> dict[str, float]:
    """AUC ROC, Average Precision and Card Precision@100 on the handbook's test set."""
    return ranking_metrics(handbook_test_set(purchases, train_start_day))


#: The handbook's compromised-terminal scenario: its frauds look like any other purchase (their
#: amounts and customers are ordinary), so only the terminal's known frauds can reveal them.
TERMINAL_SCENARIO = 2


def hidden_by_delay(terminals: Sequence[object], times: Sequence[int], scenarios: Sequence[int],
                    delay: int = 7 * DAY, reach: int = 30 * DAY) -> list[bool]:
    """For each purchase, whether it is a compromised-terminal fraud that no label can have
    revealed yet: no such fraud at its terminal lies in ``(t - delay - reach, t - delay]``, the
    window a terminal's known risk covers. Such a fraud carries no signal at all when it
    happens.

    >>> hidden_by_delay(["a", "a", "a", "b"], [0, 6 * DAY, 7 * DAY, 9 * DAY], [2, 2, 2, 0])
    [True, True, False, False]
    """
    frauds: dict[object, list[int]] = defaultdict(list)
    for terminal, time, scenario in sorted(zip(terminals, times, scenarios, strict=True),
                                          key=lambda row: row[1]):
        if scenario == TERMINAL_SCENARIO:
            frauds[terminal].append(time)
    hidden = []
    for terminal, time, scenario in zip(terminals, times, scenarios, strict=True):
        if scenario != TERMINAL_SCENARIO:
            hidden.append(False)
            continue
        known = frauds[terminal]
        end = bisect_right(known, time - delay)
        hidden.append(end == 0 or known[end - 1] <= time - delay - reach)
    return hidden


def hidden_frauds(truth: dict[str, Truth], delay: int = 7 * DAY) -> frozenset[str] | None:
    """The transaction ids of the frauds in ``truth`` (:func:`handbook_truth`) that
    :func:`hidden_by_delay` finds no label ``delay`` old can have revealed; None if ``truth``
    has no scenarios to find them by."""
    rows = list(truth.items())
    if any(known.scenario is None for _, known in rows):
        return None
    hidden = hidden_by_delay([known.terminal for _, known in rows],
                             [known.event_time for _, known in rows],
                             [known.scenario for _, known in rows], delay)
    return frozenset(tx for (tx, _), is_hidden in zip(rows, hidden, strict=True) if is_hidden)


def ceiling_scores(truth: dict[str, Truth], hidden: Collection[str]) -> list[ScoredPurchase]:
    """Every purchase of ``truth`` as a scorer that knows every fraud except the ``hidden``
    ones (:func:`hidden_frauds`) scores it: 1 for the frauds it knows, 0 for the rest."""
    return [known.scored(tx, 1.0 if known.fraud and tx not in hidden else 0.0)
            for tx, known in truth.items()]


def delay_ceiling(truth: dict[str, Truth], delay: int = 7 * DAY,
                  train_start_day: int = TRAIN_START_DAY) -> dict[str, float] | None:
    """The handbook metrics of :func:`ceiling_scores`: every fraud of ``truth``
    (:func:`handbook_truth`) ranked first except the :func:`hidden_frauds`, which are tied
    with the legitimate purchases. No model learning from labels ``delay`` late can expect
    more. None if ``truth`` has no scenarios to find those by."""
    hidden = hidden_frauds(truth, delay)
    if hidden is None:
        return None
    return handbook_metrics(ceiling_scores(truth, hidden), train_start_day)


def revealed_metrics(test: Sequence[ScoredPurchase], hidden: Collection[str]
                     ) -> dict[str, float]:
    """The ranking metrics of a test set (:func:`handbook_test_set`) with its ``hidden``
    frauds (:func:`hidden_frauds`) left out: how well a model ranks the frauds a label could
    have revealed, which is where it can still gain on :func:`delay_ceiling`."""
    return ranking_metrics([p for p in test if p.transaction_id not in hidden])
