"""The statement of account agrees, bill by bill, with the pandas reference's settlement."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings

from features.reference import ledger_at, paid_by_due, reference_features, settled_on
from features.statement import facts, overdue, statement
from tests.conftest import COSTS
from tests.features.test_engine import GRACE, ORACLE_CUSTOMERS, SNAPS, ledgers


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ledgers(max_customers=ORACLE_CUSTOMERS))
def test_statement_settles_every_bill_as_the_reference(ledger):
    _, bills, payments = ledger
    for as_of in SNAPS.as_of:
        b = bills[bills["issued_on"] <= as_of].copy()
        p = payments[payments["paid_on"] <= as_of]
        got = statement(bills, payments, as_of)
        assert len(got) == len(b)
        b["settled"] = settled_on(b, p)
        b["paid_by_due"] = paid_by_due(b, p)
        ref = b.sort_values(["customer_id", "issued_on", "period"], kind="stable")
        np.testing.assert_array_equal(
            got["settled_on"].to_numpy("datetime64[us]"), ref["settled"].to_numpy("datetime64[us]")
        )
        np.testing.assert_allclose(got["paid_by_due"], ref["paid_by_due"], atol=1e-9)
        now = ledger_at(b, p, as_of)
        late = overdue(got, as_of)
        arrears = late.groupby("customer_id")["owed"].sum().reindex(now.index).fillna(0.0)
        np.testing.assert_allclose(arrears, now["overdue_arrears"], atol=1e-7)
        dpd = (as_of - late["due_date"]).dt.days.groupby(late["customer_id"]).max()
        np.testing.assert_array_equal(dpd.reindex(now.index).fillna(0.0), now["dpd"])


def test_a_bill_short_paid_then_made_up_is_settled_the_day_it_is_covered():
    day = pd.Timestamp
    bills = pd.DataFrame(
        {
            "customer_id": "C1",
            "period": ["2025-01", "2025-02"],
            "amount": [100.0, 50.0],
            "issued_on": [day("2025-02-03"), day("2025-03-03")],
            "due_date": [day("2025-02-20"), day("2025-03-20")],
        }
    )
    payments = pd.DataFrame(
        {
            "customer_id": "C1",
            "paid_on": [day("2025-02-18"), day("2025-03-25")],
            "amount": [60.0, 90.0],
        }
    )
    got = statement(bills, payments, day("2025-03-31")).set_index("period")
    assert got.loc["2025-01", "paid_by_due"] == 60.0
    assert got.loc["2025-01", "settled_on"] == day("2025-03-25")
    assert got.loc["2025-01", "days_late"] == 33
    assert got.loc["2025-02", "owed"] == 0.0 and got.loc["2025-02", "days_late"] == 5
    early = statement(bills, payments, day("2025-03-21")).set_index("period")
    assert early.loc["2025-01", "owed"] == 40.0 and early.loc["2025-02", "owed"] == 50.0
    assert early.loc["2025-01", "days_late"] == 29  # unpaid: counted to as_of


def test_a_bounced_payment_leaves_the_bill_owed_and_unsettled_on_the_statement():
    day = pd.Timestamp
    bills = pd.DataFrame(
        {
            "customer_id": "C1",
            "period": ["2025-01", "2025-02"],
            "amount": [100.0, 100.0],
            "issued_on": [day("2025-02-03"), day("2025-03-03")],
            "due_date": [day("2025-02-18"), day("2025-03-18")],
        }
    )
    payments = pd.DataFrame(
        {
            "customer_id": "C1",
            "paid_on": [day("2025-02-15"), day("2025-03-05"), day("2025-04-10")],
            "amount": [100.0, -100.0, 200.0],
        }
    )
    march = statement(bills, payments, day("2025-03-31")).set_index("period")
    assert march.loc["2025-01", "owed"] == 100.0
    assert pd.isna(march.loc["2025-01", "settled_on"])  # not both settled and owed
    assert march.loc["2025-01", "days_late"] == 41  # counted to as_of
    assert march.loc["2025-01", "paid_by_due"] == 100.0  # it was paid by its due date
    april = statement(bills, payments, day("2025-04-30")).set_index("period")
    assert april.loc["2025-01", "settled_on"] == day("2025-04-10")
    assert april.loc["2025-01", "days_late"] == 51
    assert (april["owed"] == 0).all()


FACTS = (
    "overdue_arrears",
    "dpd",
    "late_bills_6m",
    "late_bills_12m",
    "late30_bills_12m",
    "max_dpd_12m",
    "partial_bills_12m",
    "reversals_12m",
    "months_of_history",
    "kwh_yoy_change",
    "kwh_max_drop_12m",
    "balance",
    "amount_mean_3m",
    "amount_mean_12m",
)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ledgers(max_customers=ORACLE_CUSTOMERS))
def test_facts_restate_the_features_the_reasons_quote(ledger):
    customers, bills, payments = ledger
    as_of = SNAPS.as_of[-1]
    ref = reference_features(customers, bills, payments, as_of, COSTS, GRACE)
    got = facts(bills, payments, as_of).set_index("customer_id")
    billed = ref.index[ref["months_of_history"] > 0]  # the active customers with a bill
    assert set(billed) <= set(got.index)
    for col in FACTS:
        a, b = got[col].reindex(billed).to_numpy(float), ref.loc[billed, col].to_numpy(float)
        assert np.array_equal(np.isnan(a), np.isnan(b)), (col, a, b)
        np.testing.assert_allclose(a[~np.isnan(a)], b[~np.isnan(b)], atol=1e-7, err_msg=col)
