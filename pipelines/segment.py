"""The ``segment`` stage: the value pyramid, fitted at the latest snapshot, applied to all.

Writes ``<out>/pipeline.skops`` (the fitted scikit-learn pipeline, skops format) and
``<out>/tiers.parquet`` (customer_id, as_of, cluster, tier for every snapshot), the reports
(profiles, ABC cross-table, mixes, migration matrices and movers, pyramid and migration
charts) and ``metrics/segments.json``; logs the run and the fitted pipeline to MLflow
(registered as ``gridscore-value-segments``, alias ``candidate``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import skops.io as sio
from sklearn.metrics import adjusted_rand_score

from models import segments as seg
from models.plots import migration_heatmap, pyramid, save
from pipelines.config import Params, SegmentParams
from pipelines.io import write_json, write_parquet
from pipelines.tracking import Tracker, model_requirements

log = logging.getLogger(__name__)
MODEL_NAME = "gridscore-value-segments"
_ATTRS = ["tariff_class", "industry", "energy_intensive", "preferential_tariff"]


@dataclass(frozen=True)
class Paths:
    features: Path
    out: Path  # the fitted pipeline, its tier map and every customer's tier
    reports: Path  # profiles, migration tables and charts
    metrics: Path
    truth: Path | None = None  # the generator's truth, for the ARI against it only


def run(params: Params, paths: Paths) -> dict:
    """Run the stage; see the module docstring. Returns the metrics."""
    metrics = build_segments(
        paths.features, paths.out, paths.reports, paths.metrics, params.segment, paths.truth
    )
    tracker = Tracker.of(params)
    if tracker is not None:
        _log(tracker, params.segment, paths, metrics)
    return metrics


def _log(tracker: Tracker, params: SegmentParams, paths: Paths, metrics: dict) -> None:
    """The run, its files, and the pipeline as saved (skops; ``trusted`` names the project's
    own classes in it) with its signature."""
    import mlflow
    from mlflow.models import infer_signature

    saved = paths.out / "pipeline.skops"
    trusted = sio.get_untrusted_types(file=saved)
    pipe = sio.load(saved, trusted=trusted)
    example = pq.read_table(paths.features, columns=list(params.features)).slice(0, 5)
    example = example.to_pandas().astype(float)
    flat = {
        k: v for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)
    }
    files = [
        paths.metrics,
        paths.out / "tiers.json",
        saved,
        *sorted(paths.reports.glob("*.png")),
        *sorted(paths.reports.glob("*.csv")),
    ]
    with tracker.stage_run("segment", params.model_dump(mode="json"), flat):
        tracker.log_files(files, "segment")
        info = mlflow.sklearn.log_model(
            pipe,
            name="model",
            signature=infer_signature(example, pipe.predict(example)),
            input_example=example,
            registered_model_name=MODEL_NAME,
            skops_trusted_types=trusted,
            pip_requirements=model_requirements(),
        )
    tracker.note(paths.out, tracker.register_candidate(info, MODEL_NAME))


def fit(latest: pd.DataFrame, params: SegmentParams):
    """Choose k, fit the pipeline, map clusters to tiers; returns everything the stage reports."""
    cols = list(params.features)
    X = latest[cols].to_numpy(float)
    heavy_idx = [i for i, c in enumerate(cols) if c in params.heavy_tailed]
    lo, hi = params.k_range
    k, scores = seg.choose_k(
        X, range(lo, hi + 1), params.criterion, params.sample, params.seed, heavy_idx
    )
    pipe = seg.make_pipeline(cols, params.heavy_tailed, k, params.seed).fit(X)
    labels = pipe.predict(X)
    tiers = seg.cluster_tiers(latest["profit_12m"].to_numpy(), labels, params.tier_shares)
    Z = pipe[:-1].transform(X)
    quality = seg.quality(Z, labels, params.sample, params.seed)
    stability = seg.bootstrap_stability(
        X, labels, cols, params.heavy_tailed, k, params.seed, params.bootstrap
    )
    return pipe, labels, tiers, {"k": k, "k_scores": scores, **quality, "stability_ari": stability}


def assign(pipe, tiers: dict[int, str], table: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Cluster and tier of every row by the fitted pipeline (no refit: moves are the customers')."""
    cluster = pipe.predict(table[columns].to_numpy(float))
    return pd.DataFrame(
        {
            "customer_id": table["customer_id"].to_numpy(),
            "as_of": table["as_of"].to_numpy(),
            "cluster": cluster,
            "tier": pd.Series(cluster).map(tiers).to_numpy(),
        }
    )


def build_segments(
    features: Path,
    out: Path,
    reports: Path,
    metrics_path: Path,
    params: SegmentParams,
    truth: Path | None = None,
) -> dict:
    """Fit the pyramid at the latest snapshot, tier every snapshot, write the outputs and
    reports. Returns the metrics."""
    cols = list(params.features)
    table = pq.read_table(
        features,
        columns=[
            "customer_id",
            "as_of",
            *dict.fromkeys(
                [
                    *cols,
                    *params.profile_medians,
                    "profit_12m",
                    "revenue_12m",
                    "kwh_sum_12m",
                    *_ATTRS,
                ]
            ),
        ],
    ).to_pandas(date_as_object=False)
    latest = table[table["as_of"] == table["as_of"].max()].reset_index(drop=True)
    pipe, labels, tiers, metrics = fit(latest, params)
    tier = pd.Series(labels).map(tiers)
    all_tiers = assign(pipe, tiers, table, cols)
    reports.mkdir(parents=True, exist_ok=True)
    prof = seg.profiles(latest, tier, params.profile_medians)
    prof.to_csv(reports / "profiles.csv")
    abc = seg.abc_classes(latest["profit_12m"], params.abc_cutoffs)
    cross = pd.crosstab(abc.to_numpy(), tier.to_numpy(), rownames=["abc"], colnames=["tier"])
    cross.to_csv(reports / "abc_vs_tier.csv")
    for col in ("tariff_class", "industry"):
        seg.mix(latest, tier, col).to_csv(reports / f"{col}_mix.csv")
    moves = _migrations(all_tiers, reports)
    save(pyramid(prof), reports / "pyramid.png")
    out.mkdir(parents=True, exist_ok=True)
    sio.dump(pipe, out / "pipeline.skops")
    write_json(
        {"tiers": {str(k): v for k, v in tiers.items()}, "features": cols}, out / "tiers.json"
    )
    write_parquet(all_tiers, out / "tiers.parquet")
    metrics.update(
        {
            "as_of": str(latest["as_of"].max().date()),
            "customers": len(latest),
            "cluster_tiers": {str(k): v for k, v in sorted(tiers.items())},
            "tier_share_of_customers": prof["share_of_customers"].round(6).to_dict(),
            "tier_share_of_profit": prof["share_of_profit"].round(6).to_dict(),
            "abc_vs_tier": cross.to_dict(),
            "stability_ari_mean": float(np.mean(metrics["stability_ari"]))
            if metrics["stability_ari"]
            else None,
            "migration": moves,
        }
    )
    if truth is not None and (truth / "customers.parquet").exists():
        latent = pd.read_parquet(truth / "customers.parquet").set_index("customer_id")
        ids = latest["customer_id"]
        metrics["ari_latent_segment"] = float(
            adjusted_rand_score(latent["latent_segment"].reindex(ids), labels)
        )
        metrics["ari_true_tier"] = float(
            adjusted_rand_score(latent["true_value_tier"].reindex(ids), tier)
        )
    write_json(metrics, metrics_path)
    log.info(
        "segments: k=%d, silhouette %.3f, tiers %s",
        metrics["k"],
        metrics["silhouette"],
        metrics["tier_share_of_customers"],
    )
    return metrics


def _migrations(all_tiers: pd.DataFrame, reports: Path) -> dict:
    """Migration matrices between consecutive snapshots, and the movers of each transition."""
    dates = sorted(all_tiers["as_of"].unique())
    by_date = {
        d: all_tiers[all_tiers["as_of"] == d].set_index("customer_id")["tier"] for d in dates
    }
    rank = {t: i for i, t in enumerate(seg.TIERS)}
    counts_all, movers, summary = [], [], {}
    for before, after in zip(dates, dates[1:], strict=False):
        counts, rates = seg.migration(by_date[before], by_date[after])
        counts_all.append(
            counts.assign(
                before_as_of=str(pd.Timestamp(before).date()),
                after_as_of=str(pd.Timestamp(after).date()),
            )
        )
        both = pd.concat(
            [by_date[before].rename("from"), by_date[after].rename("to")], axis=1, join="inner"
        )
        moved = both[both["from"] != both["to"]].reset_index()
        moved["direction"] = np.where(moved["from"].map(rank) > moved["to"].map(rank), "up", "down")
        moved["as_of"] = pd.Timestamp(after)
        movers.append(moved)
        summary[str(pd.Timestamp(after).date())] = {
            "stayed": float(np.trace(counts.to_numpy()) / max(counts.to_numpy().sum(), 1)),
            "up": int((moved["direction"] == "up").sum()),
            "down": int((moved["direction"] == "down").sum()),
        }
    if counts_all:
        pd.concat(counts_all).to_csv(reports / "migration_counts.csv")
        rates.to_csv(reports / "migration_rates_latest.csv")
        save(migration_heatmap(rates, counts), reports / "migration.png")
        write_parquet(pd.concat(movers, ignore_index=True), reports / "movers.parquet")
    return summary
