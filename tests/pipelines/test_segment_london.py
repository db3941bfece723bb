"""The value pyramid on real households: a sample of the London smart-meter trial
(tests/data/london_lcl_sample/) through examples/london_to_contract.py, validate, features
and segment, as docs/segments.md runs the whole trial. Runs on any pytest-xdist worker."""

from __future__ import annotations

import logging
from datetime import date

import pytest

from tests.conftest import PROJECT, default_params, example

SAMPLE = PROJECT / "tests" / "data" / "london_lcl_sample"


def _converter():
    return example("london_to_contract")


@pytest.fixture(scope="module")
def london(tmp_path_factory):
    """(features table, params) of the sample, converted and run as docs/segments.md says."""
    from pipelines import features, validate

    root = tmp_path_factory.mktemp("london")
    (root / "raw").mkdir()
    for name, table in _converter().convert(SAMPLE).items():
        table.to_csv(root / "raw" / f"{name}.csv", index=False)
    p = default_params()
    tariffs = p.tariffs.model_copy(
        update={
            "currency": "GBP",
            "residential": p.tariffs.residential.model_copy(
                update={
                    "price_per_kwh": 0.14228,
                    "preferential_price_per_kwh": 0.14228,
                    "supply_cost_per_kwh": 0.11,
                }
            ),
        }
    )
    snaps = p.features.snapshots.model_copy(
        update={"first": date(2012, 10, 31), "last": date(2014, 1, 31)}
    )
    p = p.model_copy(update={"tariffs": tariffs}).override("features", snapshots=snaps)
    p = p.override("segment", value="profit", k_range=(4, 5), bootstrap=1)
    summary = validate.run(
        p, validate.Paths(root / "raw", root / "validated", root / "quarantine", root / "v.json")
    )
    assert summary["tables"]["bills"]["rows_quarantined"] == 0
    features.run(
        p,
        features.Paths(root / "validated", root / "features", root / "f.json", root / "quarantine"),
    )
    return root / "features" / "features.parquet", p


def _segment(london, tmp_path, **segment):
    from pipelines import segment as stage

    table, p = london
    p = p.override("segment", **segment)
    paths = stage.Paths(table, tmp_path / "out", tmp_path / "rep", tmp_path / "m.json")
    return stage.run(p, paths)


def test_real_households_give_a_pyramid_by_head_count(london, tmp_path):
    m = _segment(london, tmp_path, tier_rule="head_count", tier_shares=(0.05, 0.2, 0.5))
    assert m["pyramid"] and m["pyramid_problem"] is None
    counts = [m["tier_share_of_customers"][t] for t in "ABCD"]
    assert counts == sorted(counts) and counts[0] < 0.07
    medians = [m["median_value"][t] for t in "ABCD"]
    assert medians == sorted(medians, reverse=True)
    oot = m["out_of_time"]
    assert oot["snapshots"] >= 3 and oot["value_beats_baseline"]


def test_value_shares_on_households_say_clearly_there_is_no_pyramid(london, tmp_path, caplog):
    """At one flat tariff a household's value is its kWh: a homogeneous base has no apex, and
    the stage says so rather than calling its tiers a pyramid."""
    with caplog.at_level(logging.WARNING, logger="pipelines.segment"):
        m = _segment(london, tmp_path, tier_rule="value_share", tier_shares=(0.5, 0.8, 0.95))
    assert not m["pyramid"] and "tier" in m["pyramid_problem"]
    assert "not a pyramid under tier_rule value_share" in caplog.text
    assert "try segment.tier_rule: head_count" in caplog.text
