"""Convert the real London smart-meter households into a gridscore raw-data folder.

Low Carbon London (UK Power Networks, London Datastore), ../shared/data/london_lcl/:
5,566 households, monthly kWh from 2011-11 to 2014-02. The data has consumption only, so
the converter states its assumptions:

- every household is a `residential` customer, not energy-intensive, not on a preferential
  tariff; `region` is its Acorn group (an external socio-economic label, kept so tiers can
  be compared with it);
- a bill per household-month with data: amount = kWh x 14.228 p (the trial's documented
  flat tariff, in GBP), issued 5 days after the month ends, due 14 days later;
- no payment data exists: every bill is taken as paid in full on its due date, so payment
  reliability carries no information on this data;
- connection date: the first day of the household's first month; a household whose data
  stops before the end of the trial is taken as disconnected at the end of its last month.

    python examples/london_to_contract.py --out data/london/raw
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

PROJECT = Path(__file__).resolve().parents[1]
PRICE_GBP_PER_KWH = 0.14228


def _read(folder: Path, name: str) -> pd.DataFrame:
    """``name``.csv, or ``name``.csv.gz (the tests' sample, tests/data/london_lcl_sample/)."""
    path = folder / f"{name}.csv"
    return pd.read_csv(path if path.exists() else folder / f"{name}.csv.gz")


def convert(folder: Path) -> dict[str, pd.DataFrame]:
    monthly = _read(folder, "lcl_monthly_by_household")
    info = _read(folder, "informations_households")
    start = pd.to_datetime(monthly.groupby("LCLid")["month"].min() + "-01")
    last = monthly.groupby("LCLid")["month"].max()
    left = pd.to_datetime(last[last < monthly["month"].max()] + "-01") + pd.offsets.MonthEnd(0)
    customers = pd.DataFrame(
        {
            "customer_id": info["LCLid"],
            "tariff_class": "residential",
            "industry": None,
            "energy_intensive": False,
            "preferential_tariff": False,
            "region": info["Acorn_grouped"],
            "voltage_kv": 0.23,
            "contract_capacity_kva": None,
            "connected_on": info["LCLid"].map(start).dt.date,
            "disconnected_on": info["LCLid"].map(left).dt.date,
            "acorn": info["Acorn"],
            "std_or_tou": info["stdorToU"],
        }
    )
    customers = customers[customers["customer_id"].isin(monthly["LCLid"])]
    month_end = pd.to_datetime(monthly["month"] + "-01") + pd.offsets.MonthEnd(0)
    issued = month_end + pd.Timedelta(days=5)
    due = issued + pd.Timedelta(days=14)
    bills = pd.DataFrame(
        {
            "customer_id": monthly["LCLid"],
            "period": monthly["month"],
            "kwh": monthly["kwh"].round(3),
            "amount": (monthly["kwh"] * PRICE_GBP_PER_KWH).round(2),
            "issued_on": issued.dt.date,
            "due_date": due.dt.date,
        }
    )
    paid = bills[bills["amount"] > 0]
    payments = pd.DataFrame(
        {
            "payment_id": "L" + paid["customer_id"] + "-" + paid["period"],
            "customer_id": paid["customer_id"],
            "paid_on": paid["due_date"],
            "amount": paid["amount"],
        }
    )
    return {"customers": customers, "bills": bills, "payments": payments}


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--london", type=Path, default=PROJECT.parent / "shared" / "data" / "london_lcl"
    )
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name, table in convert(args.london).items():
        table.to_csv(args.out / f"{name}.csv", index=False)
        print(f"{name}: {len(table):,} rows -> {args.out / (name + '.csv')}")


if __name__ == "__main__":
    main()
