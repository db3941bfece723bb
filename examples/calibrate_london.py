"""Compare the synthetic households with the real London smart-meter households.

Computes the same figures (features.calibration.household_figures) on
  - the Low Carbon London monthly data in ../shared/data/london_lcl/ (2013, full months), and
  - the households of a generated base (default: one made here, 20,000 customers, 2024),
and prints them side by side as the Markdown table in docs/generator.md.

    python examples/calibrate_london.py [--london DIR] [--raw DIR_OF_GENERATED_BASE]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from features.calibration import household_figures
from pipelines.config import load_params
from pipelines.generate import write_base as generate

PROJECT = Path(__file__).resolve().parents[1]


def london_monthly(folder: Path) -> pd.DataFrame:
    """London household-months with a full month of readings (days >= 28)."""
    df = pd.read_csv(folder / "lcl_monthly_by_household.csv")
    df = df[df["days"] >= 28]
    return df.rename(columns={"LCLid": "customer_id", "month": "period"})[
        ["customer_id", "period", "kwh"]
    ]


def generated_monthly(raw: Path) -> pd.DataFrame:
    customers = pq.read_table(
        raw / "customers.parquet", columns=["customer_id", "tariff_class"]
    ).to_pandas()
    bills = pq.read_table(
        raw / "bills.parquet", columns=["customer_id", "period", "kwh"]
    ).to_pandas()
    homes = customers.loc[customers["tariff_class"] == "residential", "customer_id"]
    return bills[bills["customer_id"].isin(homes)]


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--london", type=Path, default=PROJECT.parent / "shared" / "data" / "london_lcl"
    )
    ap.add_argument("--raw", type=Path, help="a generated raw folder; default: generate one")
    args = ap.parse_args()
    real = household_figures(london_monthly(args.london), 2013)
    if args.raw is None:
        tmp = Path(tempfile.mkdtemp())
        params = load_params(PROJECT / "params.yaml")
        generate(
            20_000, 36, "2023-01", params.generate.seed, params.tariffs, tmp / "raw", tmp / "truth"
        )
        args.raw = tmp / "raw"
    synth = household_figures(generated_monthly(args.raw), 2024)
    print("| figure | London households (2013) | synthetic households (2024) |")
    print("|---|---|---|")
    for key in real:
        fmt = "{:,.0f}" if key.startswith(("annual", "households")) else "{:.3f}"
        print(f"| {key} | {fmt.format(real[key])} | {fmt.format(synth[key])} |")


if __name__ == "__main__":
    main()
