"""Exact TreeSHAP contributions of the arrears model, from LightGBM's native algorithm.

LightGBM's ``pred_contrib`` computes exact TreeSHAP values in log-odds: for each row, the
base value (the model's expected raw score) plus the contributions equals the raw score.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.arrears import ArrearsModel


def contributions(model: ArrearsModel, X: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """Per-feature contributions (log-odds) and the base value of each row.

    Raises:
        AssertionError: additivity fails (base + contributions != raw score) beyond 1e-6.
    """
    raw = model.booster_.predict(X, num_iteration=model.best_iteration_, pred_contrib=True)
    contrib = pd.DataFrame(raw[:, :-1], columns=list(X.columns), index=X.index)
    base = raw[:, -1]
    gap = np.abs(contrib.sum(axis=1).to_numpy() + base - model.predict_margin(X)).max(initial=0.0)
    assert gap < 1e-6, f"SHAP additivity broken by {gap}"
    return contrib, base
