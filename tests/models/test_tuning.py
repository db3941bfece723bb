"""The settings search: starts from the current settings, never reports worse, keeps budgets."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pandas as pd
import pytest

from models.arrears import BoosterParams, infer_spec, to_matrix
from models.calibration import fold_splits
from models.tuning import SPACE, held_out_log_loss, search
from tests.conftest import THREADS


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    n = 3000
    table = pd.DataFrame(
        {
            "a": rng.normal(size=n),
            "b": rng.normal(size=n),
            "c": rng.choice(["x", "y", "z"], n),
        }
    )
    logit = -2 + 1.2 * table["a"] - 0.8 * table["b"] ** 2 + (table["c"] == "z") * 0.7
    table["bad"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    spec = infer_spec(table, "bad", [])
    y = table["bad"].to_numpy()
    splits = fold_splits(y, 3, 0)
    params = BoosterParams(n_estimators=300, early_stopping_rounds=20, threads=THREADS, seed=1)
    return to_matrix(table, spec), y, spec, splits, params


def test_the_first_trial_is_the_current_settings_and_the_best_is_no_worse(data):
    X, y, spec, splits, params = data
    result = search(X, y, spec, splits, params, trials=4, timeout=None)
    assert len(result.trials) == 4 and result.stopped_by == "trials"
    assert result.current.number == 0
    assert result.current.params == {k: v for k, v in asdict(params).items() if k in SPACE}
    loss, rounds = held_out_log_loss(params, X, y, spec, splits)
    assert result.current.log_loss == pytest.approx(loss) and result.current.rounds == rounds
    assert result.best.log_loss == min(t.log_loss for t in result.trials)
    assert result.gain >= 0
    for t in result.trials:  # every trial inside the space
        for name, (lo, hi) in SPACE.items():
            assert lo <= t.params[name] <= hi


def test_a_timeout_stops_the_search(data):
    X, y, spec, splits, params = data
    result = search(X, y, spec, splits, params, trials=1000, timeout=0.01)
    assert result.stopped_by == "timeout" and len(result.trials) < 1000


def test_the_same_seed_searches_the_same_settings(data):
    X, y, spec, splits, params = data
    a = search(X, y, spec, splits, params, trials=3, timeout=None)
    b = search(X, y, spec, splits, params, trials=3, timeout=None)
    assert [t.params for t in a.trials] == [t.params for t in b.trials]
    assert [t.log_loss for t in a.trials] == [t.log_loss for t in b.trials]
