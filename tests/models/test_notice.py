"""Notices of adverse action: every stated reason re-derived from the records, the page says
the decision, the amount, the bills and the customer's rights, in Chinese and in English."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from features.statement import facts, statement
from models.notice import NoticeTerms, evidence, of_customers, render, tables, verify
from models.policy import SecurityTerms
from models.reasons import BY_CODE, say_all

AS_OF = pd.Timestamp("2026-01-31")


@pytest.fixture(scope="module")
def ledger():
    periods = pd.period_range("2025-01", "2025-12", freq="M")
    issued = [(p + 1).start_time + pd.Timedelta(days=4) for p in periods]
    bills = pd.DataFrame(
        {
            "customer_id": "C1",
            "period": periods.astype(str),
            "kwh": 500.0,
            "amount": 250.0,
            "issued_on": issued,
            "due_date": [d + pd.Timedelta(days=15) for d in issued],
        }
    )
    # every bill paid on its due date, but 2025-09's paid 40 days late and 2025-12's unpaid:
    # oldest first, 2025-10's payment settles 2025-09 (31 days late), 2025-10 is 9 days late
    paid = bills["due_date"].copy()
    paid[8] = paid[8] + pd.Timedelta(days=40)
    payments = pd.DataFrame(
        {"customer_id": "C1", "paid_on": paid[:11], "amount": bills["amount"][:11]}
    )
    return bills, payments


def _decision(f: pd.DataFrame) -> pd.DataFrame:
    row = {"customer_id": "C1", "as_of": AS_OF, "grade": "C", "credit_action": "deposit"}
    for k, code in enumerate(("R01", "R02", "R03"), 1):
        en, zh, factual = say_all(BY_CODE[code], f, "CNY")
        assert factual[0], code
        row |= {f"reason_{k}_code": code, f"reason_{k}_en": en[0], f"reason_{k}_zh": zh[0]}
    row["security_amount"] = SecurityTerms().amount(f["amount_mean_12m"].to_numpy())[0]
    return pd.DataFrame([row])


def test_reasons_said_from_the_records_are_verified_and_a_changed_number_is_caught(ledger):
    bills, payments = ledger
    f = facts(bills, payments, AS_OF)
    assert f.loc[0, "overdue_arrears"] == 250.0 and f.loc[0, "dpd"] == 11  # due 2026-01-20
    assert f.loc[0, "late30_bills_12m"] == 1 and f.loc[0, "late_bills_6m"] == 3
    d = _decision(f)
    assert d.loc[0, "reason_1_en"] == (
        "250.00 CNY overdue; the oldest unpaid bill was due on 2026-01-20 (11 days ago)"
    )
    assert verify(d, f, 3, "CNY", SecurityTerms()).isna().all()
    tampered = d.assign(reason_3_en=d["reason_3_en"].str.replace("3 bills", "4 bills"))
    (problem,) = verify(tampered, f, 3, "CNY", SecurityTerms())
    assert problem.startswith("reason 3 [R03] says '4 bills")
    wrong_zh = d.assign(reason_2_zh="近12个月有5张电费账单逾期超过30天")
    assert verify(wrong_zh, f, 3, "CNY").notna().all()
    dearer = d.assign(security_amount=d["security_amount"] + 100)
    assert "security" in verify(dearer, f, 3, "CNY", SecurityTerms()).iloc[0]
    nobody = d.assign(customer_id="C9")
    assert verify(nobody, f, 3, "CNY").iloc[0] == "no bill in the validated records"


def test_the_notice_lists_the_bills_behind_each_reason_in_both_languages(ledger):
    bills, payments = ledger
    f = facts(bills, payments, AS_OF)
    d = _decision(f).iloc[0].to_dict() | {"monthly_bill": float(f.loc[0, "amount_mean_12m"])}
    records = evidence(statement(bills, payments, AS_OF), payments, bills, AS_OF)
    pages = {}
    for lang in ("zh", "en"):
        shown = {c: tables(records[c], "CNY", lang).get("C1") for c in records}
        reasons = [(d[f"reason_{k}_code"], d[f"reason_{k}_{lang}"], shown[d[f"reason_{k}_code"]])
                   for k in (1, 2, 3)]  # fmt: skip
        pages[lang] = render(d, reasons, lang, "CNY", SecurityTerms(), NoticeTerms())
    zh, en = pages["zh"], pages["en"]
    assert "电费保证金缴纳通知书" in zh and "500.00元" in zh  # 2 x 250, rounded to 100
    assert "Request for a security deposit" in en and "500.00 CNY" in en
    assert "GS-20260131-C1" in zh and "GS-20260131-C1" in en
    assert "第二十四条" in zh and "article 24" in en  # the right to refuse automated decisions
    # the unpaid bill and the bill paid 40 days late, with their dates
    assert re.search(r"<td>2025-12</td><td>250.00元</td><td>2026-01-20</td><td>250.00元</td>", zh)
    assert re.search(r"<td>2025-09</td><td>250.00 CNY</td><td>2025-10-20</td><td>2025-11-20</td>"
                     r"<td>31</td>", en)  # fmt: skip
    assert "尚未缴清" in zh and "not yet" in en
    text = re.sub(r"<[^>]+>", " ", zh.split("</style>")[1])
    assert not re.search(r"[A-Za-z]{3,}", text.replace("GS-20260131-C1", "")), text


@pytest.mark.parametrize("dtype", ["str", "string[python]", object])
@pytest.mark.parametrize(
    "wanted", [{"C1", "C3"}, ["C3", "C3", None], pd.Series(["C2"]), set(), ["C9"]]
)
def test_of_customers_is_pandas_isin_for_every_id_column(dtype, wanted):
    ids = pd.Series(["C1", "C2", None, "C3", "C1"], dtype=dtype)
    got = of_customers(ids, wanted)
    expected = ids.isin(list(wanted)).to_numpy(dtype=bool)  # a null id matches a null only
    assert got.dtype == bool
    np.testing.assert_array_equal(got, expected)
