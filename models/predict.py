"""A feature table scored by the arrears model alone: PD, grade, raw score and reasons.

For any table under the feature-table contract (docs/arrears_model.md), including one a
utility brings of its own: no value tier, no policy, no ledger. The reasons are the
features that raise the log-odds most (exact TreeSHAP, ``models.explain.contributions``),
each with its value and, for a feature of the catalog, its cause code; a feature of the
utility's own is named as it is.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from models.arrears import ArrearsModel, to_matrix
from models.explain import contributions
from models.metrics import assign_grades
from models.reasons import cause_of

#: Columns carried from the input to every scored row when present.
ID_COLUMNS = ("customer_id", "as_of")


def predict(
    model: ArrearsModel,
    table: pd.DataFrame,
    grade_names: Sequence[str],
    grade_upper_pd: Sequence[float],
    reasons: int = 0,
    min_contribution: float = 0.05,
) -> pd.DataFrame:
    """One row per input row: the id columns present, ``pd`` (calibrated), ``grade``,
    ``raw_score`` (log-odds of the booster) and, with ``reasons`` > 0, for k = 1..reasons
    ``reason_k_feature``, ``reason_k_value``, ``reason_k_contribution`` (log-odds) and
    ``reason_k_code`` (the catalog's cause, R99 for a feature of one's own). A reason must
    raise the log-odds by at least ``min_contribution``; fewer leave the rest empty.

    Raises:
        models.arrears.FeatureMismatchError: a feature of the model is absent or mistyped.
    """
    table = table.reset_index(drop=True)
    X = to_matrix(table, model.spec_)
    margin, pd_ = model.predict_scores(X)
    out = table[[c for c in ID_COLUMNS if c in table.columns]].copy()
    out["pd"] = pd_
    out["grade"] = assign_grades(pd_, grade_names, grade_upper_pd).astype(str)
    out["raw_score"] = margin
    if reasons > 0:
        contrib, _ = contributions(model, X, margin)
        out = pd.concat([out, _top_features(contrib, table, reasons, min_contribution)], axis=1)
    return out


def _top_features(contrib: pd.DataFrame, table: pd.DataFrame, n: int, floor: float) -> pd.DataFrame:
    """The ``n`` features raising each row's log-odds most (at least ``floor``)."""
    names = np.asarray(contrib.columns)
    values = contrib.to_numpy()
    order = np.argsort(-values, axis=1, kind="stable")[:, :n]
    rows = np.arange(len(values))[:, None]
    top = values[rows, order]
    keep = top >= floor
    cols: dict[str, object] = {}
    for k in range(order.shape[1]):
        feature = np.where(keep[:, k], names[order[:, k]], None)
        shown = [None if f is None else _shown(table.at[i, f]) for i, f in enumerate(feature)]
        cols[f"reason_{k + 1}_feature"] = pd.array(feature, dtype="str")
        cols[f"reason_{k + 1}_value"] = pd.array(shown, dtype="str")
        cols[f"reason_{k + 1}_contribution"] = np.where(keep[:, k], top[:, k], np.nan)
        cols[f"reason_{k + 1}_code"] = pd.array(
            [None if f is None else cause_of(f) for f in feature], dtype="str"
        )
    return pd.DataFrame(cols)


def _shown(value) -> str | None:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return "missing"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)
