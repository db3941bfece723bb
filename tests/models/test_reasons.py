"""Reason codes: every feature has a cause, grouping adds up, only risk-raising causes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.catalog import FEATURES
from models.reasons import BY_CODE, OTHER, cause_of, group_by_cause, officer_context, top_reasons


def test_every_catalog_feature_belongs_to_a_named_cause():
    missing = [f.name for f in FEATURES if cause_of(f.name) == OTHER]
    assert missing == []
    assert cause_of("a_feature_of_my_own") == OTHER


def test_grouping_preserves_the_total_and_reasons_only_raise_risk():
    contrib = pd.DataFrame(
        {
            "dpd": [0.8, -0.5],
            "overdue_arrears": [0.4, -0.1],
            "late30_bills_6m": [0.3, 0.2],
            "tenure_months": [-0.2, 0.6],
            "my_flag": [0.05, 0.0],
        }
    )
    grouped = group_by_cause(contrib)
    np.testing.assert_allclose(grouped.sum(axis=1), contrib.sum(axis=1))
    assert grouped.loc[0, "R01"] == pytest.approx(1.2) and grouped.loc[0, OTHER] == 0.05
    feats = pd.DataFrame(
        {
            "dpd": [43.0, 0.0],
            "overdue_arrears": [1234.5, 0.0],
            "late30_bills_12m": [2.0, 0.0],
            "max_dpd_12m": [45.0, 0.0],
            "months_of_history": [30.0, 2.0],
            "as_of": pd.to_datetime(["2026-01-31", "2026-01-31"]),
        }
    )
    reasons = top_reasons(grouped, feats, n=3, min_contribution=0.05)
    first = reasons[reasons["row"] == 0]
    assert first["code"].tolist() == ["R01", "R02"]  # "other factors" is never a reason
    assert first["text_en"].iloc[0] == (
        "1,234.50 CNY overdue; the oldest unpaid bill was due on 2025-12-19 (43 days ago)"
    )
    assert first["text_zh"].iloc[0] == (
        "当前欠费1,234.50元；最早一张未缴账单的缴费期限为2025-12-19（已逾期43天）"
    )
    assert first["text_zh"].iloc[1] == "近12个月有2张电费账单逾期超过30天（逾期后缴清或仍未缴清）"
    second = reasons[reasons["row"] == 1]
    # the arrears cause lowers risk: never a reason; no late bill to count: R02 cannot be
    # said as a fact about this customer, so it is not a reason either (never "0 bills")
    assert second["code"].tolist() == ["R07"]
    assert second["text_zh"].iloc[0] == "迄今仅有2期电费账单"
    assert (reasons["contribution"] > 0).all()
    assert set(BY_CODE) >= set(reasons["code"])


def test_one_bill_is_said_in_the_singular():
    grouped = pd.DataFrame({"R02": [0.4, 0.3], "R03": [0.2, 0.0]}).reindex(
        columns=list(BY_CODE), fill_value=0.0
    )
    feats = pd.DataFrame({"late30_bills_12m": [1.0, 3.0], "late_bills_6m": [1.0, 0.0]})
    reasons = top_reasons(grouped, feats, n=2, min_contribution=0.05)
    assert reasons["text_en"].tolist() == [
        "1 bill more than 30 days past its due date (paid late or still unpaid) in the last 12 "
        "months",
        "1 bill not paid in full by its due date in the last 6 months",
        "3 bills more than 30 days past their due date (paid late or still unpaid) in the last "
        "12 months",
    ]
    assert reasons["text_zh"].iloc[2] == "近12个月有3张电费账单逾期超过30天（逾期后缴清或仍未缴清）"


def test_who_the_customer_is_is_context_for_the_officer_never_a_reason():
    grouped = pd.DataFrame({"R09": [0.9], "R08": [0.5], "R06": [0.3], "R03": [0.1]}).reindex(
        columns=list(BY_CODE), fill_value=0.0
    )
    feats = pd.DataFrame(
        {"kwh_yoy_change": [-0.39], "late_bills_6m": [2.0], "tariff_class": ["commercial"]}
    )
    reasons = top_reasons(grouped, feats, n=4, min_contribution=0.05)
    assert reasons["code"].tolist() == ["R06", "R03"]
    assert reasons["text_en"].iloc[0] == (
        "average monthly consumption of the last 3 months 39% lower than in the same months a "
        "year earlier"
    )
    assert reasons["text_zh"].iloc[0] == "近3个月月均用电量较去年同期下降39%"  # no double negative
    (context,) = officer_context(grouped, 0.05)
    assert context == "R09 customer_profile +0.90; R08 thin_margin_preferential_tariff +0.50"


def test_a_value_on_a_rounding_boundary_is_said_the_same_from_either_computation():
    grouped = pd.DataFrame({"R06": [0.5, 0.5]}).reindex(columns=list(BY_CODE), fill_value=0.0)
    # -0.125 from one sum, -0.12500000000000003 from another: the same fact (unsettled, the
    # second would be said "13%")
    feats = pd.DataFrame({"kwh_yoy_change": [-0.125, -0.12500000000000003]})
    texts = top_reasons(grouped, feats, n=1, min_contribution=0.05)["text_en"].tolist()
    assert texts[0] == texts[1] and "12%" in texts[0]
