"""The champion/challenger gate: does a candidate arrears model replace the champion?

Both models score the same out-of-time rows (the candidate's test months), so the
comparison is paired. The candidate passes when

- its ECE on those rows is at most ``max_ece`` and its AUC beats the scorecard baseline
  trained beside it (the bar a first model must clear, when there is no champion yet);
- against a champion: its AUC is higher by at least ``min_auc_gain``, its KS no lower by
  more than ``max_ks_loss``, its ECE no higher by more than ``max_ece_rise``, and the PSI of
  its grades against the champion's on the same rows (the PDs binned by the master scale) is
  below ``psi_alert`` (a model that would move many customers' grades at once is a change to
  decide on, not to slip in). The master scale, not deciles: deciles of a PD are narrow where
  most customers are, so a recalibration that moves no grade would read as an alert.

The AUC gain comes with a paired bootstrap interval over rows (``bootstrap`` resamples),
reported so a reader sees whether a gain is more than sampling noise; the rule itself is on
the point estimate and the margin. Every failed rule is a sentence in ``reasons``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from models.metrics import assign_grades, expected_calibration_error, ks_statistic
from models.stability import psi


@dataclass(frozen=True)
class GateRules:
    min_auc_gain: float = 0.0005
    max_ks_loss: float = 0.01
    max_ece_rise: float = 0.002
    max_ece: float = 0.02
    psi_alert: float = 0.25
    bootstrap: int = 200
    seed: int = 0


def figures(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """AUC, KS, ECE and mean PD of ``p`` against outcomes ``y``."""
    y, p = np.asarray(y, int), np.asarray(p, float)
    return {
        "auc": float(roc_auc_score(y, p)),
        "ks": float(ks_statistic(y, p)),
        "ece": float(expected_calibration_error(y, p)),
        "mean_pd": float(p.mean()),
    }


def auc_gain_interval(
    y: np.ndarray, cand: np.ndarray, champ: np.ndarray, resamples: int, seed: int
) -> tuple[float, float]:
    """The 5th and 95th percentiles of the candidate's AUC minus the champion's over paired
    bootstrap resamples of the rows (each resample keeps both classes)."""
    y = np.asarray(y, int)
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    gains = np.empty(resamples)
    for b in range(resamples):
        rows = np.concatenate([rng.choice(pos, len(pos)), rng.choice(neg, len(neg))])
        gains[b] = roc_auc_score(y[rows], cand[rows]) - roc_auc_score(y[rows], champ[rows])
    lo, hi = np.percentile(gains, [5, 95])
    return float(lo), float(hi)


def judge(
    y: np.ndarray,
    candidate: np.ndarray,
    champion: np.ndarray | None,
    baseline_auc: float,
    rules: GateRules,
    scale: np.ndarray | None = None,
) -> dict:
    """The gate's verdict on the candidate's PDs (and the champion's, on the same rows).

    ``scale``: the grades' upper PD bounds (the master scale) that bin the PDs for the PSI;
    None: the champion's PD deciles. Returns ``passed``, ``reasons`` (every rule that
    failed, in words; ``reasons_zh`` the same in Chinese), the figures of each model, and
    against a champion the AUC gain with its 90 % bootstrap interval and the PSI
    (``psi_grades``).
    """
    y = np.asarray(y, int)
    if len(np.unique(y)) < 2:
        raise ValueError("the gate needs rows of both outcomes to compare models")
    cand = figures(y, candidate)
    reasons: list[str] = []
    zh: list[str] = []  # the same reasons in Chinese, in the same order
    if cand["ece"] > rules.max_ece:
        reasons.append(f"ECE {cand['ece']:.4f} is above the bar of {rules.max_ece}")
        zh.append(f"ECE {cand['ece']:.4f} 高于上限 {rules.max_ece}")
    if cand["auc"] <= baseline_auc:
        reasons.append(
            f"AUC {cand['auc']:.4f} does not beat the scorecard baseline's {baseline_auc:.4f}"
        )
        zh.append(f"AUC {cand['auc']:.4f} 未超过评分卡基准的 {baseline_auc:.4f}")
    out: dict = {"rows": int(len(y)), "bads": int(y.sum()), "candidate": cand}
    out["baseline_auc"] = float(baseline_auc)
    if champion is not None:
        champ = figures(y, champion)
        gain = cand["auc"] - champ["auc"]
        if scale is None:
            shift = psi(np.asarray(champion, float), np.asarray(candidate, float))
        else:
            names = [str(i) for i in range(len(scale))]
            shift = psi(
                pd.Series(assign_grades(champion, names, scale), dtype="string"),
                pd.Series(assign_grades(candidate, names, scale), dtype="string"),
            )
        lo, hi = auc_gain_interval(
            y, np.asarray(candidate, float), np.asarray(champion, float), rules.bootstrap,
            rules.seed,
        )  # fmt: skip
        out |= {"champion": champ, "auc_gain": gain, "auc_gain_90": [lo, hi], "psi_grades": shift}
        if np.array_equal(np.asarray(candidate, float), np.asarray(champion, float)):
            reasons.append("its PDs equal the champion's on every row: the same model")
            zh.append("其违约概率在每一行都与冠军模型相同：是同一个模型")
        elif gain < rules.min_auc_gain:
            reasons.append(
                f"AUC {cand['auc']:.4f} against the champion's {champ['auc']:.4f}: a gain of "
                f"{gain:+.4f}, short of the {rules.min_auc_gain} required "
                f"(90 % interval {lo:+.4f} to {hi:+.4f})"
            )
            zh.append(
                f"AUC {cand['auc']:.4f}，冠军模型为 {champ['auc']:.4f}：提升 {gain:+.4f}，"
                f"未达到要求的 {rules.min_auc_gain}（90% 区间 {lo:+.4f} 至 {hi:+.4f}）"
            )
        if champ["ks"] - cand["ks"] > rules.max_ks_loss:
            reasons.append(f"KS falls from {champ['ks']:.4f} to {cand['ks']:.4f}")
            zh.append(f"KS 从 {champ['ks']:.4f} 降至 {cand['ks']:.4f}")
        if cand["ece"] - champ["ece"] > rules.max_ece_rise:
            reasons.append(f"ECE rises from {champ['ece']:.4f} to {cand['ece']:.4f}")
            zh.append(f"ECE 从 {champ['ece']:.4f} 升至 {cand['ece']:.4f}")
        if shift >= rules.psi_alert:
            reasons.append(
                f"its grades moved from the champion's by a PSI of {shift:.3f} "
                f"(alert at {rules.psi_alert})"
            )
            zh.append(f"其等级分布相对冠军模型的 PSI 为 {shift:.3f}（警戒值 {rules.psi_alert}）")
    out["passed"] = not reasons
    out["reasons"] = reasons
    out["reasons_zh"] = zh
    return out
