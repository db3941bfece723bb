"""Population stability: how far one distribution of scores or features moved from another.

The population stability index (PSI) of a current sample against a reference is
``sum((a - e) * ln(a / e))`` over bins, ``e`` and ``a`` the reference's and the current
sample's shares of each bin. Numbers are cut at the reference's deciles (fewer bins where
values repeat), with a bin of their own for missing values; categories (grades, tiers,
tariff classes) are their own bins. A share of 0 is floored at ``FLOOR`` so an empty bin
counts heavily without being infinite. Applied to every model feature it is the
characteristic stability index (CSI). The usual reading: below 0.10 stable, 0.10 to 0.25 a
shift to watch, above 0.25 a shift to act on (the thresholds are params, not constants here).

Two identical samples have a PSI of exactly 0; it is symmetric in neither argument nor bins,
so the reference is always the first argument.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

FLOOR = 1e-4  # the least share a bin is given (an empty bin: 1 in 10,000)
BINS = 10


def edges(reference: np.ndarray, bins: int = BINS) -> np.ndarray:
    """The inner cut points of ``bins`` quantile bins of the reference's finite values
    (repeated quantiles merged, so a feature with few values gets fewer bins)."""
    x = np.asarray(reference, float)
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return np.empty(0)
    cuts = np.quantile(x, np.linspace(0, 1, bins + 1)[1:-1])
    return np.unique(cuts)


def _numeric_shares(x: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    x = np.asarray(x, float)
    finite = np.isfinite(x)
    counts = np.bincount(np.searchsorted(cuts, x[finite], side="right"), minlength=len(cuts) + 1)
    counts = np.append(counts, (~finite).sum()).astype(float)  # the missing-value bin last
    return counts / max(len(x), 1)


def _psi(e: np.ndarray, a: np.ndarray) -> float:
    e, a = np.maximum(e, FLOOR), np.maximum(a, FLOOR)
    keep = (e > FLOOR) | (a > FLOOR)  # a bin empty on both sides adds nothing
    return float(np.sum((a[keep] - e[keep]) * np.log(a[keep] / e[keep])))


def psi(reference, current, bins: int = BINS) -> float:
    """PSI of ``current`` against ``reference``: numbers by the reference's quantile bins,
    anything else (strings, booleans, categories) by its levels; missing values a bin."""
    ref, cur = pd.Series(reference), pd.Series(current)
    if len(ref) == 0 or len(cur) == 0:
        raise ValueError("PSI needs a non-empty reference and current sample")
    numeric = pd.api.types.is_numeric_dtype(ref) and not pd.api.types.is_bool_dtype(ref)
    if numeric:
        cuts = edges(ref.to_numpy(float), bins)
        return _psi(
            _numeric_shares(ref.to_numpy(float), cuts), _numeric_shares(cur.to_numpy(float), cuts)
        )
    r = ref.astype("string").fillna("<missing>").value_counts(normalize=True)
    c = cur.astype("string").fillna("<missing>").value_counts(normalize=True)
    levels = r.index.union(c.index)
    return _psi(
        r.reindex(levels, fill_value=0).to_numpy(), c.reindex(levels, fill_value=0).to_numpy()
    )


def csi(reference: pd.DataFrame, current: pd.DataFrame, columns, bins: int = BINS) -> dict:
    """PSI of each of ``columns`` (the characteristic stability index), by column name."""
    return {c: psi(reference[c], current[c], bins) for c in columns}


def level(value: float, warn: float, alert: float) -> str:
    """``stable`` below ``warn``, ``warn`` up to ``alert``, ``alert`` from ``alert`` on."""
    return "alert" if value >= alert else "warn" if value >= warn else "stable"
