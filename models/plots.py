"""Figures of the evaluation curves (matplotlib, no display needed)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
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


def save(fig, path) -> None:
    fig.tight_layout()
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
        ax.text(
            0.5,
            level,
            f"{tier}: {int(row['customers']):,} customers ({row['share_of_customers']:.1%}), "
            f"{row['share_of_profit']:.1%} of profit",
            ha="center",
            va="center",
            fontsize=8,
            color="white",
        )
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
