"""The ``segment`` stage: the value pyramid on risk-adjusted value, dynamic with hysteresis,
validated out of time, and the behaviour segments within it.

For every customer-snapshot of the feature table: the expected 12-month margin, the expected
credit loss (the arrears model's PD; ``models.value``), and the value; tiers A/B/C/D cut on the
value axis by ``segment.tier_rule`` with boundaries fitted at the latest snapshot, then through
time with hysteresis. Behaviour segments (k-means on ``segment.features``) are fitted at the
latest snapshot and named by their profile; they never define a tier.

Writes ``<out>/pipeline.skops`` (the behaviour pipeline, skops format), ``<out>/tiers.json``
(the value rule and boundaries, the segments' names), ``<out>/latest_tiers.parquet`` (each
customer's tier at the fitted snapshot, with hysteresis: what the decision reads) and
``<out>/tiers.parquet`` (customer_id,
as_of, cluster, expected_margin, expected_loss, value, tier_plain, tier for every snapshot),
the reports (profiles, out-of-time validation, ABC, mixes, migrations with and without
hysteresis, movers with what moved their value, pyramid and migration charts) and
``metrics/segments.json``; logs the run and the pipeline to MLflow (registered as
``gridscore-value-segments``, alias ``candidate``).
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

from features.errors import GridscoreError
from models import segments as seg
from models import value as val
from models.arrears import ArrearsModel, to_matrix
from models.metrics import expected_loss as credit_exposure
from models.plots import migration_heatmap, pyramid, save
from pipelines.config import Params, SegmentParams
from pipelines.io import rounded, staged_folder, write_json, write_parquet, write_skops
from pipelines.stage import guarded
from pipelines.tracking import Tracker, model_requirements

log = logging.getLogger(__name__)
MODEL_NAME = "gridscore-value-segments"
_ATTRS = ["tariff_class", "industry", "energy_intensive", "preferential_tariff"]
FORWARD_MONTHS = 12  # the value horizon, and the out-of-time window


class SegmentError(GridscoreError):
    """The segment stage cannot run as configured."""


@dataclass(frozen=True)
class Paths:
    features: Path
    out: Path  # the behaviour pipeline, the value rule and every customer's tier
    reports: Path  # profiles, validation, migration tables and charts
    metrics: Path
    truth: Path | None = None  # the generator's truth, for the ARI against it only
    model: Path | None = None  # the arrears model's folder (risk-adjusted value needs it)


def run(params: Params, paths: Paths) -> dict:
    """Run the stage; see the module docstring. Returns the metrics. One run at a time
    holds ``paths.out`` (``pipelines.stage.guarded``)."""
    return guarded(params, paths.out, [paths.features], lambda: _stage(params, paths))


def _stage(params: Params, paths: Paths) -> dict:
    metrics = build_segments(paths, params)
    tracker = Tracker.of(params)
    if tracker is not None:
        _log(tracker, params.segment, paths, metrics)
    return metrics


def _log(tracker: Tracker, params: SegmentParams, paths: Paths, metrics: dict) -> None:
    """The run, its files, and the behaviour pipeline as saved (skops; ``trusted`` names the
    project's own classes in it) with its signature."""
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
        paths.out / "latest_tiers.parquet",
        saved,
        *sorted(paths.reports.glob("*.png")),
        *sorted(paths.reports.glob("*.csv")),
    ]
    read = [paths.features, *([paths.model] if paths.model is not None else [])]
    with tracker.stage_run("segment", params.model_dump(mode="json"), flat, read):
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


def values(table: pd.DataFrame, model: ArrearsModel | None, params: Params) -> pd.DataFrame:
    """Expected margin, PD, exposure, expected credit loss and value of every row."""
    margin = val.expected_margin(table)
    if model is None:
        pd_ = np.zeros(len(table))
    else:
        pd_ = model.predict_proba(to_matrix(table, model.spec_))
    exposure, _ = credit_exposure(
        pd_,
        pd.to_numeric(table.get("balance"), errors="coerce"),
        pd.to_numeric(table.get("amount_mean_3m"), errors="coerce"),
        params.label.horizon_months,
        params.grades.lgd,
    )
    loss = val.expected_credit_loss(pd_, exposure, params.grades.lgd)
    return pd.DataFrame(
        {
            "expected_margin": margin,
            "pd": pd_,
            "expected_loss": loss,
            "value": val.value(margin, loss, params.segment.value),
        },
        index=table.index,
    )


def behaviour(latest: pd.DataFrame, params: SegmentParams):
    """Choose k, fit the behaviour pipeline at the latest snapshot; its labels and quality."""
    cols = list(params.features)
    X = latest[cols].to_numpy(float)
    heavy_idx = [i for i, c in enumerate(cols) if c in params.heavy_tailed]
    lo, hi = params.k_range
    k, scores = seg.choose_k(
        X, range(lo, hi + 1), params.criterion, params.sample, params.seed, heavy_idx
    )
    pipe = seg.make_pipeline(cols, params.heavy_tailed, k, params.seed).fit(X)
    labels = pipe.predict(X)
    Z = pipe[:-1].transform(X)
    quality = seg.quality(Z, labels, params.sample, params.seed)
    stability = seg.bootstrap_stability(
        X, labels, cols, params.heavy_tailed, k, params.seed, params.bootstrap
    )
    return pipe, labels, {"k": k, "k_scores": scores, **quality, "stability_ari": stability}


def _read(features: Path) -> pd.DataFrame:
    if not Path(features).exists():
        raise SegmentError(f"{features}: no feature table (run the features stage)")
    table = pq.read_table(features).to_pandas(date_as_object=False)
    table["as_of"] = pd.to_datetime(table["as_of"]).astype("datetime64[us]")
    return table.sort_values(["customer_id", "as_of"], ignore_index=True)


def _arrears_model(paths: Paths, params: SegmentParams) -> ArrearsModel | None:
    if params.value == "profit":
        return None
    if paths.model is None or not (Path(paths.model) / "model.txt").exists():
        raise SegmentError(
            f"segment.value is risk_adjusted: give --model, the arrears model's folder "
            f"({paths.model or 'none given'} has no model.txt), or set segment.value: profit"
        )
    return ArrearsModel.load(Path(paths.model))


def build_segments(paths: Paths, params: Params) -> dict:
    """Value, tiers with hysteresis, behaviour segments, validation; write outputs and
    reports. Returns the metrics."""
    sp = params.segment
    table = _read(paths.features)
    table = pd.concat([table, values(table, _arrears_model(paths, sp), params)], axis=1)
    dates = np.sort(table["as_of"].unique())
    latest = table[table["as_of"] == dates[-1]].reset_index(drop=True)
    bounds = val.boundaries(latest["value"].to_numpy(), sp.tier_rule, sp.tier_shares)
    table["tier_plain"] = val.tier_of(table["value"].to_numpy(), bounds)
    grid = table.pivot(index="customer_id", columns="as_of", values="value").reindex(columns=dates)
    steady = val.with_hysteresis(grid.to_numpy(), bounds, sp.hysteresis, sp.confirm_periods)
    held = pd.DataFrame(steady, index=grid.index, columns=pd.Index(dates, name="as_of")).stack()
    held = held[held != ""].rename("tier").reset_index()
    held["as_of"] = pd.to_datetime(held["as_of"]).astype("datetime64[us]")
    table = table.merge(held, on=["customer_id", "as_of"], how="left", validate="one_to_one")
    latest = table[table["as_of"] == dates[-1]].reset_index(drop=True)

    pipe, labels, metrics = behaviour(latest, sp)
    names = seg.segment_names(latest, labels, list(sp.features))
    said = {t for n in names.values() for t in seg.traits(n)}
    unused = [t for t in params.policy.segment_service if t not in said]
    if unused:
        log.info("policy.segment_service: no segment is %s this run", ", ".join(unused))
    table["cluster"] = pipe.predict(table[list(sp.features)].to_numpy(float)).astype(int)
    tier = latest["tier"]
    shape = val.pyramid_check(tier.to_numpy(), latest["value"].to_numpy())
    if not shape["pyramid"]:
        log.warning(
            "segment: the tiers are not a pyramid under tier_rule %s: %s (try "
            "segment.tier_rule: head_count)",
            sp.tier_rule,
            shape["problem"],
        )
    reports = paths.reports
    reports.mkdir(parents=True, exist_ok=True)
    for old in [*reports.glob("*.png"), *reports.glob("*.csv")]:
        old.unlink()
    prof = seg.profiles(latest, tier, sp.profile_medians)
    prof.to_csv(reports / "profiles.csv")
    seg_prof = latest.groupby(labels)[list(sp.features)].median()
    seg_prof.insert(0, "name", [names[int(k)] for k in seg_prof.index])
    seg_prof.insert(1, "customers", pd.Series(labels).value_counts().reindex(seg_prof.index))
    seg_prof.to_csv(reports / "behaviour_segments.csv")
    pd.crosstab(tier.to_numpy(), labels, rownames=["tier"], colnames=["segment"]).to_csv(
        reports / "tier_by_segment.csv"
    )
    abc = seg.abc_classes(latest["profit_12m"], sp.abc_cutoffs)
    cross = pd.crosstab(abc.to_numpy(), tier.to_numpy(), rownames=["abc"], colnames=["tier"])
    cross.to_csv(reports / "abc_vs_tier.csv")
    for col in ("tariff_class", "industry"):
        seg.mix(latest, tier, col).to_csv(reports / f"{col}_mix.csv")
    oot = _out_of_time(table, dates, sp)
    if len(oot):
        oot.to_csv(reports / "out_of_time.csv", index=False)
    moves = _migrations(table, reports)
    plain_grid, held_grid = _grid(table, "tier_plain", dates), _grid(table, "tier", dates)
    dynamics = {
        "moves_plain": val.moves(plain_grid),
        "moves": val.moves(held_grid),
        "flip_flops_plain": val.flip_flops(plain_grid),
        "flip_flops": val.flip_flops(held_grid),
        "same_tier_as_plain": float((table["tier"] == table["tier_plain"]).mean()),
    }
    save(pyramid(prof), reports / "pyramid.png", f"as of {pd.Timestamp(dates[-1]).date()}")
    with staged_folder(paths.out) as staged:  # the whole model or the previous one
        write_skops(pipe, staged / "pipeline.skops")
        write_json(
            {
                "value": sp.value,
                "tier_rule": sp.tier_rule,
                "tier_shares": list(sp.tier_shares),
                "bounds": [float(b) for b in bounds],
                "hysteresis": sp.hysteresis,
                "confirm_periods": sp.confirm_periods,
                "fitted_as_of": str(pd.Timestamp(dates[-1]).date()),
                "features": list(sp.features),
                "segments": {str(k): v for k, v in names.items()},
            },
            staged / "tiers.json",
        )
        keep = ["customer_id", "as_of", "cluster", "expected_margin", "expected_loss", "value",
                "tier_plain", "tier"]  # fmt: skip
        write_parquet(table[keep], staged / "tiers.parquet")
        write_parquet(
            latest[["customer_id", "tier"]], staged / "latest_tiers.parquet"
        )  # the decision's
    metrics.update(
        {
            "as_of": str(pd.Timestamp(dates[-1]).date()),
            "customers": len(latest),
            "value": sp.value,
            "tier_rule": sp.tier_rule,
            "bounds": [float(b) for b in bounds],
            "pyramid": shape["pyramid"],
            "pyramid_problem": shape["problem"],
            "median_value": shape["median_value"],
            "segments": {str(k): v for k, v in names.items()},
            "tier_share_of_customers": prof["share_of_customers"].round(6).to_dict(),
            "tier_share_of_profit": prof["share_of_profit"].round(6).to_dict(),
            "abc_vs_tier": cross.to_dict(),
            "stability_ari_mean": float(np.mean(metrics["stability_ari"]))
            if metrics["stability_ari"]
            else None,
            "dynamics": dynamics,
            "migration": moves,
            "out_of_time": _oot_summary(oot),
        }
    )
    metrics.update(_truth_metrics(paths.truth, latest, sp))
    metrics = rounded(metrics)  # what the metric means, not the CPU's last bits
    write_json(metrics, paths.metrics)
    log.info(
        "segments: tiers %s (pyramid: %s), %d behaviour segments, flip-flops %d -> %d",
        metrics["tier_share_of_customers"],
        shape["pyramid"],
        metrics["k"],
        dynamics["flip_flops_plain"],
        dynamics["flip_flops"],
    )
    return metrics


def _grid(table: pd.DataFrame, column: str, dates) -> np.ndarray:
    g = table.pivot(index="customer_id", columns="as_of", values=column).reindex(columns=dates)
    return g.fillna("").to_numpy(dtype=object)


def _out_of_time(table: pd.DataFrame, dates, sp: SegmentParams) -> pd.DataFrame:
    """For each snapshot T with T + 12 months in the data: the value score and the baseline
    (last 12 months' profit) against the value realised over (T, T + 12]: the profit of the
    bills of those months (``profit_12m`` at T + 12) minus what of them is overdue unpaid
    then (``overdue_arrears``); a customer gone by then realised nothing more. Both scores
    are tiered by the same rule; the baseline is also compared at the value tiers' head
    counts (``*_same_count``), where only the ranking differs."""
    rows = []
    by_date = {d: g.set_index("customer_id") for d, g in table.groupby("as_of")}
    for d in dates:
        later = pd.Timestamp(d) + pd.offsets.MonthEnd(FORWARD_MONTHS)
        if later not in by_date:
            continue
        now, then = by_date[d], by_date[later]
        realised = (then["profit_12m"] - then["overdue_arrears"]).reindex(now.index).fillna(0.0)
        counts = None
        for name, score in (("value", now["value"]), ("profit_12m", now["profit_12m"])):
            s = score.to_numpy(float)
            tiers = val.tiers_by_value(s, sp.tier_rule, sp.tier_shares)
            if counts is None:  # the value tiers' head counts, for both scores
                counts = int((tiers == "A").sum()), int(np.isin(tiers, ["A", "B"]).sum())
            r = val.oot_validation(s, realised.to_numpy(), tiers, counts)
            lift = r.pop("lift")
            rows.append(
                {
                    "as_of": str(pd.Timestamp(d).date()),
                    "score": name,
                    "customers": len(now),
                    "customers_a": int((tiers == "A").sum()),
                    "customers_ab": int(np.isin(tiers, ["A", "B"]).sum()),
                    **r,
                    **{f"lift_{k}": v for k, v in lift.items()},
                }
            )
    return pd.DataFrame(rows)


#: What the value score must beat the baseline on, out of time (means over the snapshots):
#: the ranking (Spearman), the realised value A + B hold under the tier rule, and what A and
#: A + B hold at equal head counts. A's share under the rule alone is not among them: a rule
#: of value shares gives each score its own head counts, and more customers hold more value.
BEATS_ON = ("spearman", "share_ab", "share_a_same_count", "share_ab_same_count")


def _oot_summary(oot: pd.DataFrame) -> dict:
    if oot.empty:
        return {"snapshots": 0}
    mean = oot.drop(columns=["as_of"]).groupby("score").mean(numeric_only=True)
    out = {"snapshots": int(oot["as_of"].nunique())}
    for name in mean.index:
        out[name] = {k: float(v) for k, v in mean.loc[name].drop("customers").items()}
    wins = {k: bool(mean.loc["value", k] > mean.loc["profit_12m", k]) for k in BEATS_ON}
    out["value_beats_baseline_on"] = wins
    out["value_beats_baseline"] = all(wins.values())
    return out


def _truth_metrics(truth: Path | None, latest: pd.DataFrame, sp: SegmentParams) -> dict:
    """ARI of the tiers, and of the profit-rank baseline cut by the same rule, against the
    generator's true value tiers (evaluation only)."""
    if truth is None or not (truth / "customers.parquet").exists():
        return {}
    true = pd.read_parquet(truth / "customers.parquet").set_index("customer_id")
    ids = latest["customer_id"]
    base = val.tiers_by_value(latest["profit_12m"].to_numpy(float), sp.tier_rule, sp.tier_shares)
    out = {}
    for col in ("true_value_tier", "true_risk_adjusted_tier"):
        if col in true:
            t = true[col].reindex(ids).to_numpy()
            out[f"ari_{col}"] = float(adjusted_rand_score(t, latest["tier"]))
            out[f"ari_{col}_profit_baseline"] = float(adjusted_rand_score(t, base))
    return out


_MOVER = ["tier", "tier_plain", "value", "expected_margin", "expected_loss", "kwh_sum_12m"]


def _migrations(table: pd.DataFrame, reports: Path) -> dict:
    """Migration matrices between consecutive snapshots (tiers with hysteresis), and the
    movers of each transition with what moved their value: the change of expected margin
    and of expected loss, and of consumption; ``driver`` is the larger of the two in value."""
    dates = sorted(table["as_of"].unique())
    by_date = {d: g.set_index("customer_id")[_MOVER] for d, g in table.groupby("as_of")}
    rank = {t: i for i, t in enumerate(seg.TIERS)}
    counts_all, movers, summary = [], [], {}
    for before, after in zip(dates, dates[1:], strict=False):
        counts, rates = seg.migration(by_date[before]["tier"], by_date[after]["tier"])
        counts_all.append(
            counts.assign(
                before_as_of=str(pd.Timestamp(before).date()),
                after_as_of=str(pd.Timestamp(after).date()),
            )
        )
        both = by_date[before].merge(
            by_date[after], left_index=True, right_index=True, suffixes=("_from", "")
        )
        moved = both[both["tier_from"] != both["tier"]].reset_index()
        moved = moved.rename(columns={"tier_from": "from", "tier": "to"})
        moved["direction"] = np.where(moved["from"].map(rank) > moved["to"].map(rank), "up", "down")
        moved["margin_change"] = moved["expected_margin"] - moved["expected_margin_from"]
        moved["loss_change"] = moved["expected_loss"] - moved["expected_loss_from"]
        moved["kwh_change"] = moved["kwh_sum_12m"] - moved["kwh_sum_12m_from"]
        moved["driver"] = np.where(
            moved["margin_change"].abs() >= moved["loss_change"].abs(), "margin", "expected_loss"
        )
        moved["as_of"] = pd.Timestamp(after)
        movers.append(moved[["customer_id", "as_of", "from", "to", "direction", "value",
                             "margin_change", "loss_change", "kwh_change", "driver"]])  # fmt: skip
        plain = (both["tier_plain_from"] != both["tier_plain"]).sum()
        summary[str(pd.Timestamp(after).date())] = {
            "stayed": float(np.trace(counts.to_numpy()) / max(counts.to_numpy().sum(), 1)),
            "up": int((moved["direction"] == "up").sum()),
            "down": int((moved["direction"] == "down").sum()),
            "moved_without_hysteresis": int(plain),
        }
    if counts_all:
        pd.concat(counts_all).to_csv(reports / "migration_counts.csv")
        rates.to_csv(reports / "migration_rates_latest.csv")
        save(
            migration_heatmap(rates, counts),
            reports / "migration.png",
            f"{pd.Timestamp(dates[-2]).date()} to {pd.Timestamp(dates[-1]).date()}",
        )
        write_parquet(pd.concat(movers, ignore_index=True), reports / "movers.parquet")
    return summary
