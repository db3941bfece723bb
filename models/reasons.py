"""Reason codes: SHAP contributions grouped by cause, in words a credit officer can say.

A versioned catalog maps every feature of the arrears model to a cause; each cause has a
code and a text template in English and Chinese, filled with the customer's own values.
A customer's reasons are the causes whose summed contributions raise its risk most; a cause
that lowers the risk is never a reason.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

CATALOG_VERSION = "2026.11-1"
OTHER = "R99"


def _pos(name: str, above: float = 0.0):
    return lambda r: _num(r, name) > above


def _neg(name: str, below: float):
    return lambda r: _num(r, name) < below


def _num(row: pd.Series, name: str) -> float:
    v = row.get(name)
    try:
        return float(v) if v is not None and not pd.isna(v) else float("nan")
    except (TypeError, ValueError):
        return float("nan")


def _always(_row) -> bool:
    return True


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


def _windows(*stems: str, windows=(3, 6, 12)) -> tuple[str, ...]:
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
            *(f"kwh_{s}_{w}m" for s in ("sum", "mean", "std") for w in (3, 6, 12)),
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
            *(f"amount_{s}_{w}m" for s in ("sum", "mean", "std") for w in (3, 6, 12)),
        ),
        (
            (
                lambda r: bool(r.get("preferential_tariff")),
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


TARIFF_ZH = {
    "residential": "居民",
    "commercial": "商业",
    "industrial": "工业",
    "large_industrial": "大工业",
    "agricultural": "农业",
}


def _fill(template: str, row: pd.Series) -> str:
    values = {k: ("-" if v is None else v) for k, v in row.items()}
    values["tariff_class_zh"] = TARIFF_ZH.get(
        str(row.get("tariff_class")), str(row.get("tariff_class"))
    )
    try:
        return template.format(**values)
    except (ValueError, KeyError, TypeError):  # a value missing or not a number
        return template


def say(cause: Cause, row: pd.Series) -> tuple[str, str]:
    """The English and Chinese text of a cause for one customer."""
    for condition, en, zh in cause.texts:
        if condition(row):
            return _fill(en, row), _fill(zh, row)
    raise AssertionError("the last text of a cause has no condition")


def top_reasons(
    grouped: pd.DataFrame, features: pd.DataFrame, n: int = 3, min_contribution: float = 0.05
) -> pd.DataFrame:
    """The ``n`` causes that raise each row's risk most, with both texts; never a lowering one.

    Args:
        grouped: Per-cause contributions in log-odds (rows aligned with ``features``).
        features: The rows' feature values, to fill the templates.
        min_contribution: A cause must raise the log-odds by at least this to be a reason.

    Returns:
        One row per reason: ``row`` (position), ``rank``, ``code``, ``cause``, ``contribution``,
        ``text_en``, ``text_zh``.
    """
    values = grouped.to_numpy()
    order = np.argsort(-values, axis=1, kind="stable")[:, :n]
    out = []
    for i in np.flatnonzero(values.max(axis=1, initial=0.0) >= min_contribution):
        feats = features.iloc[i]
        for rank, j in enumerate(order[i], start=1):
            if values[i, j] < min_contribution:
                break
            cause = BY_CODE[grouped.columns[j]]
            en, zh = say(cause, feats)
            out.append((int(i), rank, cause.code, cause.name, float(values[i, j]), en, zh))
    return pd.DataFrame(
        out, columns=["row", "rank", "code", "cause", "contribution", "text_en", "text_zh"]
    )
