"""Other people's histories as riskstream events: a general column mapping and two adapters.

- :class:`ColumnMapping` renames the columns of any CSV or Parquet file to the contract's
  fields (``--map user_id=CUSTOMER_ID,...``), converting amounts in major units exactly.
- :func:`read_fdh` reads the Fraud Detection Handbook's transactions (Le Borgne et al.):
  customer -> user, terminal -> merchant, and each ``TX_FRAUD`` row -> a ``fraud`` label
  released ``label_delay`` after the purchase, as the handbook's protocol assumes.
- :func:`read_uci_taiwan` reads the UCI "default of credit card clients" table: each client's
  six monthly statements and payments, in month order, and the next month's default as a late
  label.

Every adapter yields :class:`~pipeline.sources.SourceRecord` in event-time order, validated by
the same code as any other input, so rejections keep their file and line.
"""

from __future__ import annotations

import csv
import heapq
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import orjson

from pipeline.exceptions import InvalidEvent, UnreadableSource
from pipeline.money import to_minor
from pipeline.sources import Rejection, SourceRecord, read_events, validated
from pipeline.timeutil import DAY, format_time, parse_time

__all__ = [
    "FORMATS", "OUTCOME_WINDOWS", "UCI_OUTCOME_WINDOW", "ColumnMapping", "fdh_amount_minor",
    "parquet_columns", "read_fdh", "read_source", "read_uci_taiwan", "uci_defaults",
]

#: The ``--format`` names: the contract itself, and the two adapters.
FORMATS = ("riskstream", "fdh", "uci-taiwan")

#: The performance window over which a format's default outcomes are defined, where the format
#: says (others: the policy's ``default_horizon``).
OUTCOME_WINDOWS: dict[str, int] = {}

#: Fields given in major units by a mapping, and the minor-unit field each becomes.
_MAJOR_UNIT_FIELDS = {
    "amount": "amount_minor",
    "balance": "balance_minor",
    "credit_limit": "credit_limit_minor",
}


@dataclass(frozen=True)
class ColumnMapping:
    """Contract field <- source column, plus constants for what the source does not carry.

    >>> mapping = ColumnMapping.parse("user_id=CUSTOMER_ID,amount=TX_AMOUNT,event_time=WHEN",
    ...                               constants={"currency": "USD"}, timezone="+08:00")
    >>> row = {"CUSTOMER_ID": 7, "TX_AMOUNT": 57.16, "WHEN": "2018-04-01 08:00:31"}
    >>> mapping.apply(row)["amount_minor"], mapping.apply(row)["event_time"]
    (5716, '2018-04-01T08:00:31+08:00')
    """

    fields: tuple[tuple[str, str], ...]
    constants: tuple[tuple[str, Any], ...] = ()
    #: Offset given to timestamps that have none ("Z", "+08:00"); None leaves them refused.
    timezone: str | None = None

    @classmethod
    def parse(
        cls, text: str, constants: dict[str, Any] | None = None, timezone: str | None = None
    ) -> ColumnMapping:
        pairs = []
        for item in filter(None, (part.strip() for part in text.split(","))):
            field, sep, column = item.partition("=")
            if not sep or not field.strip() or not column.strip():
                raise ValueError(f"--map entry {item!r} is not FIELD=COLUMN")
            pairs.append((field.strip(), column.strip()))
        if timezone is not None and timezone.upper() in ("UTC", "Z"):
            timezone = "Z"
        return cls(tuple(pairs), tuple((constants or {}).items()), timezone)

    def apply(self, row: dict[str, Any]) -> dict[str, Any]:
        record: dict[str, Any] = dict(self.constants)
        for field, column in self.fields:
            value = row.get(column)
            if value is None or value == "":
                continue
            if field in _MAJOR_UNIT_FIELDS:
                field, value = _MAJOR_UNIT_FIELDS[field], self._minor(value, record)
            elif field.endswith("_time"):
                value = self._time(value)
            record[field] = value
        return record

    @staticmethod
    def _minor(value: Any, record: dict[str, Any]) -> Any:
        currency = record.get("currency")
        try:
            # repr() of a float is its shortest exact decimal form: 57.16 -> "57.16".
            return to_minor(Decimal(repr(value) if isinstance(value, float) else str(value)),
                            currency if isinstance(currency, str) else "CNY")
        except (InvalidOperation, KeyError, ValueError):
            return value  # the validator names what is wrong with it

    def _time(self, value: Any) -> Any:
        if isinstance(value, datetime):
            if value.tzinfo is not None:
                return value.isoformat()
            value = value.isoformat()
        if isinstance(value, str) and self.timezone is not None:
            text = value.strip().replace(" ", "T", 1)
            try:
                if datetime.fromisoformat(text).tzinfo is None:
                    return text + self.timezone
            except ValueError:
                return value
        return value


def read_source(
    path: Path,
    format: str = "riskstream",
    *,
    event_type: str | None = None,
    mapping: ColumnMapping | None = None,
    label_delay: int = 7 * DAY,
    currency: str | None = None,
    cohort_size: int | None = None,
) -> Iterator[SourceRecord]:
    """Every record of one input file, in the file's own order, by its ``format``."""
    if format == "fdh":
        return read_fdh(path, label_delay, currency or "CNY")
    if format == "uci-taiwan":
        return read_uci_taiwan(path, currency or "TWD", cohort_size)
    if format != "riskstream":
        raise ValueError(f"unknown format {format!r}; known: {', '.join(FORMATS)}")
    return read_events(path, event_type, mapping.apply if mapping is not None else None)


def _validated(path: str, line: int, record: dict[str, Any]) -> SourceRecord:
    """An adapted record, validated; a rejection keeps the record as the adapter made it."""
    return validated(path, line, record, orjson.dumps(record))


# -- the Fraud Detection Handbook -------------------------------------------------------------

_FDH_COLUMNS = ["TRANSACTION_ID", "TX_DATETIME", "CUSTOMER_ID", "TERMINAL_ID", "TX_AMOUNT",
                "TX_FRAUD"]


def parquet_columns(path: Path, required: Sequence[str], layout: str) -> set[str]:
    """The columns of the Parquet file at ``path``, or :class:`UnreadableSource` if it is not
    one or lacks any of ``required`` (named, as ``layout`` needs them)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        present = set(pq.ParquetFile(path).schema_arrow.names)
    except pa.ArrowInvalid as error:
        raise UnreadableSource(f"{path} is not a Parquet file: {error}") from None
    missing = [column for column in required if column not in present]
    if missing:
        raise _lacking(path, layout, missing)
    return present


def _lacking(path: Path, layout: str, missing: Sequence[str]) -> UnreadableSource:
    """The error for a file at ``path`` that lacks the ``missing`` columns ``layout`` needs."""
    return UnreadableSource(f"{path} is not {layout}: it has no column "
                            + ", no column ".join(missing))


def fdh_amount_minor(amount: float, currency: str) -> int:
    """A handbook amount (a float in major units) in minor units, exactly as written.

    >>> fdh_amount_minor(57.16, "CNY")
    5716
    """
    return to_minor(Decimal(repr(amount)), currency)


def fdh_transaction_record(
    transaction_id: int, micros: int, customer: int, terminal: int, amount: float, currency: str
) -> dict[str, Any]:
    """One handbook row as a transaction record: ids as they are, the amount exact in cents."""
    return {
        "type": "transaction",
        "event_id": str(transaction_id),
        "user_id": str(customer),
        "merchant_id": str(terminal),
        "amount_minor": fdh_amount_minor(amount, currency),
        "currency": currency,
        "event_time": format_time(micros),
    }


def read_fdh(
    path: Path, label_delay: int = 7 * DAY, currency: str = "CNY"
) -> Iterator[SourceRecord]:
    """The handbook's transactions, and a fraud label ``label_delay`` after each fraud.

    The file's ``TX_DATETIME`` is naive and read as UTC (the simulator has no time zone).
    Labels are merged in by release time; at equal times a label comes first. Memory is
    bounded by the labels still to release (the frauds of one ``label_delay``).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    source = str(path)
    parquet_columns(path, _FDH_COLUMNS, "a Fraud Detection Handbook file")
    pending: list[tuple[int, int, dict[str, Any]]] = []  # (release time, line, label)
    line = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=65_536, columns=_FDH_COLUMNS):
        times = batch.column("TX_DATETIME").cast(pa.timestamp("us")).cast(pa.int64()).to_pylist()
        columns = zip(
            batch.column("TRANSACTION_ID").to_pylist(), times,
            batch.column("CUSTOMER_ID").to_pylist(), batch.column("TERMINAL_ID").to_pylist(),
            batch.column("TX_AMOUNT").to_pylist(), batch.column("TX_FRAUD").to_pylist(),
            strict=True,
        )
        for transaction_id, micros, customer, terminal, amount, fraud in columns:
            line += 1
            while pending and pending[0][0] <= micros:
                _, label_line, label = heapq.heappop(pending)
                yield _validated(source, label_line, label)
            yield _validated(source, line, fdh_transaction_record(
                transaction_id, micros, customer, terminal, amount, currency))
            if fraud:
                released = micros + label_delay
                heapq.heappush(pending, (released, line, {
                    "type": "label",
                    "event_id": f"{transaction_id}-fraud",
                    "user_id": str(customer),
                    "kind": "fraud",
                    "transaction_id": str(transaction_id),
                    "event_time": format_time(released),
                }))
    while pending:
        _, label_line, label = heapq.heappop(pending)
        yield _validated(source, label_line, label)


# -- UCI Taiwan credit-card clients -------------------------------------------------------------

#: The table's six months, oldest first, with the suffix of their columns: bills and payments
#: use 6..1 (April..September 2005); repayment status uses 6..2 and 0.
UCI_MONTHS = ((2005, 4, "6", "6"), (2005, 5, "5", "5"), (2005, 6, "4", "4"),
              (2005, 7, "3", "3"), (2005, 8, "2", "2"), (2005, 9, "1", "0"))
_TAIWAN = "+08:00"
#: Statement on the 1st, due on the 20th; a payment is placed on the 15th when the month's
#: repayment status says it was paid duly (status <= 0), else on the 28th, after the due date.
_STATEMENT_DAY, _DUE_DAY, _ON_TIME_DAY, _LATE_DAY = 1, 20, 15, 28
#: The default is known once the October bill is past due plus this grace.
UCI_DEFAULT_GRACE = 30 * DAY
#: The performance window UCI's label is about: "default payment next month" -- the bill after
#: the last one, known ``UCI_DEFAULT_GRACE`` after it is due -- ends 60 days after the last
#: bill's due date. Training on the table scores each client at the last bill with it.
UCI_OUTCOME_WINDOW = 60 * DAY
OUTCOME_WINDOWS["uci-taiwan"] = UCI_OUTCOME_WINDOW


def _uci_time(year: int, month: int, day: int, clock: str = "00:00:00") -> str:
    return f"{year:04d}-{month:02d}-{day:02d}T{clock}{_TAIWAN}"


def _shifted(year: int, month: int, months: int) -> tuple[int, int]:
    index = year * 12 + month - 1 + months
    return index // 12, index % 12 + 1


def read_uci_taiwan(
    path: Path, currency: str = "TWD", cohort_size: int | None = None
) -> Iterator[SourceRecord]:
    """Statements, repayments and default labels of every client, month by month.

    A month's statement carries ``BILL_AMT`` as its balance, ``LIMIT_BAL`` as the limit and the
    month's repayment status, when past due, as ``past_due_cycles``; a month with ``PAY_AMT``
    > 0 has one repayment of it, due on the statement's due date. Amounts are whole New Taiwan
    dollars, kept exactly in minor units.

    Every client shares the same six months of 2005, so every default label is known only after
    every client's last bill: a model learning in event time would score them all cold. With
    ``cohort_size``, the clients join in cohorts of that many, in file order, each a month
    after the one before (its calendar shifted, its amounts untouched), so the later cohorts are
    scored by a model that has learned the earlier cohorts' outcomes -- prequential evaluation
    in event time.
    """
    source = str(path)
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        columns = _uci_columns(path, reader.fieldnames)
        clients = [(reader.line_num, row) for row in reader]
    if cohort_size is not None and cohort_size < 1:
        raise ValueError("cohort_size must be at least 1")
    size = cohort_size or max(1, len(clients))
    cohorts = [clients[start:start + size] for start in range(0, len(clients), size)] or [[]]
    label_month = len(UCI_MONTHS) + 1  # October's bill is due, then the grace passes
    for step in range(len(UCI_MONTHS) + len(cohorts) + 1):
        records: list[tuple[int, SourceRecord]] = []
        for shift, cohort in enumerate(cohorts):
            month_index = step - shift
            if 0 <= month_index < len(UCI_MONTHS):
                records.extend(
                    _uci_month(source, cohort, columns, month_index, shift, currency))
            elif month_index == label_month:
                records.extend(_uci_defaults(source, cohort, columns, shift))
        records.sort(key=lambda pair: pair[0])  # stable: file order within the same time
        yield from (record for _, record in records)


def _uci_month(
    source: str, cohort: list[tuple[int, dict[str, str]]], columns: dict[str, str],
    month_index: int, shift: int, currency: str,
) -> Iterator[tuple[int, SourceRecord]]:
    real_year, real_month, money, status = UCI_MONTHS[month_index]
    year, month = _shifted(real_year, real_month, shift)
    due = _uci_time(year, month, _DUE_DAY, "23:59:59")
    statement_time = _uci_time(year, month, _STATEMENT_DAY)
    paid_times = {duly: _uci_time(year, month, _ON_TIME_DAY if duly else _LATE_DAY)
                  for duly in (True, False)}
    order = {text: parse_time(text) for text in (statement_time, *paid_times.values())}
    for line, row in cohort:
        client = row.get("ID", "")
        status_column = columns[f"PAY_{status}"]
        behind = _whole_number(row[status_column])
        if behind is None:  # the month's statement and repayment both depend on it
            yield order[statement_time], _refused(source, line, row, (
                f"{status_column} {row[status_column]!r} is not a repayment status; the "
                f"{real_year}-{real_month:02d} statement and repayment are not read"))
            continue
        yield order[statement_time], _validated(source, line, {
            "type": "statement",
            "event_id": f"uci-{client}-{real_year}{real_month:02d}-statement",
            "user_id": f"uci-{client}",
            "balance_minor": _whole_dollars(row.get(f"BILL_AMT{money}"), currency),
            "credit_limit_minor": _whole_dollars(row.get("LIMIT_BAL"), currency),
            "past_due_cycles": max(0, behind),
            "currency": currency,
            "event_time": statement_time,
            "due_time": due,
        })
        paid = _whole_dollars(row.get(f"PAY_AMT{money}"), currency)
        if paid == 0:
            continue
        paid_at = paid_times[behind <= 0]
        yield order[paid_at], _validated(source, line, {
            "type": "repayment",
            "event_id": f"uci-{client}-{real_year}{real_month:02d}-payment",
            "user_id": f"uci-{client}",
            "amount_minor": paid,
            "currency": currency,
            "event_time": paid_at,
            "due_time": due,
        })


def _uci_defaults(
    source: str, cohort: list[tuple[int, dict[str, str]]], columns: dict[str, str], shift: int
) -> Iterator[tuple[int, SourceRecord]]:
    year, month = _shifted(2005, 10, shift)
    known = parse_time(_uci_time(year, month, _DUE_DAY, "23:59:59")) + UCI_DEFAULT_GRACE
    label = columns[_UCI_LABEL]
    for line, row in cohort:
        defaulted = _uci_outcome(row[label])
        if defaulted is None:
            yield known, _refused(source, line, row, f"{label} {row[label]!r} is not 0 or 1")
            continue
        if defaulted:
            client = row.get("ID", "")
            yield known, _validated(source, line, {
                "type": "label", "event_id": f"uci-{client}-default",
                "user_id": f"uci-{client}", "kind": "default", "event_time": format_time(known),
            })


def uci_defaults(path: Path) -> dict[str, bool]:
    """Whether each client (by riskstream user id) defaulted: the evaluation's ground truth."""
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        label = _uci_columns(path, reader.fieldnames)[_UCI_LABEL]
        defaults = {}
        for row in reader:
            defaulted = _uci_outcome(row[label])
            if defaulted is None:
                raise UnreadableSource(f"{path}:{reader.line_num}: {label} {row[label]!r} is "
                                       "not 0 or 1, so the client's outcome is unknown")
            defaults[f"uci-{row.get('ID', '')}"] = defaulted
        return defaults


#: The name the adapter gives UCI's label column, "default payment next month".
_UCI_LABEL = "default"
#: Where a column has more than one spelling in the copies of the table in circulation: UCI's
#: spreadsheet has "default payment next month" and PAY_0, some CSV copies dots or PAY_1.
_UCI_SPELLINGS = {
    _UCI_LABEL: ("default.payment.next.month", "default payment next month",
                "default_payment_next_month"),
    "PAY_0": ("PAY_0", "PAY_1"),
}


def _uci_columns(path: Path, header: Sequence[str] | None) -> dict[str, str]:
    """The table's own column for each one the adapter reads, or :class:`UnreadableSource`
    naming those it lacks: a missing column would otherwise read as zeros in every row."""
    present = set(header or ())
    wanted = ["ID", "LIMIT_BAL", _UCI_LABEL,
              *(f"PAY_{status}" for _, _, _, status in UCI_MONTHS),
              *(f"{kind}{money}" for _, _, money, _ in UCI_MONTHS
                for kind in ("BILL_AMT", "PAY_AMT"))]
    columns, missing = {}, []
    for name in wanted:
        found = [spelling for spelling in _UCI_SPELLINGS.get(name, (name,))
                 if spelling in present]
        if found:
            columns[name] = found[0]
        else:
            missing.append(" or ".join(_UCI_SPELLINGS.get(name, (name,))))
    if missing:
        raise _lacking(path, "a UCI Taiwan clients table", missing)
    return columns


def _uci_outcome(text: str) -> bool | None:
    """A label cell: whether the client defaulted (1) or not (0); None for anything else."""
    value = _whole_number(text)
    return None if value not in (0, 1) else value == 1


def _whole_number(text: str | None) -> int | None:
    """A cell's integer; None if it holds none (empty or not a number)."""
    try:
        return int(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _refused(source: str, line: int, row: dict[str, str], reason: str) -> SourceRecord:
    """A row the adapter cannot turn into events, reported with its reason and kept as it was."""
    return SourceRecord(source, line, Rejection(InvalidEvent("invalid-value", reason),
                                                orjson.dumps(row)))


def _whole_dollars(text: str | None, currency: str) -> Any:
    """Whole (possibly negative) dollars as minor units; anything else is left for the
    validator to refuse by name."""
    if text is None or text == "":
        return None
    try:
        return to_minor(Decimal(text), currency)
    except InvalidOperation:
        return text
