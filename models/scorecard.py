"""A scorecard-style baseline: binned weight-of-evidence features into a logistic regression.

The classic credit scorecard: each numeric feature is cut into quantile bins (missing
values get a bin of their own), each categorical level is a bin, every bin is replaced by
its weight of evidence ``ln(share of goods / share of bads)`` on the training data, and a
logistic regression weighs the features. It is saved as JSON (bins, WoE, coefficients).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

MISSING = "__missing__"


class WoEScorecard:
    """Scorecard-style logistic regression on weight-of-evidence bins.

    Args:
        bins: Quantile bins per numeric feature (fewer when values repeat).
        smoothing: Pseudo-count added to goods and bads per bin.
        C: Inverse regularisation of the logistic regression.
    """

    def __init__(self, bins: int = 10, smoothing: float = 0.5, C: float = 1.0) -> None:
        self.bins = bins
        self.smoothing = smoothing
        self.C = C

    def fit(self, X: pd.DataFrame, y: np.ndarray, categorical: list[str]) -> WoEScorecard:
        y = np.asarray(y, int)
        self.features_ = list(X.columns)
        self.categorical_ = [c for c in categorical if c in X.columns]
        self.edges_: dict[str, list[float]] = {}
        self.woe_: dict[str, dict[str, float]] = {}
        for col in self.features_:
            if col not in self.categorical_:
                values = X[col].to_numpy(float)
                qs = (
                    np.nanquantile(values, np.linspace(0, 1, self.bins + 1)[1:-1])
                    if np.isfinite(values).any()
                    else []
                )
                self.edges_[col] = sorted(set(np.round(qs, 12).tolist()))
            keys = self._keys(X[col], col)
            self.woe_[col] = self._woe(keys, y)
        self.lr_ = LogisticRegression(C=self.C, max_iter=1000).fit(self.transform(X), y)
        return self

    def _codes(self, s: pd.Series, col: str) -> tuple[np.ndarray, np.ndarray]:
        """Each row's bin as an index into the bin names (bins "0".."k", then missing)."""
        if col in self.categorical_:
            text = s.astype("object").where(s.notna(), MISSING).astype(str).to_numpy()
            names, codes = np.unique(text, return_inverse=True)
            return codes, names
        values = s.to_numpy(float)
        edges = np.asarray(self.edges_[col])
        idx = np.searchsorted(edges, values, side="right")
        names = np.array([*(str(i) for i in range(len(edges) + 1)), MISSING], dtype=object)
        return np.where(np.isnan(values), len(edges) + 1, idx), names

    def _keys(self, s: pd.Series, col: str) -> np.ndarray:
        codes, names = self._codes(s, col)
        return names[codes]

    def _woe(self, keys: np.ndarray, y: np.ndarray) -> dict[str, float]:
        df = pd.DataFrame({"k": keys, "y": y})
        bads = df.groupby("k")["y"].sum() + self.smoothing
        goods = df.groupby("k")["y"].size() - df.groupby("k")["y"].sum() + self.smoothing
        woe = np.log((goods / goods.sum()) / (bads / bads.sum()))
        return {str(k): float(v) for k, v in woe.items()}

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        """WoE of each feature's bin (0, i.e. neutral, for a bin never seen in training)."""
        cols = []
        for col in self.features_:
            table = self.woe_[col]
            codes, names = self._codes(X[col], col)
            cols.append(np.array([table.get(k, 0.0) for k in names], dtype=float)[codes])
        return np.column_stack(cols)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Probability of arrears."""
        return self.lr_.predict_proba(self.transform(X))[:, 1]

    def to_dict(self) -> dict:
        return {
            "features": self.features_,
            "categorical": self.categorical_,
            "edges": self.edges_,
            "woe": self.woe_,
            "coef": self.lr_.coef_[0].tolist(),
            "intercept": float(self.lr_.intercept_[0]),
        }
