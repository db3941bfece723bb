"""The feature engine: agrees with the pandas reference, leaks nothing, conserves money."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.catalog import COMPUTED, STATIC
from features.contract import TARIFF_CLASSES
from features.engine import (
    Snapshots,
    build_features,
    build_labels,
    features_and_inactive,
    month_ends,
    prepare,
)
from features.reference import inactive_reasons, reference_features
from tests.conftest import COSTS

BASE = pd.Timestamp("2023-01-01")
SNAPS = month_ends("2023-12-31", "2024-12-31", 6)
GRACE = 91
DATE = "datetime64[us]"


def _day(offset: int) -> pd.Timestamp:
    return BASE + pd.Timedelta(days=offset)


@st.composite
def ledgers(draw, max_customers: int = 4):
    """Random customers with gaps, odd due dates, late, partial, reversed and missing payments."""
    customers, bills, payments = [], [], []
    for c in range(draw(st.integers(1, max_customers))):
        cid = f"C{c}"
        connected = draw(st.one_of(st.none(), st.integers(-400, 600)))
        gone = draw(st.one_of(st.none(), st.integers(0, 800)))
        if connected is not None and gone is not None and gone < connected:
            gone = None
        customers.append(
            {
                "customer_id": cid,
                "tariff_class": draw(st.sampled_from(TARIFF_CLASSES)),
                "industry": draw(st.sampled_from([None, "steel", "retail"])),
                "energy_intensive": draw(st.booleans()),
                "preferential_tariff": draw(st.booleans()),
                "region": draw(st.sampled_from([None, "north"])),
                "voltage_kv": 0.4,
                "contract_capacity_kva": draw(st.sampled_from([np.nan, 50.0, 400.0])),
                "connected_on": None if connected is None else _day(connected),
                "disconnected_on": None if gone is None else _day(gone),
            }
        )
        for m in draw(st.lists(st.integers(0, 23), unique=True, max_size=24)):
            period = BASE + pd.DateOffset(months=m)
            issued = period + pd.offsets.MonthEnd(0) + pd.Timedelta(days=draw(st.integers(1, 12)))
            bills.append(
                {
                    "customer_id": cid,
                    "period": period.strftime("%Y-%m"),
                    "kwh": draw(st.integers(0, 20000)) / 10,
                    "amount": draw(st.sampled_from([0, 1, 2]) | st.integers(0, 50000)) / 100,
                    "issued_on": issued,
                    "due_date": issued + pd.Timedelta(days=draw(st.integers(0, 45))),
                }
            )
        for _ in range(draw(st.integers(0, 30))):
            amount = draw(st.integers(-30000, 60000).filter(lambda a: a != 0)) / 100
            payments.append(
                {"customer_id": cid, "paid_on": _day(draw(st.integers(0, 800))), "amount": amount}
            )
    return _frames(customers, bills, payments)


def _frames(customers, bills, payments):
    c = pd.DataFrame(customers).astype({"connected_on": DATE, "disconnected_on": DATE})
    b = pd.DataFrame(
        bills, columns=["customer_id", "period", "kwh", "amount", "issued_on", "due_date"]
    )
    p = pd.DataFrame(payments, columns=["customer_id", "paid_on", "amount"])
    b = b.astype(
        {
            "customer_id": "str",
            "period": "str",
            "kwh": float,
            "amount": float,
            "issued_on": DATE,
            "due_date": DATE,
        }
    )
    return c, b, p.astype({"customer_id": "str", "paid_on": DATE, "amount": float})


def _assert_same(engine: pd.DataFrame, reference: pd.DataFrame) -> None:
    assert sorted(engine.index) == sorted(reference.index)
    for col in COMPUTED:
        a = engine[col].reindex(reference.index).to_numpy(float)
        b = reference[col].to_numpy(float)
        assert np.array_equal(np.isnan(a), np.isnan(b)), (col, a, b)
        ok = ~np.isnan(a)
        np.testing.assert_allclose(a[ok], b[ok], rtol=1e-9, atol=1e-7, err_msg=col)


#: The pandas oracle costs about 25 ms a ledger whatever its size (pandas' per-call overhead),
#: so the tests that run it draw fewer, larger bases: as many random customers, fewer calls.
ORACLE_CUSTOMERS = 8


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ledgers(max_customers=ORACLE_CUSTOMERS))
def test_engine_matches_reference_on_random_ledgers(ledger):
    customers, bills, payments = ledger
    engine = build_features(customers, bills, payments, SNAPS, COSTS, GRACE)
    for as_of in SNAPS.as_of:
        ref = reference_features(customers, bills, payments, as_of, COSTS, GRACE)
        _assert_same(engine[engine["as_of"] == as_of].set_index("customer_id"), ref)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ledger=ledgers(), seed=st.integers(0, 2**32 - 1))
def test_row_order_of_the_extract_changes_no_feature_by_a_single_bit(ledger, seed):
    rng = np.random.default_rng(seed)
    customers, bills, payments = ledger
    same_day = payments.assign(paid_on=payments["paid_on"].min())  # ties: the hard case
    want = build_features(customers, bills, same_day, SNAPS, COSTS, GRACE)
    shuffled = [t.iloc[rng.permutation(len(t))] for t in (customers, bills, same_day)]
    got = build_features(*shuffled, SNAPS, COSTS, GRACE)
    keys = ["customer_id", "as_of"]
    got = got.sort_values(keys, ignore_index=True)
    want = want.sort_values(keys, ignore_index=True)
    pd.testing.assert_frame_equal(got, want, check_exact=True)


def _as_parquet_reads_it(frame: pd.DataFrame, dates: list[str]) -> pa.Table:
    """A frame as an Arrow table with the validated Parquet types (dates as date32)."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    for name in dates:
        i = table.schema.get_field_index(name)
        table = table.set_column(i, name, table[name].cast(pa.date32()))
    return table


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ledger=ledgers(), seed=st.integers(0, 2**32 - 1))
def test_arrow_and_pandas_inputs_give_the_kernel_the_same_arrays(ledger, seed):
    rng = np.random.default_rng(seed)
    customers, bills, payments = ledger
    bills, payments = (t.iloc[rng.permutation(len(t))] for t in (bills, payments))
    want = prepare(customers, bills, payments)
    arrow = (
        _as_parquet_reads_it(bills, ["issued_on", "due_date"]),
        _as_parquet_reads_it(payments, ["paid_on"]),
    )
    timestamps = (pa.Table.from_pandas(t, preserve_index=False) for t in (bills, payments))
    for got in (prepare(customers, *arrow), prepare(customers, *timestamps)):
        for name in ("b_start", "p_start"):
            assert np.array_equal(getattr(got, name), getattr(want, name)), name
        for table in ("bills", "payments"):
            for name, column in getattr(want, table).items():
                other = getattr(got, table)[name]
                assert other.dtype == column.dtype and not other.flags.writeable, (table, name)
                assert np.array_equal(other, column, equal_nan=True), (table, name)
    if len(bills):
        stranger = _as_parquet_reads_it(
            bills.assign(customer_id="nobody"), ["issued_on", "due_date"]
        )
        with pytest.raises(ValueError, match="bills: customer_id 'nobody' is not in the chunk"):
            prepare(customers, stranger, arrow[1])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ledgers())
def test_every_customer_is_a_row_or_has_the_reason_it_is_not(ledger):
    customers, bills, payments = ledger
    rows, inactive = features_and_inactive(prepare(customers, bills, payments), SNAPS, COSTS, GRACE)
    assert len(rows) + len(inactive) == len(customers) * len(SNAPS.as_of)
    for as_of in SNAPS.as_of:
        got = inactive[inactive["as_of"] == as_of].set_index("customer_id")["reason"]
        want = inactive_reasons(customers, bills, as_of, GRACE)
        assert got.sort_index().to_dict() == want.sort_index().to_dict(), as_of


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ledger=ledgers(max_customers=3), edit=st.data())
def test_events_after_as_of_never_change_features(ledger, edit):
    customers, bills, payments = ledger
    _, (bills2, payments2), as_of = edit.draw(future_edits_from(customers, bills, payments))
    snaps = Snapshots((as_of,))
    before = build_features(customers, bills, payments, snaps, COSTS, GRACE)
    after = build_features(customers, bills2, payments2, snaps, COSTS, GRACE)
    pd.testing.assert_frame_equal(before, after)


@st.composite
def future_edits_from(draw, customers, bills, payments):
    as_of = draw(st.sampled_from(SNAPS.as_of))
    bills, payments = bills.copy(), payments.copy()
    later_b = list(bills.index[bills["issued_on"] > as_of])
    later_p = list(payments.index[payments["paid_on"] > as_of])
    if later_b:
        bills = bills.drop(draw(st.sets(st.sampled_from(later_b))))
    if later_p:
        payments = payments.drop(draw(st.sets(st.sampled_from(later_p))))
    for i in bills.index[bills["issued_on"] > as_of]:
        bills.loc[i, "amount"] = draw(st.integers(0, 90000)) / 100
        bills.loc[i, "due_date"] = bills.loc[i, "issued_on"] + pd.Timedelta(
            days=draw(st.integers(0, 60))
        )
    for i in payments.index[payments["paid_on"] > as_of]:
        payments.loc[i, "amount"] = draw(st.integers(1, 90000)) / 100
    day = as_of + pd.Timedelta(days=draw(st.integers(1, 300)))
    cid = draw(st.sampled_from(list(customers["customer_id"])))
    used = set(bills.loc[bills["customer_id"] == cid, "period"])
    free = [
        str(p)
        for p in pd.period_range("2021-01", day.to_period("M"), freq="M")
        if str(p) not in used
    ]
    if free:  # a bill issued after as_of, possibly for an old period (a late re-bill)
        row = pd.DataFrame(
            [[cid, draw(st.sampled_from(free)), 10.0, 99.0, day, day]], columns=bills.columns
        )
        bills = pd.concat([bills, row], ignore_index=True)
    pay = pd.DataFrame([[cid, day, -draw(st.integers(1, 5000)) / 100]], columns=payments.columns)
    payments = pd.concat([payments, pay], ignore_index=True)
    return (
        customers,
        (bills.astype({"issued_on": DATE, "due_date": DATE}), payments.astype({"paid_on": DATE})),
        as_of,
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ledger=ledgers(max_customers=3), data=st.data())
def test_labels_ignore_events_after_the_horizon(ledger, data):
    customers, bills, payments = ledger
    as_of = data.draw(st.sampled_from(SNAPS.as_of))
    horizon_end = as_of + pd.offsets.MonthEnd(3)
    keep_b = bills["issued_on"] <= horizon_end
    keep_p = payments["paid_on"] <= horizon_end
    snaps = Snapshots((as_of,))
    end = pd.Timestamp("2026-01-31")
    full = build_labels(customers, bills, payments, snaps, 3, 30, 10.0, end)
    cut = build_labels(customers, bills[keep_b], payments[keep_p], snaps, 3, 30, 10.0, end)
    pd.testing.assert_frame_equal(full, cut)


def _one_customer(bills, payments):
    c = pd.DataFrame(
        [
            {
                "customer_id": "A",
                "tariff_class": "residential",
                "industry": None,
                "energy_intensive": False,
                "preferential_tariff": False,
                "region": None,
                "voltage_kv": 0.22,
                "contract_capacity_kva": np.nan,
                "connected_on": pd.Timestamp("2020-01-01"),
                "disconnected_on": pd.NaT,
            }
        ]
    )
    b = pd.DataFrame(
        bills, columns=["customer_id", "period", "kwh", "amount", "issued_on", "due_date"]
    )
    p = pd.DataFrame(payments, columns=["customer_id", "paid_on", "amount"])
    return _frames(c.to_dict("records"), b.to_dict("records"), p.to_dict("records"))


T = pd.Timestamp


def test_hand_computed_ledger():
    """Three bills of 100; paid 100 late, then 50, then a reversal of 50."""
    bills = [
        ("A", "2024-01", 200.0, 100.0, T("2024-02-03"), T("2024-02-18")),
        ("A", "2024-02", 220.0, 100.0, T("2024-03-03"), T("2024-03-18")),
        ("A", "2024-03", 180.0, 100.0, T("2024-04-03"), T("2024-04-18")),
    ]
    payments = [
        ("A", T("2024-03-25"), 100.0),
        ("A", T("2024-04-10"), 50.0),
        ("A", T("2024-04-20"), -50.0),
    ]
    c, b, p = _one_customer(bills, payments)
    f = build_features(c, b, p, Snapshots((T("2024-04-30"),)), COSTS, GRACE).iloc[0]
    assert f["balance"] == 200.0  # 300 billed, 100 paid net (100 + 50 - 50)
    assert f["overdue_arrears"] == 200.0  # bill 2 (due 03-18) and bill 3 (due 04-18) wholly unpaid
    assert f["dpd"] == 43  # oldest unpaid overdue bill due 2024-03-18
    assert f["unpaid_bills"] == 2
    assert f["late_bills_3m"] == 3  # bill 1 paid 36 days late, bills 2 and 3 unpaid past due
    assert f["late30_bills_3m"] == 2  # bill 1 (36 days) and bill 2 (43 days)
    assert f["late60_bills_3m"] == 0
    assert f["on_time_share_3m"] == 0.0
    assert f["reversals_3m"] == 1
    assert f["partial_bills_3m"] == 0  # the 50 reached bill 2 after its due date
    assert f["kwh_1m"] == 180.0 and f["kwh_sum_3m"] == 600.0
    assert f["max_dpd_3m"] == 43  # month ends: 02-29 11 days, 03-31 13 days (bill 2), 04-30 43
    assert f["months_since_late"] == pytest.approx(12 / 30.4375)  # bill 3, due 04-18, unpaid
    assert f["profit_12m"] == pytest.approx(300.0 - 600.0 * 0.45)
    labels = build_labels(c, b, p, Snapshots((T("2024-01-31"),)), 3, 30, 10.0, T("2024-12-31"))
    assert labels["in_arrears"].tolist() == [1]  # DPD 43 with 200 overdue at 2024-04-30


def test_lateness_at_its_boundaries_paid_on_the_due_day_one_day_after_30_and_31():
    """The day counts the random ledgers reach only by chance: a bill paid on its due day is
    on time, one paid a day after is late, 30 days late is not yet ``late30``, 31 is."""
    bills = [
        ("A", "2024-01", 200.0, 100.0, T("2024-02-03"), T("2024-02-18")),
        ("A", "2024-02", 200.0, 100.0, T("2024-03-03"), T("2024-03-18")),
        ("A", "2024-03", 200.0, 100.0, T("2024-04-03"), T("2024-04-18")),
        ("A", "2024-04", 200.0, 100.0, T("2024-05-03"), T("2024-05-18")),
    ]
    payments = [
        ("A", T("2024-02-18"), 100.0),  # bill 1 on its due day
        ("A", T("2024-04-17"), 100.0),  # bill 2, 30 days late
        ("A", T("2024-05-19"), 200.0),  # bill 3, 31 days late, and bill 4 (the last), 1 day
    ]
    c, b, p = _one_customer(bills, payments)
    as_of = T("2024-06-30")
    f = build_features(c, b, p, Snapshots((as_of,)), COSTS, GRACE).iloc[0]
    assert f["late_bills_3m"] == 2 and f["late30_bills_3m"] == 1  # bills 3 and 4 are due
    assert f["late_bills_6m"] == 3 and f["late30_bills_6m"] == 1 and f["late60_bills_6m"] == 0
    assert f["on_time_share_6m"] == 0.25  # only bill 1's 100 of the 400
    assert f["pay_delay_mean_12m"] == (0 + 30 + 31 + 1) / 4
    assert f["months_since_late"] == pytest.approx(43 / 30.4375)  # bill 4, a day late
    assert f["balance"] == 0.0 and f["dpd"] == 0
    ref = reference_features(c, b, p, as_of, COSTS, GRACE)
    _assert_same(pd.DataFrame([f]).set_index("customer_id"), ref)


def test_a_reversal_unsettles_the_bill_it_re_opens_until_money_covers_it_again():
    """Bill 1 paid on time, the payment bounced, then paid again: late while re-opened."""
    bills = [
        ("A", "2024-01", 200.0, 100.0, T("2024-02-03"), T("2024-02-18")),
        ("A", "2024-02", 200.0, 100.0, T("2024-03-03"), T("2024-03-18")),
    ]
    payments = [
        ("A", T("2024-02-15"), 100.0),  # bill 1, on time
        ("A", T("2024-03-05"), -100.0),  # bounced: bill 1 is owed again
        ("A", T("2024-04-10"), 200.0),  # both bills covered
    ]
    c, b, p = _one_customer(bills, payments)
    snaps = Snapshots((T("2024-03-31"), T("2024-04-30")))
    f = build_features(c, b, p, snaps, COSTS, GRACE).set_index("as_of")
    march, april = f.loc[T("2024-03-31")], f.loc[T("2024-04-30")]
    assert march["overdue_arrears"] == 200.0 and march["dpd"] == 42
    assert march["late_bills_3m"] == 2  # bill 1 re-opened (42 days), bill 2 unpaid (13 days)
    assert march["late30_bills_3m"] == 1
    assert march["on_time_share_3m"] == 0.0  # the bounced payment paid nothing
    assert np.isnan(march["pay_delay_mean_12m"])  # no bill is settled at 03-31
    assert april["late_bills_3m"] == 2 and april["late30_bills_3m"] == 1  # 52 and 23 days
    assert april["pay_delay_mean_12m"] == (52 + 23) / 2
    for day in snaps.as_of:
        ref = reference_features(c, b, p, day, COSTS, GRACE).iloc[0]
        for col in ("late_bills_3m", "late30_bills_3m", "on_time_share_3m", "pay_delay_mean_12m"):
            assert np.isclose(ref[col], f.loc[day, col], equal_nan=True), (day, col)


def test_a_payment_inside_the_horizon_can_clear_the_label():
    bills = [("A", "2024-01", 200.0, 100.0, T("2024-02-03"), T("2024-02-18"))]
    c, b, p = _one_customer(bills, [])
    snaps = Snapshots((T("2024-01-31"),))
    assert build_labels(c, b, p, snaps, 3, 30, 10.0, T("2024-12-31"))["in_arrears"].tolist() == [1]
    c, b, p = _one_customer(bills, [("A", T("2024-03-10"), 100.0)])
    assert build_labels(c, b, p, snaps, 3, 30, 10.0, T("2024-12-31"))["in_arrears"].tolist() == [0]
    # the horizon runs past the data: no label
    assert build_labels(c, b, p, snaps, 3, 30, 10.0, T("2024-03-30"))["in_arrears"].isna().all()


def test_money_is_conserved_on_generated_data(small_base, params):
    raw = small_base / "raw"
    read = lambda n: pq.read_table(raw / f"{n}.parquet").to_pandas(date_as_object=False)  # noqa: E731
    customers, bills, payments = read("customers"), read("bills"), read("payments")
    snaps = month_ends("2023-12-31", "2024-12-31", 3)
    f = build_features(customers, bills, payments, snaps, COSTS, GRACE)
    for as_of in snaps.as_of:
        billed = bills[bills["issued_on"] <= as_of].groupby("customer_id")["amount"].sum()
        paid = payments[payments["paid_on"] <= as_of].groupby("customer_id")["amount"].sum()
        expected = billed.sub(paid, fill_value=0.0)
        got = f[f["as_of"] == as_of].set_index("customer_id")["balance"]
        np.testing.assert_allclose(got, expected.reindex(got.index).fillna(0.0), atol=1e-6)
    assert f.groupby("as_of").size().min() > 2500
    assert (f["overdue_arrears"] <= f["balance"].clip(lower=0) + 1e-6).all()


def test_static_attributes_and_keys(small_base):
    raw = small_base / "raw"
    read = lambda n: pq.read_table(raw / f"{n}.parquet").to_pandas(date_as_object=False)  # noqa: E731
    customers = read("customers")
    f = build_features(
        customers,
        read("bills"),
        read("payments"),
        month_ends("2024-06-30", "2024-06-30"),
        COSTS,
        GRACE,
    )
    assert list(f.columns) == ["customer_id", "as_of", *COMPUTED, *STATIC]
    assert not f.duplicated(["customer_id", "as_of"]).any()
    merged = f.merge(customers, on="customer_id", suffixes=("", "_c"))
    assert (merged["tariff_class"] == merged["tariff_class_c"]).all()
    # New customers are rows from their first month, flagged by a short history.
    assert (f["months_of_history"] <= 2).sum() > 0


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 3), st.integers(0, 3), st.one_of(st.integers(-2, 2), st.just(np.nan))
        ),
        max_size=12,
    )
)
def test_rows_already_in_order_are_recognised_exactly(rows):
    """The engine skips the sort when the rows are in the order lexsort would give: never
    when they are not (a NaN key included: lexsort puts it last, the check never trusts it)."""
    from features.engine import _in_order, sort_order

    keys = [np.array([r[i] for r in rows], dtype=float) for i in range(3)]
    identity = np.array_equal(np.lexsort(tuple(reversed(keys))), np.arange(len(rows)))
    if _in_order(*keys):
        assert identity
    else:
        assert not identity or np.isnan(keys[2]).any()
    ordered = [k[np.lexsort(tuple(reversed(keys)))] for k in keys]
    assert _in_order(*ordered) or np.isnan(keys[2]).any()
    # and the order the engine takes is lexsort's, whichever shortcut it finds
    for used in (keys, ordered, [np.sort(keys[0]), keys[1], keys[2]]):
        got = sort_order(*used)
        want = np.lexsort(tuple(reversed(used)))
        assert np.array_equal(np.arange(len(rows)) if got is None else got, want)


def test_month_index_reads_the_string_buffer_as_the_arrow_kernels_parse_it():
    from features.engine import _month_index_of_buffer, month_index

    periods = pd.Series(["2023-01", "1999-12", "2024-10", "2026-02"] * 3)
    fast = month_index(periods)
    assert fast.tolist() == [2023 * 12, 1999 * 12 + 11, 2024 * 12 + 9, 2026 * 12 + 1] * 3
    assert month_index(pa.chunked_array([periods.tolist()[:5], periods.tolist()[5:]])).tolist() == (
        fast.tolist()
    )  # Arrow in, as read from Parquet
    sliced = pa.array(periods.tolist(), pa.string()).slice(5, 6)  # an offset into the buffer
    assert _month_index_of_buffer(sliced).tolist() == fast[5:11].tolist()
    # anything that is not DDDD-DD (other lengths, a letter, another separator) takes the
    # string kernels, which read the same months where they can
    for odd in (["2024-1", "2024-12"], ["2024/03", "2024-04"], ["20a4-03"], ["2024-03 "]):
        assert _month_index_of_buffer(pa.array(odd, pa.string())) is None, odd
    assert month_index(pd.Series(["2024-12", "2024-1"])).tolist() == [24299, 24288]
    with pytest.raises(pa.ArrowInvalid):
        month_index(pd.Series(["20a4-03"]))
