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


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` row by row, NaN where ``den`` is 0 (a rate of no rows)."""
    out = np.full(len(den), np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _resampled_rates(
    idx: np.ndarray, adverse: np.ndarray, y: np.ndarray | None, pd_: np.ndarray
) -> dict[str, np.ndarray]:
    """:func:`_rates` of every resample at once: ``idx`` holds one resample's row indices
    per row. Counts are exact in float64, and the mean PD of a row sums pairwise as
    ``pd_[i].mean()`` does, so each value is the one :func:`_rates` gives, bit for bit."""
    n = idx.shape[1]
    adv = adverse[idx]
    out = {"adverse_rate": adv.sum(axis=1) / n if n else np.full(len(idx), np.nan)}
    if y is not None:
        yy = y[idx]
        good, bad = yy == 0, yy == 1
        out["false_positive_rate"] = _ratio((adv & good).sum(axis=1), good.sum(axis=1))
        out["true_positive_rate"] = _ratio((adv & bad).sum(axis=1), bad.sum(axis=1))
        realised = yy.sum(axis=1) / n
        out["calibration_ratio"] = _ratio(pd_[idx].mean(axis=1), realised)
    return out


#: Resampled row indices held at once (int64): about 32 MB, whatever the base's size.
_DRAWN_AT_ONCE = 4_000_000


def _bootstrap_differences(
    a: np.ndarray,
    b: np.ndarray,
    adverse: np.ndarray,
    y: np.ndarray | None,
    pd_: np.ndarray,
    metrics: list[str],
    resamples: int,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """Each metric of a resample of rows ``a`` minus that of a resample of rows ``b``, for
    ``resamples`` pairs of resamples (with replacement, each the size of its rows). The
    draws are made in the order of a loop of ``rng.choice(a)``, ``rng.choice(b)`` per
    resample, so a seed gives the same intervals as that loop; the rates are computed a
    block of resamples at a time (memory bounded by ``_DRAWN_AT_ONCE``)."""
    draws = {m: np.empty(resamples) for m in metrics}
    block = max(1, _DRAWN_AT_ONCE // max(1, len(a) + len(b)))
    for start in range(0, resamples, block):
        stop = min(resamples, start + block)
        ia = np.empty((stop - start, len(a)), np.int64)
        ib = np.empty((stop - start, len(b)), np.int64)
        for j in range(stop - start):  # rng.choice(x, len(x)) is x[rng.integers(0, len(x))]
            ia[j] = rng.integers(0, len(a), len(a))
            ib[j] = rng.integers(0, len(b), len(b))
        ra = _resampled_rates(a[ia], adverse, y, pd_)
        rb = _resampled_rates(b[ib], adverse, y, pd_)
        for m in metrics:
            draws[m][start:stop] = ra[m] - rb[m]
    return draws


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
        draws = _bootstrap_differences(a, b, adverse, yy, pd_, metrics, resamples, rng)
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
