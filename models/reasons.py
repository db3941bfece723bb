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


@dataclass(frozen=True)
class Cause:
    """A cause of arrears risk and how to say it."""

    code: str
    name: str
    features: tuple[str, ...]
    text_en: str
    text_zh: str


def _windows(*stems: str, windows=(3, 6, 12)) -> tuple[str, ...]:
    return tuple(f"{s}_{w}m" for s in stems for w in windows)


CAUSES: tuple[Cause, ...] = (
    Cause(
        "R01",
        "current_arrears",
        ("balance", "overdue_arrears", "dpd", "unpaid_bills", "arrears_to_avg_bill"),
        "{overdue_arrears:,.0f} overdue, the oldest unpaid bill {dpd:.0f} days past due",
        "当前欠费{overdue_arrears:,.0f}元，最早一张未缴账单已逾期{dpd:.0f}天",
    ),
    Cause(
        "R02",
        "serious_late_payments",
        _windows("late30_bills", "late60_bills", "max_dpd"),
        "{late30_bills_6m:.0f} bills paid more than 30 days late in the last 6 months",
        "近6个月有{late30_bills_6m:.0f}张电费账单逾期超过30天",
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
        "{late_bills_6m:.0f} bills paid late in the last 6 months",
        "近6个月有{late_bills_6m:.0f}张电费账单逾期缴纳",
    ),
    Cause(
        "R04",
        "partial_payments",
        _windows("partial_bills"),
        "{partial_bills_6m:.0f} bills only partly paid by the due date in the last 6 months",
        "近6个月有{partial_bills_6m:.0f}张账单到期时仅部分缴纳",
    ),
    Cause(
        "R05",
        "reversed_payments",
        _windows("reversals"),
        "{reversals_12m:.0f} payments reversed or refunded in the last 12 months",
        "近12个月有{reversals_12m:.0f}笔缴费被退回或退款",
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
        "consumption fell {kwh_max_drop_12m:.0%} in its sharpest month of the last 12 months",
        "近12个月用电量单月最大降幅达{kwh_max_drop_12m:.0%}",
    ),
    Cause(
        "R07",
        "short_history",
        ("months_of_history", "tenure_months"),
        "only {months_of_history:.0f} months of billing history",
        "仅有{months_of_history:.0f}个月的缴费记录",
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
        "large bills with a thin margin ({margin_rate_12m:.1%}) under the tariff",
        "电费金额大但利润率低（{margin_rate_12m:.1%}）",
    ),
    Cause(
        "R09",
        "customer_profile",
        ("tariff_class", "industry", "region", "voltage_kv", "contract_capacity_kva"),
        "customer profile: {tariff_class}, {industry}",
        "客户类别：{tariff_class}，行业：{industry}",
    ),
    Cause(OTHER, "other_factors", (), "other factors", "其他因素"),
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


def _fill(template: str, row: pd.Series) -> str:
    values = {
        k: ("-" if v is None or (isinstance(v, float) and np.isnan(v)) else v)
        for k, v in row.items()
    }
    try:
        return template.format(**values)
    except (ValueError, KeyError, TypeError):  # a value missing or not a number: say it plainly
        return template.split("{")[0].rstrip(" :（(") or template


def top_reasons(grouped: pd.DataFrame, features: pd.DataFrame, n: int = 3) -> pd.DataFrame:
    """The ``n`` causes that raise each row's risk most, with both texts; never a lowering one.

    Args:
        grouped: Per-cause contributions (rows aligned with ``features``).
        features: The rows' feature values, to fill the templates.

    Returns:
        One row per reason: ``row`` (position), ``rank``, ``code``, ``cause``, ``contribution``,
        ``text_en``, ``text_zh``.
    """
    values = grouped.to_numpy()
    order = np.argsort(-values, axis=1, kind="stable")[:, :n]
    out = []
    for i in range(len(values)):
        feats = features.iloc[i]
        for rank, j in enumerate(order[i], start=1):
            if values[i, j] <= 0:
                break
            cause = BY_CODE[grouped.columns[j]]
            out.append(
                (
                    i,
                    rank,
                    cause.code,
                    cause.name,
                    float(values[i, j]),
                    _fill(cause.text_en, feats),
                    _fill(cause.text_zh, feats),
                )
            )
    return pd.DataFrame(
        out, columns=["row", "rank", "code", "cause", "contribution", "text_en", "text_zh"]
    )
