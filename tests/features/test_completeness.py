"""Ledger completeness: quarantined rows a customer's ledger misses, and unmatched payments
attributed to the customers whose id they could be a slip of."""

from __future__ import annotations

import pandas as pd

from features.completeness import MAX_OWNERS, gaps_at, ledger_gaps, probable_owners

CUSTOMERS = pd.Index(["C00007597", "C00007598", "C00001013", "c00000042"])


def _payments(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "source_file": "payments.parquet",
            "source_row": range(len(rows)),
            "reason": [r[1] for r in rows],
            "customer_id": [r[0] for r in rows],
            "paid_on": [r[2] for r in rows],
            "amount": 10.0,
        }
    )


def test_slips_find_the_one_customer_a_mistyped_id_belongs_to():
    owners = probable_owners(
        pd.Series(["XC00007597", "C0000 1013", "C00000042", "C001013", "ZZZ"]), CUSTOMERS
    )
    got = owners.groupby("pos")["customer_id"].apply(sorted).to_dict()
    assert got[0] == ["C00007597"]  # a character too many
    assert got[1] == ["C00001013"]  # a space inside
    assert got[2] == ["c00000042"]  # case only
    assert 3 not in got and 4 not in got  # two characters missing; nothing alike


def test_a_slip_that_fits_many_customers_is_attributed_to_none():
    many = pd.Index([f"C0000{i}" for i in range(10)] + [f"C000{i}0" for i in range(1, 10)])
    assert len(many) > MAX_OWNERS
    assert probable_owners(pd.Series(["C00000"]), many).empty  # one digit off from all
    few = probable_owners(pd.Series(["C00001X"]), many)
    assert sorted(few["customer_id"]) == ["C00001"]


def test_unmatched_payment_counts_in_its_probable_owners_ledger_from_its_day():
    q = _payments(
        [
            ("XC00007597", "unknown_customer", "2023-07-09"),
            ("C00001013", "zero_amount", "2025-03-01"),
            ("C00001013", "duplicate_row", "2025-04-01"),  # the kept copy has the record
            ("Q99", "unknown_customer", "2025-01-01"),  # nobody's
            ("C00009999", "customer_quarantined", "2025-01-01"),  # a rejected customer
        ]
    )
    gaps = ledger_gaps({"payments": q}, CUSTOMERS)
    assert list(gaps["customer_id"]) == ["C00001013", "C00007597"]
    assert list(gaps["recorded_as"].fillna("-")) == ["-", "XC00007597"]
    keys = pd.DataFrame(
        {
            "customer_id": ["C00007597", "C00007597", "C00001013", "C00007598"],
            "as_of": pd.to_datetime(["2023-06-30", "2026-01-31", "2026-01-31", "2026-01-31"]),
        }
    )
    at = gaps_at(gaps, keys)
    assert list(at["quarantined_rows"]) == [0, 1, 1, 0]
    assert at["quarantine_refs"].iloc[1] == (
        "payments.parquet:0 unknown_customer:XC00007597 2023-07-09"
    )
    assert at["quarantine_refs"].iloc[2] == "payments.parquet:1 zero_amount 2025-03-01"
