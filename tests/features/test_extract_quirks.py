"""The quirks real billing extracts carry (issue: robust edges): each on a raw folder that
has it, through the validate stage, with the outcome docs/data_contract.md states."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from features.contract import ContractError
from pipelines.validate import validate_folder, validate_raw


def _rewrite(folder: Path, table: str, frame: pd.DataFrame, **csv) -> None:
    frame.to_csv(folder / f"{table}.csv", index=False, **csv)


def _read(folder: Path, table: str) -> pd.DataFrame:
    return pd.read_csv(folder / f"{table}.csv", dtype=str, keep_default_na=False)


def _stage(raw: Path, tmp_path: Path, params):
    out = tmp_path / "validated"
    summary = validate_raw(raw, out, tmp_path / "quarantine", tmp_path / "v.json", params)
    return summary, {t: pq.read_table(out / f"{t}.parquet").to_pandas() for t in summary["tables"]}


def test_extra_columns_are_carried_in_every_table(tiny_raw, tmp_path, params):
    for table, column in (("bills", "meter_id"), ("payments", "channel")):
        frame = _read(tiny_raw, table)
        frame[column] = [f"x{i}" for i in range(len(frame))]
        _rewrite(tiny_raw, table, frame)
    summary, out = _stage(tiny_raw, tmp_path, params)
    assert out["bills"]["meter_id"].tolist() == [f"x{i}" for i in range(8)]
    assert out["payments"]["channel"].tolist() == [f"x{i}" for i in range(7)]
    assert all(t["rows_quarantined"] == 0 for t in summary["tables"].values())


def test_a_utf8_byte_order_mark_is_dropped(tiny_raw, tmp_path, params):
    for table in ("customers", "bills", "payments"):  # as Excel's "CSV UTF-8" writes them
        _rewrite(tiny_raw, table, _read(tiny_raw, table), encoding="utf-8-sig")
    assert (tiny_raw / "customers.csv").read_bytes()[:3] == b"\xef\xbb\xbf"
    summary, out = _stage(tiny_raw, tmp_path, params)
    assert out["customers"]["customer_id"].tolist() == ["C1", "C2", "C3"]


def test_gbk_from_chinese_excel_is_named_and_readable_by_param(tiny_raw, tmp_path, params):
    frame = _read(tiny_raw, "customers")
    frame.loc[1, "industry"] = "钢铁"
    frame.loc[1, "account_manager"] = "李伟"
    _rewrite(tiny_raw, "customers", frame, encoding="gbk")
    with pytest.raises(ContractError, match=r"customers.csv: not utf-8 text \(byte \d+.*gb18030"):
        validate_folder(tiny_raw)
    p = params.override("validate", encoding="gb18030")
    _, out = _stage(tiny_raw, tmp_path, p)
    assert out["customers"]["industry"].tolist()[1] == "钢铁"
    assert out["customers"]["account_manager"].tolist()[1] == "李伟"


def test_only_an_empty_cell_is_missing(tiny_raw, tmp_path, params):
    frame = _read(tiny_raw, "customers")
    frame.loc[0, "region"] = "NA"  # a region called NA is a region
    frame.loc[1, "industry"] = "null"
    _rewrite(tiny_raw, "customers", frame)
    _, out = _stage(tiny_raw, tmp_path, params)
    assert out["customers"]["region"].tolist()[0] == "NA"
    assert out["customers"]["industry"].tolist()[1] == "null"


def test_a_placeholder_in_every_amount_is_a_wrong_type_with_the_column_named(tiny_raw):
    frame = _read(tiny_raw, "payments")
    frame["amount"] = "n/a"
    _rewrite(tiny_raw, "payments", frame)
    with pytest.raises(ContractError, match="payments.csv, column amount: no value parses as"):
        validate_folder(tiny_raw)


def test_descriptive_customer_columns_may_be_absent(tiny_raw, tmp_path, params):
    frame = _read(tiny_raw, "customers").drop(
        columns=["industry", "region", "voltage_kv", "contract_capacity_kva"]
    )
    _rewrite(tiny_raw, "customers", frame)
    summary, out = _stage(tiny_raw, tmp_path, params)
    c = out["customers"]
    for column in ("industry", "region", "voltage_kv", "contract_capacity_kva"):
        assert column in c and c[column].isna().all(), column
    assert summary["tables"]["customers"]["rows_passed"] == 3
    # a required column still stops the run, naming what is there
    _rewrite(tiny_raw, "customers", frame.drop(columns=["tariff_class"]))
    with pytest.raises(ContractError, match="required column.*tariff_class absent"):
        validate_folder(tiny_raw)


def test_a_bill_no_connection_could_draw_is_implausible(tiny_raw, tmp_path, params):
    bills = _read(tiny_raw, "bills")
    # C3 has 40 kVA: at most 40 x 24 x 29 = 27,840 kWh in February 2024
    bills.loc[(bills.customer_id == "C3") & (bills.period == "2024-02"), "kwh"] = "27841"
    bills.loc[(bills.customer_id == "C3") & (bills.period == "2024-03"), "kwh"] = "29760"  # 31 d
    bills.loc[(bills.customer_id == "C1") & (bills.period == "2024-01"), "kwh"] = "1e15"  # no kVA
    _rewrite(tiny_raw, "bills", bills)
    results = validate_folder(tiny_raw, params.validate_)
    q = results["bills"].quarantine
    assert sorted(q["source_row"]) == [1, 7]
    assert set(q["reason"]) == {"implausible_value"}
    assert q.set_index("source_row").loc[7, "detail"].startswith("kwh is above what the contract")
    assert "max_kwh_per_bill" in q.set_index("source_row").loc[1, "detail"]
    assert results["bills"].rows_in == len(results["bills"].valid) + 2


def test_a_failing_write_leaves_the_previous_validated_folder_whole(
    tiny_raw, tmp_path, params, monkeypatch
):
    from pipelines import validate

    _stage(tiny_raw, tmp_path, params)
    out = tmp_path / "validated"
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    bills = _read(tiny_raw, "bills")
    _rewrite(tiny_raw, "bills", bills.iloc[:4])  # a new extract, half the bills
    real = validate.write_parquet

    def disk_full_at_bills(frame, path, schema=None):
        if path.name == "bills.parquet":
            raise OSError(28, "No space left on device")
        return real(frame, path, schema)

    monkeypatch.setattr(validate, "write_parquet", disk_full_at_bills)
    with pytest.raises(OSError, match="No space left"):
        _stage(tiny_raw, tmp_path, params)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # the old run, whole
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".validated")]
    monkeypatch.setattr(validate, "write_parquet", real)
    _, now = _stage(tiny_raw, tmp_path, params)
    assert len(now["bills"]) == 4
