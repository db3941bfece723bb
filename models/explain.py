"""Exact TreeSHAP contributions of the arrears model, and each row's decision explained.

LightGBM's ``pred_contrib`` computes exact TreeSHAP values in log-odds: for each row, the
base value (the model's expected raw score) plus the contributions equals the raw score.
It is faster here than ``shap.TreeExplainer`` on the same model and agrees with it to
floating-point precision (benchmarks/explain.py, docs/benchmarks.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from models.arrears import ArrearsModel, to_matrix
from models.labels import feature_label, others, value_label
from models.metrics import assign_grades, expected_loss
from models.reasons import group_by_cause, top_reasons

ADDITIVITY_TOLERANCE = 1e-6


def contributions(
    model: ArrearsModel, X: pd.DataFrame, margin: np.ndarray | None = None
) -> tuple[pd.DataFrame, np.ndarray]:
    """Per-feature contributions (log-odds) and the base value of each row (``margin``: the
    rows' raw scores if already predicted, for the additivity check).

    Raises:
        RuntimeError: additivity fails (base + contributions != raw score) beyond 1e-6: a
            fault in the model or in LightGBM, never in the customer's data.
    """
    contrib, base, _, _ = _checked_contributions(model, X, margin)
    return contrib, base


def _checked_contributions(model: ArrearsModel, X: pd.DataFrame, margin: np.ndarray | None = None):
    """Contributions, base values, the booster's raw scores (``margin``: already predicted
    for these rows) and the largest additivity gap."""
    raw = model.booster_.predict(X, num_iteration=model.best_iteration_, pred_contrib=True)
    contrib = pd.DataFrame(raw[:, :-1], columns=list(X.columns), index=X.index)
    base = raw[:, -1]
    margin = model.predict_margin(X) if margin is None else np.asarray(margin, float)
    gap = float(np.abs(contrib.sum(axis=1).to_numpy() + base - margin).max(initial=0.0))
    if not gap < ADDITIVITY_TOLERANCE:
        raise RuntimeError(f"SHAP additivity broken by {gap} (tolerance {ADDITIVITY_TOLERANCE})")
    return contrib, base, margin, gap


@dataclass(frozen=True)
class Explained:
    """Rows explained: ``keys`` (one row per input row: customer_id, as_of, base_value,
    raw_score, pd, grade, exposure, expected_loss), per-feature ``contrib``, per-cause
    ``grouped`` (both aligned with keys) and ``reasons`` (``row`` points into keys)."""

    keys: pd.DataFrame
    contrib: pd.DataFrame
    grouped: pd.DataFrame
    reasons: pd.DataFrame
    additivity_gap: float = 0.0  # largest |base + Σ contributions − raw score| over the rows


def score_rows(
    model: ArrearsModel,
    rows: pd.DataFrame,
    grade_names: Sequence[str],
    grade_upper_pd: Sequence[float],
    lgd: float,
    horizon_months: int,
) -> pd.DataFrame:
    """PD, grade and expected loss of feature rows, without their SHAP contributions.

    ``rows`` is a feature table (customer_id, as_of and the model's features); expected loss
    is PD × (positive balance + mean bill of 3 months × horizon) × LGD, as in evaluation.

    Returns:
        One row per input row: customer_id, as_of, raw_score (log-odds), pd, grade,
        exposure, expected_loss.
    """
    rows = rows.reset_index(drop=True)
    X = to_matrix(rows, model.spec_)
    margin, pd_ = model.predict_scores(X)
    exposure, el = expected_loss(
        pd_,
        _column(rows, "balance"),
        _column(rows, "amount_mean_3m"),
        horizon_months,
        lgd,
    )
    return pd.DataFrame(
        {
            "customer_id": rows["customer_id"].astype(str),
            "as_of": rows["as_of"].astype("datetime64[us]"),
            "raw_score": margin,
            "pd": pd_,
            "grade": assign_grades(pd_, grade_names, grade_upper_pd).astype(str),
            "exposure": exposure,
            "expected_loss": el,
        }
    )


@dataclass(frozen=True)
class Reasons:
    """The SHAP explanation of feature rows: per-feature ``contrib`` and per-cause ``grouped``
    contributions and ``base`` values (aligned with the rows), the ``reasons`` (``row``
    points into the rows) and the largest additivity gap."""

    contrib: pd.DataFrame
    base: np.ndarray
    grouped: pd.DataFrame
    reasons: pd.DataFrame
    additivity_gap: float


def reasons_of(
    model: ArrearsModel,
    rows: pd.DataFrame,
    top_n: int,
    min_contribution: float,
    currency: str = "CNY",
    margin: np.ndarray | None = None,
) -> Reasons:
    """Exact TreeSHAP contributions of feature rows and their top reasons (``margin``: the
    rows' raw scores if already predicted, for the additivity check)."""
    rows = rows.reset_index(drop=True)
    X = to_matrix(rows, model.spec_)
    if len(X) == 0:  # LightGBM refuses an empty matrix
        contrib, base, gap = pd.DataFrame(columns=list(X.columns), dtype=float), np.zeros(0), 0.0
    else:
        contrib, base, _, gap = _checked_contributions(model, X, margin)
    grouped = group_by_cause(contrib)
    reasons = top_reasons(grouped, rows, top_n, min_contribution, currency)
    return Reasons(contrib, base, grouped, reasons, gap)


def explain_rows(
    model: ArrearsModel,
    rows: pd.DataFrame,
    grade_names: Sequence[str],
    grade_upper_pd: Sequence[float],
    lgd: float,
    horizon_months: int,
    top_n: int,
    min_contribution: float,
    currency: str = "CNY",
) -> Explained:
    """PD, grade, expected loss (:func:`score_rows`), SHAP contributions and top reasons
    (:func:`reasons_of`) of feature rows."""
    keys = score_rows(model, rows, grade_names, grade_upper_pd, lgd, horizon_months)
    why = reasons_of(model, rows, top_n, min_contribution, currency)
    keys.insert(2, "base_value", why.base)
    return Explained(keys, why.contrib, why.grouped, why.reasons, why.additivity_gap)


def _column(rows: pd.DataFrame, name: str) -> np.ndarray:
    if name not in rows:
        return np.zeros(len(rows))
    return pd.to_numeric(rows[name], errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def waterfall_steps(
    contrib: pd.Series,
    base: float,
    top: int = 12,
    values: pd.Series | None = None,
    lang: str = "en",
) -> pd.DataFrame:
    """The steps of a waterfall chart: the ``top`` largest contributions, the rest summed.

    Each label is the feature's readable name in ``lang`` (``models.labels``); with
    ``values`` (the row's feature values), its value too.

    Returns:
        Rows ``label``, ``contribution``, ``start``, ``end`` from the base value to the raw score.
    """
    order = contrib.abs().sort_values(ascending=False).index
    shown = contrib[order[:top]]
    rest = contrib[order[top:]].sum()
    steps = [(_label(f, values, lang), c) for f, c in shown.items()]
    if len(order) > top:
        steps.append((others(len(order) - top, lang), rest))
    out = pd.DataFrame(steps, columns=["label", "contribution"])
    out["end"] = base + out["contribution"].cumsum()
    out["start"] = out["end"] - out["contribution"]
    return out


def _label(feature: str, values: pd.Series | None, lang: str) -> str:
    name = feature_label(feature, lang)
    if values is None or feature not in values:
        return name
    return f"{name} = {value_label(values[feature], lang)}"
