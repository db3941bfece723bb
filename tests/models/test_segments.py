"""The value pyramid's building blocks on small known inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.policy import CreditPolicy, PolicyError, SecurityTerms, recommend, service_levels
from models.segments import (
    TRAITS,
    SignedLog,
    abc_classes,
    make_pipeline,
    migration,
    segment_names,
    traits,
)


def test_abc_pareto_classes():
    profit = pd.Series([80.0, 10.0, 5.0, 3.0, 2.0], index=list("abcde"))
    assert abc_classes(profit, (0.8, 0.95)).tolist() == ["A", "B", "B", "C", "C"]


def test_migration_counts_and_rates():
    before = pd.Series(["A", "B", "B", "D"], index=["x", "y", "z", "w"])
    after = pd.Series(["A", "A", "B", "C", "D"], index=["x", "y", "z", "w", "new"])
    counts, rates = migration(before, after)
    assert counts.to_numpy().sum() == 4  # customers in both snapshots
    assert counts.loc["B", "A"] == 1 and counts.loc["D", "C"] == 1
    assert rates.loc["B"].sum() == pytest.approx(1.0)
    assert rates.loc["C"].isna().all()  # nobody started in C


def test_signed_log_handles_losses_and_keeps_missing_missing():
    out = SignedLog([0]).fit_transform(np.array([[-np.e + 1, 5.0], [np.nan, 1.0]]))
    np.testing.assert_allclose(out, [[-1.0, 5.0], [np.nan, 1.0]])


def test_missing_behaviour_is_not_read_as_bad():
    # customers with no bill due have no on-time share: imputed with the median, they fall
    # with the typical payers, never with the late ones (a 0 would have made them "late")
    rng = np.random.default_rng(1)
    on_time = np.r_[rng.uniform(0.9, 1.0, 900), rng.uniform(0.0, 0.1, 300), [np.nan] * 100]
    kwh = rng.lognormal(6, 0.3, len(on_time))
    X = np.column_stack([kwh, on_time])
    pipe = make_pipeline(["kwh_mean_12m", "on_time_share_12m"], ["kwh_mean_12m"], 2, 0).fit(X)
    label = pipe.predict(X)
    late, missing = label[900:1200], label[1200:]
    assert np.bincount(missing).argmax() != np.bincount(late).argmax()


def test_segments_are_named_by_their_profile():
    frame = pd.DataFrame(
        {
            "kwh_mean_12m": [10.0, 11, 12, 500, 510, 520, 100, 101, 102],
            "on_time_share_12m": [1.0, 1, 1, 0.1, 0.2, 0.1, 0.6, 0.7, 0.6],
        }
    )
    names = segment_names(frame, np.repeat([0, 1, 2], 3), list(frame.columns))
    assert names == {
        0: "small consumer, pays on time",
        1: "large consumer, pays late",
        2: "typical",
    }


def test_pipeline_is_deterministic():
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.lognormal(5, 2, 2000), rng.uniform(0, 1, 2000)])
    a = make_pipeline(["p", "s"], ["p"], 4, 1).fit(X).predict(X)
    b = make_pipeline(["p", "s"], ["p"], 4, 1).fit(X).predict(X)
    assert np.array_equal(a, b)


def test_policy_sizes_security_and_never_acts_on_an_incomplete_ledger():
    policy = CreditPolicy(
        service={"A": "account manager", "C": "standard", "D": "self-service"},
        credit_action={"C": "security", "B": "payment_reminder", "AA": "none"},
        security=SecurityTerms(months_of_bills=2, round_to=100, minimum=200, guarantee_above=5000),
    )
    tier = pd.Series(["D", "C", "D", "A", "C", "D"])
    grade = pd.Series(["C", "C", "C", "C", "B", "AA"])
    bill = np.array([40.0, 1234.0, 9000.0, 9000.0, 500.0, 100.0])
    gaps = np.array([0, 0, 0, 0, 2, 3])
    out = recommend(tier, grade, policy, bill, gaps)
    assert out["credit_action"].tolist() == [
        "deposit",  # 2 x 40 = 80, at least the minimum 200
        "deposit",  # 2 x 1,234 = 2,468, rounded up to 2,500
        "bank_guarantee",  # 18,000 is above guarantee_above
        "account_manager_review",  # a tier A customer: the account manager decides
        "review_incomplete_records",  # a reminder on an incomplete ledger: a review instead
        "none",  # nothing asked: an incomplete ledger changes nothing
    ]
    assert out["security_amount"].tolist()[:4] == [200.0, 2500.0, 18000.0, 18000.0]
    assert out["security_amount"].iloc[4:].isna().all()
    assert out["service_level"].tolist()[:2] == ["self-service", "standard"]
    with pytest.raises(PolicyError, match=r"tier\(s\) \['B'\]"):
        recommend(pd.Series(["B"]), pd.Series(["C"]), policy)


def test_a_reminder_comes_before_security_until_the_records_show_a_serious_lapse():
    terms = SecurityTerms(reminder_first_below_dpd=30)
    late = np.array([1, 0, 1, 2, 1, np.nan])
    worst = np.array([12, 0, 31, 12, np.nan, 5])
    first = terms.reminder_first(late, worst)
    # one bill 12 days late; nothing late; one bill 31 days past due; two late bills; unknown
    assert first.tolist() == [True, True, False, False, False, False]
    assert not SecurityTerms(reminder_first_below_dpd=0).reminder_first(late, worst).any()
    policy = CreditPolicy({"D": "self"}, {"C": "security", "A": "none"}, terms)
    out = recommend(
        pd.Series(["D"] * 3), pd.Series(["C", "C", "A"]), policy, np.array([500.0] * 3),
        None, np.array([True, False, True]),
    )  # fmt: skip
    assert out["credit_action"].tolist() == ["payment_reminder", "deposit", "none"]
    assert out["reminder_first"].tolist() == [True, False, False]  # only where security was due
    assert np.isnan(out["security_amount"].iloc[0]) and out["security_amount"].iloc[1] == 1000.0


@pytest.mark.parametrize("criterion", ["silhouette", "bic"])
def test_choose_k_finds_well_separated_groups(criterion):
    from models.segments import choose_k

    rng = np.random.default_rng(4)
    centres = np.array([[0, 0], [10, 0], [0, 10]])
    X = np.vstack([c + rng.normal(0, 0.5, (300, 2)) for c in centres])
    k, scores = choose_k(X, range(2, 6), criterion, 900, 0, [])
    assert k == 3 and set(scores) == {2, 3, 4, 5}


def test_a_segment_s_traits_add_their_service_to_the_tier_s():
    assert traits("large consumer, seasonal, pays late (3)") == [
        "large consumer",
        "seasonal",
        "pays late",
    ]
    assert traits("typical") == ["typical"] and traits(None) == []
    assert set(traits("pays on time")) <= set(TRAITS)
    service = {"A": "account manager", "D": "self-service"}
    added = {"pays late": "reminder call", "seasonal": "budget billing"}
    tier = pd.Series(["A", "D", "D", None])
    segment = pd.Series(["seasonal, pays late (2)", "pays on time", None, "pays late"])
    levels = service_levels(tier, segment, service, added)
    # in the order the name says the traits; no trait, no segment or no tier: the tier's alone
    assert levels.tolist() == [
        "account manager; budget billing; reminder call",
        "self-service",
        "self-service",
        None,
    ]
    assert service_levels(tier, None, service, added).tolist()[:2] == [
        "account manager",
        "self-service",
    ]
    policy = CreditPolicy(service, {"C": "security"}, segment_service=added)
    out = recommend(tier[:2], pd.Series(["C", "C"]), policy, segment=segment[:2])
    assert out["service_level"].tolist() == levels.tolist()[:2]


def test_every_pyramid_label_sits_inside_its_bar_in_a_colour_that_shows():
    """Tier A's bar is the narrowest: its label used to run past both ends, white on white."""
    import matplotlib.colors as mcolors
    from matplotlib.patches import Rectangle

    from models.plots import pyramid

    profiles = pd.DataFrame(
        {"customers": [124, 546, 5707, 12393], "share_of_customers": [0.007, 0.029, 0.304, 0.66],
         "share_of_profit": [0.491, 0.301, 0.154, 0.054]},
        index=["A", "B", "C", "D"],
    )  # fmt: skip
    fig = pyramid(profiles)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    bars = [p for p in ax.patches if isinstance(p, Rectangle)]
    assert len(bars) == len(ax.texts) == 4
    for bar, text in zip(bars, ax.texts, strict=True):
        box, label = bar.get_window_extent(renderer), text.get_window_extent(renderer)
        assert box.x0 < label.x0 and label.x1 < box.x1, text.get_text()
        r, g, b, _ = bar.get_facecolor()
        fill = 0.299 * r + 0.587 * g + 0.114 * b
        ink = sum(
            w * c
            for w, c in zip((0.299, 0.587, 0.114), mcolors.to_rgb(text.get_color()), strict=True)
        )
        assert abs(fill - ink) > 0.4, text.get_text()  # contrast between text and bar
    import matplotlib.pyplot as plt

    plt.close(fig)  # shap's beeswarm draws on the current figure: leave none open
