"""Reason codes: SHAP contributions grouped by cause, in words a credit officer can say.

A versioned catalog maps every feature of the arrears model to a cause; each cause has a
code and a text template in English and Chinese, filled with the customer's own values.
A customer's reasons are the causes whose summed contributions raise its risk most; a cause
that lowers the risk is never a reason.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.catalog import CONSUMPTION_WINDOWS, PAYMENT_WINDOWS

CATALOG_VERSION = "2026.11-2"
OTHER = "R99"
_SUM_WINDOWS = tuple(w for w in CONSUMPTION_WINDOWS if w > 1)  # sum, mean, std over months


# A text's condition takes a frame of customers' values and says, row by row, whether the text
# can be said of them: a value that is missing never satisfies a condition.


def _num(rows: pd.DataFrame, name: str) -> np.ndarray:
    if name not in rows:
        return np.full(len(rows), np.nan)
    return pd.to_numeric(rows[name], errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _pos(name: str, above: float = 0.0):
    return lambda rows: _num(rows, name) > above


def _neg(name: str, below: float):
    return lambda rows: _num(rows, name) < below


def _one(name: str):
    return lambda rows: _num(rows, name) == 1


def _flag(name: str):
    return lambda rows: _num(rows, name) > 0


def _always(rows: pd.DataFrame) -> np.ndarray:
    return np.ones(len(rows), dtype=bool)


@dataclass(frozen=True)
class Cause:
    """A cause of arrears risk and how to say it.

    ``texts`` are tried in order: the first whose condition holds on the customer's values
    gives the English and Chinese text (so "0 bills paid late" is never said); the last has
    no condition and names the cause in general terms.
    """

    code: str
    name: str
    features: tuple[str, ...]
    texts: tuple[tuple[object, str, str], ...]


def _windows(*stems: str, windows=PAYMENT_WINDOWS) -> tuple[str, ...]:
    return tuple(f"{s}_{w}m" for s in stems for w in windows)


CAUSES: tuple[Cause, ...] = (
    Cause(
        "R01",
        "current_arrears",
        ("balance", "overdue_arrears", "dpd", "unpaid_bills", "arrears_to_avg_bill"),
        (
            (
                _pos("overdue_arrears"),
                "{overdue_arrears:,.0f} overdue, the oldest unpaid bill {dpd:.0f} days past due",
                "当前欠费{overdue_arrears:,.0f}元，最早一张未缴账单已逾期{dpd:.0f}天",
            ),
            (
                _pos("balance"),
                "an unpaid balance of {balance:,.0f}, not yet due",
                "尚有{balance:,.0f}元电费未到期未缴",
            ),
            (_always, "the state of the account's balance", "账户余额情况"),
        ),
    ),
    Cause(
        "R02",
        "serious_late_payments",
        _windows("late30_bills", "late60_bills", "max_dpd"),
        (
            (
                _one("late30_bills_12m"),
                "1 bill paid more than 30 days late in the last 12 months",
                "近12个月有1张电费账单逾期超过30天",
            ),
            (
                _pos("late30_bills_12m"),
                "{late30_bills_12m:.0f} bills paid more than 30 days late in the last 12 months",
                "近12个月有{late30_bills_12m:.0f}张电费账单逾期超过30天",
            ),
            (
                _pos("max_dpd_12m"),
                "up to {max_dpd_12m:.0f} days past due in the last 12 months",
                "近12个月最长逾期{max_dpd_12m:.0f}天",
            ),
            (_always, "the record of seriously late payments", "严重逾期记录"),
        ),
    ),
    Cause(
        "R03",
        "recent_late_payments",
        (
            *_windows("late_bills", "on_time_share"),
            "months_since_late",
            "pay_delay_mean_12m",
            "pay_delay_std_12m",
            *_windows("bills_due"),
        ),
        (
            (
                _one("late_bills_6m"),
                "1 bill paid late in the last 6 months",
                "近6个月有1张电费账单逾期缴纳",
            ),
            (
                _pos("late_bills_6m"),
                "{late_bills_6m:.0f} bills paid late in the last 6 months",
                "近6个月有{late_bills_6m:.0f}张电费账单逾期缴纳",
            ),
            (_always, "the timing of payments in the last 12 months", "近12个月的缴费时间规律"),
        ),
    ),
    Cause(
        "R04",
        "partial_payments",
        _windows("partial_bills"),
        (
            (
                _one("partial_bills_12m"),
                "1 bill only partly paid by the due date in the last 12 months",
                "近12个月有1张账单到期时仅部分缴纳",
            ),
            (
                _pos("partial_bills_12m"),
                "{partial_bills_12m:.0f} bills only partly paid by the due date in the last 12 months",
                "近12个月有{partial_bills_12m:.0f}张账单到期时仅部分缴纳",
            ),
            (_always, "how fully bills are paid by the due date", "到期缴费是否足额"),
        ),
    ),
    Cause(
        "R05",
        "reversed_payments",
        _windows("reversals"),
        (
            (
                _one("reversals_12m"),
                "1 payment reversed or refunded in the last 12 months",
                "近12个月有1笔缴费被退回或退款",
            ),
            (
                _pos("reversals_12m"),
                "{reversals_12m:.0f} payments reversed or refunded in the last 12 months",
                "近12个月有{reversals_12m:.0f}笔缴费被退回或退款",
            ),
            (_always, "reversed or refunded payments", "缴费退回记录"),
        ),
    ),
    Cause(
        "R06",
        "falling_consumption",
        (
            "kwh_trend_12m",
            "kwh_yoy_change",
            "kwh_max_drop_12m",
            "zero_kwh_months_12m",
            "kwh_1m",
            *(f"kwh_{s}_{w}m" for s in ("sum", "mean", "std") for w in _SUM_WINDOWS),
            "seasonality_ratio_12m",
            "load_factor_12m",
        ),
        (
            (
                _neg("kwh_yoy_change", -0.1),
                "consumption down {kwh_yoy_change:.0%} on the same months a year ago",
                "用电量较去年同期变化{kwh_yoy_change:.0%}",
            ),
            (
                _pos("kwh_max_drop_12m", 0.2),
                "consumption fell {kwh_max_drop_12m:.0%} in one month of the last 12",
                "近12个月用电量单月最大降幅达{kwh_max_drop_12m:.0%}",
            ),
            (_always, "changes in electricity consumption", "用电量变化"),
        ),
    ),
    Cause(
        "R07",
        "short_history",
        ("months_of_history", "tenure_months"),
        (
            (
                _neg("months_of_history", 12),
                "only {months_of_history:.0f} months of billing history",
                "仅有{months_of_history:.0f}个月的缴费记录",
            ),
            (_always, "the length of the customer relationship", "客户关系时长"),
        ),
    ),
    Cause(
        "R08",
        "thin_margin_preferential_tariff",
        (
            "profit_12m",
            "margin_rate_12m",
            "revenue_12m",
            "preferential_tariff",
            "energy_intensive",
            "amount_1m",
            *(f"amount_{s}_{w}m" for s in ("sum", "mean", "std") for w in _SUM_WINDOWS),
        ),
        (
            (
                _flag("preferential_tariff"),
                "a preferential tariff with a thin margin ({margin_rate_12m:.1%})",
                "享受优惠电价，利润率仅{margin_rate_12m:.1%}",
            ),
            (_always, "the size of the bills", "电费金额水平"),
        ),
    ),
    Cause(
        "R09",
        "customer_profile",
        ("tariff_class", "industry", "region", "voltage_kv", "contract_capacity_kva"),
        ((_always, "customer profile: {tariff_class}", "客户类别：{tariff_class}"),),
    ),
    Cause(OTHER, "other_factors", (), ((_always, "other factors", "其他因素"),)),
)
BY_CODE: dict[str, Cause] = {c.code: c for c in CAUSES}
FEATURE_CAUSE: dict[str, str] = {f: c.code for c in CAUSES for f in c.features}


def cause_of(feature: str) -> str:
    """The cause code of a feature (``R99``, other factors, for a feature not in the catalog)."""
    return FEATURE_CAUSE.get(feature, OTHER)


def group_by_cause(contrib: pd.DataFrame) -> pd.DataFrame:
    """Sum per-feature contributions (columns: features) into per-cause contributions."""
    codes = [cause_of(c) for c in contrib.columns]
    return (
        contrib.T.groupby(codes).sum().T.reindex(columns=[c.code for c in CAUSES], fill_value=0.0)
    )


_FORMATTER = string.Formatter()


def _fields(template: str) -> list[str]:
    return [name for _, name, _, _ in _FORMATTER.parse(template) if name]


def _fill(template: str, rows: pd.DataFrame) -> list[str | None]:
    """The template filled with each row's values; ``None`` where a value is missing."""
    names = _fields(template)
    if not names:
        return [template] * len(rows)
    columns = []
    for name in names:
        if name in rows:
            columns.append(rows[name].tolist())
        else:
            return [None] * len(rows)
    out: list[str | None] = []
    for values in zip(*columns, strict=True):
        try:
            out.append(template.format(**dict(zip(names, values, strict=True))))
        except (ValueError, KeyError, TypeError):  # a value missing or not a number
            out.append(None)
    return out


def say_all(cause: Cause, rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The English and Chinese text of a cause for each row of ``rows``.

    The first text whose condition holds and whose values are all there is said; the last
    text of every cause has no condition and no value, so each row gets one.
    """
    en = np.full(len(rows), None, dtype=object)
    zh = np.full(len(rows), None, dtype=object)
    todo = np.ones(len(rows), dtype=bool)
    for condition, en_t, zh_t in cause.texts:
        take = np.flatnonzero(todo & np.asarray(condition(rows), dtype=bool))
        if take.size == 0:
            continue
        sub = rows.iloc[take]
        e, z = _fill(en_t, sub), _fill(zh_t, sub)
        ok = np.array([a is not None and b is not None for a, b in zip(e, z, strict=True)])
        en[take[ok]] = np.asarray(e, dtype=object)[ok]
        zh[take[ok]] = np.asarray(z, dtype=object)[ok]
        todo[take[ok]] = False
    if todo.any():  # a catalog defect, not an input problem: the last text has no condition
        raise RuntimeError(f"cause {cause.code}: no text could be said of {int(todo.sum())} rows")
    return en, zh


def top_reasons(
    grouped: pd.DataFrame, features: pd.DataFrame, n: int, min_contribution: float
) -> pd.DataFrame:
    """The ``n`` causes that raise each row's risk most, with both texts; never a lowering one.

    Vectorised by cause: the texts of one cause are filled for all its rows at once.

    Args:
        grouped: Per-cause contributions in log-odds (rows aligned with ``features``).
        features: The rows' feature values, to fill the templates.
        min_contribution: A cause must raise the log-odds by at least this to be a reason.

    Returns:
        One row per reason, ordered by row then rank: ``row`` (position), ``rank``, ``code``,
        ``cause``, ``contribution``, ``text_en``, ``text_zh``.
    """
    values = grouped.to_numpy(dtype=float)
    n = min(n, values.shape[1])
    order = np.argsort(-values, axis=1, kind="stable")[:, :n]
    top = np.take_along_axis(values, order, axis=1)
    row, rank = np.nonzero(top >= min_contribution)  # row-major: by row, then rank
    col = order[row, rank]
    contribution = top[row, rank]
    codes = np.asarray(grouped.columns, dtype=object)[col]
    en = np.empty(len(row), dtype=object)
    zh = np.empty(len(row), dtype=object)
    for code in np.unique(codes):
        at = np.flatnonzero(codes == code)
        en[at], zh[at] = say_all(BY_CODE[code], features.iloc[row[at]])
    return pd.DataFrame(
        {
            "row": row.astype(int),
            "rank": (rank + 1).astype(int),
            "code": codes.astype(str),
            "cause": [BY_CODE[c].name for c in codes],
            "contribution": contribution,
            "text_en": en.astype(str),
            "text_zh": zh.astype(str),
        }
    )
