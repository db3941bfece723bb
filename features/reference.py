"""A plain pandas reference of the feature engine: slow, small and obviously right.

It restates every definition of ``docs/features.md`` for one snapshot at a time, straight
from the tables filtered to what was known at ``as_of``, with no shared code with the
numba kernel. Tests check that the engine and this reference agree on every feature of
random ledgers; the benchmark runs both side by side.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from features.catalog import CONSUMPTION_WINDOWS, DAYS_PER_MONTH, HOURS_PER_MONTH, PAYMENT_WINDOWS

TOL = 0.005
KEY = "customer_id"


def month_end(as_of: pd.Timestamp, months_back: int) -> pd.Timestamp:
    """The month end ``months_back`` months before the month end ``as_of``."""
    return as_of + pd.offsets.MonthEnd(-months_back) if months_back else as_of


def ledger_at(bills: pd.DataFrame, payments: pd.DataFrame, day: pd.Timestamp) -> pd.DataFrame:
    """Balance, overdue arrears, days past due and unpaid bills of each customer at ``day``.

    Bills issued by ``day`` are settled oldest first (issue date, then period) by all the
    money paid by ``day``; a bill is unpaid by what of it the payments did not cover.
    """
    b = bills[bills["issued_on"] <= day].sort_values([KEY, "issued_on", "period"]).copy()
    paid = payments.loc[payments["paid_on"] <= day].groupby(KEY)["amount"].sum()
    b["cum"] = b.groupby(KEY)["amount"].cumsum()
    paid_by_customer = paid.reindex(b[KEY]).fillna(0.0).to_numpy(float)
    b["owed"] = np.minimum(b["cum"] - paid_by_customer, b["amount"])
    unpaid = b[b["owed"] > TOL]
    overdue = unpaid[unpaid["due_date"] < day]
    out = pd.DataFrame(
        {
            "billed": b.groupby(KEY)["amount"].sum(),
            "unpaid_bills": unpaid.groupby(KEY).size(),
            "overdue_arrears": overdue.groupby(KEY)["owed"].sum(),
            "dpd": (day - overdue["due_date"]).dt.days.groupby(overdue[KEY]).max(),
        }
    )
    out = out.reindex(out.index.union(paid.index)).astype(float).fillna(0.0)
    out["balance"] = out["billed"] - paid.reindex(out.index).astype(float).fillna(0.0)
    return out


def settled_on(bills: pd.DataFrame, payments: pd.DataFrame) -> pd.Series:
    """Day each bill is settled as the given payments leave it: the first day of the last run
    of payment days whose cumulative total covers the bill and every older one (its issue day
    if that run began before it); NaT if the last payment day leaves it unpaid. A reversal
    that re-opens a bill therefore unsettles it. The caller passes the payments up to as_of."""
    b = bills.sort_values([KEY, "issued_on", "period"]).copy()
    b["need"] = b.groupby(KEY)["amount"].cumsum() - TOL
    daily = payments.groupby([KEY, "paid_on"])["amount"].sum().reset_index()
    daily["cum"] = daily.groupby(KEY)["amount"].cumsum()
    pairs = b.reset_index().merge(daily[[KEY, "paid_on", "cum"]], on=KEY, how="left")
    short = pairs["paid_on"].where(pairs["cum"] < pairs["need"])
    pairs["short"] = short.groupby(pairs["index"]).transform("max")  # last day not covered
    after = pairs[(pairs["cum"] >= pairs["need"]) & ~(pairs["paid_on"] <= pairs["short"])]
    covered = after.groupby("index")["paid_on"].min()  # none when the last day is short
    first = covered.reindex(b.index).astype(b["issued_on"].dtype)
    first = first.where(b["need"] > 0, b["issued_on"])
    return (
        pd.concat([first, b["issued_on"]], axis=1)
        .max(axis=1)
        .where(first.notna())
        .reindex(bills.index)
    )


def paid_by_due(bills: pd.DataFrame, payments: pd.DataFrame) -> pd.Series:
    """Money paid towards each bill by the end of its due date, oldest bills first."""
    b = bills.sort_values([KEY, "issued_on", "period"]).copy()
    before = b.groupby(KEY)["amount"].cumsum() - b["amount"]
    pairs = b.reset_index().merge(
        payments[[KEY, "paid_on", "amount"]], on=KEY, how="left", suffixes=("", "_p")
    )
    upto = pairs[pairs["paid_on"] <= pairs["due_date"]].groupby("index")["amount_p"].sum()
    paid = upto.reindex(b.index).astype(float).fillna(0.0)
    return (paid - before).clip(lower=0.0).clip(upper=b["amount"]).reindex(bills.index)


def active_customers(
    customers: pd.DataFrame, bills: pd.DataFrame, as_of: pd.Timestamp, grace_days: int
):
    """Customers that are rows at ``as_of``, with the day their history starts."""
    first_bill = bills.loc[bills["issued_on"] <= as_of].groupby(KEY)["issued_on"].min()
    c = customers.set_index(KEY)
    start = c["connected_on"].fillna(first_bill.reindex(c.index).astype(c["connected_on"].dtype))
    gone = c["disconnected_on"] < as_of - pd.Timedelta(days=grace_days)
    keep = start.notna() & (start <= as_of) & ~gone
    return start[keep]


def inactive_reasons(
    customers: pd.DataFrame, bills: pd.DataFrame, as_of: pd.Timestamp, grace_days: int
) -> pd.Series:
    """Why each customer that is not a row at ``as_of`` is not (indexed by customer):
    no connection date and no bill yet, connected after as_of, or gone before the grace."""
    first_bill = bills.loc[bills["issued_on"] <= as_of].groupby(KEY)["issued_on"].min()
    c = customers.set_index(KEY)
    start = c["connected_on"].fillna(first_bill.reindex(c.index).astype(c["connected_on"].dtype))
    reason = pd.Series(None, index=c.index, dtype="object")
    reason[start.isna()] = "not_billed_yet"
    reason[start.notna() & (start > as_of)] = "not_connected_yet"
    gone = c["disconnected_on"] < as_of - pd.Timedelta(days=grace_days)
    reason[reason.isna() & gone] = "disconnected_before_as_of"
    return reason.dropna()


def reference_features(
    customers: pd.DataFrame,
    bills: pd.DataFrame,
    payments: pd.DataFrame,
    as_of: pd.Timestamp,
    supply_cost: Mapping[str, float],
    grace_days: int,
) -> pd.DataFrame:
    """Every computed feature of every active customer at one snapshot (indexed by customer)."""
    start = active_customers(customers, bills, as_of, grace_days)
    bills = bills[bills[KEY].isin(start.index) & (bills["issued_on"] <= as_of)].copy()
    payments = payments[payments[KEY].isin(start.index) & (payments["paid_on"] <= as_of)]
    bills["settled"] = settled_on(bills, payments)
    bills["paid_by_due"] = paid_by_due(bills, payments)
    out = pd.DataFrame(index=start.index)
    out["months_of_history"] = bills.groupby(KEY).size()
    out["tenure_months"] = (as_of - start).dt.days / DAYS_PER_MONTH
    now = ledger_at(bills, payments, as_of)
    for col in ("balance", "overdue_arrears", "dpd", "unpaid_bills"):
        out[col] = now[col]
    out = out.fillna(
        {"months_of_history": 0, "balance": 0, "overdue_arrears": 0, "dpd": 0, "unpaid_bills": 0}
    )
    ledgers = {as_of: now}  # month end -> its ledger (the windows share month ends)
    for day in [month_end(as_of, k) for k in range(1, max(PAYMENT_WINDOWS))]:
        ledgers[day] = ledger_at(bills, payments, day)
    _payment(out, bills, payments, as_of, ledgers)
    _consumption(out, bills, customers.set_index(KEY), as_of, supply_cost)
    return out


def _lateness(bills: pd.DataFrame, as_of: pd.Timestamp) -> pd.Series:
    paid = bills["settled"] <= as_of
    days = np.where(
        paid, (bills["settled"] - bills["due_date"]).dt.days, (as_of - bills["due_date"]).dt.days
    )
    return pd.Series(days, index=bills.index)


def _payment(out, bills, payments, as_of, ledgers) -> None:
    late_days = _lateness(bills, as_of)
    late = bills[(bills["due_date"] < as_of) & (late_days > 0)]
    out["months_since_late"] = (
        as_of - late.groupby(KEY)["due_date"].max()
    ).dt.days / DAYS_PER_MONTH
    dpd_at = {k: ledgers[month_end(as_of, k)]["dpd"] for k in range(max(PAYMENT_WINDOWS))}
    for w in PAYMENT_WINDOWS:
        lo = month_end(as_of, w)
        b = bills[(bills["due_date"] > lo) & (bills["due_date"] <= as_of)]
        days = late_days[b.index]
        on_time = b["amount"].where(b["settled"] <= b["due_date"], 0.0)
        partial = (b["paid_by_due"] > TOL) & (b["paid_by_due"] < b["amount"] - TOL)
        g = b.groupby(KEY)
        out[f"bills_due_{w}m"] = g.size()
        out[f"late_bills_{w}m"] = (days > 0).groupby(b[KEY]).sum()
        out[f"late30_bills_{w}m"] = (days > 30).groupby(b[KEY]).sum()
        out[f"late60_bills_{w}m"] = (days > 60).groupby(b[KEY]).sum()
        worst = pd.concat([dpd_at[k] for k in range(w)], axis=1)
        out[f"max_dpd_{w}m"] = worst.max(axis=1)
        money = g["amount"].sum()
        out[f"on_time_share_{w}m"] = (on_time.groupby(b[KEY]).sum() / money).where(money > TOL)
        out[f"partial_bills_{w}m"] = partial.groupby(b[KEY]).sum()
        rev = payments[(payments["amount"] < 0) & (payments["paid_on"] > lo)]
        out[f"reversals_{w}m"] = rev.groupby(KEY).size()
        counts = [
            f"{k}_{w}m"
            for k in (
                "bills_due",
                "late_bills",
                "late30_bills",
                "late60_bills",
                "max_dpd",
                "partial_bills",
                "reversals",
            )
        ]
        out[counts] = out[counts].fillna(0)
    lo = month_end(as_of, 12)
    done = bills[
        (bills["due_date"] > lo) & (bills["due_date"] <= as_of) & (bills["settled"] <= as_of)
    ]
    delay = (done["settled"] - done["due_date"]).dt.days.groupby(done[KEY])
    out["pay_delay_mean_12m"] = delay.mean()
    out["pay_delay_std_12m"] = delay.std(ddof=0).where(delay.size() >= 2)


def _consumption(out, bills, customers, as_of, supply_cost) -> None:
    month = pd.PeriodIndex(bills["period"], freq="M")
    ago = (
        (as_of.to_period("M") - month).map(lambda d: d.n).to_numpy()
    )  # 1 = the month before as_of's
    recent = bills[(ago >= 1) & (ago <= 12)].assign(ago=ago[(ago >= 1) & (ago <= 12)])
    for w in CONSUMPTION_WINDOWS:
        b = recent[recent["ago"] <= w]
        g = b.groupby(KEY)
        if w == 1:
            out["kwh_1m"], out["amount_1m"] = g["kwh"].sum(), g["amount"].sum()
            continue
        for what in ("kwh", "amount"):
            out[f"{what}_sum_{w}m"] = g[what].sum().reindex(out.index).fillna(0.0)
            out[f"{what}_mean_{w}m"] = g[what].mean()
            out[f"{what}_std_{w}m"] = g[what].std(ddof=0).where(g.size() >= 2)
    g = recent.groupby(KEY)
    kmean = out["kwh_mean_12m"]
    slope = g.apply(_slope, include_groups=False) if len(recent) else pd.Series(dtype=float)
    out["kwh_trend_12m"] = (slope / kmean).where(kmean > 0)
    out["seasonality_ratio_12m"] = (g["kwh"].max() / kmean).where(kmean > 0)
    capacity = customers["contract_capacity_kva"].reindex(out.index)
    out["load_factor_12m"] = (kmean / (capacity * HOURS_PER_MONTH)).where(capacity > 0)
    last3 = recent[recent["ago"] <= 3].groupby(KEY)["kwh"].mean()
    year_ago = bills[(ago >= 13) & (ago <= 15)].groupby(KEY)["kwh"].mean()
    out["kwh_yoy_change"] = (last3 / year_ago - 1.0).where(year_ago > 0)
    out["kwh_max_drop_12m"] = g.apply(_max_drop, include_groups=False) if len(recent) else np.nan
    out["zero_kwh_months_12m"] = (
        (recent["kwh"] == 0).groupby(recent[KEY]).sum().reindex(out.index).fillna(0)
    )
    tariff = customers["tariff_class"].reindex(recent[KEY]).to_numpy()
    cost = np.array([supply_cost[t] for t in tariff], dtype=float)
    out["revenue_12m"] = out["amount_sum_12m"]
    out["profit_12m"] = (recent["amount"] - recent["kwh"] * cost).groupby(recent[KEY]).sum()
    out["profit_12m"] = out["profit_12m"].reindex(out.index).fillna(0.0)
    out["margin_rate_12m"] = (out["profit_12m"] / out["revenue_12m"]).where(
        out["revenue_12m"] > TOL
    )
    mean12 = out["amount_mean_12m"]
    out["arrears_to_avg_bill"] = (out["overdue_arrears"] / mean12).where(mean12 > TOL)


def _slope(b: pd.DataFrame) -> float:
    if len(b) < 3:
        return np.nan
    x = 12.0 - b["ago"].to_numpy(float)
    return float(np.polyfit(x, b["kwh"].to_numpy(float), 1)[0])


def _max_drop(b: pd.DataFrame) -> float:
    s = b.set_index("ago")["kwh"]
    drops = [
        max((s[a + 1] - s[a]) / s[a + 1], 0.0) for a in s.index if a + 1 in s.index and s[a + 1] > 0
    ]
    return max(drops) if drops else np.nan
