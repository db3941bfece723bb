"""Credit-risk metrics, curves, grades and expected loss: arrays in, numbers and tables out."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import beta
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    log_loss,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)


def ks_statistic(y: np.ndarray, p: np.ndarray) -> float:
    """Kolmogorov-Smirnov: the largest gap between the score distributions of bads and goods."""
    fpr, tpr, _ = roc_curve(y, p)
    return float(np.max(tpr - fpr))


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 20) -> float:
    """Mean |predicted - realised| over equal-count bins of the prediction, weighted by size.

    Equal-count bins, because with a few percent of bads equal-width bins put nearly every
    customer into the first bin and hide miscalibration.
    """
    order = np.argsort(p, kind="stable")
    gap = 0.0
    for chunk in np.array_split(order, bins):
        if len(chunk):
            gap += len(chunk) * abs(p[chunk].mean() - y[chunk].mean())
    return float(gap / len(p))


def top_decile_capture(y: np.ndarray, p: np.ndarray) -> float:
    """Share of all bads found among the 10 % highest scores."""
    n = max(1, int(np.ceil(0.1 * len(p))))
    top = np.argsort(-p, kind="stable")[:n]
    return float(y[top].sum() / max(y.sum(), 1))


def classification_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """AUC, Gini, KS, PR-AUC, log-loss, Brier, ECE, top-decile capture and base rates."""
    y, p = np.asarray(y, int), np.asarray(p, float)
    auc = roc_auc_score(y, p)
    return {
        "auc": float(auc),
        "gini": float(2 * auc - 1),
        "ks": ks_statistic(y, p),
        "pr_auc": float(average_precision_score(y, p)),
        "log_loss": float(log_loss(y, np.clip(p, 1e-9, 1 - 1e-9), labels=[0, 1])),
        "brier": float(brier_score_loss(y, p)),
        "ece": expected_calibration_error(y, p),
        "top_decile_capture": top_decile_capture(y, p),
        "bad_rate": float(y.mean()),
        "mean_pd": float(p.mean()),
        "n": int(len(y)),
    }


def curves(y: np.ndarray, p: np.ndarray, bins: int = 20) -> dict[str, pd.DataFrame]:
    """Data of the ROC, precision-recall, calibration, KS and gains plots."""
    y, p = np.asarray(y, int), np.asarray(p, float)
    fpr, tpr, _ = roc_curve(y, p)
    prec, rec, _ = precision_recall_curve(y, p)
    order = np.argsort(p, kind="stable")
    cal = pd.DataFrame(
        [(p[c].mean(), y[c].mean(), len(c)) for c in np.array_split(order, bins) if len(c)],
        columns=["predicted", "realised", "n"],
    )
    desc = np.argsort(-p, kind="stable")
    share = np.arange(1, len(p) + 1) / len(p)
    cum_bad = np.cumsum(y[desc]) / max(y.sum(), 1)
    cum_good = np.cumsum(1 - y[desc]) / max((1 - y).sum(), 1)
    step = max(1, len(p) // 200)  # 200 points are enough for a plot
    gains = pd.DataFrame({"population": share, "bads_captured": cum_bad, "goods": cum_good})[::step]
    ks = gains.assign(gap=gains["bads_captured"] - gains["goods"])
    return {
        "roc": _thin(pd.DataFrame({"fpr": fpr, "tpr": tpr})),
        "pr": _thin(pd.DataFrame({"recall": rec, "precision": prec})),
        "calibration": cal,
        "gains": gains[["population", "bads_captured"]].reset_index(drop=True),
        "ks": ks[["population", "bads_captured", "goods", "gap"]].reset_index(drop=True),
    }


def _thin(df: pd.DataFrame, points: int = 300) -> pd.DataFrame:
    step = max(1, len(df) // points)
    return df.iloc[::step].reset_index(drop=True)


def assign_grades(pd_: np.ndarray, names: Sequence[str], upper: Sequence[float]) -> np.ndarray:
    """Grade of each probability on the master scale: the first grade whose upper bound holds it."""
    idx = np.searchsorted(np.asarray(upper, float), np.asarray(pd_, float), side="left")
    return np.asarray(names, dtype=object)[np.minimum(idx, len(names) - 1)]


def grade_table(
    y: np.ndarray, pd_: np.ndarray, grades: np.ndarray, names: Sequence[str]
) -> pd.DataFrame:
    """Per grade: customers, share, mean predicted probability, realised arrears rate, and the
    Jeffreys test of the grade's PD (as PD back-testing does).

    ``jeffreys_p`` is the one-sided p-value that the grade's mean PD is not too low: the
    probability, under the Jeffreys posterior Beta(bads + 1/2, goods + 1/2) of the realised
    rate, that the true rate is at most the mean PD. Below 0.05 the grade underestimates its
    risk; near 1 it overestimates it.
    """
    df = pd.DataFrame({"grade": grades, "y": y, "pd": pd_})
    g = df.groupby("grade").agg(
        customers=("y", "size"),
        bads=("y", "sum"),
        mean_pd=("pd", "mean"),
        realised_rate=("y", "mean"),
    )
    g = g.reindex(list(names)).fillna({"customers": 0, "bads": 0})
    g["share"] = g["customers"] / max(len(df), 1)
    a, b = g["bads"] + 0.5, g["customers"] - g["bads"] + 0.5
    g["jeffreys_p"] = np.where(g["customers"] > 0, beta.cdf(g["mean_pd"].fillna(0), a, b), np.nan)
    return g.reset_index()


def rates_rise(table: pd.DataFrame) -> bool:
    """Whether the realised rate rises from the best grade to the worst (empty grades skipped)."""
    rates = table.loc[table["customers"] > 0, "realised_rate"].to_numpy()
    return bool(np.all(np.diff(rates) >= 0))


def rank_breaks(table: pd.DataFrame, alpha: float = 0.05) -> list[dict]:
    """Adjacent populated grades whose realised rate falls, better grade to worse, by more than
    the sample explains: a one-sided Fisher exact test of the better grade's rate being
    higher, at ``alpha``. A fall a small sample can make (a grade of 579 customers with 4
    bads) is not a break; on a large base :func:`rates_rise` is the strict check."""
    from scipy.stats import fisher_exact

    g = table[table["customers"] > 0].reset_index(drop=True)
    out = []
    for i in range(len(g) - 1):
        a, b = g.iloc[i], g.iloc[i + 1]
        if a["realised_rate"] <= b["realised_rate"]:
            continue
        bads = [[int(a["bads"]), int(a["customers"] - a["bads"])],
                [int(b["bads"]), int(b["customers"] - b["bads"])]]  # fmt: skip
        p = float(fisher_exact(bads, alternative="greater").pvalue)
        if p < alpha:
            out.append({"better": a["grade"], "worse": b["grade"], "p": p})
    return out


def expected_loss(
    pd_: np.ndarray, balance: np.ndarray, mean_bill: np.ndarray, horizon_months: int, lgd: float
) -> tuple[np.ndarray, np.ndarray]:
    """Exposure and expected loss per customer.

    Exposure is what the utility stands to lose over the horizon: the positive balance now
    plus the bills expected over the horizon (the mean monthly bill times its months).
    Expected loss = probability of arrears × exposure × loss given arrears.
    """
    exposure = np.clip(np.nan_to_num(balance), 0, None) + np.nan_to_num(mean_bill) * horizon_months
    return exposure, np.asarray(pd_, float) * exposure * lgd
