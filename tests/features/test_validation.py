"""Validation of raw folders: each kind of bad input, its reason or message, nothing lost."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.contract import BILLS, CUSTOMERS, PAYMENTS, ContractError
from features.validation import validate_table
from pipelines.validate import QuarantineLimitError, validate_folder, validate_raw
from tests.conftest import write_tiny_base


def edit(folder: Path, table: str, row: int, column: str, value: str) -> None:
    """Set one cell of data row ``row`` (1-based) of ``table.csv``."""
    path = folder / f"{table}.csv"
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    df.loc[row - 1, column] = value
    df.to_csv(path, index=False)


def append(folder: Path, table: str, line: str) -> None:
    with (folder / f"{table}.csv").open("a") as fh:
        fh.write(line + "\n")


def assert_conserved(results) -> None:
    for r in results.values():
        s = r.summary()
        assert s["rows_in"] == s["rows_passed"] + s["rows_quarantined"]
        assert sum(s["by_reason"].values()) == s["rows_quarantined"]


def test_tiny_base_is_valid(tiny_raw):
    results = validate_folder(tiny_raw)
    assert {n: len(r.valid) for n, r in results.items()} == {
        "customers": 3,
        "bills": 8,
        "payments": 7,
    }
    assert all(r.rows_quarantined == 0 for r in results.values())
    customers = results["customers"].valid
    assert customers["energy_intensive"].tolist() == [False, True, False]
    assert customers["preferential_tariff"].dtype == bool
    assert customers["account_manager"].tolist()[1] == "Li Wei"  # extra column carried along
    assert str(results["bills"].valid["issued_on"].dtype).startswith("datetime64")


# (table, data row, column, bad value, expected reason, expected column)
ROW_CASES = [
    ("bills", 2, "kwh", "-5", "negative_value", "kwh"),
    ("bills", 2, "amount", "-0.01", "negative_value", "amount"),
    ("bills", 3, "kwh", "abc", "unparseable_number", "kwh"),
    ("bills", 3, "kwh", "inf", "non_finite", "kwh"),
    ("bills", 4, "issued_on", "2024-13-45", "unparseable_date", "issued_on"),
    ("bills", 4, "due_date", "2024-01-01", "due_before_issue", "due_date"),
    ("bills", 5, "period", "2024-1", "invalid_period", "period"),
    ("bills", 5, "issued_on", "2023-12-30", "issued_before_period", "issued_on"),
    ("bills", 6, "customer_id", "", "missing_value", "customer_id"),
    ("bills", 6, "customer_id", "C999", "unknown_customer", "customer_id"),
    ("payments", 1, "amount", "0", "zero_amount", "amount"),
    ("payments", 2, "paid_on", "20/03/2024", "unparseable_date", "paid_on"),
    ("payments", 3, "customer_id", "C404", "unknown_customer", "customer_id"),
    ("customers", 1, "tariff_class", "industriall", "invalid_category", "tariff_class"),
    ("customers", 1, "tariff_class", "", "missing_value", "tariff_class"),
    ("customers", 2, "energy_intensive", "maybe", "unparseable_bool", "energy_intensive"),
    ("customers", 2, "voltage_kv", "-10", "non_positive_value", "voltage_kv"),
    (
        "customers",
        3,
        "disconnected_on",
        "2020-01-01",
        "disconnected_before_connected",
        "disconnected_on",
    ),
    (
        "customers",
        3,
        "contract_capacity_kva",
        "forty",
        "unparseable_number",
        "contract_capacity_kva",
    ),
]


@pytest.mark.parametrize(("table", "row", "column", "value", "reason", "where"), ROW_CASES)
def test_bad_value_is_quarantined_with_reason(tiny_raw, table, row, column, value, reason, where):
    edit(tiny_raw, table, row, column, value)
    results = validate_folder(tiny_raw)
    q = results[table].quarantine
    hit = q[q["source_row"] == row]
    assert len(hit) == 1, q
    assert hit["reason"].iloc[0] == reason
    assert hit["column"].iloc[0] == where
    assert hit["source_file"].iloc[0] == f"{table}.csv"
    assert hit[column].iloc[0] == (value or None) or (value == "" and pd.isna(hit[column].iloc[0]))
    assert_conserved(results)


def test_multiple_problems_in_a_row_are_all_listed(tiny_raw):
    edit(tiny_raw, "bills", 1, "kwh", "-1")
    edit(tiny_raw, "bills", 1, "amount", "x")
    q = validate_folder(tiny_raw)["bills"].quarantine
    assert q.loc[0, "reason"] == "unparseable_number"  # parsing comes before row rules
    assert q.loc[0, "reasons"] == "unparseable_number;negative_value"
    assert 'amount="x"' in q.loc[0, "detail"]


def test_quarantined_customer_takes_its_bills_and_payments(tiny_raw):
    edit(tiny_raw, "customers", 3, "tariff_class", "shop")
    results = validate_folder(tiny_raw)
    for table, n in (("bills", 2), ("payments", 2)):
        q = results[table].quarantine
        assert (q["reason"] == "customer_quarantined").sum() == n
        assert set(q["customer_id"]) == {"C3"}
    assert_conserved(results)


def test_conflicting_duplicate_bill_quarantines_every_copy(tiny_raw):
    append(tiny_raw, "bills", "C1,2024-02,999.0,559.44,2024-03-02,2024-03-17")
    q = validate_folder(tiny_raw)["bills"].quarantine
    assert q["reason"].tolist() == ["duplicate_key", "duplicate_key"]
    assert q["source_row"].tolist() == [2, 9]


def test_exact_duplicate_keeps_the_first_copy(tiny_raw):
    append(tiny_raw, "bills", "C1,2024-02,290.0,162.40,2024-03-02,2024-03-17")
    results = validate_folder(tiny_raw)
    q = results["bills"].quarantine
    assert q[["source_row", "reason"]].values.tolist() == [[9, "duplicate_row"]]
    assert len(results["bills"].valid) == 8


def test_duplicate_customer_id_with_other_values(tiny_raw):
    append(tiny_raw, "customers", "C2,industrial,steel,true,false,west,35,8000,2010-01-15,,")
    results = validate_folder(tiny_raw)
    assert results["customers"].quarantine["reason"].tolist() == ["duplicate_key"] * 2
    assert (results["bills"].quarantine["reason"] == "customer_quarantined").sum() == 3


def test_duplicate_payment_id_with_other_values(tiny_raw):
    append(tiny_raw, "payments", "P6,C3,2024-03-21,10.00")
    q = validate_folder(tiny_raw)["payments"].quarantine
    assert q["reason"].tolist() == ["duplicate_key", "duplicate_key"]


def test_malformed_csv_line_is_quarantined_with_its_row(tiny_raw):
    append(tiny_raw, "bills", "C1,2024-04,1,2,3,4,5,6")
    append(tiny_raw, "bills", "C1,2024-05,280.0,156.80,2024-06-03,2024-06-18")
    results = validate_folder(tiny_raw)
    q = results["bills"].quarantine
    assert q[["source_row", "reason"]].values.tolist() == [[9, "malformed_row"]]
    assert "expected 6 fields, found 8" in q.loc[0, "detail"]
    assert len(results["bills"].valid) == 9
    assert_conserved(results)


def test_category_and_bool_spellings_are_normalised(tiny_raw):
    edit(tiny_raw, "customers", 1, "tariff_class", " Residential ")
    edit(tiny_raw, "customers", 1, "energy_intensive", "YES")
    valid = validate_folder(tiny_raw)["customers"].valid
    assert valid.loc[0, "tariff_class"] == "residential"
    assert bool(valid.loc[0, "energy_intensive"]) is True


def test_payment_id_is_optional(tiny_raw):
    path = tiny_raw / "payments.csv"
    pd.read_csv(path, dtype=str).drop(columns="payment_id").to_csv(path, index=False)
    assert len(validate_folder(tiny_raw)["payments"].valid) == 7


def test_parquet_input_gives_the_same_result_as_csv(tiny_raw, tmp_path):
    pq_dir = tmp_path / "pq"
    pq_dir.mkdir()
    for name in ("customers", "bills", "payments"):
        pd.read_csv(tiny_raw / f"{name}.csv").to_parquet(pq_dir / f"{name}.parquet")
    from_csv, from_pq = validate_folder(tiny_raw), validate_folder(pq_dir)
    for name in from_csv:
        pd.testing.assert_frame_equal(from_csv[name].valid, from_pq[name].valid, check_dtype=False)


# (what to do to the folder, words the message must contain)
def _remove(folder, name):
    (folder / name).unlink()


FILE_CASES = [
    ("missing file", lambda f: _remove(f, "payments.csv"), ["payments", "missing"]),
    ("empty file", lambda f: (f / "bills.csv").write_text(""), ["bills.csv", "empty"]),
    (
        "header only",
        lambda f: (f / "bills.csv").write_text(
            "customer_id,period,kwh,amount,issued_on,due_date\n"
        ),
        ["bills.csv", "no data rows"],
    ),
    (
        "required column absent",
        lambda f: (
            pd.read_csv(f / "bills.csv")
            .drop(columns="due_date")
            .to_csv(f / "bills.csv", index=False)
        ),
        ["bills.csv", "due_date", "absent"],
    ),
    (
        "wrong type throughout",
        lambda f: (
            pd.read_csv(f / "bills.csv").assign(kwh="unknown").to_csv(f / "bills.csv", index=False)
        ),
        ["bills.csv", "column kwh", "wrong type throughout", "row 1"],
    ),
    (
        "both csv and parquet",
        lambda f: pd.read_csv(f / "bills.csv").to_parquet(f / "bills.parquet"),
        ["bills.csv", "bills.parquet"],
    ),
    (
        "corrupt parquet",
        lambda f: (
            _remove(f, "customers.csv"),
            (f / "customers.parquet").write_bytes(b"PAR1 not really"),
        ),
        ["customers.parquet", "cannot be read as Parquet"],
    ),
    (
        "not utf-8",
        lambda f: (f / "customers.csv").write_bytes("customer_id,tariff_class\n".encode("utf-16")),
        ["customers.csv", "UTF-8"],
    ),
    (
        "repeated column",
        lambda f: (f / "payments.csv").write_text(
            "payment_id,customer_id,customer_id,paid_on,amount\n"
        ),
        ["payments.csv", "customer_id", "more than once"],
    ),
]


@pytest.mark.parametrize(("label", "damage", "words"), FILE_CASES, ids=[c[0] for c in FILE_CASES])
def test_unusable_file_stops_with_a_clear_message(tiny_raw, label, damage, words):
    damage(tiny_raw)
    with pytest.raises(ContractError) as err:
        validate_folder(tiny_raw)
    for word in words:
        assert word in str(err.value), (label, str(err.value))


def test_missing_folder_is_named(tmp_path):
    with pytest.raises(ContractError, match="does not exist"):
        validate_folder(tmp_path / "nowhere")


def test_stage_writes_outputs_and_summary(tiny_raw, tmp_path, params):
    edit(tiny_raw, "bills", 2, "kwh", "-5")
    out, quarantine, summary = tmp_path / "valid", tmp_path / "q", tmp_path / "summary.json"
    with pytest.raises(QuarantineLimitError, match=r"bills: 1 of 8 rows \(12.5%\)"):
        validate_raw(tiny_raw, out, quarantine, summary, params)
    assert not out.exists()  # nothing valid is published when the run stops
    assert pq.read_table(quarantine / "bills.parquet").num_rows == 1
    saved = json.loads(summary.read_text())
    assert saved["passed"] is False and saved["over_limit"] == ["bills"]

    loose = params.override("validate", max_quarantine_share=0.2)
    result = validate_raw(tiny_raw, out, quarantine, summary, loose)
    assert result["tables"]["bills"] == {
        "file": "bills.csv",
        "rows_in": 8,
        "rows_passed": 7,
        "rows_quarantined": 1,
        "quarantine_share": 0.125,
        "by_reason": {"negative_value": 1},
    }
    bills = pq.read_table(out / "bills.parquet")
    assert bills.schema.field("issued_on").type == pa.date32()
    assert bills.num_rows == 7
    assert pq.read_table(quarantine / "payments.parquet").num_rows == 0


# Property: whatever cells are damaged, every source row ends up in exactly one place.
_DAMAGE = st.sampled_from(["", "-1", "abc", "2024-99", "0", "inf", "C404", " "])


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    cells=st.lists(
        st.tuples(st.integers(0, 7), st.sampled_from(BILLS.column_names), _DAMAGE), max_size=12
    )
)
def test_no_bill_row_is_lost(tmp_path_factory, cells):
    folder = write_tiny_base(tmp_path_factory.mktemp("prop"))
    bills = pd.read_csv(folder / "bills.csv", dtype=str, keep_default_na=False)
    for row, column, value in cells:
        bills.loc[row, column] = value
    try:
        results = validate_folder(_rewrite(folder, bills))
    except ContractError as exc:  # a column damaged in every row is a file-level stop
        assert "wrong type throughout" in str(exc)
        return
    r = results["bills"]
    rows = sorted(r.quarantine["source_row"].tolist() + _valid_rows(bills, r.valid))
    assert rows == list(range(1, 9))
    assert_conserved(results)


def _rewrite(folder: Path, bills: pd.DataFrame) -> Path:
    bills.to_csv(folder / "bills.csv", index=False)
    return folder


def _valid_rows(raw: pd.DataFrame, valid: pd.DataFrame) -> list[int]:
    keys = set(zip(valid["customer_id"], valid["period"], strict=True))
    stripped = raw.apply(lambda s: s.str.strip())
    return [
        i + 1
        for i, (c, p) in enumerate(zip(stripped["customer_id"], stripped["period"], strict=True))
        if (c, p) in keys
    ]


def test_validate_table_core_on_typed_frame():
    frame = pd.DataFrame(
        {
            "payment_id": ["a", "b"],
            "customer_id": ["C1", "C1"],
            "paid_on": pd.to_datetime(["2024-01-01", "2024-01-02"]),
            "amount": [10.0, 0.0],
        }
    )
    r = validate_table(
        PAYMENTS,
        frame,
        np.array([1, 2]),
        "payments.parquet",
        customers_valid=pd.Index(["C1"]),
        customers_seen=pd.Index(["C1"]),
    )
    assert r.quarantine[["source_row", "reason"]].values.tolist() == [[2, "zero_amount"]]
    assert r.valid["amount"].tolist() == [10.0]
    assert CUSTOMERS.key == ("customer_id",)


def test_quarantine_details_show_values_as_a_person_reads_them():
    from features.validation import shown

    assert shown(None) == shown(np.nan) == shown(pd.NaT) == "(empty)"
    assert shown(" x ") == '" x "'  # spaces visible
    assert shown(np.float64(1e15)) == "1e+15" and shown(np.float64(-5.0)) == "-5"
    assert shown(np.int64(3)) == "3" and shown(True) == "True"
    assert shown(pd.Timestamp("2024-01-02")) == "2024-01-02"
    assert shown(pd.Timestamp("2024-01-02 10:30")) == "2024-01-02T10:30:00"
