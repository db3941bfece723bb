"""Dirty data, as real extracts have it: known defects injected into a block of raw tables.

A share ``rate`` of customers, bills and payments is damaged in ways the data contract
rejects (negative kWh, due date before issue, duplicate bills, zero payments, unknown
customers, ...). Every damaged row, and every row the validation must reject because of it
(copies of a conflicting key, bills and payments of a rejected customer), is listed with
its expected reason, so tests can check the validation stage catches exactly these.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

DEFECTS_SCHEMA = pa.schema(
    [("table", pa.string()), ("source_row", pa.int64()), ("reason", pa.string())]
)

#: Kinds of defect per table and the validation reason each must produce.
BILL_DEFECTS = (
    "negative_value",
    "due_before_issue",
    "unknown_customer",
    "duplicate_row",
    "duplicate_key",
)
PAYMENT_DEFECTS = ("zero_amount", "unknown_customer", "duplicate_key")
CUSTOMER_DEFECTS = ("non_positive_value", "disconnected_before_connected")


@dataclass
class Injected:
    """Damaged tables and the expected quarantine (block-local row positions, 0-based)."""

    customers: pa.Table
    bills: pa.Table
    payments: pa.Table
    expected: dict[str, list[tuple[int, str]]]


def _set(table: pa.Table, name: str, values) -> pa.Table:
    i = table.schema.get_field_index(name)
    field = table.schema.field(i)
    return table.set_column(i, field, pa.array(values, field.type, from_pandas=True))


def _pick(
    rng: np.random.Generator, candidates: np.ndarray, rate: float, kinds: int
) -> list[np.ndarray]:
    """Disjoint random rows for each kind of defect, ``rate`` of the candidates in all."""
    n = int(rng.binomial(len(candidates), rate)) if len(candidates) else 0
    chosen = rng.permutation(candidates)[:n]
    return np.array_split(np.sort(chosen), kinds)


def inject(
    customers: pa.Table, bills: pa.Table, payments: pa.Table, rate: float, rng: np.random.Generator
) -> Injected:
    """Damage a share ``rate`` of each table; see the module docstring."""
    expected: dict[str, list[tuple[int, str]]] = {"customers": [], "bills": [], "payments": []}
    if rate <= 0:
        return Injected(customers, bills, payments, expected)
    cust_ids = customers["customer_id"].to_numpy(zero_copy_only=False)
    volt, disc = _pick(rng, np.arange(customers.num_rows), rate, 2)
    voltage = customers["voltage_kv"].to_numpy(zero_copy_only=False).copy()
    voltage[volt] = 0.0
    connected = customers["connected_on"].to_numpy(zero_copy_only=False).astype("datetime64[D]")
    disc = disc[~np.isnat(connected[disc])]
    disconnected = (
        customers["disconnected_on"].to_numpy(zero_copy_only=False).astype("datetime64[D]")
    )
    disconnected[disc] = connected[disc] - np.timedelta64(30, "D")
    customers = _set(_set(customers, "voltage_kv", voltage), "disconnected_on", disconnected)
    expected["customers"] = [(int(i), "non_positive_value") for i in volt] + [
        (int(i), "disconnected_before_connected") for i in disc
    ]
    bad_customers = cust_ids[np.concatenate([volt, disc])]
    bills, expected["bills"] = _bills(bills, bad_customers, rate, rng)
    payments, expected["payments"] = _payments(payments, bad_customers, rate, rng)
    return Injected(customers, bills, payments, expected)


def _cascade(table: pa.Table, bad_customers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    hit = pc.is_in(table["customer_id"], pa.array(bad_customers, pa.string())).to_numpy(
        zero_copy_only=False
    )
    return np.flatnonzero(hit), np.flatnonzero(~hit)


def _bills(bills: pa.Table, bad_customers: np.ndarray, rate: float, rng) -> tuple[pa.Table, list]:
    cascaded, clean = _cascade(bills, bad_customers)
    neg, due, unknown, repeat, conflict = _pick(rng, clean, rate, len(BILL_DEFECTS))
    kwh = bills["kwh"].to_numpy().copy()
    kwh[neg] = -np.maximum(kwh[neg], 1.0)
    due_date = bills["due_date"].to_numpy(zero_copy_only=False).astype("datetime64[D]")
    issued = bills["issued_on"].to_numpy(zero_copy_only=False).astype("datetime64[D]")
    due_date[due] = issued[due] - np.timedelta64(3, "D")
    bills = _set(_set(bills, "kwh", kwh), "due_date", due_date)
    bills = _unknown_customer(bills, unknown)
    copies = bills.take(pa.array(repeat))
    altered = bills.take(pa.array(conflict))
    altered = _set(altered, "amount", np.round(altered["amount"].to_numpy() * 1.1 + 1.0, 2))
    n = bills.num_rows
    out = pa.concat_tables([bills, copies, altered])
    expected = (
        [(int(i), "customer_quarantined") for i in cascaded]
        + [(int(i), "negative_value") for i in neg]
        + [(int(i), "due_before_issue") for i in due]
        + [(int(i), "unknown_customer") for i in unknown]
        + [(n + k, "duplicate_row") for k in range(len(repeat))]
        + [(int(i), "duplicate_key") for i in conflict]
        + [(n + len(repeat) + k, "duplicate_key") for k in range(len(conflict))]
    )
    return out, expected


def _payments(
    payments: pa.Table, bad_customers: np.ndarray, rate: float, rng
) -> tuple[pa.Table, list]:
    cascaded, clean = _cascade(payments, bad_customers)
    zero, unknown, conflict = _pick(rng, clean, rate, len(PAYMENT_DEFECTS))
    amount = payments["amount"].to_numpy().copy()
    amount[zero] = 0.0
    payments = _unknown_customer(_set(payments, "amount", amount), unknown)
    altered = payments.take(pa.array(conflict))
    altered = _set(altered, "amount", np.round(altered["amount"].to_numpy() + 5.0, 2))
    n = payments.num_rows
    expected = (
        [(int(i), "customer_quarantined") for i in cascaded]
        + [(int(i), "zero_amount") for i in zero]
        + [(int(i), "unknown_customer") for i in unknown]
        + [(int(i), "duplicate_key") for i in conflict]
        + [(n + k, "duplicate_key") for k in range(len(conflict))]
    )
    return pa.concat_tables([payments, altered]), expected


def _unknown_customer(table: pa.Table, rows: np.ndarray) -> pa.Table:
    mask = np.zeros(table.num_rows, dtype=bool)
    mask[rows] = True
    ids = table["customer_id"]
    renamed = pc.binary_join_element_wise("X", ids, "")
    i = table.schema.get_field_index("customer_id")
    return table.set_column(i, table.schema.field(i), pc.if_else(pa.array(mask), renamed, ids))
