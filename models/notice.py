"""The notice of an adverse action: the decision, the amount, the reasons with the bills behind
them, and the customer's rights, in Chinese and English; and the check that every reason it
states is what the customer's own records say.

A customer asked for a deposit or a bank guarantee reads the notice with the bills in hand.
So before a notice is written, :func:`verify` recomputes every stated reason from the
validated bills and payments (``features.statement.facts``, not the feature engine) and says
it again with the catalogue's own templates: a reason is kept only if the records say exactly
the same words. :func:`render` then writes the notice as a printable HTML page.
"""

from __future__ import annotations

import functools
import html
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.statement import TOL, months_ago, overdue, window
from models.policy import DEPOSIT, GUARANTEE, SecurityTerms
from models.reasons import BY_CODE, CURRENCY_ZH, say_all

LANGUAGES = ("zh", "en")


@dataclass(frozen=True)
class NoticeTerms:
    """What a notice tells the customer about asking for a review (params ``policy.notice``)."""

    contact_en: str = "our customer service hotline or any service hall"
    contact_zh: str = "客服热线或任一营业厅"
    reply_days: int = 15


def of_customers(ids: pd.Series, customers) -> np.ndarray:
    """Whether each id of ``ids`` is one of ``customers`` (a set, list or column of ids):
    ``ids.isin(customers)`` as a bool array, in one Arrow kernel for string ids (pandas'
    own ``isin`` on a ``str`` column builds one Arrow scalar per value it is given, which
    on the thousands of customers of a partition costs more than the notices' pages)."""
    if not isinstance(ids.dtype, pd.StringDtype):
        return ids.isin(list(customers)).to_numpy(dtype=bool)
    wanted = pa.array(list(customers), pa.string(), from_pandas=True)
    found = pc.is_in(pa.array(ids.array), value_set=wanted)
    return pc.fill_null(found, False).to_numpy(zero_copy_only=False)


# ---------------------------------------------------------------- the check


def verify(
    decisions: pd.DataFrame,
    facts: pd.DataFrame,
    top_n: int,
    currency: str,
    security: SecurityTerms | None = None,
) -> pd.Series:
    """For each decision row: ``None`` if every reason it states (both languages) and its
    security amount are what the records say, else what contradicts them.

    Args:
        decisions: Decision rows (``customer_id``, ``reason_<k>_code/en/zh``, optionally
            ``security_amount``).
        facts: ``features.statement.facts`` of the same customers at the same as_of.
        security: The terms the amount was sized with (None: the amount is not checked).
    """
    rows = decisions.reset_index(drop=True)
    known = facts.set_index("customer_id").reindex(rows["customer_id"]).reset_index()
    problems = np.full(len(rows), None, dtype=object)
    missing = known["as_of"].isna().to_numpy()
    problems[missing] = "no bill in the validated records"
    for k in range(1, top_n + 1):
        codes = rows.get(f"reason_{k}_code", pd.Series(None, index=rows.index))
        for code in codes.dropna().unique():
            at = np.flatnonzero((codes == code).to_numpy() & ~missing)
            if at.size == 0:
                continue
            en, zh, factual = say_all(BY_CODE[code], known.iloc[at], currency)
            stated_en = rows[f"reason_{k}_en"].to_numpy()[at]
            stated_zh = rows[f"reason_{k}_zh"].to_numpy()[at]
            bad = ~factual | (en != stated_en) | (zh != stated_zh)
            for i, e, s in zip(at[bad], en[bad], stated_en[bad], strict=True):
                problems[i] = problems[i] or f"reason {k} [{code}] says {s!r}; records say {e!r}"
    if security is not None and "security_amount" in rows:
        bill = known["amount_mean_12m"].fillna(known["amount_mean_3m"]).to_numpy(float)
        stated = rows["security_amount"].to_numpy(float)
        asked = ~np.isnan(stated) & ~missing
        want = security.amount(bill)
        off = asked & (np.abs(want - stated) > TOL)
        for i in np.flatnonzero(off):
            problems[i] = problems[i] or f"security {stated[i]:,.2f}; records give {want[i]:,.2f}"
    return pd.Series(problems, index=decisions.index, dtype=object)


# ---------------------------------------------------------------- the bills behind a reason


def evidence(
    statement: pd.DataFrame, payments: pd.DataFrame, bills: pd.DataFrame, as_of
) -> dict[str, pd.DataFrame]:
    """The records behind each cause, for every customer at once: by code, the bills (or
    payments, or months of consumption) a customer can look up to check the reason, one row
    per record with its ``customer_id``. Columns depend on the cause."""
    as_of = pd.Timestamp(as_of)
    st = statement
    late = overdue(st, as_of)
    owing = st[st["owed"] > 0]
    no_overdue = ~of_customers(owing["customer_id"], late["customer_id"])  # "billed, not yet due"
    r01 = pd.concat([late, owing[no_overdue]]).sort_index()
    r01 = r01.assign(days_past_due=(as_of - r01["due_date"]).dt.days.clip(lower=0))
    w12, w6 = window(st, as_of, 12), window(st, as_of, 6)
    serious = w12["days_late"] > 30
    some = serious.groupby(w12["customer_id"]).transform("any")
    r02 = w12[serious | (~some & (w12["days_late"] > 0))]  # the worst, or every late one
    part = (w12["paid_by_due"] > TOL) & (w12["paid_by_due"] < w12["amount"] - TOL)
    p = payments.assign(paid_on=pd.to_datetime(payments["paid_on"]).astype("datetime64[us]"))
    lo = as_of + pd.offsets.MonthEnd(-12)
    rev = p[(p["amount"] < 0) & (p["paid_on"] > lo) & (p["paid_on"] <= as_of)]
    b = bills.assign(issued_on=pd.to_datetime(bills["issued_on"]))
    b = b[b["issued_on"] <= as_of]
    ago = months_ago(b["period"], as_of)
    bill = ["customer_id", "period", "amount", "due_date"]
    return {
        "R01": r01[[*bill, "owed", "days_past_due"]],
        "R02": r02[[*bill, "settled_on", "days_late"]],
        "R03": w6[w6["days_late"] > 0][[*bill, "settled_on", "days_late"]],
        "R04": w12[part][[*bill, "paid_by_due"]],
        "R05": rev.sort_values(["customer_id", "paid_on"])[["customer_id", "paid_on", "amount"]],
        "R06": b[(ago >= 1) & (ago <= 15)].sort_values(["customer_id", "period"])[
            ["customer_id", "period", "kwh"]
        ],
        "R07": st[["customer_id", "period", "amount", "issued_on"]],
    }


# ---------------------------------------------------------------- the page

TEXT = {
    "en": {
        "title": {
            DEPOSIT: "Request for a security deposit",
            GUARANTEE: "Request for a bank guarantee",
        },
        "ask": {
            DEPOSIT: "we ask you to pay a security deposit of",
            GUARANTEE: "we ask you to provide a bank guarantee of",
        },
        "customer": "Customer",
        "as_of": "Records up to",
        "ref": "Reference",
        "dear": "Dear customer,",
        "basis": "Based on the billing and payment records of your account up to {as_of}, {ask} "
        "<b>{amount}</b>.",
        "sizing": "The amount is {months:g} months of your average monthly bill of the last 12 "
        "months ({bill}), rounded up to a multiple of {round_to}, and at least {minimum}.",
        "automated": "This decision was prepared by automated processing of your records "
        "(credit grade {grade}). The principal reasons, and the records behind each, are:",
        "rights": "Your rights",
        "review": "You may ask for this decision to be explained to you and reviewed by a member "
        "of our staff, and you may refuse a decision made solely by automated means (Personal "
        "Information Protection Law of the People's Republic of China, article 24).",
        "contest": "If a record above is wrong or incomplete (a payment you made that is not "
        "shown, a bill you dispute), tell us and show the receipt or the bill: nothing is asked "
        "of you while we check it.",
        "contact": "Contact {contact}, quoting the reference above, within {days} days of this "
        "notice.",
        "cols": {
            "period": "Bill month",
            "amount": "Amount",
            "due_date": "Due date",
            "owed": "Unpaid",
            "days_past_due": "Days past due",
            "settled_on": "Paid in full on",
            "days_late": "Days after due date",
            "paid_by_due": "Paid by the due date",
            "paid_on": "Date",
            "kwh": "kWh",
            "issued_on": "Issued on",
        },
        "unpaid": "not yet",
        "none": "(no record to list)",
    },
    "zh": {
        "title": {DEPOSIT: "电费保证金缴纳通知书", GUARANTEE: "提供银行履约保函通知书"},
        "ask": {DEPOSIT: "请您缴纳电费保证金", GUARANTEE: "请您提供银行履约保函，金额为"},
        "customer": "客户编号",
        "as_of": "记录截至",
        "ref": "通知编号",
        "dear": "尊敬的客户：",
        "basis": "根据截至{as_of}您账户的电费账单和缴费记录，{ask}<b>{amount}</b>。",
        "sizing": "该金额为您近12个月月均电费（{bill}）的{months:g}倍，"
        "按{round_to}的整数倍向上取整，且不低于{minimum}。",
        "automated": "本决定由系统根据您的记录自动评估作出（信用等级：{grade}）。"
        "主要原因及其所依据的记录如下：",
        "rights": "您的权利",
        "review": "您有权要求我们对本决定予以说明，并由工作人员进行人工复核；"
        "对于仅通过自动化决策方式作出的决定，您有权拒绝"
        "（《中华人民共和国个人信息保护法》第二十四条）。",
        "contest": "如上列记录有误或不完整（例如您已缴纳但未显示的款项、您有异议的账单），"
        "请告知我们并出示缴费凭证或账单；核实期间不要求您缴纳或提供任何款项。",
        "contact": "请于本通知发出之日起{days}日内，凭上述通知编号联系{contact}。",
        "cols": {
            "period": "账单月份",
            "amount": "金额",
            "due_date": "缴费期限",
            "owed": "未缴金额",
            "days_past_due": "已逾期天数",
            "settled_on": "缴清日期",
            "days_late": "超过期限天数",
            "paid_by_due": "期限内已缴",
            "paid_on": "日期",
            "kwh": "用电量（千瓦时）",
            "issued_on": "出账日期",
        },
        "unpaid": "尚未缴清",
        "none": "（无可列记录）",
    },
}

_STYLE = """
body { font-family: "Noto Sans CJK SC", "Noto Sans SC", "WenQuanYi Zen Hei", sans-serif;
       max-width: 46em; margin: 2em auto; line-height: 1.5; color: #111; }
h1 { font-size: 1.5em; border-bottom: 2px solid #111; padding-bottom: .3em; }
table { border-collapse: collapse; margin: .4em 0 1em; font-size: .95em; }
th, td { border: 1px solid #999; padding: .2em .6em; text-align: right; }
th { background: #eee; }
.meta td, .meta th { text-align: left; border: none; background: none; padding: .1em .8em .1em 0; }
@media print { body { margin: 1cm; max-width: none; } }
"""


def _money(value: float, currency: str, lang: str) -> str:
    unit = CURRENCY_ZH.get(currency, currency) if lang == "zh" else f" {currency}"
    return f"{value:,.2f}{unit}"


def _column(name: str, values: pd.Series, currency: str, lang: str) -> np.ndarray:
    """A column of records formatted for the page."""
    t = TEXT[lang]
    if name in ("amount", "owed", "paid_by_due"):
        unit = CURRENCY_ZH.get(currency, currency) if lang == "zh" else f" {currency}"
        numbers = values.to_numpy(dtype=float, na_value=np.nan).tolist()
        return np.array([f"{v:,.2f}{unit}" for v in numbers], dtype=object)
    if name.endswith(("_on", "_date")):
        day = pd.to_datetime(values).dt.strftime("%Y-%m-%d")
        return day.fillna(t["unpaid"]).to_numpy(dtype=object)
    if name == "kwh":
        numbers = values.to_numpy(dtype=float, na_value=np.nan).tolist()
        return np.array([f"{v:,.1f}" for v in numbers], dtype=object)
    if name.startswith("days"):
        return values.astype("int64").astype(str).to_numpy(dtype=object)
    text = [str(v) for v in values.to_numpy(dtype=object)]
    joined = "".join(text)
    if any(ch in joined for ch in "&<>\"'"):  # escaped only where there is anything to escape
        text = [html.escape(v) for v in text]
    return np.array(text, dtype=object)


def tables(records: pd.DataFrame, currency: str, lang: str) -> dict[str, str]:
    """The HTML table of each customer's records (one cause's :func:`evidence`), its rows
    in the records' order."""
    t = TEXT[lang]
    columns = [c for c in records.columns if c != "customer_id"]
    head = "<tr>" + "".join(f"<th>{t['cols'][c]}</th>" for c in columns) + "</tr>"
    if records.empty:
        return {}
    cells = [_column(c, records[c], currency, lang) for c in columns]
    row = np.full(len(records), "<tr>", dtype=object)
    for col in cells:
        row = row + "<td>" + col + "</td>"
    row = (row + "</tr>").tolist()
    ids = records["customer_id"].to_numpy(dtype=object)
    order = np.argsort(ids, kind="stable")  # each customer's rows together, in their order
    ids = ids[order]
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    ends = np.r_[starts[1:], len(ids)]
    rows = [row[i] for i in order.tolist()]
    return {
        ids[a]: f"<table>{head}{''.join(rows[a:b])}</table>"
        for a, b in zip(starts.tolist(), ends.tolist(), strict=True)
    }


def reference(customer_id: str, as_of) -> str:
    return f"GS-{_day(as_of, '%Y%m%d')}-{customer_id}"


@functools.lru_cache(maxsize=64)
def _day(as_of, fmt: str) -> str:
    """``as_of`` formatted (one as_of for a whole run's notices: parsed once, not per page)."""
    return pd.Timestamp(as_of).strftime(fmt)


def render(
    decision: Mapping,
    reasons: list[tuple[str, str, str | None]],
    lang: str,
    currency: str,
    security: SecurityTerms,
    terms: NoticeTerms,
) -> str:
    """The notice of one adverse action as a printable HTML page in ``lang``.

    Args:
        decision: The customer's decision row (customer_id, as_of, grade, credit_action,
            security_amount, amount_mean_12m: the bill the amount was sized on).
        reasons: (code, text in ``lang``, the HTML table of the records behind it, None:
            no record to list) of each principal reason.
    """
    if lang not in TEXT:
        raise ValueError(f"lang must be one of {sorted(TEXT)}, not {lang!r}")
    t = TEXT[lang]
    action = decision["credit_action"]
    as_of = _day(decision["as_of"], "%Y-%m-%d")
    money = lambda v: _money(v, currency, lang)  # noqa: E731
    ref = reference(decision["customer_id"], decision["as_of"])
    parts = [
        f"<h1>{t['title'][action]}</h1>",
        "<table class='meta'>"
        f"<tr><th>{t['customer']}</th><td>{html.escape(str(decision['customer_id']))}</td></tr>"
        f"<tr><th>{t['as_of']}</th><td>{as_of}</td></tr>"
        f"<tr><th>{t['ref']}</th><td>{ref}</td></tr></table>",
        f"<p>{t['dear']}</p>",
        "<p>"
        + t["basis"].format(
            as_of=as_of, ask=t["ask"][action], amount=money(decision["security_amount"])
        )
        + " "
        + t["sizing"].format(
            months=security.months_of_bills,
            bill=money(decision["monthly_bill"]),
            round_to=money(security.round_to),
            minimum=money(security.minimum),
        )
        + "</p>",
        f"<p>{t['automated'].format(grade=html.escape(str(decision['grade'])))}</p>",
        "<ol>",
    ]
    for _, text, table in reasons:
        parts.append(f"<li><p>{html.escape(text)}</p>{table or '<p>' + t['none'] + '</p>'}</li>")
    parts += [
        "</ol>",
        f"<h2>{t['rights']}</h2>",
        "<ul>",
        f"<li>{t['review']}</li>",
        f"<li>{t['contest']}</li>",
        "<li>"
        + t["contact"].format(
            contact=html.escape(terms.contact_zh if lang == "zh" else terms.contact_en),
            days=terms.reply_days,
        )
        + "</li>",
        "</ul>",
    ]
    title = f"{t['title'][action]} {ref}"
    lang_tag = "zh-CN" if lang == "zh" else "en"
    return (
        f"<!DOCTYPE html>\n<html lang='{lang_tag}'><head><meta charset='utf-8'>"
        f"<title>{title}</title><style>{_STYLE}</style></head><body>\n"
        + "\n".join(parts)
        + "\n</body></html>\n"
    )
