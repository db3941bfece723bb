"""Train / validation / test splits of a labelled feature table."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.errors import GridscoreError


class SplitError(GridscoreError):
    """The labelled table cannot be split as params.yaml asks (too few snapshots or rows)."""


def out_of_time_split(
    as_of: pd.Series, horizon_months: int, valid_snapshots: int, test_snapshots: int
) -> pd.Series:
    """``train`` / ``valid`` / ``test`` / ``gap`` per row, by snapshot date.

    The latest ``test_snapshots`` labelled snapshots are the test set and the
    ``valid_snapshots`` before them the validation set (early stopping, calibration). A
    snapshot whose label horizon reaches into a later set's first snapshot is left out
    (``gap``), so no outcome window overlaps the next set's observation date.
    """
    dates = sorted(pd.to_datetime(as_of.unique()))
    if len(dates) < test_snapshots + valid_snapshots + 1:
        raise SplitError(
            f"out-of-time split needs over {test_snapshots + valid_snapshots} labelled snapshots, "
            f"found {len(dates)}; use split.kind: random for a table with few snapshots"
        )
    test = dates[-test_snapshots:]
    before_test = [d for d in dates if d + pd.offsets.MonthEnd(horizon_months) <= test[0]]
    valid = before_test[-valid_snapshots:]
    if len(valid) < valid_snapshots:
        raise SplitError("not enough snapshots before the test set for the validation set")
    train = [d for d in before_test if d + pd.offsets.MonthEnd(horizon_months) <= valid[0]]
    if not train:
        raise SplitError("no snapshot is left for training after the validation and test sets")
    role = {
        **dict.fromkeys(train, "train"),
        **dict.fromkeys(valid, "valid"),
        **dict.fromkeys(test, "test"),
    }
    return pd.to_datetime(as_of).map(role).fillna("gap").astype(str)


def random_split(n: int, test_share: float, seed: int, y: np.ndarray) -> pd.Series:
    """``train`` / ``test`` per row, stratified by class and seeded (a table with a single
    snapshot). ``test_share`` 0 holds nothing out: the model is then judged by
    cross-validation on the training rows (``models.arrears.ArrearsModel.fit_cv``)."""
    rng = np.random.default_rng(seed)
    role = np.full(n, "train", dtype=object)
    for cls in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == cls))
        role[idx[: int(round(test_share * len(idx)))]] = "test"
    return pd.Series(role, dtype=str)
