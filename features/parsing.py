"""Parse raw columns (text from CSV, or typed Parquet columns) into the contract's types.

Each parser returns the parsed column and a mask of the values that could not be parsed;
nulls are left to the caller, which knows whether the column is nullable.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.contract import DATE_DTYPE, PERIOD_PATTERN, ColumnSpec

_TRUE = {"true", "t", "1", "yes", "y", "1.0"}
_FALSE = {"false", "f", "0", "no", "n", "0.0"}

#: Reason code given to a value that does not parse, by column kind.
PARSE_FAILURE_CODE = {
    "string": "unparseable_string",
    "category": "invalid_category",
    "bool": "unparseable_bool",
    "float": "unparseable_number",
    "date": "unparseable_date",
    "period": "invalid_period",
}


@dataclass(frozen=True)
class ParsedColumn:
    """A parsed column with masks of unparseable, non-finite and missing values."""

    values: pd.Series
    unparseable: np.ndarray
    non_finite: np.ndarray
    missing: np.ndarray


def _as_text(raw: pd.Series) -> pd.Series:
    """Strip text; empty strings become missing."""
    text = raw.astype("str").str.strip()
    return text.where(text.ne("") & raw.notna())


def parse_column(col: ColumnSpec, raw: pd.Series) -> ParsedColumn:
    """Parse one raw column into the canonical dtype of ``col``.

    Args:
        col: The contract's spec of the column.
        raw: Raw values, as text (CSV) or already typed (Parquet).

    Returns:
        The parsed values (missing where the raw value was missing or did not parse) and masks.
    """
    parser = {
        "string": _parse_string,
        "category": _parse_category,
        "period": _parse_period,
        "bool": _parse_bool,
        "float": _parse_float,
        "date": _parse_date,
    }[col.kind]
    values, unparseable, non_finite = parser(col, raw)
    missing = values.isna().to_numpy() & ~unparseable & ~non_finite
    return ParsedColumn(values, unparseable, non_finite, missing)


def _no_flags(n: int) -> np.ndarray:
    return np.zeros(n, dtype=bool)


def _parse_string(col: ColumnSpec, raw: pd.Series):
    return _as_text(raw).astype("str"), _no_flags(len(raw)), _no_flags(len(raw))


def _parse_category(col: ColumnSpec, raw: pd.Series):
    text = _as_text(raw).str.lower()
    ok = text.isin(col.allowed or ())
    bad = (text.notna() & ~ok).to_numpy()
    return text.where(ok).astype("str"), bad, _no_flags(len(raw))


def _parse_period(col: ColumnSpec, raw: pd.Series):
    text = _as_text(raw)
    ok = text.str.fullmatch(PERIOD_PATTERN).fillna(False).astype(bool)
    bad = (text.notna() & ~ok).to_numpy()
    return text.where(ok).astype("str"), bad, _no_flags(len(raw))


def _parse_bool(col: ColumnSpec, raw: pd.Series):
    if pd.api.types.is_bool_dtype(raw.dtype):
        return raw.astype("boolean"), _no_flags(len(raw)), _no_flags(len(raw))
    text = _as_text(raw).str.lower()
    values = pd.Series(pd.NA, index=raw.index, dtype="boolean")
    values[text.isin(_TRUE)] = True
    values[text.isin(_FALSE)] = False
    bad = (text.notna() & values.isna()).to_numpy()
    return values, bad, _no_flags(len(raw))


def _parse_float(col: ColumnSpec, raw: pd.Series):
    if pd.api.types.is_numeric_dtype(raw.dtype) and not pd.api.types.is_bool_dtype(raw.dtype):
        values = raw.astype("float64")
        bad = _no_flags(len(raw))
    else:
        text = _as_text(raw)
        values = pd.to_numeric(text, errors="coerce").astype("float64")
        bad = (text.notna() & values.isna()).to_numpy()
    arr = values.to_numpy()
    non_finite = np.isinf(arr)
    values = values.where(~non_finite)
    return values, bad, non_finite


def _parse_date(col: ColumnSpec, raw: pd.Series):
    if pd.api.types.is_datetime64_any_dtype(raw.dtype):
        values = raw.dt.tz_localize(None) if getattr(raw.dt, "tz", None) else raw
        return values.dt.normalize().astype(DATE_DTYPE), _no_flags(len(raw)), _no_flags(len(raw))
    text = _as_text(raw)
    values = pd.to_datetime(text, format="ISO8601", errors="coerce")
    if getattr(values.dt, "tz", None) is not None:
        values = values.dt.tz_localize(None)
    bad = (text.notna() & values.isna()).to_numpy()
    return values.dt.normalize().astype(DATE_DTYPE), bad, _no_flags(len(raw))
