"""Figures that describe household consumption, computed the same way on real and synthetic data.

Used to calibrate the synthetic generator against the real London smart-meter households
(``examples/calibrate_london.py``) and to test that it keeps reproducing them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def household_figures(monthly: pd.DataFrame, year: int) -> dict[str, float]:
    """Level, skew, seasonality and noise of household consumption in one calendar year.

    Args:
        monthly: One row per household and month: ``customer_id``, ``period`` (YYYY-MM),
            ``kwh``. Only households with all 12 months of ``year`` are used.
        year: The calendar year to describe.

    Returns:
        ``households`` used; annual kWh median, p80, p95; share of kWh of the top 20 %;
        ``season_1`` .. ``season_12``: mean of each household's month over its own monthly
        mean; ``monthly_noise_robust_sd``: robust spread (1.4826 x MAD) of the log of that
        ratio around its calendar-month median; ``zero_month_share`` over all months given.
    """
    zero_share = float((monthly["kwh"] == 0).mean())
    df = monthly[monthly["period"].str.startswith(f"{year}-")]
    full = df.groupby("customer_id")["period"].transform("nunique") == 12
    df = df[full].copy()
    if df.empty:
        raise ValueError(f"no household has 12 months of data in {year}")
    annual = df.groupby("customer_id")["kwh"].sum().sort_values(ascending=False)
    top = annual.iloc[: max(1, int(round(0.2 * len(annual))))].sum() / annual.sum()
    df["month"] = df["period"].str[5:7].astype(int)
    df["ratio"] = df["kwh"] / df.groupby("customer_id")["kwh"].transform("mean")
    season = df.groupby("month")["ratio"].mean()
    log_ratio = np.log(df["ratio"].clip(lower=1e-3))
    resid = log_ratio - log_ratio.groupby(df["month"]).transform("median")
    robust_sd = 1.4826 * float((resid - resid.median()).abs().median())
    figures = {
        "households": float(len(annual)),
        "annual_kwh_median": float(annual.median()),
        "annual_kwh_p80": float(annual.quantile(0.8)),
        "annual_kwh_p95": float(annual.quantile(0.95)),
        "top20_kwh_share": float(top),
        "monthly_noise_robust_sd": robust_sd,
        "zero_month_share": zero_share,
    }
    figures.update({f"season_{m}": float(season.get(m, np.nan)) for m in range(1, 13)})
    return figures
