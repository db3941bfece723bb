"""Figures of the evaluation curves (matplotlib, no display needed)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd


def _figure(title: str, xlabel: str, ylabel: str):
    fig, ax = plt.subplots(figsize=(5, 4), dpi=110)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    return fig, ax


def roc(data: pd.DataFrame, auc: float):
    fig, ax = _figure(f"ROC (AUC {auc:.3f})", "false positive rate", "true positive rate")
    ax.plot(data["fpr"], data["tpr"])
    ax.plot([0, 1], [0, 1], "--", color="grey")
    return fig


def precision_recall(data: pd.DataFrame, pr_auc: float):
    fig, ax = _figure(f"Precision-recall (AP {pr_auc:.3f})", "recall", "precision")
    ax.plot(data["recall"], data["precision"])
    return fig


def calibration(after: pd.DataFrame, before: pd.DataFrame):
    fig, ax = _figure("Reliability (20 equal-count bins)", "predicted probability", "realised rate")
    ax.plot(before["predicted"], before["realised"], "o-", alpha=0.6, label="before calibration")
    ax.plot(after["predicted"], after["realised"], "o-", label="calibrated")
    top = max(after["predicted"].max(), after["realised"].max(), before["predicted"].max())
    ax.plot([0, top], [0, top], "--", color="grey")
    ax.legend()
    return fig


def ks(data: pd.DataFrame, value: float):
    fig, ax = _figure(
        f"KS {value:.3f}", "share of customers (highest risk first)", "cumulative share"
    )
    ax.plot(data["population"], data["bads_captured"], label="bads")
    ax.plot(data["population"], data["goods"], label="goods")
    ax.legend()
    return fig


def gains(data: pd.DataFrame):
    fig, ax = _figure(
        "Cumulative gains", "share of customers (highest risk first)", "share of bads captured"
    )
    ax.plot(data["population"], data["bads_captured"])
    ax.plot([0, 1], [0, 1], "--", color="grey")
    return fig


def grades(table: pd.DataFrame):
    fig, ax = _figure("Realised arrears rate by grade", "grade", "rate")
    ax.bar(table["grade"], table["realised_rate"].fillna(0), alpha=0.7, label="realised")
    ax.plot(table["grade"], table["mean_pd"], "o-", color="black", label="mean predicted")
    ax.legend()
    return fig


_CHART = {
    "en": {"axis": "log-odds of arrears", "base": "base value", "score": "raw score"},
    "zh": {"axis": "欠费对数几率", "base": "基准值", "score": "原始得分"},
}


def cjk_font() -> str:
    """The family name of the CJK font the project installs (Noto Sans CJK, from the
    ``cvttf-NotoSansCJK-Regular`` wheel in pyproject.toml), registered with matplotlib."""
    import cvttf_NotoSansCJK_Regular as noto
    from matplotlib import font_manager

    path = noto.get_TTF_path()
    font_manager.fontManager.addfont(path)
    return font_manager.FontProperties(fname=path).get_name()


def save(fig, path, stamp: str | None = None) -> None:
    """Write the figure; ``stamp`` (what it is of: the as-of, the model version) goes small in
    its bottom right corner, so a figure read on its own still says which run it shows."""
    fig.tight_layout()
    if stamp:
        fig.text(0.995, 0.004, stamp, ha="right", va="bottom", fontsize=6, color="#555555")
    fig.savefig(path)
    plt.close(fig)


def pyramid(profiles: pd.DataFrame):
    """The value pyramid: tier A on top, each tier labelled with its customers and profit share."""
    fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
    tiers = list(profiles.index)
    for level, tier in enumerate(reversed(tiers)):
        width = 0.15 + 0.85 * (len(tiers) - level) / len(tiers)
        ax.barh(
            level,
            width,
            left=(1 - width) / 2,
            height=0.85,
            color=plt.cm.viridis(level / max(len(tiers), 1)),
        )
        row = profiles.loc[tier]
        r, g, b, _ = plt.cm.viridis(level / max(len(tiers), 1))
        light = 0.299 * r + 0.587 * g + 0.114 * b > 0.5  # the top tiers' bars are light
        ax.text(
            0.5,
            level,
            f"{tier}: {int(row['customers']):,} customers ({row['share_of_customers']:.1%})\n"
            f"{row['share_of_profit']:.1%} of profit",
            ha="center",
            va="center",
            fontsize=8,
            color="black" if light else "white",
        )  # two lines: the narrow top bar holds them (tests/models/test_segments.py)
    ax.set_xlim(0, 1)
    ax.axis("off")
    ax.set_title("Customer value pyramid")
    return fig


def migration_heatmap(rates: pd.DataFrame, counts: pd.DataFrame):
    """Tier migration between the last two snapshots: rates, with counts in the cells."""
    fig, ax = plt.subplots(figsize=(5, 4), dpi=110)
    ax.imshow(rates.fillna(0).to_numpy(), cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(rates.columns)), rates.columns)
    ax.set_yticks(range(len(rates.index)), rates.index)
    ax.set_xlabel("tier after")
    ax.set_ylabel("tier before")
    for i in range(len(rates.index)):
        for j in range(len(rates.columns)):
            r = rates.iat[i, j]
            ax.text(
                j,
                i,
                f"{0 if pd.isna(r) else r:.1%}\n({counts.iat[i, j]:,})",
                ha="center",
                va="center",
                fontsize=7,
                color="black" if (pd.isna(r) or r < 0.5) else "white",
            )
    ax.set_title("Tier migration, last month")
    return fig


def importance(values: pd.Series, title: str, xlabel: str = "mean |SHAP| (log-odds)"):
    """Horizontal bars, the largest on top."""
    values = values.sort_values()
    fig, ax = plt.subplots(figsize=(6, 0.25 * len(values) + 1.2), dpi=110)
    ax.barh(list(values.index), values.to_numpy(), color="tab:blue", alpha=0.8)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.grid(alpha=0.3, axis="x")
    return fig


def contribution_heatmap(table: pd.DataFrame, title: str, ylabel: str):
    """Mean contribution (log-odds) of each cause (columns) in each group (rows), diverging."""
    fig, ax = plt.subplots(figsize=(0.6 * len(table.columns) + 2, 0.45 * len(table) + 1.5), dpi=110)
    top = float(np.nanmax(np.abs(table.to_numpy()))) or 1.0
    ax.imshow(table.to_numpy(), cmap="RdBu_r", vmin=-top, vmax=top, aspect="auto")
    ax.set_xticks(range(len(table.columns)), table.columns, rotation=45, ha="right")
    ax.set_yticks(range(len(table.index)), table.index)
    ax.set_ylabel(ylabel)
    for i in range(len(table.index)):
        for j in range(len(table.columns)):
            ax.text(j, i, f"{table.iat[i, j]:+.2f}", ha="center", va="center", fontsize=7)
    ax.set_title(title)
    return fig


def dependence(value: pd.Series, contribution: pd.Series, feature: str):
    """A feature's value against its SHAP contribution, one point per customer."""
    fig, ax = _figure(f"Dependence: {feature}", feature, "contribution (log-odds)")
    x = pd.to_numeric(value, errors="coerce") if value.dtype != "category" else value.cat.codes
    ax.scatter(x, contribution, s=4, alpha=0.3)
    ax.axhline(0, color="grey", lw=0.8)
    return fig


def waterfall(steps: pd.DataFrame, base: float, title: str, lang: str = "en"):
    """From the base value to the raw score, one bar per contribution (red raises the risk);
    every word in ``lang`` (Chinese drawn with the project's CJK font)."""
    words = _CHART[lang]
    family = [cjk_font(), "DejaVu Sans"] if lang == "zh" else plt.rcParams["font.family"]
    with plt.rc_context({"font.family": family, "axes.unicode_minus": False}):
        return _waterfall(steps, base, title, words)


def _waterfall(steps: pd.DataFrame, base: float, title: str, words: dict):
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(steps) + 1.6), dpi=110)
    y = np.arange(len(steps))[::-1]
    colors = np.where(steps["contribution"] > 0, "tab:red", "tab:blue")
    ax.barh(y, steps["contribution"], left=steps["start"], color=colors, alpha=0.85)
    ax.set_yticks(y, steps["label"])
    for yi, (_, s) in zip(y, steps.iterrows(), strict=True):
        ax.text(s["end"], yi, f" {s['contribution']:+.2f}", va="center", fontsize=7)
    ax.axvline(base, color="grey", ls="--", lw=0.8, label=f"{words['base']} {base:+.2f}")
    end = float(steps["end"].iloc[-1]) if len(steps) else base
    ax.axvline(end, color="black", lw=0.8, label=f"{words['score']} {end:+.2f}")
    lo = float(min(steps["start"].min(), steps["end"].min(), base)) if len(steps) else base
    hi = float(max(steps["start"].max(), steps["end"].max(), base)) if len(steps) else base
    pad = 0.08 * (hi - lo) + 0.1
    ax.set_xlim(lo - pad, hi + 2 * pad)
    ax.set_xlabel(words["axis"])
    ax.set_title(title)
    ax.legend(fontsize=7, loc="best")
    ax.grid(alpha=0.3, axis="x")
    return fig


def beeswarm(contrib: pd.DataFrame, data: pd.DataFrame, base: np.ndarray, max_display: int = 15):
    """shap's beeswarm summary: each customer's contribution per feature, coloured by value."""
    import shap

    numeric = data.apply(
        lambda c: c.cat.codes.astype(float) if c.dtype == "category" else c.astype(float)
    )
    expl = shap.Explanation(
        values=contrib.to_numpy(),
        base_values=base,
        data=numeric.to_numpy(),
        feature_names=list(contrib.columns),
    )
    # shap orders and jitters the dots with numpy's global random state: seeded here (and the
    # caller's state put back), so the same contributions draw the same picture
    state = np.random.get_state()  # noqa: NPY002 (shap reads the legacy global state)
    np.random.seed(0)  # noqa: NPY002
    # its own figure, made current (shap draws on the current figure and sizes it; it
    # refuses an axis with its automatic size): never one a caller left open
    fig = plt.figure()
    try:
        shap.plots.beeswarm(expl, max_display=max_display, show=False)
    finally:
        np.random.set_state(state)  # noqa: NPY002
    if plt.gcf() is not fig:
        raise RuntimeError("shap drew the beeswarm on another figure than its own")
    fig.set_dpi(110)
    return fig
