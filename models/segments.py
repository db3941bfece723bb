"""Behaviour segments within the value pyramid, and the pyramid's reports.

The tiers come from value (``models.value``); clustering finds how customers behave within
them (consumption level, trend and seasonality, payment reliability), each segment named by
its profile, for the service policy beside the tier. A missing behaviour (no bill due in the
window, so no on-time share) is imputed with the base's median, never read as bad.

Pure: frames in, frames and numbers out. The stage (``pipelines/segment.py``) reads the
feature table, calls these, and writes and logs the results.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.cluster import KMeans
from sklearn.impute import SimpleImputer
from sklearn.metrics import (
    adjusted_rand_score,
    calinski_harabasz_score,
    davies_bouldin_score,
    silhouette_score,
)
from sklearn.mixture import GaussianMixture
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import RobustScaler

TIERS = ("A", "B", "C", "D")


class SignedLog(BaseEstimator, TransformerMixin):
    """``sign(x) * log1p(|x|)`` on the heavy-tailed columns; missing values stay missing."""

    def __init__(self, columns: Sequence[int] = ()) -> None:
        self.columns = columns

    def fit(self, X, y=None) -> SignedLog:
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def transform(self, X) -> np.ndarray:
        X = np.asarray(X, dtype=float).copy()
        for c in self.columns:
            X[:, c] = np.sign(X[:, c]) * np.log1p(np.abs(X[:, c]))
        return X


def make_pipeline(columns: Sequence[str], heavy: Sequence[str], k: int, seed: int) -> Pipeline:
    """Signed log of heavy-tailed columns, missing values imputed with the median, robust
    scaling, then KMeans with ``k`` clusters."""
    heavy_idx = [i for i, c in enumerate(columns) if c in heavy]
    return Pipeline(
        [
            ("log", SignedLog(heavy_idx)),
            ("impute", SimpleImputer(strategy="median")),
            ("scale", RobustScaler(quantile_range=(10.0, 90.0))),
            ("cluster", KMeans(n_clusters=k, n_init=10, random_state=seed)),
        ]
    )


def choose_k(X: np.ndarray, k_range: Sequence[int], criterion: str, sample: int, seed: int,
             heavy_idx: Sequence[int]) -> tuple[int, dict[int, float]]:  # fmt: skip
    """The number of clusters by the criterion: the highest silhouette on a sample, or the
    lowest BIC of a Gaussian mixture on the transformed features."""
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(X), size=min(sample, len(X)), replace=False)
    filled = SimpleImputer(strategy="median").fit_transform(SignedLog(heavy_idx).fit_transform(X))
    Z = RobustScaler(quantile_range=(10.0, 90.0)).fit_transform(filled)[idx]
    scores = {}
    for k in k_range:
        if criterion == "silhouette":
            labels = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(Z)
            scores[k] = float(silhouette_score(Z, labels, random_state=seed))
        elif criterion == "bic":
            scores[k] = -float(GaussianMixture(k, random_state=seed).fit(Z).bic(Z))
        else:
            raise ValueError(f"unknown criterion {criterion!r}: silhouette or bic")
    return max(scores, key=scores.get), scores


#: How a segment's median compares with the base's, in words (feature: low, high).
_WORDS = {
    "kwh_mean_12m": ("small consumer", "large consumer"),
    "kwh_trend_12m": ("falling consumption", "rising consumption"),
    "seasonality_ratio_12m": ("steady through the year", "seasonal"),
    "on_time_share_12m": ("pays late", "pays on time"),
}


#: The words a segment name is made of for the default features (``typical``: none apply).
TRAITS = (*(word for pair in _WORDS.values() for word in pair), "typical")


def traits(name: str | None) -> list[str]:
    """The traits a segment name is made of: ``"large consumer, pays late (3)"`` ->
    ``["large consumer", "pays late"]`` (the number that tells two alike segments apart is
    not a trait); none for no name."""
    if not name:
        return []
    return [w.strip() for w in re.sub(r" \(\d+\)$", "", name).split(",") if w.strip()]


def segment_names(frame: pd.DataFrame, segment: np.ndarray, columns: Sequence[str]) -> dict:
    """A name for each segment from its profile: for each feature, whether the segment's
    median is in the base's lowest or highest third ("large consumer, seasonal, pays late");
    a segment in the middle third of everything is "typical"."""
    names = {}
    lo = {c: frame[c].quantile(1 / 3) for c in columns}
    hi = {c: frame[c].quantile(2 / 3) for c in columns}
    for k, rows in frame.groupby(np.asarray(segment)):
        words = []
        for c in columns:
            m = rows[c].median()
            low, high = _WORDS.get(c, (f"low {c}", f"high {c}"))
            if pd.notna(m) and m <= lo[c] and lo[c] < hi[c]:
                words.append(low)
            elif pd.notna(m) and m >= hi[c] and lo[c] < hi[c]:
                words.append(high)
        names[int(k)] = ", ".join(words) or "typical"
    seen: dict[str, int] = {}
    for k in sorted(names):  # two segments alike in these words: numbered, never merged
        seen[names[k]] = seen.get(names[k], 0) + 1
    twice = {n for n, c in seen.items() if c > 1}
    return {k: (f"{n} ({k})" if n in twice else n) for k, n in names.items()}


def abc_classes(profit: pd.Series, cutoffs: Sequence[float]) -> pd.Series:
    """Pareto classes: customers ranked by profit; A up to ``cutoffs[0]`` of the cumulative
    profit, B up to ``cutoffs[1]``, C the rest."""
    order = profit.sort_values(ascending=False, kind="stable")
    pos = order.clip(lower=0)
    before = pos.cumsum().shift(fill_value=0.0) / max(pos.sum(), 1e-12)
    cls = np.where(before < cutoffs[0], "A", np.where(before < cutoffs[1], "B", "C"))
    return pd.Series(cls, index=order.index).reindex(profit.index)


def quality(Z: np.ndarray, labels: np.ndarray, sample: int, seed: int) -> dict[str, float]:
    """Silhouette on a sample, Davies-Bouldin and Calinski-Harabasz."""
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(Z), size=min(sample, len(Z)), replace=False)
    return {
        "silhouette": float(silhouette_score(Z[idx], labels[idx], random_state=seed)),
        "davies_bouldin": float(davies_bouldin_score(Z, labels)),
        "calinski_harabasz": float(calinski_harabasz_score(Z, labels)),
    }


def bootstrap_stability(X: np.ndarray, labels: np.ndarray, columns, heavy, k: int, seed: int,
                        rounds: int) -> list[float]:  # fmt: skip
    """Adjusted Rand index between the fitted clusters and refits on bootstrap samples."""
    rng = np.random.default_rng(seed)
    out = []
    for r in range(rounds):
        idx = rng.choice(len(X), size=len(X), replace=True)
        refit = make_pipeline(columns, heavy, k, seed + r + 1).fit(X[idx])
        out.append(float(adjusted_rand_score(labels, refit.predict(X))))
    return out


def profiles(frame: pd.DataFrame, tier: pd.Series, medians: Sequence[str]) -> pd.DataFrame:
    """Per tier: customers, shares of profit, revenue and kWh, and medians of key features."""
    df = frame.assign(tier=tier.to_numpy())
    g = df.groupby("tier")
    out = pd.DataFrame({"customers": g.size()})
    for col, name in (("profit_12m", "profit"), ("revenue_12m", "revenue"), ("kwh_sum_12m", "kwh")):
        out[f"share_of_{name}"] = g[col].sum() / df[col].sum()
    out["share_of_customers"] = out["customers"] / len(df)
    for col in medians:
        out[f"median_{col}"] = g[col].median()
    return out.reindex([t for t in TIERS if t in out.index])


def mix(frame: pd.DataFrame, tier: pd.Series, column: str) -> pd.DataFrame:
    """Share of each value of ``column`` within each tier (rows: tiers)."""
    return pd.crosstab(
        tier.to_numpy(), frame[column].fillna("(none)").to_numpy(), normalize="index"
    )


def migration(before: pd.Series, after: pd.Series) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Tier migration between two snapshots for customers in both: counts and row rates."""
    both = pd.concat([before.rename("before"), after.rename("after")], axis=1, join="inner")
    counts = pd.crosstab(both["before"], both["after"]).reindex(
        index=TIERS, columns=TIERS, fill_value=0
    )
    rates = counts.div(counts.sum(axis=1).replace(0, np.nan), axis=0)
    return counts, rates
