"""Validate raw tables against the contract; rows that break a rule go to quarantine.

Pure: frames in, frames out. The caller (``pipelines/validate.py``) reads the files, hands
over each table's raw frame with its source row numbers, and writes what comes back.

Checks run in a fixed order and a row's ``reason`` is the first it fails; ``reasons`` lists
them all. 1) parsing: missing required value, unparseable number / date / bool / period,
unknown category, non-finite number; 2) the contract's row rules (negative kWh, due date
before issue, zero payment, ...); 3) keys: an exact repeat of an earlier row is
``duplicate_row`` (first copy kept), copies of a key that disagree are all ``duplicate_key``;
4) references: a bill or payment of a customer that is absent is ``unknown_customer``, of one
that was itself quarantined ``customer_quarantined``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from features.contract import ContractError, TableSpec, pandas_dtype
from features.parsing import PARSE_FAILURE_CODE, parse_column

QUARANTINE_COLUMNS = ["source_file", "source_row", "reason", "column", "detail", "reasons"]


@dataclass(frozen=True)
class MalformedRow:
    """A line of a text file that could not be split into the header's columns."""

    source_row: int
    detail: str


@dataclass
class _Issue:
    code: str
    column: str | None
    mask: np.ndarray
    detail: str


@dataclass
class TableResult:
    """What validation of one table produced."""

    table: str
    source_file: str
    valid: pd.DataFrame
    quarantine: pd.DataFrame
    rows_in: int
    by_reason: dict[str, int] = field(default_factory=dict)

    @property
    def rows_quarantined(self) -> int:
        return len(self.quarantine)

    @property
    def quarantine_share(self) -> float:
        return self.rows_quarantined / self.rows_in if self.rows_in else 0.0

    def summary(self) -> dict:
        """Counts for the JSON summary; rows_in == rows_passed + rows_quarantined."""
        return {
            "file": self.source_file,
            "rows_in": self.rows_in,
            "rows_passed": len(self.valid),
            "rows_quarantined": self.rows_quarantined,
            "quarantine_share": round(self.quarantine_share, 6),
            "by_reason": dict(sorted(self.by_reason.items())),
        }


def check_columns(spec: TableSpec, columns: list[str], source: str) -> None:
    """Stop when a required column is absent or a column name is repeated."""
    seen = set()
    for name in columns:
        if name in seen:
            raise ContractError(f"{source}: column {name!r} appears more than once in the header")
        seen.add(name)
    missing = [c.name for c in spec.columns if c.required and c.name not in seen]
    if missing:
        raise ContractError(
            f"{source}: required column(s) {', '.join(missing)} absent; "
            f"found {', '.join(columns) or 'no columns'}"
        )


def validate_table(
    spec: TableSpec,
    raw: pd.DataFrame,
    source_rows: np.ndarray,
    source: str,
    customers_valid: pd.Index | None = None,
    customers_seen: pd.Index | None = None,
    malformed: list[MalformedRow] | None = None,
    capacity_kva: pd.Series | None = None,
    max_kwh: float | None = None,
) -> TableResult:
    """Validate one raw table.

    Args:
        spec: The table's contract.
        raw: The rows as read (text from CSV, typed from Parquet), one per source row.
        source_rows: 1-based data-row number in the source file of each row of ``raw``.
        source: The file name, for messages and the quarantine table.
        customers_valid: Valid customer ids, for tables that reference customers.
        customers_seen: Every customer id in the raw customers file, valid or not.
        malformed: Lines that could not be split into columns; they are quarantined.
        capacity_kva: Each valid customer's contract capacity (customer_id -> kVA; missing
            where unknown): a bill above capacity x the period's hours is implausible.
        max_kwh: The most kWh any bill may carry (``validate.max_kwh_per_bill``).

    Returns:
        Valid rows in canonical dtypes (extra columns carried along), the quarantine table
        and the counts by reason.

    Raises:
        ContractError: The file is empty, a required column is absent, or a column's values
            fail to parse throughout.
    """
    malformed = malformed or []
    if len(raw) == 0 and not malformed:
        raise ContractError(f"{source}: the file has no data rows")
    check_columns(spec, list(raw.columns), source)
    raw = _with_optional_columns(spec, raw)
    parsed, issues = _parse(spec, raw, source, source_rows)
    issues += _rule_issues(spec, parsed)
    issues += _plausibility_issues(parsed, capacity_kva, max_kwh)
    clean = _first_issue(issues, len(raw)) < 0
    issues += _key_issues(spec, parsed, clean)
    if spec.references_customers and customers_valid is not None:
        clean = _first_issue(issues, len(raw)) < 0
        issues += _reference_issues(parsed, clean, customers_valid, customers_seen)
    return _assemble(spec, raw, parsed, source_rows, source, issues, malformed)


def _with_optional_columns(spec: TableSpec, raw: pd.DataFrame) -> pd.DataFrame:
    """An optional descriptive column the file lacks (``industry``, ``region``, ...) is
    added as all missing, so every validated table has the contract's columns."""
    absent = [c.name for c in spec.columns if c.optional_missing and c.name not in raw.columns]
    if not absent:
        return raw
    return raw.assign(**{name: pd.Series(None, index=raw.index, dtype=object) for name in absent})


def _plausibility_issues(
    parsed: pd.DataFrame, capacity_kva: pd.Series | None, max_kwh: float | None
) -> list[_Issue]:
    """Bills whose kWh no connection could draw: above the contract capacity (kVA, so at
    most kW at a power factor of 1) x the hours of the billing month, where the capacity is
    known; above ``max_kwh`` always."""
    if "kwh" not in parsed.columns or "period" not in parsed.columns:
        return []
    kwh = pd.to_numeric(parsed["kwh"], errors="coerce")
    issues = []
    if capacity_kva is not None and "customer_id" in parsed.columns:
        start = pd.to_datetime(parsed["period"] + "-01", format="%Y-%m-%d", errors="coerce")
        hours = start.dt.days_in_month * 24.0
        cap = parsed["customer_id"].map(capacity_kva).astype(float)
        over = (kwh > cap * hours).fillna(False).to_numpy(dtype=bool)
        issues.append(
            _Issue(
                "implausible_value",
                "kwh",
                over,
                "kwh is above what the contract capacity can draw in the month (kVA x hours)",
            )
        )
    if max_kwh is not None:
        over = (kwh > max_kwh).fillna(False).to_numpy(dtype=bool)
        issues.append(
            _Issue(
                "implausible_value",
                "kwh",
                over,
                f"kwh is above validate.max_kwh_per_bill ({max_kwh:g})",
            )
        )
    return issues


def _parse(spec, raw, source, source_rows):
    parsed = raw.copy()
    issues: list[_Issue] = []
    for col in spec.columns:
        if col.name not in raw.columns:
            continue
        result = parse_column(col, raw[col.name])
        n_present = int((~result.missing).sum())
        if n_present and result.unparseable.sum() == n_present:
            first = int(np.argmax(result.unparseable))
            raise ContractError(
                f"{source}, column {col.name}: no value parses as {col.kind} "
                f"(row {source_rows[first]}: {shown(raw[col.name].iloc[first])}); "
                "wrong type throughout"
            )
        parsed[col.name] = (
            result.values.astype(pandas_dtype(col)) if col.kind != "bool" else (result.values)
        )
        code = PARSE_FAILURE_CODE[col.kind]
        allowed = f" (allowed: {', '.join(col.allowed)})" if col.allowed else ""
        issues.append(
            _Issue(
                code, col.name, result.unparseable, f"{col.name} is not a valid {col.kind}{allowed}"
            )
        )
        issues.append(_Issue("non_finite", col.name, result.non_finite, f"{col.name} is infinite"))
        if not col.nullable:
            issues.append(
                _Issue(
                    "missing_value", col.name, result.missing, f"{col.name} is required but empty"
                )
            )
    return parsed, issues


def _rule_issues(spec: TableSpec, parsed: pd.DataFrame) -> list[_Issue]:
    issues = []
    for rule in spec.rules:
        if rule.column in parsed.columns:
            mask = rule.violated(parsed).fillna(False).to_numpy(dtype=bool)
            issues.append(_Issue(rule.code, rule.column, mask, rule.message))
    return issues


def _key_issues(spec: TableSpec, parsed: pd.DataFrame, clean: np.ndarray) -> list[_Issue]:
    key = [k for k in spec.key if k in parsed.columns]
    if not key:
        return []
    content = [c.name for c in spec.columns if c.name in parsed.columns]
    candidates = parsed.loc[clean, content]
    in_dup_key = candidates.duplicated(subset=key, keep=False)
    dups = candidates[in_dup_key]
    exact_repeat = dups.duplicated(subset=content, keep="first")
    distinct = dups.drop_duplicates(subset=content).groupby(key, dropna=False).size()
    conflicting_keys = distinct[distinct > 1].index
    conflict = dups.set_index(key).index.isin(conflicting_keys)
    n = len(parsed)
    repeat_mask = np.zeros(n, dtype=bool)
    conflict_mask = np.zeros(n, dtype=bool)
    positions = np.flatnonzero(clean)[in_dup_key.to_numpy()]
    conflict_mask[positions[conflict]] = True
    repeat_mask[positions[exact_repeat.to_numpy() & ~conflict]] = True
    key_text = "+".join(key)
    return [
        _Issue(
            "duplicate_key",
            key[-1],
            conflict_mask,
            f"{key_text} appears more than once with different values",
        ),
        _Issue(
            "duplicate_row",
            key[-1],
            repeat_mask,
            f"exact repeat of an earlier row with the same {key_text}",
        ),
    ]


def _reference_issues(parsed, clean, customers_valid, customers_seen) -> list[_Issue]:
    ids = parsed["customer_id"]
    unknown_valid = ~ids.isin(customers_valid).to_numpy() & clean
    seen = (
        ids.isin(customers_seen).to_numpy()
        if customers_seen is not None
        else np.zeros(len(ids), dtype=bool)
    )
    return [
        _Issue(
            "customer_quarantined",
            "customer_id",
            unknown_valid & seen,
            "customer_id belongs to a customer row that was quarantined",
        ),
        _Issue(
            "unknown_customer",
            "customer_id",
            unknown_valid & ~seen,
            "customer_id is not in the customers table",
        ),
    ]


def _first_issue(issues: list[_Issue], n: int) -> np.ndarray:
    first = np.full(n, -1, dtype=np.int32)
    for i, issue in enumerate(issues):
        first[(first < 0) & issue.mask] = i
    return first


def _assemble(spec, raw, parsed, source_rows, source, issues, malformed) -> TableResult:
    first = _first_issue(issues, len(raw))
    bad = first >= 0
    valid = parsed.loc[~bad].reset_index(drop=True)
    bools = [c.name for c in spec.columns if c.kind == "bool" and c.name in valid.columns]
    valid = valid.astype(dict.fromkeys(bools, "bool"))
    bad_pos = np.flatnonzero(bad)
    primary = [issues[i] for i in first[bad]]
    all_codes = _all_codes(issues, bad_pos)
    quarantine = pd.DataFrame(
        {
            "source_file": source,
            "source_row": np.asarray(source_rows)[bad_pos].astype("int64"),
            "reason": [iss.code for iss in primary],
            "column": [iss.column for iss in primary],
            "detail": [_detail(iss, raw, p) for iss, p in zip(primary, bad_pos, strict=True)],
            "reasons": all_codes,
        }
    )
    raw_bad = (
        raw.iloc[bad_pos]
        .reset_index(drop=True)
        .astype("str")
        .where(raw.iloc[bad_pos].reset_index(drop=True).notna())
    )
    quarantine = pd.concat([quarantine, raw_bad], axis=1)
    if malformed:
        extra = pd.DataFrame(
            {
                "source_file": source,
                "source_row": [m.source_row for m in malformed],
                "reason": "malformed_row",
                "column": None,
                "detail": [m.detail for m in malformed],
                "reasons": "malformed_row",
            }
        )
        quarantine = pd.concat([quarantine, extra], ignore_index=True)
    quarantine = quarantine.sort_values("source_row", kind="stable").reset_index(drop=True)
    quarantine = quarantine.astype({c: "str" for c in quarantine.columns if c != "source_row"})
    by_reason = quarantine["reason"].value_counts().to_dict()
    return TableResult(
        table=spec.name,
        source_file=source,
        valid=valid,
        quarantine=quarantine,
        rows_in=len(raw) + len(malformed),
        by_reason={str(k): int(v) for k, v in by_reason.items()},
    )


def _all_codes(issues: list[_Issue], bad_pos: np.ndarray) -> np.ndarray:
    """Every distinct reason code of each quarantined row, in check order, joined by ';'."""
    codes = np.full(len(bad_pos), "", dtype=object)
    has: dict[str, np.ndarray] = {}
    for issue in issues:
        seen = has.setdefault(issue.code, np.zeros(len(bad_pos), dtype=bool))
        add = issue.mask[bad_pos] & ~seen
        if add.any():
            codes[add] = codes[add] + np.where(codes[add] == "", "", ";") + issue.code
            seen |= add
    return codes


def _detail(issue: _Issue, raw: pd.DataFrame, pos: int) -> str:
    if issue.column is not None and issue.column in raw.columns:
        return f"{issue.detail}: {issue.column}={shown(raw[issue.column].iloc[pos])}"
    return issue.detail


def shown(value: object) -> str:
    """A raw value as a person reads it in a message or the quarantine table: text in double
    quotes as it was (spaces visible), numbers and dates plainly, ``(empty)`` for none; no
    Python reprs (``np.float64(...)``, ``Timestamp(...)``)."""
    if value is None or (not isinstance(value, str) and bool(pd.isna(value))):
        return "(empty)"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, pd.Timestamp | np.datetime64):
        t = pd.Timestamp(value)
        return t.date().isoformat() if t == t.normalize() else t.isoformat()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return f"{value:.15g}"
    return str(value)
