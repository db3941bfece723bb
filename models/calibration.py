"""Probability calibration on held-out scores, chosen by cross-validation, saved as plain JSON.

A calibrator is only as good as the scores it is fitted on: they must come from a model
that never saw those rows (the validation set of an out-of-time split, or the out-of-fold
scores of K-fold cross-validation). :func:`select` fits every candidate map on K-1 folds
of those scores, scores the held-out fold, and keeps the map with the lowest cross-validated
log-loss among those that worsen neither log-loss nor ECE against the uncalibrated score;
if none does, the score is shipped as it is (``identity``). Nothing is pickled.

The map learns the *shape* from the held-out months; its *level* can then be anchored to the
long-run arrears rate (:func:`level_shift`, ``Calibrator.shift``): a shift of every PD's
log-odds by one constant, so that the held-out population's mean PD equals the rate over all
development months, not the rate of the few months held out. A PD read off a master scale is
a through-the-cycle figure: three months at the top or the bottom of a cycle must not move
every grade (on the default base the held-out months ran at 4.06 % against 3.86 % over the
18 development months, and the test months at 3.42 %).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from models.metrics import expected_calibration_error

Method = Literal["identity", "isotonic", "platt"]
METHODS: tuple[str, ...] = ("identity", "platt", "isotonic")
#: Where a calibrated PD level comes from: every development month, or the held-out months.
LEVELS: tuple[str, ...] = ("long_run", "held_out")
_EPS = 1e-9


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


#: A map must lower the held-out log-loss by this many standard errors of the per-row gain.
MIN_Z = 2.0


def row_log_loss(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, float), _EPS, 1 - _EPS)
    y = np.asarray(y, float)
    return -(y * np.log(p) + (1 - y) * np.log(1 - p))


def log_loss(y: np.ndarray, p: np.ndarray) -> float:
    return float(row_log_loss(y, p).mean())


def gain_z(y: np.ndarray, before: np.ndarray, after: np.ndarray) -> float:
    """How many standard errors the per-row log-loss falls from ``before`` to ``after``
    (paired over the same rows; positive: ``after`` is better)."""
    d = row_log_loss(y, before) - row_log_loss(y, after)
    se = d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else 0.0
    return float(d.mean() / se) if se > 0 else 0.0


class Calibrator:
    """Maps a model's raw probability to a calibrated one.

    ``isotonic``: a non-decreasing step function (scikit-learn's IsotonicRegression), kept as
    its thresholds and applied by linear interpolation. ``platt``: a logistic regression on
    the logit of the raw probability. ``identity``: the raw probability as it is. ``shift``
    (default 0) is then added to the log-odds, to anchor the level (:func:`level_shift`).
    All are monotone, so they keep the model's ranking and its monotone constraints.
    """

    def __init__(self, method: Method = "platt", shift: float = 0.0) -> None:
        self.method = method
        self.shift = float(shift)  # added to every calibrated log-odds (level_shift)

    def fit(self, raw: np.ndarray, y: np.ndarray) -> Calibrator:
        raw, y = np.asarray(raw, float), np.asarray(y, float)
        if self.method == "isotonic":
            iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(raw, y)
            self.x_ = iso.X_thresholds_.astype(float)
            self.y_ = iso.y_thresholds_.astype(float)
        elif self.method == "platt":
            lr = LogisticRegression(C=1e6).fit(_logit(raw)[:, None], y)
            self.coef_, self.intercept_ = float(lr.coef_[0, 0]), float(lr.intercept_[0])
        elif self.method != "identity":
            raise ValueError(f"unknown calibration method {self.method!r}")
        return self

    def transform(self, raw: np.ndarray) -> np.ndarray:
        p = self._map(np.asarray(raw, float))
        return p if self.shift == 0.0 else shifted(p, self.shift)

    def _map(self, raw: np.ndarray) -> np.ndarray:
        if self.method == "identity":
            return raw.copy()
        if self.method == "isotonic":
            return np.interp(raw, self.x_, self.y_)
        return 1.0 / (1.0 + np.exp(-(self.coef_ * _logit(raw) + self.intercept_)))

    def to_dict(self) -> dict:
        if self.method == "isotonic":
            out = {"method": "isotonic", "x": self.x_.tolist(), "y": self.y_.tolist()}
        elif self.method == "identity":
            out = {"method": "identity"}
        else:
            out = {"method": "platt", "coef": self.coef_, "intercept": self.intercept_}
        return {**out, "shift": self.shift}

    @classmethod
    def from_dict(cls, data: dict) -> Calibrator:
        cal = cls(data["method"], data.get("shift", 0.0))  # saved before 2026-12-03: no shift
        if cal.method == "isotonic":
            cal.x_, cal.y_ = np.asarray(data["x"], float), np.asarray(data["y"], float)
        elif cal.method == "platt":
            cal.coef_, cal.intercept_ = float(data["coef"]), float(data["intercept"])
        return cal


def shifted(p: np.ndarray, shift: float) -> np.ndarray:
    """``p`` with ``shift`` added to its log-odds (0 and 1 stay where they are)."""
    p = np.asarray(p, float)
    with np.errstate(divide="ignore"):
        z = np.log(p) - np.log1p(-p) + shift
    return 1.0 / (1.0 + np.exp(-z))


def level_shift(p: np.ndarray, target: float) -> float:
    """The log-odds shift that makes the mean of ``p`` equal ``target`` (a rate in (0, 1)).

    The mean of the shifted PDs rises strictly with the shift, so bisection on it converges;
    PDs of exactly 0 or 1 do not move. Raises ``ValueError`` when no shift can reach the
    target (every PD is 0 or 1, or the target lies outside (0, 1))."""
    p = np.asarray(p, float)
    inner = (p > 0) & (p < 1)
    fixed = float(p[~inner].sum())
    if not 0 < target < 1 or not inner.any():
        raise ValueError(f"no log-odds shift brings a mean PD of {p.mean():.4g} to {target}")
    goal = target * len(p) - fixed  # what the movable PDs must add up to
    if not 0 < goal < inner.sum():
        raise ValueError(f"no log-odds shift brings a mean PD of {p.mean():.4g} to {target}")
    q = p[inner]
    lo, hi = -30.0, 30.0
    for _ in range(100):
        mid = (lo + hi) / 2
        if shifted(q, mid).sum() < goal:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def stratified_folds(y: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Fold number (0 .. folds-1) of each row, stratified by class and seeded."""
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    fold = np.empty(len(y), dtype=np.int64)
    for cls in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == cls))
        fold[idx] = np.arange(len(idx)) % folds
    return fold


def fold_splits(y: np.ndarray, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(training rows, held-out rows) of each of ``folds`` stratified, seeded folds."""
    fold = stratified_folds(y, folds, seed)
    return [(np.flatnonzero(fold != k), np.flatnonzero(fold == k)) for k in range(folds)]


def cross_fitted(raw: np.ndarray, y: np.ndarray, method: str, fold: np.ndarray) -> np.ndarray:
    """Each row's probability from the ``method`` fitted on the other folds' scores."""
    raw, y = np.asarray(raw, float), np.asarray(y, float)
    out = np.empty(len(raw))
    for k in np.unique(fold):
        held = fold == k
        out[held] = Calibrator(method).fit(raw[~held], y[~held]).transform(raw[held])  # type: ignore[arg-type]
    return out


def select(
    raw: np.ndarray,
    y: np.ndarray,
    methods: Sequence[str] = METHODS,
    folds: int = 5,
    seed: int = 0,
    force: str | None = None,
) -> tuple[Calibrator, dict]:
    """The calibrator to ship for held-out scores ``raw`` with outcomes ``y``.

    Every method in ``methods`` is cross-fitted over ``folds`` stratified folds of the
    scores; a method is eligible when its cross-validated ECE is no worse than the
    uncalibrated score's and its cross-validated log-loss is lower by at least ``MIN_Z``
    standard errors of the per-row gain (a map that only fits noise moves PDs for nothing);
    the eligible method with the lowest log-loss is refitted on all the scores. Returns it
    and the report: per method its cross-validated ``log_loss``, ``ece`` and ``gain_z``,
    the ``chosen`` method and ``pd_cv`` (every row's cross-fitted probability under the
    chosen method, for honest out-of-fold metrics). ``force``: ship that method whatever
    the comparison says (reported all the same).
    """
    raw, y = np.asarray(raw, float), np.asarray(y, int)
    fold = stratified_folds(y, folds, seed)
    probs = {m: cross_fitted(raw, y, m, fold) for m in dict.fromkeys(["identity", *methods])}
    scores = {m: _figures(y, probs["identity"], p) for m, p in probs.items()}
    base = scores["identity"]
    eligible = [
        m
        for m in methods
        if m != "identity" and scores[m]["gain_z"] >= MIN_Z and scores[m]["ece"] <= base["ece"]
    ]
    chosen = min(eligible, key=lambda m: scores[m]["log_loss"]) if eligible else "identity"
    if force is not None:
        chosen = force
        if force not in probs:
            probs[force] = cross_fitted(raw, y, force, fold)
            scores[force] = _figures(y, probs["identity"], probs[force])
    report = {
        "chosen": chosen,
        "folds": folds,
        "rows": len(y),
        "candidates": scores,
        "ece_before": base["ece"],
        "ece_after": scores[chosen]["ece"],
        "pd_cv": probs[chosen],
    }
    return Calibrator(chosen).fit(raw, y), report  # type: ignore[arg-type]


def _figures(y: np.ndarray, raw: np.ndarray, p: np.ndarray) -> dict:
    return {
        "log_loss": log_loss(y, p),
        "ece": expected_calibration_error(y, p),
        "gain_z": gain_z(y, raw, p),
    }
