"""The feature catalog: complete, consistent with the engine, rendered into docs/features.md."""

from __future__ import annotations

from features.catalog import (
    BY_NAME,
    COMPUTED,
    FEATURES,
    STATIC,
    render_markdown,
)
from features.kernel import N_FEATURES
from tests.conftest import PROJECT


def test_docs_show_the_catalog():
    assert render_markdown() in (PROJECT / "docs" / "features.md").read_text()


def test_names_are_unique_and_complete():
    names = [f.name for f in FEATURES]
    assert len(names) == len(set(names))
    assert len(COMPUTED) == N_FEATURES
    assert set(STATIC) == {
        "tariff_class",
        "industry",
        "energy_intensive",
        "preferential_tariff",
        "region",
        "voltage_kv",
        "contract_capacity_kva",
    }


def test_every_feature_is_described():
    for f in FEATURES:
        assert f.description and f.window and f.group
        assert f.risk_direction in (-1, 0, 1)
        if f.kind != "numeric":
            assert f.risk_direction == 0, f.name


def test_directions_for_monotone_constraints():
    directions = {n: BY_NAME[n].risk_direction for n in ("dpd", "on_time_share_12m", "kwh_sum_12m")}
    assert directions == {"dpd": 1, "on_time_share_12m": -1, "kwh_sum_12m": 0}
    assert BY_NAME["late30_bills_6m"].risk_direction == 1
