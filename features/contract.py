"""The input data contract: the three raw tables, their columns, types and row rules.

Everything that checks raw data reads its rules from here: the validation stage
(:mod:`features.validation`), the pandera schemas that guard stage boundaries
(:func:`validated_schema`) and the Arrow schemas used to write Parquet. The contract is
documented for users in ``docs/data_contract.md``; keep the two in step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import pandas as pd
import pandera.pandas as pa
import pyarrow as pa_arrow

from features.errors import GridscoreError

TARIFF_CLASSES: tuple[str, ...] = (
    "residential",
    "commercial",
    "industrial",
    "large_industrial",
    "agricultural",
)
TABLE_NAMES: tuple[str, ...] = ("customers", "bills", "payments")
PERIOD_PATTERN = r"^\d{4}-(0[1-9]|1[0-2])$"
DATE_DTYPE = "datetime64[us]"

Kind = Literal["string", "category", "bool", "float", "date", "period"]


class ContractError(GridscoreError):
    """A raw file cannot be used at all (missing, empty, a required column absent, ...)."""


@dataclass(frozen=True)
class ColumnSpec:
    """One column of a raw table.

    Attributes:
        name: Column name, exactly as in the file header.
        kind: Logical type the raw text must parse to.
        nullable: Whether an empty value is allowed.
        required: Whether the column must be present in the file (``payment_id`` and the
            descriptive customer columns are not; an absent descriptive column is all
            missing: :attr:`optional_missing`).
        allowed: For ``category`` columns, the allowed values (compared lower-cased).
    """

    name: str
    kind: Kind
    nullable: bool = False
    required: bool = True
    allowed: tuple[str, ...] | None = None

    @property
    def optional_missing(self) -> bool:
        """An optional, nullable column: absent from a file, it is read as all missing."""
        return not self.required and self.nullable


@dataclass(frozen=True)
class RowRule:
    """A rule on parsed values of one row; ``violated`` returns True where the row breaks it."""

    code: str
    column: str
    message: str
    violated: Callable[[pd.DataFrame], pd.Series]


@dataclass(frozen=True)
class TableSpec:
    """A raw table: its columns, its row rules, its key and its parent reference."""

    name: str
    columns: tuple[ColumnSpec, ...]
    rules: tuple[RowRule, ...] = ()
    key: tuple[str, ...] = ()
    references_customers: bool = False
    extra_columns_allowed: bool = False
    doc: str = ""
    _by_name: dict[str, ColumnSpec] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {c.name: c for c in self.columns})

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> ColumnSpec:
        return self._by_name[name]


def _period_start(df: pd.DataFrame) -> pd.Series:
    return pd.to_datetime(df["period"] + "-01", format="%Y-%m-%d").astype(DATE_DTYPE)


CUSTOMERS = TableSpec(
    name="customers",
    doc="One row per customer: tariff, industry and connection facts.",
    columns=(
        ColumnSpec("customer_id", "string"),
        ColumnSpec("tariff_class", "category", allowed=TARIFF_CLASSES),
        ColumnSpec("industry", "string", nullable=True, required=False),
        ColumnSpec("energy_intensive", "bool"),
        ColumnSpec("preferential_tariff", "bool"),
        ColumnSpec("region", "string", nullable=True, required=False),
        ColumnSpec("voltage_kv", "float", nullable=True, required=False),
        ColumnSpec("contract_capacity_kva", "float", nullable=True, required=False),
        ColumnSpec("connected_on", "date", nullable=True),
        ColumnSpec("disconnected_on", "date", nullable=True),
    ),
    rules=(
        RowRule(
            "non_positive_value",
            "voltage_kv",
            "voltage_kv must be positive when given",
            lambda d: d["voltage_kv"].le(0).fillna(False),
        ),
        RowRule(
            "non_positive_value",
            "contract_capacity_kva",
            "contract_capacity_kva must be positive when given",
            lambda d: d["contract_capacity_kva"].le(0).fillna(False),
        ),
        RowRule(
            "disconnected_before_connected",
            "disconnected_on",
            "disconnected_on is before connected_on",
            lambda d: (d["disconnected_on"] < d["connected_on"]).fillna(False),
        ),
    ),
    key=("customer_id",),
    extra_columns_allowed=True,
)

BILLS = TableSpec(
    name="bills",
    doc="One row per customer and billing period (calendar month).",
    columns=(
        ColumnSpec("customer_id", "string"),
        ColumnSpec("period", "period"),
        ColumnSpec("kwh", "float"),
        ColumnSpec("amount", "float"),
        ColumnSpec("issued_on", "date"),
        ColumnSpec("due_date", "date"),
    ),
    rules=(
        RowRule("negative_value", "kwh", "kwh must not be negative", lambda d: d["kwh"].lt(0)),
        RowRule(
            "negative_value", "amount", "amount must not be negative", lambda d: d["amount"].lt(0)
        ),
        RowRule(
            "due_before_issue",
            "due_date",
            "due_date is before issued_on",
            lambda d: d["due_date"] < d["issued_on"],
        ),
        RowRule(
            "issued_before_period",
            "issued_on",
            "issued_on is before the first day of the billing period",
            lambda d: d["issued_on"] < _period_start(d),
        ),
    ),
    key=("customer_id", "period"),
    references_customers=True,
    extra_columns_allowed=True,
)

PAYMENTS = TableSpec(
    name="payments",
    doc="One row per payment; a negative amount is a reversal or refund.",
    columns=(
        ColumnSpec("payment_id", "string", required=False),  # when present: unique, non-empty
        ColumnSpec("customer_id", "string"),
        ColumnSpec("paid_on", "date"),
        ColumnSpec("amount", "float"),
    ),
    rules=(
        RowRule("zero_amount", "amount", "amount must not be zero", lambda d: d["amount"].eq(0)),
    ),
    key=("payment_id",),
    references_customers=True,
    extra_columns_allowed=True,
)

TABLES: dict[str, TableSpec] = {t.name: t for t in (CUSTOMERS, BILLS, PAYMENTS)}

_PANDAS_DTYPES: dict[str, str] = {
    "string": "str",
    "category": "str",
    "period": "str",
    "bool": "bool",
    "float": "float64",
    "date": DATE_DTYPE,
}
_ARROW_TYPES: dict[str, pa_arrow.DataType] = {
    "string": pa_arrow.string(),
    "category": pa_arrow.string(),
    "period": pa_arrow.string(),
    "bool": pa_arrow.bool_(),
    "float": pa_arrow.float64(),
    "date": pa_arrow.date32(),
}


def pandas_dtype(col: ColumnSpec) -> str:
    """The canonical pandas dtype of a parsed column."""
    return _PANDAS_DTYPES[col.kind]


def arrow_schema(table: str, present: list[str] | None = None) -> pa_arrow.Schema:
    """Arrow schema of a validated table, for the contract columns in ``present`` (default all)."""
    spec = TABLES[table]
    names = spec.column_names if present is None else [n for n in spec.column_names if n in present]
    return pa_arrow.schema(
        [
            pa_arrow.field(n, _ARROW_TYPES[spec.column(n).kind], spec.column(n).nullable)
            for n in names
        ]
    )


def validated_schema(table: str, present: list[str] | None = None) -> pa.DataFrameSchema:
    """The pandera schema of a validated table: types, nullability, categories, row rules, key.

    Args:
        table: One of :data:`TABLE_NAMES`.
        present: Contract columns present in the frame (``payment_id`` is optional); default all
            required ones plus the optional ones.

    Returns:
        A schema that accepts extra columns only where the contract allows them.
    """
    spec = TABLES[table]
    names = spec.column_names if present is None else [n for n in spec.column_names if n in present]
    columns = {}
    for name in names:
        col = spec.column(name)
        checks = []
        if col.allowed is not None:
            checks.append(pa.Check.isin(list(col.allowed)))
        if col.kind == "period":
            checks.append(pa.Check.str_matches(PERIOD_PATTERN))
        columns[name] = pa.Column(pandas_dtype(col), checks=checks, nullable=col.nullable)
    rule_checks = [
        pa.Check(lambda d, r=rule: ~r.violated(d), name=rule.code, error=rule.message)
        for rule in spec.rules
        if rule.column in names
    ]
    key = [k for k in spec.key if k in names]
    return pa.DataFrameSchema(
        columns,
        checks=rule_checks,
        unique=key or None,
        strict=not spec.extra_columns_allowed,
        name=f"validated {table}",
    )
