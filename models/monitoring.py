"""Watching the monthly runs: performance before the labels, back-testing after, and fairness.

- :func:`expected_performance`: what the calibrated PDs promise before any outcome is known
  (confidence-based performance estimation, as NannyML's CBPE): the expected bad rate is
  the mean PD, and the expected AUC is the AUC the scores would have if each outcome were
  drawn from its own PD: ``sum over pairs of p_i (1 - p_j) [s_i > s_j]`` (ties half) over
  ``sum over pairs i != j of p_i (1 - p_j)``, in one sort.
- :func:`group_rates`: per group of customers (a region, a tariff class), the share asked
  for security, the false-positive rate (asked, and did not fall into arrears), the
  true-positive rate (asked, among those who did) and the calibration ratio (mean PD over
  the realised rate), each with a bootstrap interval, against the rest of the base; a group
  is flagged when the interval of its difference from the rest excludes 0 and the
  difference is larger than the tolerance (fairlearn's MetricFrame computes the same
  per-group rates; the intervals and the flag are ours).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def expected_performance(pd_: np.ndarray) -> dict[str, float]:
    """Expected bad rate and expected AUC of PDs whose outcomes are not known yet."""
    p = np.asarray(pd_, float)
    n = len(p)
    if n < 2:
        raise ValueError("expected performance needs at least 2 rows")
    order = np.argsort(p, kind="stable")
    s, q = p[order], p[order]
    # For each row i, the mass of (1 - p_j) over rows j scored strictly lower, plus half of
    # the rows tied with it (j != i).
    neg = 1.0 - q
    uniq, start, counts = np.unique(s, return_index=True, return_counts=True)
    neg_cum = np.concatenate([[0.0], np.cumsum(neg)])
    below = neg_cum[start]  # sum of (1 - p_j) strictly below each tie block
    block_neg = neg_cum[start + counts] - below
    idx = np.repeat(np.arange(len(uniq)), counts)
    lower = below[idx] + 0.5 * (block_neg[idx] - neg)  # ties other than itself count half
    numerator = float(np.sum(q * lower))
    denominator = float(q.sum() * neg.sum() - np.sum(q * neg))
    return {
        "expected_bad_rate": float(p.mean()),
        "expected_auc": numerator / denominator if denominator > 0 else float("nan"),
    }


def _interval(values: np.ndarray) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if len(finite) == 0:
        return float("nan"), float("nan")
    lo, hi = np.percentile(finite, [2.5, 97.5])
    return float(lo), float(hi)


def _rates(adverse: np.ndarray, y: np.ndarray | None, pd_: np.ndarray) -> dict[str, float]:
    out = {"n": float(len(adverse))}
    out["adverse_rate"] = float(adverse.mean()) if len(adverse) else np.nan
    if y is not None:
        good, bad = y == 0, y == 1
        out["false_positive_rate"] = float(adverse[good].mean()) if good.any() else np.nan
        out["true_positive_rate"] = float(adverse[bad].mean()) if bad.any() else np.nan
        out["realised_rate"] = float(y.mean()) if len(y) else np.nan
        out["calibration_ratio"] = float(pd_.mean() / y.mean()) if y.mean() > 0 else np.nan
    return out


def group_rates(
    groups: pd.Series,
    adverse: np.ndarray,
    pd_: np.ndarray,
    y: np.ndarray | None,
    tolerance: float,
    ratio_tolerance: float = 0.25,
    resamples: int = 200,
    seed: int = 0,
    min_rows: int = 30,
) -> pd.DataFrame:
    """One row per group level: its rates (see the module docstring), the difference of each
    from the rest of the base with a 95 % bootstrap interval (resampling within the group
    and within the rest), and ``flagged`` (a difference whose interval excludes 0 and whose
    size is above ``tolerance``, ``ratio_tolerance`` for the calibration ratio).
    Groups under ``min_rows`` are reported and never flagged. ``y``: outcomes, or None
    before they are known (then only the request rate)."""
    g = groups.astype("string").fillna("<missing>").to_numpy()
    adverse = np.asarray(adverse, bool)
    pd_ = np.asarray(pd_, float)
    yy = None if y is None else np.asarray(y, int)
    rng = np.random.default_rng(seed)
    metrics = ["adverse_rate"] + (
        [] if yy is None else ["false_positive_rate", "true_positive_rate", "calibration_ratio"]
    )
    rows = []
    for level in sorted(set(g)):
        inside = g == level
        mine = _rates(adverse[inside], None if yy is None else yy[inside], pd_[inside])
        rest = _rates(adverse[~inside], None if yy is None else yy[~inside], pd_[~inside])
        row: dict = {"group": level, **mine}
        a, b = np.flatnonzero(inside), np.flatnonzero(~inside)
        draws = {m: np.empty(resamples) for m in metrics}
        for r in range(resamples):
            ia, ib = rng.choice(a, len(a)), rng.choice(b, len(b))
            ra = _rates(adverse[ia], None if yy is None else yy[ia], pd_[ia])
            rb = _rates(adverse[ib], None if yy is None else yy[ib], pd_[ib])
            for m in metrics:
                draws[m][r] = ra[m] - rb[m]
        flagged = []
        for m in metrics:
            diff = mine[m] - rest[m]
            lo, hi = _interval(draws[m])
            row[f"{m}_diff"], row[f"{m}_diff_lo"], row[f"{m}_diff_hi"] = diff, lo, hi
            bar = ratio_tolerance if m == "calibration_ratio" else tolerance
            if len(a) >= min_rows and np.isfinite(lo) and (lo > 0 or hi < 0) and abs(diff) > bar:
                flagged.append(m)
        row["flagged"] = ";".join(flagged)
        rows.append(row)
    return pd.DataFrame(rows)
