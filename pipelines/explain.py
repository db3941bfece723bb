"""The ``explain`` stage, and one customer's decision explained on demand.

Stage: for the snapshot to explain (params ``explain.as_of``, default the latest), decides
every customer with the one decision model (``models.decision``, loaded as the score stage
loads it) and writes to ``out``: ``contributions.parquet`` (the decision keys: customer_id,
as_of, tier, cluster, pd, grade, exposure, expected_loss, raw_score, service_level,
credit_action, flags, base_value; then one column of log-odds contribution per feature),
``causes.parquet`` (the same keys,
contributions summed by cause) and ``reasons.parquet`` (the top risk-raising causes with code
and both texts), all schema-checked; to ``reports``: the global explanations (mean |SHAP| by
feature and by cause, a beeswarm, dependence plots of the top features, mean contribution of
each cause by tier and by grade) as CSV and PNG; and a JSON summary; logs them to MLflow.

On demand (``gridscore explain --customer``): :func:`explain_customer` reads one customer's
row of the feature table, decides and explains it with the same model and code, and
:func:`render` says it in English or Chinese.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow.parquet as pq

from features.errors import GridscoreError, InputMissing
from models import plots
from models.arrears import ArrearsModel, to_matrix
from models.decision import NO_TIER, DecisionModel
from models.explain import Explained, waterfall_steps
from models.policy import ACTION_TEXT, service_levels
from models.reasons import BY_CODE, CATALOG_VERSION, CAUSES, CURRENCY_ZH, cause_of
from pipelines import decision
from pipelines.config import Params
from pipelines.io import staged_folder, write_json, write_parquet
from pipelines.stage import guarded
from pipelines.tracking import Tracker

log = logging.getLogger(__name__)

KEYS = pa.DataFrameSchema(
    {
        "customer_id": pa.Column("str", unique=True),
        "as_of": pa.Column("datetime64[us]"),
        "tier": pa.Column("str", pa.Check.isin(["A", "B", "C", "D"]), nullable=True),
        "cluster": pa.Column("Int64", nullable=True),
        "pd": pa.Column(float, pa.Check.in_range(0, 1)),
        "grade": pa.Column("str"),
        "exposure": pa.Column(float, pa.Check.ge(0)),
        "expected_loss": pa.Column(float, pa.Check.ge(0)),
        "raw_score": pa.Column(float),
        "service_level": pa.Column("str", nullable=True),
        "credit_action": pa.Column("str"),
        "security_amount": pa.Column(float, nullable=True),
        "quarantined_rows": pa.Column("int64", pa.Check.ge(0)),
        "quarantine_refs": pa.Column("str", nullable=True),
        "officer_context": pa.Column("str", nullable=True),
        "explained": pa.Column(bool, pa.Check.eq(True)),  # the stage explains every row
        "flags": pa.Column("str", nullable=True),
        "base_value": pa.Column(float),
    },
    strict=True,
    ordered=True,
    name="explained customers",
)
REASONS = pa.DataFrameSchema(
    {
        "customer_id": pa.Column("str"),
        "as_of": pa.Column("datetime64[us]"),
        "rank": pa.Column(int, pa.Check.ge(1)),
        "code": pa.Column("str", pa.Check.isin([c.code for c in CAUSES])),
        "contribution": pa.Column(float, pa.Check.gt(0)),
        "text_en": pa.Column("str"),
        "text_zh": pa.Column("str"),
    },
    strict=False,
    name="reasons",
)


class NotFound(GridscoreError):
    """A customer or snapshot asked for is not in the feature table."""


@dataclass(frozen=True)
class Paths:
    features: Path
    model: Path  # the train stage's folder
    segments: Path | None  # the segment stage's folder; None: decisions carry no tier
    out: Path  # contributions, causes and reasons
    reports: Path  # the global explanation reports
    summary: Path
    ledger: Path | None = None  # the features stage's ledger.parquet: incomplete ledgers


def read_features(path: Path, filter_=None) -> pd.DataFrame:
    if not path.exists():
        raise InputMissing(f"{path}: no feature table (run `dvc repro features`)")
    table = pq.read_table(path, filters=filter_).to_pandas(date_as_object=False)
    table["as_of"] = table["as_of"].astype("datetime64[us]")
    return table


def with_ledger(rows: pd.DataFrame, ledger: Path | None) -> pd.DataFrame:
    """The rows with their quarantined rows at as_of (from the features stage's ledger), so
    they are decided exactly as the score stage decides them."""
    if ledger is None or not Path(ledger).exists():
        return rows
    days = [d.to_pydatetime() for d in rows["as_of"].unique()]
    filters = [("as_of", "in", days)]
    if rows["customer_id"].nunique() <= 100:  # a lookup: read only those customers' rows
        filters.append(("customer_id", "in", list(rows["customer_id"].unique())))
    gaps = read_features(Path(ledger), filters)
    return rows.merge(gaps, on=["customer_id", "as_of"], how="left")


def decision_day(params: Params, snapshots: pd.Series) -> pd.Timestamp:
    """The as_of explained: explain.as_of, else score.as_of (one decision record with the
    score stage), else the latest snapshot (the last month end the data covers)."""
    chosen = params.explain.as_of or params.score.as_of
    return pd.Timestamp(chosen) if chosen else snapshots.max()


def _decide(rows: pd.DataFrame, model: DecisionModel) -> tuple[pd.DataFrame, Explained]:
    """The decision keys of ``rows`` (the decision model's, with each row's SHAP base value)
    and their explanation."""
    decisions, x = model.explain(rows)
    keys = decisions[list(KEYS.columns)[:-1]].assign(base_value=x.keys["base_value"].to_numpy())
    return keys, x


def decision_model(params: Params, model_dir: Path, segments: Path | None, workdir: Path):
    """The decision model of the score stage from the train and segment stages' folders
    (registry URIs downloaded into ``workdir``); no segment run: decided without a tier."""
    if segments is not None and not (Path(segments) / "tiers.json").exists():
        segments = None  # no segment stage run: decided without a tier, flagged no_tier
    return decision.load(model_dir, segments, params, workdir, Tracker.of(params)).model


def run(params: Params, paths: Paths) -> dict:
    """Run the stage; see the module docstring. Returns the summary. One run at a time
    holds ``paths.out`` (``pipelines.stage.guarded``)."""
    return guarded(params, paths.out, [paths.features, paths.ledger], lambda: _stage(params, paths))


def _stage(params: Params, paths: Paths) -> dict:
    table = read_features(paths.features)
    day = decision_day(params, table["as_of"])
    rows = table[table["as_of"] == day].reset_index(drop=True)
    if rows.empty:
        raise NotFound(f"{paths.features}: no rows at as_of {day.date()}")
    del table
    rows = with_ledger(rows, paths.ledger)
    with tempfile.TemporaryDirectory(prefix=f"gridscore-models-{os.getpid()}-") as workdir:
        model = decision_model(params, paths.model, paths.segments, Path(workdir))
    keys, x = _decide(rows, model)
    keys = KEYS.validate(keys)
    reasons = x.reasons
    at = reasons["row"].to_numpy()  # typed even when no row has a reason (a table of one's own)
    reasons.insert(0, "as_of", pd.array(keys["as_of"].to_numpy()[at], dtype="datetime64[us]"))
    reasons.insert(0, "customer_id", pd.array(keys["customer_id"].to_numpy()[at], dtype="str"))
    reasons = REASONS.validate(reasons.drop(columns="row"))
    with staged_folder(paths.out) as staged:  # the three tables of one run, never a mix
        write_parquet(pd.concat([keys, x.contrib], axis=1), staged / "contributions.parquet")
        write_parquet(pd.concat([keys, x.grouped], axis=1), staged / "causes.parquet")
        write_parquet(reasons.assign(catalog_version=CATALOG_VERSION), staged / "reasons.parquet")
    stamp = f"as of {day.date()} · model {model.versions.get('arrears_model_version', '')}"
    by_cause, by_feature = _global_reports(
        x, keys, rows, model.arrears, paths.reports, params, stamp
    )
    summary = {
        "as_of": str(day.date()),
        "rows": len(rows),
        "catalog_version": CATALOG_VERSION,
        "mean_abs_by_cause": by_cause.round(6).to_dict(),
        "mean_abs_by_feature": by_feature.round(6).to_dict(),
        "rows_with_a_reason": int(reasons["customer_id"].nunique()),
        "credit_actions": keys["credit_action"].value_counts().sort_index().to_dict(),
        "max_additivity_gap": x.additivity_gap,
    }
    write_json(summary, paths.summary)
    log.info("explained %d customers at %s", len(rows), day.date())
    tracker = Tracker.of(params)
    if tracker is not None:
        _log(tracker, params, paths, summary)
    return summary


def _log(tracker: Tracker, params: Params, paths: Paths, summary: dict) -> None:
    metrics = {
        "rows": summary["rows"],
        "rows_with_a_reason": summary["rows_with_a_reason"],
        "max_additivity_gap": summary["max_additivity_gap"],
        **{f"mean_abs_{k}": v for k, v in summary["mean_abs_by_cause"].items()},
    }
    run_params = {
        **params.explain.model_dump(mode="json"),
        "as_of": summary["as_of"],
        "catalog_version": CATALOG_VERSION,
    }
    note = tracker.read_note(paths.model)  # the train stage's registered version, if any
    if note and note.get("name") and note.get("version"):
        run_params["arrears_model_registered"] = f"{note['name']}/{note['version']}"
    reports = paths.reports
    read = [paths.features, paths.model, *([paths.segments] if paths.segments else [])]
    with tracker.stage_run("explain", run_params, metrics, read) as mlrun:
        tracker.log_files(
            [paths.summary, *sorted(reports.glob("*.csv")), *sorted(reports.glob("*.png"))]
        )
    tracker.note(paths.out, {"run_id": mlrun.info.run_id})


def _global_reports(
    x: Explained,
    keys: pd.DataFrame,
    rows: pd.DataFrame,
    model: ArrearsModel,
    reports: Path,
    params: Params,
    stamp: str | None = None,
) -> tuple[pd.Series, pd.Series]:
    """What the model learned: importance by feature and cause, beeswarm, dependence, groups."""
    reports.mkdir(parents=True, exist_ok=True)
    for old in [*reports.glob("*.png"), *reports.glob("*.csv")]:
        old.unlink()
    by_feature = x.contrib.abs().mean().sort_values(ascending=False)
    by_cause = x.grouped.abs().mean()
    names = {c.code: f"{c.code} {c.name}" for c in CAUSES}
    pd.DataFrame(
        {
            "feature": by_feature.index,
            "cause": [_cause_name(f) for f in by_feature.index],
            "mean_abs_shap": by_feature.to_numpy(),
            "mean_shap": x.contrib.mean()[by_feature.index].to_numpy(),
        }
    ).to_csv(reports / "importance_features.csv", index=False)
    pd.DataFrame(
        {
            "code": by_cause.index,
            "cause": [BY_CODE[c].name for c in by_cause.index],
            "mean_abs_shap": by_cause.to_numpy(),
            "mean_shap": x.grouped.mean().to_numpy(),
        }
    ).to_csv(reports / "importance_causes.csv", index=False)
    plots.save(
        plots.importance(by_feature.head(20), "Mean |SHAP| by feature (top 20)"),
        reports / "importance_features.png",
        stamp,
    )
    plots.save(
        plots.importance(by_cause.rename(index=names), "Mean |SHAP| by cause"),
        reports / "importance_causes.png",
        stamp,
    )
    e = params.explain
    sample = np.random.default_rng(0).permutation(len(rows))[: e.plot_sample]
    sample.sort()
    X = to_matrix(rows.iloc[sample], model.spec_)
    contrib = x.contrib.iloc[sample]
    plots.save(
        plots.beeswarm(contrib, X, keys["base_value"].to_numpy()[sample]),
        reports / "beeswarm.png",
        stamp,
    )
    for feature in by_feature.index[: e.dependence_plots]:
        plots.save(
            plots.dependence(X[feature], contrib[feature], feature),
            reports / f"dependence_{feature}.png",
            stamp,
        )
    for group, label in (("tier", "value tier"), ("grade", "credit grade")):
        key = keys[group].fillna(NO_TIER)
        table = x.grouped.groupby(key.to_numpy()).mean().rename(columns=names)
        if group == "grade":
            order = [g for g in params.grades.names if g in table.index]
            table = table.loc[order]
        counts = key.value_counts().reindex(table.index)
        table.assign(customers=counts.to_numpy()).to_csv(reports / f"by_{group}.csv")
        plots.save(
            plots.contribution_heatmap(table, f"Mean contribution by cause and {label}", label),
            reports / f"by_{group}.png",
            stamp,
        )
    return by_cause, by_feature


def _cause_name(feature: str) -> str:
    return BY_CODE[cause_of(feature)].name


def _near_ids(features: Path, customer: str, limit: int = 3) -> list[str]:
    """Ids of the feature table that differ from ``customer`` only in case or spaces."""
    import pyarrow.compute as pc

    want = customer.strip().lower()
    found: list[str] = []
    f = pq.ParquetFile(features)
    for g in range(f.num_row_groups):
        ids = f.read_row_group(g, columns=["customer_id"])["customer_id"].unique()
        hit = ids.filter(pc.equal(pc.utf8_lower(pc.utf8_trim_whitespace(ids)), want))
        found += [i for i in hit.to_pylist() if i not in found]
        if len(found) >= limit:
            break
    return found[:limit]


def explain_customer(
    features: Path,
    model_dir: Path,
    segments: Path | None,
    customer: str,
    params: Params,
    as_of: str | None = None,
    ledger: Path | None = None,
) -> dict:
    """One customer's decision at a snapshot (its latest by default), explained: the same
    decision model as the stage and the score stage.

    Raises:
        NotFound: The customer is not in the feature table, or has no row at ``as_of``
            (the message lists the snapshots it has).
    """
    rows = read_features(features, [("customer_id", "=", customer)])
    if rows.empty:
        near = _near_ids(features, customer)
        if near:
            raise NotFound(
                f"customer {customer!r} is not in {features}; ids are matched as the data "
                f"writes them: did you mean {' or '.join(map(repr, near))}?"
            )
        head = pq.ParquetFile(features).read_row_group(0, columns=["customer_id"])
        sample = head["customer_id"].unique()[:3]
        raise NotFound(
            f"customer {customer!r} is not in {features} "
            f"(customer ids there look like {', '.join(map(str, sample.to_pylist()))})"
        )
    days = rows["as_of"].sort_values()
    if as_of is None:
        day = decision_day(params, days)
    else:
        try:
            day = pd.Timestamp(as_of)
        except ValueError as exc:
            raise NotFound(f"--as-of {as_of!r} is not a date (YYYY-MM-DD)") from exc
    row = rows[rows["as_of"] == day].reset_index(drop=True)
    if row.empty:
        raise NotFound(
            f"customer {customer!r} has no snapshot at {day.date()}; it has "
            f"{len(days)} month ends from {days.iloc[0].date()} to {days.iloc[-1].date()}"
        )
    with tempfile.TemporaryDirectory(prefix=f"gridscore-models-{os.getpid()}-") as workdir:
        model = decision_model(params, model_dir, segments, Path(workdir))
    keys, x = _decide(with_ledger(row, ledger), model)
    keys = keys.iloc[0]
    cluster = None if pd.isna(keys["cluster"]) else int(keys["cluster"])
    segment = model.segmenter.names.get(cluster) if model.segmenter is not None else None
    tier = pd.Series([None if pd.isna(keys["tier"]) else str(keys["tier"])], dtype=object)
    service_zh = service_levels(
        tier,
        pd.Series([segment], dtype=object),
        params.policy.service_zh,
        {t: s.zh for t, s in params.policy.segment_service.items()},
    )[0]
    return {
        "customer_id": customer,
        "as_of": day,
        "tier": None if pd.isna(keys["tier"]) else str(keys["tier"]),
        "cluster": cluster,
        "segment": segment,
        "pd": float(keys["pd"]),
        "grade": keys["grade"],
        "exposure": float(keys["exposure"]),
        "expected_loss": float(keys["expected_loss"]),
        "service_level": None if pd.isna(keys["service_level"]) else keys["service_level"],
        "service_level_zh": None if pd.isna(service_zh) else service_zh,
        "credit_action": keys["credit_action"],
        "flags": None if pd.isna(keys["flags"]) else keys["flags"],
        "security_amount": None
        if pd.isna(keys["security_amount"])
        else float(keys["security_amount"]),
        "quarantine_refs": None if pd.isna(keys["quarantine_refs"]) else keys["quarantine_refs"],
        "base_value": float(keys["base_value"]),
        "raw_score": float(keys["raw_score"]),
        "contributions": x.contrib.iloc[0],
        "reasons": x.reasons.drop(columns="row"),
        "values": row.iloc[0],
    }


LABELS = {
    "en": {
        "customer": "Customer",
        "cluster": "cluster",
        "chart": "{customer} at {as_of}: PD {pd}, grade {grade}",
        "as_of": "as of",
        "tier": "Value tier",
        "pd": "Probability of arrears (3 months)",
        "grade": "Credit grade",
        "el": "Expected loss",
        "exposure": "exposure",
        "service": "Service",
        "action": "Credit action",
        "records": "Records held back by validation",
        "reasons": "Main reasons for the risk",
        "none": "no cause raises this customer's risk noticeably",
        "no_tier": "not tiered (run the segment stage)",
        "score": "Score in log-odds",
        "base": "base",
    },
    "zh": {
        "customer": "客户",
        "cluster": "聚类",
        "chart": "{customer}（{as_of}）：欠费概率 {pd}，信用等级 {grade}",
        "as_of": "评估日期",
        "tier": "价值等级",
        "pd": "欠费概率（未来3个月）",
        "grade": "信用等级",
        "el": "预期损失",
        "exposure": "风险敞口",
        "service": "服务",
        "action": "信用措施",
        "records": "校验时被隔离的记录",
        "reasons": "主要风险原因",
        "none": "没有明显推高该客户风险的因素",
        "no_tier": "未分级（请先运行 segment 阶段）",
        "score": "对数几率得分",
        "base": "基准",
    },
}


def render(d: dict, lang: str = "en", currency: str = "CNY") -> str:
    """The explanation as text a credit officer can read out, in English or Chinese (the
    service in Chinese is ``service_level_zh``, from params ``policy.service_zh`` and
    ``segment_service``): in Chinese, nothing but identifiers (customer id, grade, tier,
    codes, file names) and a segment's name is in English."""
    if lang not in LABELS:
        raise GridscoreError(f"--lang must be one of {sorted(LABELS)}, not {lang!r}")
    t = LABELS[lang]
    unit = CURRENCY_ZH.get(currency, currency) if lang == "zh" else f" {currency}"
    tier = d["tier"] if d["tier"] is not None else t["no_tier"]
    lines = [
        f"{t['customer']} {d['customer_id']}  ({t['as_of']} {d['as_of'].date()})",
        f"  {t['tier']}: {tier}"
        + (f"  ({t['cluster']} {d['cluster']}" if d["cluster"] is not None else "")
        + (f": {d['segment']}" if d["cluster"] is not None and d.get("segment") else "")
        + (")" if d["cluster"] is not None else ""),
        f"  {t['pd']}: {d['pd']:.2%}",
        f"  {t['grade']}: {d['grade']}",
        f"  {t['el']}: {d['expected_loss']:,.2f}{unit}  "
        f"({t['exposure']} {d['exposure']:,.2f}{unit})",
        f"  {t['score']}: {d['raw_score']:+.3f}  ({t['base']} {d['base_value']:+.3f})",
    ]
    if d["service_level"] is not None:
        service = d["service_level"]
        if lang == "zh" and d.get("service_level_zh"):
            service = d["service_level_zh"]
        lines.append(f"  {t['service']}: {service}")
    en, zh = ACTION_TEXT.get(d["credit_action"], (d["credit_action"],) * 2)
    action = zh if lang == "zh" else en
    if d.get("security_amount") is not None:
        action += f": {d['security_amount']:,.0f}{unit}"
    lines.append(f"  {t['action']}: {action}")
    if d.get("quarantine_refs"):
        lines.append(f"  {t['records']}: {d['quarantine_refs']}")
    lines.append(f"  {t['reasons']}:")
    reasons = d["reasons"]
    if reasons.empty:
        lines.append(f"    - {t['none']}")
    text = "text_zh" if lang == "zh" else "text_en"
    for _, r in reasons.iterrows():
        lines.append(f"    {r['rank']}. [{r['code']}] {r[text]}  (+{r['contribution']:.2f})")
    return "\n".join(lines)


def waterfall_chart(d: dict, path: Path, top: int = 12, lang: str = "en") -> Path:
    """The customer's contributions from the base value to its raw score, as a PNG, every
    label in ``lang`` (readable feature names and values: ``models.labels``)."""
    if lang not in LABELS:
        raise GridscoreError(f"--lang must be one of {sorted(LABELS)}, not {lang!r}")
    steps = waterfall_steps(d["contributions"], d["base_value"], top, d.get("values"), lang)
    title = LABELS[lang]["chart"].format(
        customer=d["customer_id"], as_of=d["as_of"].date(), pd=f"{d['pd']:.2%}", grade=d["grade"]
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    plots.save(plots.waterfall(steps, d["base_value"], title, lang), path)
    return path
