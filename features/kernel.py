"""The per-customer pass: ledger, payment and consumption features for every snapshot at once.

Compiled with numba. Each customer's bills and payments are visited once per run; inside,
the customer's month-end ledger states and all snapshots are computed from the same
arrays, so the cost grows with events plus snapshots, not events times snapshots.

Ledger definitions (balance-forward): bills are settled in the order they were issued
(ties by period); payments, reversals (negative) included, accumulate into ``P(t)``, the
money paid up to day ``t``. ``C_i`` is the money billed up to and including bill ``i``. At a
day ``d``, bill ``i`` (issued by ``d``) is unpaid by ``min(C_i - P(d), amount_i)`` when that
is above half a cent. A bill is settled at ``d`` when it is not unpaid at ``d``; its settled
day is then the first day of the run of days up to ``d`` on which ``P`` covered ``C_i`` (or
its issue day, when a credit already covered it): a reversal that re-opens a bill unsettles
it, and its lateness runs on until it is covered again. Everything is in whole days since
1970-01-01.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from features.catalog import (
    COMPUTED,
    CONSUMPTION_WINDOWS,
    DAYS_PER_MONTH,
    HOURS_PER_MONTH,
    PAYMENT_WINDOWS,
)

MISSING = np.int64(-(2**62))  # an absent date
NEVER = np.int64(2**62)  # a bill never settled
TOL = 0.005  # half a cent: amounts below it are zero
# Whether a customer is a row at a snapshot, and why not (compute_features' status).
ACTIVE, NOT_BILLED_YET, NOT_CONNECTED_YET, DISCONNECTED = 0, 1, 2, 3

_IX = {name: i for i, name in enumerate(COMPUTED)}
N_FEATURES = len(COMPUTED)
# Column indices, as constants numba can fold.
I_HIST, I_TENURE, I_BAL, I_OVERDUE, I_DPD, I_UNPAID, I_ARR_AVG, I_SINCE_LATE = (
    _IX[n]
    for n in (
        "months_of_history", "tenure_months", "balance", "overdue_arrears", "dpd", "unpaid_bills",
        "arrears_to_avg_bill", "months_since_late",
    )
)  # fmt: skip
PAY_W = np.array(PAYMENT_WINDOWS, dtype=np.int64)
# per payment window: bills_due, late, late30, late60, max_dpd, on_time_share, partial, reversals
PAY_IX = np.array(
    [
        [_IX[f"{k}_{w}m"] for k in ("bills_due", "late_bills", "late30_bills", "late60_bills", "max_dpd",
                                     "on_time_share", "partial_bills", "reversals")]
        for w in PAYMENT_WINDOWS
    ],
    dtype=np.int64,
)  # fmt: skip
I_DELAY_MEAN, I_DELAY_STD = _IX["pay_delay_mean_12m"], _IX["pay_delay_std_12m"]
CONS_W = np.array([w for w in CONSUMPTION_WINDOWS if w > 1], dtype=np.int64)
# per consumption window > 1: kwh sum, mean, std, amount sum, mean, std
CONS_IX = np.array(
    [
        [_IX[f"{k}_{s}_{w}m"] for k in ("kwh", "amount") for s in ("sum", "mean", "std")]
        for w in CONSUMPTION_WINDOWS
        if w > 1
    ],
    dtype=np.int64,
)
I_KWH1, I_AMT1 = _IX["kwh_1m"], _IX["amount_1m"]
I_TREND, I_YOY, I_DROP, I_ZERO, I_SEASON, I_LOAD = (
    _IX[n]
    for n in (
        "kwh_trend_12m", "kwh_yoy_change", "kwh_max_drop_12m", "zero_kwh_months_12m",
        "seasonality_ratio_12m", "load_factor_12m",
    )
)  # fmt: skip
I_REV, I_PROFIT, I_MARGIN = _IX["revenue_12m"], _IX["profit_12m"], _IX["margin_rate_12m"]


@njit(cache=True)
def _state(day, issued, due, amount, cum_billed, pay_day, cum_paid):
    """Balance, overdue arrears, days past due and unpaid bills at the end of ``day``."""
    n = np.searchsorted(issued, day, side="right")
    j = np.searchsorted(pay_day, day, side="right") - 1
    paid = cum_paid[j] if j >= 0 else 0.0
    billed = cum_billed[n - 1] if n > 0 else 0.0
    k = np.searchsorted(cum_billed[:n], paid + TOL, side="right")
    overdue = 0.0
    dpd = 0
    unpaid = 0
    for i in range(k, n):
        owed = min(cum_billed[i] - paid, amount[i])
        if owed > TOL:
            unpaid += 1
            if due[i] < day:
                overdue += owed
                dpd = max(dpd, day - due[i])
    return billed - paid, overdue, dpd, unpaid


@njit(cache=True)
def _settled_by(d, nb, issued, cum_billed, settled, pay_day, cum_paid):
    """Each of the first ``nb`` bills' settled day as seen at ``d`` (``NEVER``: unpaid at d).

    Without a reversal ``P`` only grows, so a bill once covered stays covered and its settled
    day is the one :func:`_customer_ledger` found. A reversal can re-open it: then the
    settled day is the start of the last run of day ends, up to ``d``, at which ``P`` covered
    ``C_i``.
    """
    out = np.empty(nb, dtype=np.int64)
    reversed_ = False
    for j in range(len(pay_day)):
        if pay_day[j] > d:
            break
        if j > 0 and cum_paid[j] < cum_paid[j - 1]:
            reversed_ = True
    for i in range(nb):
        if not reversed_:
            out[i] = settled[i] if settled[i] <= d else NEVER
            continue
        need = cum_billed[i] - TOL
        if need <= 0:
            out[i] = issued[i]
            continue
        start = NEVER
        for j in range(len(pay_day)):
            if pay_day[j] > d:
                break
            if j + 1 < len(pay_day) and pay_day[j + 1] == pay_day[j]:
                continue  # only a day's last row is the money paid by that day
            start = min(start, pay_day[j]) if cum_paid[j] >= need else NEVER
        out[i] = max(issued[i], start) if start != NEVER else NEVER
    return out


@njit(cache=True)
def _customer_ledger(issued, month, due, amount, pay_day, pay_amount):
    """Order a customer's bills and payments, and settle the bills; see the module docstring."""
    order = np.argsort(
        issued * 100_000 + (month - month.min() if len(month) else month), kind="mergesort"
    )
    issued, month, due, amount = issued[order], month[order], due[order], amount[order]
    porder = np.argsort(pay_day, kind="mergesort")
    pay_day, pay_amount = pay_day[porder], pay_amount[porder]
    cum_billed = np.cumsum(amount)
    cum_paid = np.cumsum(pay_amount)
    # Money paid by the end of each payment day: only a day's last row counts.
    run_max = cum_paid.copy()
    for j in range(len(run_max)):
        if j + 1 < len(run_max) and pay_day[j + 1] == pay_day[j]:
            run_max[j] = -np.inf
        if j > 0:
            run_max[j] = max(run_max[j - 1], run_max[j])
    settled = np.empty(len(issued), dtype=np.int64)
    paid_by_due = np.empty(len(issued))
    for i in range(len(issued)):
        need = cum_billed[i] - TOL
        if need <= 0:
            settled[i] = issued[i]
        else:
            j = np.searchsorted(run_max, need, side="left")
            settled[i] = max(issued[i], pay_day[j]) if j < len(run_max) else NEVER
        j = np.searchsorted(pay_day, due[i], side="right") - 1
        paid_due = cum_paid[j] if j >= 0 else 0.0
        paid_by_due[i] = min(max(paid_due - (cum_billed[i] - amount[i]), 0.0), amount[i])
    return (
        order,
        issued,
        month,
        due,
        amount,
        cum_billed,
        settled,
        paid_by_due,
        pay_day,
        pay_amount,
        cum_paid,
    )


@njit(cache=True, parallel=True)
def compute_features(
    b_start, b_issued, b_month, b_due, b_amount, b_kwh,
    p_start, p_day, p_amount,
    connected, disconnected, capacity, supply_cost,
    snap_day, snap_month, month_end, month_base, grace_days,
):  # fmt: skip
    """Features of every customer of a chunk at every snapshot.

    Args:
        b_start, p_start: Offsets (length customers + 1) of each customer's bills / payments.
        b_*: Bills, grouped by customer: issue day, period (months since year 0), due day,
            amount, kWh.
        p_day, p_amount: Payments, grouped by customer.
        connected, disconnected: Days, ``MISSING`` when unknown / still connected.
        capacity: Contract kVA (nan unknown). supply_cost: per kWh, by the customer's tariff.
        snap_day, snap_month: Each snapshot's as_of day and month index.
        month_end: Day of the last day of month ``month_base + k``.
        grace_days: A customer disconnected more than this before as_of is not a row.

    Returns:
        ``(values, status)``: ``values[c * S + s]`` holds the features of customer ``c`` at
        snapshot ``s`` in the order of ``catalog.COMPUTED``; ``status`` says whether that row
        exists (``ACTIVE``) or why not (``NOT_BILLED_YET``, ``NOT_CONNECTED_YET``,
        ``DISCONNECTED``): the one place the activity rule is written.
    """
    n_cust = len(b_start) - 1
    n_snap = len(snap_day)
    out = np.full((n_cust * n_snap, N_FEATURES), np.nan)
    status = np.full(n_cust * n_snap, ACTIVE, dtype=np.int8)
    g0 = snap_month.min() - 12 if n_snap else 0
    for c in prange(n_cust):  # customers are independent: rows of out are disjoint
        b0, b1, p0, p1 = b_start[c], b_start[c + 1], p_start[c], p_start[c + 1]
        (order, issued, month, due, amount, cum_billed, settled, paid_by_due, pay_day, pay_amount,
         cum_paid) = _customer_ledger(b_issued[b0:b1], b_month[b0:b1], b_due[b0:b1], b_amount[b0:b1],
                                      p_day[p0:p1], p_amount[p0:p1])  # fmt: skip
        kwh = b_kwh[b0:b1][order]
        # Days past due at every month end a snapshot window can reach.
        g1 = snap_month.max()
        grid_dpd = np.zeros(g1 - g0 + 1, dtype=np.int64)
        for m in range(g0, g1 + 1):
            grid_dpd[m - g0] = _state(month_end[m - month_base], issued, due, amount, cum_billed, pay_day,
                                      cum_paid)[2]  # fmt: skip
        for s in range(n_snap):
            d = snap_day[s]
            nb = np.searchsorted(issued, d, side="right")
            row = c * n_snap + s
            start = connected[c]
            if start == MISSING:
                if nb == 0:
                    status[row] = NOT_BILLED_YET
                    continue
                start = issued[0]
            if start > d:
                status[row] = NOT_CONNECTED_YET
                continue
            if disconnected[c] != MISSING and disconnected[c] < d - grace_days:
                status[row] = DISCONNECTED
                continue
            _snapshot(out[row], d, snap_month[s], nb, start, issued, month, due, amount, kwh, cum_billed,
                      settled, paid_by_due, pay_day, pay_amount, cum_paid, grid_dpd, g0, month_end,
                      month_base, capacity[c], supply_cost[c])  # fmt: skip
    return out, status


@njit(cache=True)
def _snapshot(o, d, M, nb, start, issued, month, due, amount, kwh, cum_billed, settled, paid_by_due,
              pay_day, pay_amount, cum_paid, grid_dpd, g0, month_end, month_base, capacity, cost):  # fmt: skip
    balance, overdue, dpd, unpaid = _state(d, issued, due, amount, cum_billed, pay_day, cum_paid)
    o[I_HIST] = nb
    o[I_TENURE] = (d - start) / DAYS_PER_MONTH
    o[I_BAL] = balance
    o[I_OVERDUE] = overdue
    o[I_DPD] = dpd
    o[I_UNPAID] = unpaid
    _payment_windows(o, d, M, nb, issued, due, amount, cum_billed, settled, paid_by_due, pay_day,
                     pay_amount, cum_paid, grid_dpd, g0, month_end, month_base)  # fmt: skip
    mean12 = _consumption(o, M, nb, month, amount, kwh, capacity, cost)
    o[I_ARR_AVG] = overdue / mean12 if mean12 > TOL else np.nan


@njit(cache=True)
def _payment_windows(o, d, M, nb, issued, due, amount, cum_billed, settled, paid_by_due, pay_day,
                     pay_amount, cum_paid, grid_dpd, g0, month_end, month_base):  # fmt: skip
    settled = _settled_by(
        d, nb, issued, cum_billed, settled, pay_day, cum_paid
    )  # NEVER: unpaid at d
    last_late = MISSING
    for i in range(nb):
        if due[i] < d:
            late = settled[i] - due[i] if settled[i] <= d else d - due[i]
            if late > 0 and due[i] > last_late:
                last_late = due[i]
    o[I_SINCE_LATE] = (d - last_late) / DAYS_PER_MONTH if last_late != MISSING else np.nan
    for wi in range(len(PAY_W)):
        w = PAY_W[wi]
        lo = month_end[M - w - month_base]
        n_due = n_late = n30 = n60 = n_partial = 0
        money = on_time = 0.0
        for i in range(nb):
            if due[i] <= lo or due[i] > d:
                continue
            n_due += 1
            paid = settled[i] <= d
            late = settled[i] - due[i] if paid else d - due[i]
            n_late += late > 0
            n30 += late > 30
            n60 += late > 60
            money += amount[i]
            if paid and settled[i] <= due[i]:
                on_time += amount[i]
            n_partial += TOL < paid_by_due[i] < amount[i] - TOL
        n_rev = 0
        for j in range(len(pay_day)):
            n_rev += pay_amount[j] < 0 and lo < pay_day[j] <= d
        worst = 0
        for m in range(M - w + 1, M + 1):
            worst = max(worst, grid_dpd[m - g0])
        ix = PAY_IX[wi]
        o[ix[0]], o[ix[1]], o[ix[2]], o[ix[3]] = n_due, n_late, n30, n60
        o[ix[4]] = worst
        o[ix[5]] = on_time / money if money > TOL else np.nan
        o[ix[6]], o[ix[7]] = n_partial, n_rev
    # Delays of the bills due in the last 12 months and paid by as_of.
    lo = month_end[M - 12 - month_base]
    total = 0.0
    count = 0
    for i in range(nb):
        if lo < due[i] <= d and settled[i] <= d:
            total += settled[i] - due[i]
            count += 1
    mean = total / count if count else np.nan
    spread = 0.0
    for i in range(nb):
        if lo < due[i] <= d and settled[i] <= d:
            spread += (settled[i] - due[i] - mean) ** 2
    o[I_DELAY_MEAN] = mean
    o[I_DELAY_STD] = np.sqrt(spread / count) if count >= 2 else np.nan


@njit(cache=True)
def _consumption(o, M, nb, month, amount, kwh, capacity, cost):
    """Windows over the 12 billing months before the as_of month; returns the 12-month mean bill."""
    k12 = np.full(12, np.nan)  # slot t holds month M - 12 + t
    a12 = np.full(12, np.nan)
    last_year = np.full(3, np.nan)  # months M - 15 .. M - 13
    profit = 0.0
    zeros = 0
    for i in range(nb):
        t = month[i] - (M - 12)
        if 0 <= t < 12:
            k12[t], a12[t] = kwh[i], amount[i]
            profit += amount[i] - kwh[i] * cost
            zeros += kwh[i] == 0
        elif M - 15 <= month[i] <= M - 13:
            last_year[month[i] - (M - 15)] = kwh[i]
    o[I_KWH1], o[I_AMT1] = k12[11], a12[11]
    for wi in range(len(CONS_W)):
        w = CONS_W[wi]
        ix = CONS_IX[wi]
        _sum_mean_std(o, ix[0], ix[1], ix[2], k12[12 - w :])
        _sum_mean_std(o, ix[3], ix[4], ix[5], a12[12 - w :])
    mean12 = o[CONS_IX[len(CONS_W) - 1][4]]
    amount12 = o[CONS_IX[len(CONS_W) - 1][3]]
    o[I_REV] = amount12
    o[I_PROFIT] = profit
    o[I_MARGIN] = profit / amount12 if amount12 > TOL else np.nan
    o[I_ZERO] = zeros
    kmean = o[CONS_IX[len(CONS_W) - 1][1]]
    o[I_TREND] = _slope(k12) / kmean if kmean > 0 else np.nan
    o[I_SEASON] = np.nanmax(k12) / kmean if kmean > 0 else np.nan
    o[I_LOAD] = kmean / (capacity * HOURS_PER_MONTH) if capacity > 0 else np.nan
    recent = _nanmean(k12[9:])
    before = _nanmean(last_year)
    o[I_YOY] = recent / before - 1.0 if before > 0 else np.nan
    drop = np.nan
    for t in range(1, 12):
        if k12[t - 1] > 0 and not np.isnan(k12[t]):
            fall = max((k12[t - 1] - k12[t]) / k12[t - 1], 0.0)
            drop = fall if np.isnan(drop) else max(drop, fall)
    o[I_DROP] = drop
    return mean12


@njit(cache=True)
def _nanmean(x):
    total = 0.0
    n = 0
    for v in x:
        if not np.isnan(v):
            total += v
            n += 1
    return total / n if n else np.nan


@njit(cache=True)
def _sum_mean_std(o, i_sum, i_mean, i_std, x):
    total = 0.0
    n = 0
    for v in x:
        if not np.isnan(v):
            total += v
            n += 1
    o[i_sum] = total
    if n == 0:
        return
    mean = total / n
    o[i_mean] = mean
    if n >= 2:
        spread = 0.0
        for v in x:
            if not np.isnan(v):
                spread += (v - mean) ** 2
        o[i_std] = np.sqrt(spread / n)


@njit(cache=True)
def _slope(y):
    """Least-squares slope of the present values against their slot (nan with fewer than 3)."""
    n = 0
    sx = sy = 0.0
    for t in range(len(y)):
        if not np.isnan(y[t]):
            n += 1
            sx += t
            sy += y[t]
    if n < 3:
        return np.nan
    mx, my = sx / n, sy / n
    num = den = 0.0
    for t in range(len(y)):
        if not np.isnan(y[t]):
            num += (t - mx) * (y[t] - my)
            den += (t - mx) ** 2
    return num / den


@njit(cache=True, parallel=True)
def compute_labels(
    b_start, b_issued, b_month, b_due, b_amount, p_start, p_day, p_amount,
    snap_month, month_end, month_base, horizon, dpd_threshold, min_amount, last_month,
):  # fmt: skip
    """In arrears within the horizon: ``labels[c * S + s]`` is 1, 0, or -1 when not observable.

    A customer is in arrears for snapshot month ``M`` when, at some month end of months
    ``M+1 .. M+horizon``, its days past due reach ``dpd_threshold`` with overdue arrears of at
    least ``min_amount``. Snapshots whose horizon ends after ``last_month`` (the last month
    end the data covers) are -1.
    """
    n_cust = len(b_start) - 1
    n_snap = len(snap_month)
    labels = np.full(n_cust * n_snap, -1, dtype=np.int8)
    for c in prange(n_cust):
        b0, b1, p0, p1 = b_start[c], b_start[c + 1], p_start[c], p_start[c + 1]
        (_, issued, month, due, amount, cum_billed, settled, paid_by_due, pay_day, pay_amount, cum_paid) = (
            _customer_ledger(b_issued[b0:b1], b_month[b0:b1], b_due[b0:b1], b_amount[b0:b1],
                             p_day[p0:p1], p_amount[p0:p1])
        )  # fmt: skip
        for s in range(n_snap):
            M = snap_month[s]
            if M + horizon > last_month:
                continue
            hit = 0
            for m in range(M + 1, M + horizon + 1):
                _, overdue, dpd, _ = _state(month_end[m - month_base], issued, due, amount, cum_billed,
                                            pay_day, cum_paid)  # fmt: skip
                if dpd >= dpd_threshold and overdue >= min_amount:
                    hit = 1
                    break
            labels[c * n_snap + s] = hit
    return labels
