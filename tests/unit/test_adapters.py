"""Adapters of other people's histories, the column mapping, and the k-way merge."""

from __future__ import annotations

import csv
import dataclasses
import itertools
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline import history
from pipeline.adapters import (
    UCI_DEFAULT_GRACE,
    UCI_MONTHS,
    ColumnMapping,
    read_fdh,
    read_source,
    read_uci_taiwan,
    uci_defaults,
)
from pipeline.events import Label, Repayment, Statement, Transaction, event_to_mapping
from pipeline.exceptions import UnreadableSource
from pipeline.history import HistoryOptions, Pacer, merged_history
from pipeline.sources import Rejection
from pipeline.timeutil import DAY, SECOND, parse_time
from tests.conftest import SHARED_DATA, assert_valid

FDH_DEV = SHARED_DATA / "fdh_dev_2018-04-01_2018-09-04.parquet"
UCI_DEV = SHARED_DATA / "uci_taiwan_dev_ids_1_20000.csv"
T0 = parse_time("2018-04-01T00:00:00Z")


def _fdh_file(path: Path, rows: list[tuple[int, int, int, int, float, int]]) -> Path:
    """Rows of (id, seconds after T0, customer, terminal, amount, fraud), in the handbook's
    own schema (naive nanosecond timestamps, float amounts)."""
    ids, seconds, customers, terminals, amounts, frauds = zip(*rows, strict=True)
    pq.write_table(pa.table({
        "TRANSACTION_ID": pa.array(ids, pa.int64()),
        "TX_DATETIME": pa.array([(T0 + s * SECOND) * 1000 for s in seconds], pa.timestamp("ns")),
        "CUSTOMER_ID": pa.array(customers, pa.int64()),
        "TERMINAL_ID": pa.array(terminals, pa.int64()),
        "TX_AMOUNT": pa.array(amounts, pa.float64()),
        "TX_FRAUD": pa.array(frauds, pa.int64()),
    }), path)
    return path


def test_fdh_rows_become_transactions_and_late_fraud_labels(tmp_path: Path) -> None:
    path = _fdh_file(tmp_path / "fdh.parquet", [
        (0, 0, 5, 9, 57.16, 0),
        (1, 60, 6, 9, 0.0, 1),           # a zero authorisation, labelled fraud
        (2, 2 * DAY // SECOND, 5, 8, 1234.57, 1),
        (3, 7 * DAY // SECOND + 60, 7, 1, 0.01, 0),  # the same moment as the first label
    ])
    records = list(read_fdh(path, label_delay=7 * DAY))
    events = [record.item for record in records]
    assert not any(isinstance(event, Rejection) for event in events)
    assert [(type(e).__name__, e.event_id) for e in events] == [
        ("Transaction", "0"), ("Transaction", "1"), ("Transaction", "2"),
        ("Label", "1-fraud"), ("Transaction", "3"), ("Label", "2-fraud")]
    tx = events[0]
    assert isinstance(tx, Transaction)
    assert (tx.user_id, tx.merchant_id, tx.amount_minor, tx.event_time) == ("5", "9", 5716, T0)
    assert events[1].amount_minor == 0 and events[2].amount_minor == 123457
    label = events[3]
    assert isinstance(label, Label) and label.kind == "fraud" and label.transaction_id == "1"
    assert label.event_time == T0 + 60 * SECOND + 7 * DAY
    assert [record.line for record in records] == [1, 2, 3, 2, 4, 3]
    times = [event.event_time for event in events]
    assert times == sorted(times)
    for event in events:
        assert_valid(f"{event.type}s", event_to_mapping(event))


@pytest.mark.skipif(not FDH_DEV.exists(), reason="shared handbook data not present")
def test_fdh_adapter_maps_every_dev_row_exactly() -> None:
    table = pq.read_table(FDH_DEV)
    ids = table.column("TRANSACTION_ID").to_pylist()
    micros = table.column("TX_DATETIME").cast(pa.timestamp("us")).cast(pa.int64()).to_pylist()
    customers = table.column("CUSTOMER_ID").to_pylist()
    terminals = table.column("TERMINAL_ID").to_pylist()
    amounts = table.column("TX_AMOUNT").to_pylist()
    frauds = table.column("TX_FRAUD").to_pylist()
    row = 0
    labels: dict[str, int] = {}
    previous = None
    for record in read_fdh(FDH_DEV):
        event = record.item
        assert not isinstance(event, Rejection), (record.line, event)
        assert previous is None or event.event_time >= previous
        previous = event.event_time
        if isinstance(event, Label):
            labels[event.transaction_id] = event.event_time
            continue
        assert event.event_id == str(ids[row]) and event.user_id == str(customers[row])
        assert event.merchant_id == str(terminals[row]) and event.event_time == micros[row]
        # The handbook's amounts are cents stored as floats (85.64999999999999 is 85.65).
        assert event.amount_minor == round(amounts[row] * 100)
        assert abs(event.amount_minor / 100 - amounts[row]) < 1e-9
        row += 1
    assert row == table.num_rows == 1_504_628
    expected = {str(ids[i]): micros[i] + 7 * DAY for i in range(row) if frauds[i]}
    assert labels == expected


_UCI_COLUMNS = ["ID", "LIMIT_BAL", "PAY_0", "PAY_2", "PAY_3", "PAY_4", "PAY_5", "PAY_6",
                *[f"BILL_AMT{i}" for i in range(1, 7)], *[f"PAY_AMT{i}" for i in range(1, 7)],
                "default.payment.next.month"]


def _uci_file(path: Path, rows: list[dict[str, int]],
              header: dict[str, str | None] | None = None) -> Path:
    """The rows as a UCI table; ``header`` renames columns (or drops those renamed to None)."""
    header = header or {}
    columns = [column for column in _UCI_COLUMNS if header.get(column, column) is not None]
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([header.get(column, column) for column in columns])
        for row in rows:
            writer.writerow([row.get(column, 0) for column in columns])
    return path


def _by_user(records: list) -> dict[str, list]:
    users: dict[str, list] = defaultdict(list)
    for record in records:
        assert not isinstance(record.item, Rejection), record
        users[record.item.user_id].append(record.item)
    return users


def test_uci_clients_become_monthly_statements_repayments_and_a_default_label(
    tmp_path: Path
) -> None:
    path = _uci_file(tmp_path / "uci.csv", [
        {"ID": 1, "LIMIT_BAL": 20000, "PAY_0": 2, "BILL_AMT1": 3913, "BILL_AMT6": -5,
         "PAY_AMT2": 689, "PAY_AMT1": 100, "default.payment.next.month": 1},
        {"ID": 2, "LIMIT_BAL": 120000, "PAY_0": -1, "BILL_AMT1": 2682, "PAY_AMT1": 2682},
    ])
    records = list(read_uci_taiwan(path))
    events = [record.item for record in records]
    times = [event.event_time for event in events]
    assert times == sorted(times)
    users = _by_user(records)
    first = users["uci-1"]
    statements = [e for e in first if isinstance(e, Statement)]
    assert [s.balance_minor for s in statements] == [-500, 0, 0, 0, 0, 391300]
    assert {s.credit_limit_minor for s in statements} == {2_000_000}
    repayments = [e for e in first if isinstance(e, Repayment)]
    assert [r.amount_minor for r in repayments] == [68900, 10000]
    # August was paid duly (status 0), September late (status 2): after the due date.
    assert repayments[0].event_time <= repayments[0].due_time
    assert repayments[1].event_time > repayments[1].due_time
    assert [e.kind for e in first if isinstance(e, Label)] == ["default"]
    second = users["uci-2"]
    assert not any(isinstance(e, Label) for e in second)
    assert [r.amount_minor for r in second if isinstance(r, Repayment)] == [268200]
    for event in events:
        assert_valid(f"{event.type}s", event_to_mapping(event))


def test_a_handbook_file_missing_a_column_or_not_parquet_is_refused_by_name(
    tmp_path: Path
) -> None:
    from pipeline.handbook import handbook_truth

    unlabelled = tmp_path / "unlabelled.parquet"
    pq.write_table(pa.table({
        "TRANSACTION_ID": [1], "TX_DATETIME": pa.array([0], pa.timestamp("us")),
        "CUSTOMER_ID": [1], "TERMINAL_ID": [1], "TX_AMOUNT": [1.0]}), unlabelled)
    text = tmp_path / "transactions.csv"
    text.write_text("TRANSACTION_ID,TX_FRAUD\n1,0\n")
    for read in (lambda: list(read_fdh(unlabelled)), lambda: handbook_truth(unlabelled)):
        with pytest.raises(UnreadableSource, match=r"it has no column TX_FRAUD$"):
            read()
    with pytest.raises(UnreadableSource, match=r"transactions\.csv is not a Parquet file"):
        list(read_fdh(text))


def test_uci_tables_spelled_as_uci_s_spreadsheet_read_the_same(tmp_path: Path) -> None:
    rows = [{"ID": 1, "LIMIT_BAL": 20000, "PAY_0": 2, "BILL_AMT1": 3913, "PAY_AMT1": 100,
             "default.payment.next.month": 1},
            {"ID": 2, "LIMIT_BAL": 50000, "PAY_0": -1, "BILL_AMT1": 800, "PAY_AMT1": 800}]
    dotted = _uci_file(tmp_path / "dotted.csv", rows)
    spreadsheet = _uci_file(tmp_path / "spreadsheet.csv", rows, header={
        "PAY_0": "PAY_1", "default.payment.next.month": "default payment next month"})
    assert ([r.item for r in read_uci_taiwan(spreadsheet)]
            == [r.item for r in read_uci_taiwan(dotted)])
    assert uci_defaults(spreadsheet) == uci_defaults(dotted) == {"uci-1": True, "uci-2": False}


def test_a_uci_table_missing_columns_is_refused_by_name_before_anything_is_read(
    tmp_path: Path
) -> None:
    path = _uci_file(tmp_path / "uci.csv", [{"ID": 1, "LIMIT_BAL": 20000}], header={
        "BILL_AMT3": None, "default.payment.next.month": "defaulted"})
    for read in (lambda: list(read_uci_taiwan(path)), lambda: uci_defaults(path)):
        with pytest.raises(UnreadableSource) as refused:
            read()
        assert "no column BILL_AMT3" in str(refused.value)
        assert "no column default.payment.next.month or default payment next month" in str(
            refused.value)


def test_a_uci_cell_that_is_not_a_status_or_a_label_is_refused_with_its_reason(
    tmp_path: Path
) -> None:
    path = _uci_file(tmp_path / "uci.csv", [
        {"ID": 1, "LIMIT_BAL": 20000, "PAY_3": "x", "PAY_AMT3": 500,
         "default.payment.next.month": "maybe"},
        {"ID": 2, "LIMIT_BAL": 20000, "default.payment.next.month": 1},
    ])
    records = list(read_uci_taiwan(path))
    refused = [record for record in records if isinstance(record.item, Rejection)]
    assert [(record.line, record.item.error.reason) for record in refused] == [
        (2, "PAY_3 'x' is not a repayment status; the 2005-07 statement and repayment are "
            "not read"),
        (2, "default.payment.next.month 'maybe' is not 0 or 1"),
    ]
    users = _by_user([record for record in records if record not in refused])
    assert len([e for e in users["uci-1"] if isinstance(e, Statement)]) == 5  # July's refused
    assert [e.kind for e in users["uci-2"] if isinstance(e, Label)] == ["default"]
    with pytest.raises(UnreadableSource, match=r"uci\.csv:2: .* 'maybe' is not 0 or 1"):
        uci_defaults(path)


@pytest.mark.skipif(not UCI_DEV.exists(), reason="shared UCI data not present")
def test_uci_adapter_reproduces_every_clients_amounts_exactly() -> None:
    users = _by_user(list(read_uci_taiwan(UCI_DEV)))
    with open(UCI_DEV, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(users) == len(rows) == 20_000
    for row in rows:
        events = users[f"uci-{row['ID']}"]
        bills = [e.balance_minor for e in events if isinstance(e, Statement)]
        assert bills == [int(row[f"BILL_AMT{m}"]) * 100 for _, _, m, _ in UCI_MONTHS]
        limits = {e.credit_limit_minor for e in events if isinstance(e, Statement)}
        assert limits == {int(row["LIMIT_BAL"]) * 100}
        paid = [e.amount_minor for e in events if isinstance(e, Repayment)]
        assert paid == [int(row[f"PAY_AMT{m}"]) * 100 for _, _, m, _ in UCI_MONTHS
                        if int(row[f"PAY_AMT{m}"])]
        defaulted = any(isinstance(e, Label) for e in events)
        assert defaulted == (row["default.payment.next.month"] == "1")


def test_a_column_mapping_reads_any_csv(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_text("TXN,CUST,SHOP,AMT,WHEN\n"
                    "a1,c1,s1,12.34,2026-01-01 10:00:00\n"
                    "a2,c1,s1,twelve,2026-01-01 11:00:00\n")
    mapping = ColumnMapping.parse(
        "event_id=TXN,user_id=CUST,merchant_id=SHOP,amount=AMT,event_time=WHEN",
        constants={"currency": "EUR"}, timezone="UTC")
    records = list(read_source(path, event_type="transaction", mapping=mapping))
    good, bad = records[0].item, records[1].item
    assert isinstance(good, Transaction)
    assert (good.amount_minor, good.currency) == (1234, "EUR")
    assert good.event_time == parse_time("2026-01-01T10:00:00Z")
    assert isinstance(bad, Rejection) and bad.error.kind == "wrong-type"
    with pytest.raises(ValueError, match="FIELD=COLUMN"):
        ColumnMapping.parse("user_id")


def _jsonl(path: Path, times: list[int], prefix: str) -> Path:
    lines = [
        f'{{"type":"transaction","event_id":"{prefix}{i}","user_id":"u","merchant_id":"m",'
        f'"amount_minor":1,"currency":"CNY","event_time":"2026-01-01T00:00:{t:02d}Z"}}'
        for i, t in enumerate(times)
    ]
    path.write_text("\n".join([*lines, "{broken"]) + "\n")
    return path


def test_files_merge_by_event_time_ties_in_file_order(tmp_path: Path) -> None:
    first = _jsonl(tmp_path / "a.jsonl", [1, 3, 3, 9], "a")
    second = _jsonl(tmp_path / "b.jsonl", [2, 3, 4], "b")
    rejected: list = []
    merged = list(merged_history([first, second], on_rejection=rejected.append))
    assert [e.event_id for e in merged] == ["a0", "b0", "a1", "a2", "b1", "b2", "a3"]
    assert [(r.path, r.line) for r in rejected] == [(str(second), 4), (str(first), 5)]


def test_the_merge_reads_lazily(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    consumed = 0
    real = history.read_source

    def counting(*args, **kwargs):
        nonlocal consumed
        for record in real(*args, **kwargs):
            consumed += 1
            yield record

    monkeypatch.setattr(history, "read_source", counting)
    paths = [_jsonl(tmp_path / f"{n}.jsonl", list(range(50)), str(n)) for n in range(2)]
    taken = list(itertools.islice(merged_history(paths, HistoryOptions()), 10))
    assert len(taken) == 10 and consumed <= 12


def test_pacing_by_speed_and_rate() -> None:
    pacer = Pacer(speed=3600.0, rate=None, started=0.0)
    assert pacer.wait(T0, now=0.0) == 0.0
    assert pacer.wait(T0 + 7200 * SECOND, now=0.5) == pytest.approx(1.5)  # 2 h at 3600x
    with pytest.raises(ValueError):
        Pacer(speed=0.0, rate=None)


TAIPEI = timezone(timedelta(hours=8))


def test_uci_cohorts_shift_each_cohorts_calendar_by_a_month_and_nothing_else(
    tmp_path: Path
) -> None:
    path = _uci_file(tmp_path / "uci.csv", [
        {"ID": i, "LIMIT_BAL": 10_000 * i, "PAY_0": 3 if i % 2 else -1, "BILL_AMT1": 100 * i,
         "PAY_AMT3": i, "default.payment.next.month": i % 2}
        for i in range(1, 6)
    ])
    plain = [record.item for record in read_uci_taiwan(path)]
    staggered = [record.item for record in read_uci_taiwan(path, cohort_size=2)]
    times = [event.event_time for event in staggered]
    assert times == sorted(times)
    by_id = {event.event_id: event for event in plain}
    assert sorted(by_id) == sorted(event.event_id for event in staggered)
    for event in staggered:
        original = by_id[event.event_id]
        cohort = (int(event.user_id.removeprefix("uci-")) - 1) // 2
        # A default label is known a fixed grace after the (shifted) October due date.
        grace = UCI_DEFAULT_GRACE if isinstance(event, Label) else 0
        shifted = datetime.fromtimestamp((event.event_time - grace) / 1e6, TAIPEI)
        before = datetime.fromtimestamp((original.event_time - grace) / 1e6, TAIPEI)
        months = (shifted.year - before.year) * 12 + shifted.month - before.month
        assert months == cohort, (event, original)
        assert (shifted.day, shifted.time()) == (before.day, before.time())
        assert dataclasses.replace(event, event_time=original.event_time,
                                   **({"due_time": original.due_time}
                                      if hasattr(event, "due_time") else {})) == original
    statements = [e for e in staggered if isinstance(e, Statement) and e.user_id == "uci-1"]
    assert statements[-1].past_due_cycles == 3 and statements[0].past_due_cycles == 0
    with pytest.raises(ValueError):
        list(read_uci_taiwan(path, cohort_size=0))
