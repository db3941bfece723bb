"""Parsing raw text into the contract's types."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.contract import ColumnSpec, validated_schema
from features.parsing import parse_column


def test_floats_with_spaces_blanks_and_infinity():
    r = parse_column(ColumnSpec("kwh", "float"), pd.Series([" 1.5", "", "abc", "inf", "2e3", None]))
    assert r.values.iloc[[0, 4]].tolist() == [1.5, 2000.0]
    assert r.unparseable.tolist() == [False, False, True, False, False, False]
    assert r.non_finite.tolist() == [False, False, False, True, False, False]
    assert r.missing.tolist() == [False, True, False, False, False, True]


def test_bools_accept_common_spellings():
    r = parse_column(
        ColumnSpec("b", "bool"), pd.Series(["true", "F", "1", "no", "Yes", "maybe", ""])
    )
    assert r.values.iloc[:5].tolist() == [True, False, True, False, True]
    assert r.unparseable.tolist() == [False] * 5 + [True, False]


def test_dates_are_iso_only_and_normalised():
    r = parse_column(
        ColumnSpec("d", "date"),
        pd.Series(["2024-02-29", "2024-02-30", "01/02/2024", "2024-03-01T13:45"]),
    )
    assert r.unparseable.tolist() == [False, True, True, False]
    assert r.values.iloc[3] == pd.Timestamp("2024-03-01")


def test_periods_and_categories():
    p = parse_column(
        ColumnSpec("period", "period"), pd.Series(["2024-01", "2024-13", "2024-1", "202401"])
    )
    assert p.unparseable.tolist() == [False, True, True, True]
    c = parse_column(
        ColumnSpec("t", "category", allowed=("residential",)), pd.Series(["RESIDENTIAL ", "shop"])
    )
    assert c.values.iloc[0] == "residential" and c.unparseable.tolist() == [False, True]


def test_typed_parquet_columns_pass_through():
    r = parse_column(ColumnSpec("kwh", "float"), pd.Series([1, 2], dtype="int64"))
    assert r.values.dtype == np.float64 and not r.unparseable.any()


def test_validated_schema_enforces_rules():
    bills = pd.DataFrame(
        {
            "customer_id": ["C1"],
            "period": ["2024-01"],
            "kwh": [-1.0],
            "amount": [1.0],
            "issued_on": pd.to_datetime(["2024-02-01"]).astype("datetime64[us]"),
            "due_date": pd.to_datetime(["2024-02-15"]).astype("datetime64[us]"),
        }
    )
    import pandera.pandas as pa
    import pytest

    with pytest.raises(pa.errors.SchemaError, match="kwh must not be negative"):
        validated_schema("bills").validate(bills)
    validated_schema("bills").validate(bills.assign(kwh=1.0))
