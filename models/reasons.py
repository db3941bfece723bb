"""Reason codes: SHAP contributions grouped by cause, in words a credit officer can say.

A versioned catalog maps every feature of the arrears model to a cause; each cause has a
code and text templates in English and Chinese, filled with the customer's own values.
A customer's principal reasons are the causes whose summed contributions raise its risk
most, under three rules that make them fit for a notice to the customer:

- only *customer-facing* causes are reasons: statements about the customer's own bills,
  payments and consumption, which the customer can check and act on. Drivers that are not
  (tariff class, industry, region, internal margins) are shown to the officer as context
  (:func:`officer_context`), never as a reason;
- a reason is a fact: a cause is given only where a text whose condition holds on the
  customer's values can be said ("3 bills not paid in full by their due date in the last 6 months"); the general
  wording of a cause ("the timing of payments") is never a reason;
- a cause that lowers the risk is never a reason.
"""

from __future__ import annotations

import functools
import math
import string
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.catalog import CONSUMPTION_WINDOWS, PAYMENT_WINDOWS

CATALOG_VERSION = "2026.12-2"
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
    customer_facing: bool = True  # False: officer context only, never a reason


def _windows(*stems: str, windows=PAYMENT_WINDOWS) -> tuple[str, ...]:
    return tuple(f"{s}_{w}m" for s in stems for w in windows)


CAUSES: tuple[Cause, ...] = (
    Cause(
        "R01",
        "current_arrears",
        ("balance", "overdue_arrears", "dpd", "unpaid_bills", "arrears_to_avg_bill"),
        (
            (
                _pos("overdue_arrears", 0.005),
                "{overdue_arrears:,.2f} {currency} overdue; the oldest unpaid bill was due on "
                "{oldest_due} ({dpd:.0f} days ago)",
                "当前欠费{overdue_arrears:,.2f}{currency_zh}；最早一张未缴账单的缴费期限为{oldest_due}"
                "（已逾期{dpd:.0f}天）",
            ),
            (
                _pos("balance", 0.005),
                "{balance:,.2f} {currency} billed and not yet paid, not yet due",
                "尚有{balance:,.2f}{currency_zh}电费未缴（未到缴费期限）",
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
                "1 bill more than 30 days past its due date (paid late or still unpaid) in the "
                "last 12 months",
                "近12个月有1张电费账单逾期超过30天（逾期后缴清或仍未缴清）",
            ),
            (
                _pos("late30_bills_12m"),
                "{late30_bills_12m:.0f} bills more than 30 days past their due date (paid late or "
                "still unpaid) in the last 12 months",
                "近12个月有{late30_bills_12m:.0f}张电费账单逾期超过30天（逾期后缴清或仍未缴清）",
            ),
            (
                _pos("max_dpd_12m"),
                "a bill unpaid {max_dpd_12m:.0f} days after its due date at a month end of the "
                "last 12 months",
                "近12个月内某月末有账单已逾期{max_dpd_12m:.0f}天未缴清",
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
                "1 bill not paid in full by its due date in the last 6 months",
                "近6个月有1张电费账单未在缴费期限内缴清",
            ),
            (
                _pos("late_bills_6m"),
                "{late_bills_6m:.0f} bills not paid in full by their due date in the last 6 months",
                "近6个月有{late_bills_6m:.0f}张电费账单未在缴费期限内缴清",
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
                "average monthly consumption of the last 3 months {kwh_yoy_drop:.0%} lower than "
                "in the same months a year earlier",
                "近3个月月均用电量较去年同期下降{kwh_yoy_drop:.0%}",
            ),
            (
                _pos("kwh_max_drop_12m", 0.2),
                "consumption fell {kwh_max_drop_12m:.0%} from one month to the next in the last 12 "
                "months",
                "近12个月用电量环比最大降幅达{kwh_max_drop_12m:.0%}",
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
                "only {months_of_history:.0f} monthly bills issued so far",
                "迄今仅有{months_of_history:.0f}期电费账单",
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
        customer_facing=False,  # an internal margin and the tariff the utility set
    ),
    Cause(
        "R09",
        "customer_profile",
        ("tariff_class", "industry", "region", "voltage_kv", "contract_capacity_kva"),
        (
            (
                _always,
                "customer profile (tariff class, industry, region, supply)",
                "客户属性（电价类别、行业、地区、供电条件）",
            ),
        ),
        customer_facing=False,  # who the customer is, not what it did
    ),
    Cause(
        OTHER, "other_factors", (), ((_always, "other factors", "其他因素"),), customer_facing=False
    ),
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


#: Values a template may use that are derived from the features (no double negatives).
def _oldest_due(rows: pd.DataFrame) -> list[str | None]:
    """The due date of the oldest unpaid bill: as_of minus the days past due."""
    if "as_of" not in rows:
        return [None] * len(rows)
    day = pd.to_datetime(rows["as_of"]) - pd.to_timedelta(_num(rows, "dpd"), unit="D")
    text = pd.Series(day).dt.strftime("%Y-%m-%d")  # a column at a time, not per Timestamp
    return [None if pd.isna(t) else t for t in text.tolist()]


_DERIVED = {
    "kwh_yoy_drop": lambda rows: -_num(rows, "kwh_yoy_change"),
    "oldest_due": _oldest_due,
}
CURRENCY_ZH = {"CNY": "元", "RMB": "元"}


#: Decimals a number is rounded to before it is said: two computations of one fact (the
#: feature engine's, the statement's) may differ in the last bits, and a value on a rounding
#: boundary (12.5 %) would then be said "12 %" by one and "13 %" by the other.
SAID_DECIMALS = 9


def _settle(value: object) -> object:
    if isinstance(value, float | np.floating) and math.isfinite(value):  # math: no ufunc call
        return round(float(value), SAID_DECIMALS)
    return value


@functools.cache
def _positional(template: str) -> str:
    """``template`` with its named fields numbered in the order :func:`_fields` lists them
    ("{a:.1f} of {b}" -> "{0:.1f} of {1}"): the same text, filled from a tuple per row
    instead of a dict per row."""
    parts, k = [], 0
    for literal, name, spec, conversion in _FORMATTER.parse(template):
        parts.append(literal.replace("{", "{{").replace("}", "}}"))
        if not name:  # the text's end (None); "{}" is no field _fields lists
            if name == "":
                raise ValueError(f"reason template {template!r}: a field without a name")
            continue
        if "{" in (spec or "") or not name.isidentifier():
            raise ValueError(f"reason template {template!r}: field {name!r} must be plain")
        conv = f"!{conversion}" if conversion else ""
        parts.append(f"{{{k}{conv}{':' + spec if spec else ''}}}")
        k += 1
    return "".join(parts)


def _fill(template: str, rows: pd.DataFrame, said: Mapping[str, str]) -> list[str | None]:
    """The template filled with each row's values (numbers settled to :data:`SAID_DECIMALS`
    first) and the values ``said`` of every row (the currency); ``None`` where a value is
    missing."""
    names = _fields(template)
    if not names:
        return [template] * len(rows)
    columns = []
    for name in names:
        if name in said:
            column = [said[name]] * len(rows)
        elif name in _DERIVED:
            column = list(_DERIVED[name](rows))
        elif name in rows:
            column = rows[name].tolist()
        else:
            return [None] * len(rows)
        columns.append([_settle(v) for v in column])  # a column at a time: no dict per row
    fill = _positional(template).format
    out: list[str | None] = []
    for values in zip(*columns, strict=True):
        try:
            out.append(fill(*values))
        except (ValueError, KeyError, TypeError, IndexError):  # a value missing or not a number
            out.append(None)
    return out


def say_all(
    cause: Cause, rows: pd.DataFrame, currency: str = "CNY"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The English and Chinese text of a cause for each row of ``rows``, and whether it is
    a fact about the customer.

    The first text whose condition holds and whose values are all there is said; the last
    text of every cause has no condition and no value, so each row gets one: that general
    wording is not a fact (``factual`` False).
    """
    said = {"currency": currency, "currency_zh": CURRENCY_ZH.get(currency, currency)}
    en = np.full(len(rows), None, dtype=object)
    zh = np.full(len(rows), None, dtype=object)
    factual = np.zeros(len(rows), dtype=bool)
    todo = np.ones(len(rows), dtype=bool)
    last = len(cause.texts) - 1
    for i, (condition, en_t, zh_t) in enumerate(cause.texts):
        take = np.flatnonzero(todo & np.asarray(condition(rows), dtype=bool))
        if take.size == 0:
            continue
        sub = rows.iloc[take]
        e, z = _fill(en_t, sub, said), _fill(zh_t, sub, said)
        ok = np.array([a is not None and b is not None for a, b in zip(e, z, strict=True)])
        en[take[ok]] = np.asarray(e, dtype=object)[ok]
        zh[take[ok]] = np.asarray(z, dtype=object)[ok]
        factual[take[ok]] = i < last
        todo[take[ok]] = False
    if todo.any():  # a catalog defect, not an input problem: the last text has no condition
        raise RuntimeError(f"cause {cause.code}: no text could be said of {int(todo.sum())} rows")
    return en, zh, factual


def top_reasons(
    grouped: pd.DataFrame,
    features: pd.DataFrame,
    n: int,
    min_contribution: float,
    currency: str = "CNY",
) -> pd.DataFrame:
    """The principal reasons of each row: the ``n`` customer-facing causes that raise its risk
    most and can be said as facts about it, with both texts; never a lowering one.

    Vectorised by cause: the texts of one cause are filled for all its rows at once.

    Args:
        grouped: Per-cause contributions in log-odds (rows aligned with ``features``).
        features: The rows' feature values, to fill the templates.
        min_contribution: A cause must raise the log-odds by at least this to be a reason.

    Returns:
        One row per reason, ordered by row then rank: ``row`` (position), ``rank``, ``code``,
        ``cause``, ``contribution``, ``text_en``, ``text_zh``.
    """
    facing = [c for c in grouped.columns if BY_CODE[c].customer_facing]
    values = grouped[facing].to_numpy(dtype=float)
    row, col = np.nonzero(values >= min_contribution)
    contribution = values[row, col]
    codes = np.asarray(facing, dtype=object)[col]
    en = np.empty(len(row), dtype=object)
    zh = np.empty(len(row), dtype=object)
    factual = np.zeros(len(row), dtype=bool)
    for code in np.unique(codes):
        at = np.flatnonzero(codes == code)
        en[at], zh[at], factual[at] = say_all(BY_CODE[code], features.iloc[row[at]], currency)
    keep = np.flatnonzero(factual)
    order = keep[np.lexsort((-contribution[keep], row[keep]))]  # by row, then largest first
    rank = _rank_within(row[order])
    take = order[rank <= n]
    return pd.DataFrame(
        {
            "row": row[take].astype(int),
            "rank": rank[rank <= n].astype(int),
            "code": codes[take].astype(str),
            "cause": [BY_CODE[c].name for c in codes[take]],
            "contribution": contribution[take],
            "text_en": en[take].astype(str),
            "text_zh": zh[take].astype(str),
        }
    )


def _rank_within(groups: np.ndarray) -> np.ndarray:
    """1, 2, 3, ... within each run of equal values of a sorted array."""
    if len(groups) == 0:
        return np.zeros(0, dtype=int)
    starts = np.r_[0, np.flatnonzero(groups[1:] != groups[:-1]) + 1]
    first = np.repeat(starts, np.diff(np.r_[starts, len(groups)]))
    return np.arange(len(groups)) - first + 1


def officer_context(grouped: pd.DataFrame, min_contribution: float) -> np.ndarray:
    """Per row, the drivers that raise the risk but are not reasons for the customer (tariff
    class, industry, region, margins): ``"R09 customer_profile +0.29; ..."``, or None.

    Vectorised by rank: the few internal causes are ordered per row once, then joined."""
    internal = [c for c in grouped.columns if not BY_CODE[c].customer_facing]
    out = np.full(len(grouped), None, dtype=object)
    if not internal:
        return out
    values = grouped[internal].to_numpy(dtype=float)
    order = np.argsort(-values, axis=1, kind="stable")
    labels = np.array([f"{c} {BY_CODE[c].name} " for c in internal], dtype=object)
    text = np.full(len(grouped), "", dtype=object)
    for k in range(len(internal)):
        v = np.take_along_axis(values, order[:, k : k + 1], axis=1)[:, 0]
        part = labels[order[:, k]] + np.char.mod("%+.2f", v).astype(object)
        said = v >= min_contribution
        text = np.where(said, np.where(text == "", part, text + "; " + part), text)
    out[text != ""] = text[text != ""]
    return out
