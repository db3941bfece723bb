"""The ``score`` stage: the whole customer base decided at one ``as_of``, partition by partition.

Streams the validated tables in customer order (as the features stage does), builds each
partition's point-in-time features for ``as_of`` and runs the whole decision on them
(:class:`models.decision.DecisionModel`), so memory is bounded by the partition size, not by
the base. Writes to ``out``:

- ``part-NNNNN.parquet``: one row per customer active at ``as_of`` (docs/scoring.md), each
  file written to ``out/_tmp`` and moved into place only when complete (``os.replace``); its
  counts (customers in, active, inactive by reason, flagged) ride in its Parquet footer;
- ``_manifest.json``: what the run is (as_of, partitioning, model versions, inputs): a rerun
  into the same folder with the same manifest resumes, skipping finished partitions;
- ``_reconciliation.json``: customers in = scored + not active (by reason); flagged; quarantined
  upstream; written last, with ``_SUCCESS``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from features.engine import Snapshots, features_of, prepare
from models.arrears import ArrearsModel
from models.decision import DecisionConfig, DecisionModel, Segmenter
from pipelines.config import Params
from pipelines.features import (
    FEATURE_TABLE,
    _chunks,
    _connect,
    _frame,
    _NotInOrder,
    _sort,
    customer_count,
    data_end,
    engine_settings,
)
from pipelines.io import write_json

log = logging.getLogger(__name__)

PART_KEY = b"gridscore.partition"
MANIFEST = "_manifest.json"
RECONCILIATION = "_reconciliation.json"
SUCCESS = "_SUCCESS"
DECISION_MODEL = "gridscore-decision"
TABLES = ("customers", "bills", "payments")


class ScoreError(ValueError):
    """The scoring run cannot go on (a mismatch, a folder from another run, no data)."""


# ---------------------------------------------------------------- models: files or registry


def _digest(*paths: Path) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.read_bytes())
    return h.hexdigest()[:12]


def _from_registry(uri: str, artifact_path: str, workdir: Path, project_dir: Path):
    """Download the files a registered version's run logged under ``artifact_path``."""
    import mlflow

    from pipelines.tracking import tracking_uri

    rest = uri.removeprefix("models:/")
    name, sep, alias = rest.partition("@")
    client = mlflow.MlflowClient(tracking_uri(project_dir))
    try:
        if sep:
            mv = client.get_model_version_by_alias(name, alias)
        else:
            name, _, version = rest.partition("/")
            mv = client.get_model_version(name, version)
    except mlflow.exceptions.MlflowException as exc:
        raise ScoreError(f"{uri}: no such registered model version ({exc.message})") from exc
    local = mlflow.artifacts.download_artifacts(
        run_id=mv.run_id,
        artifact_path=artifact_path,
        dst_path=str(workdir),
        tracking_uri=tracking_uri(project_dir),
    )
    return Path(local), f"{name}/{mv.version}"


def load_decision_model(
    arrears: str, segments: str, params: Params, workdir: Path, project_dir: Path = Path(".")
) -> tuple[DecisionModel, Path, Path]:
    """The decision model from DVC artifact folders or registry URIs (``models:/name@alias``).

    Registered models are downloaded into ``workdir``. Returns the model and the folders of
    the arrears and segment models (``pipeline.skops`` and ``tiers.json`` copied alone).

    Raises:
        ScoreError: A registry URI names no version, or a folder lacks the model's files.
    """
    if arrears.startswith("models:/"):
        a_dir, a_version = _from_registry(arrears, "arrears", workdir, project_dir)
    else:
        a_dir = Path(arrears)
        if not (a_dir / "model.txt").exists():
            raise ScoreError(f"{a_dir}: no model.txt (the train stage's output folder)")
        a_version = f"{a_dir.name}@{_digest(a_dir / 'model.txt', a_dir / 'calibrator.json')}"
    if segments.startswith("models:/"):
        s_dir, s_version = _from_registry(segments, "segment", workdir, project_dir)
    else:
        s_dir = Path(segments)
        if not (s_dir / "tiers.json").exists():
            raise ScoreError(f"{s_dir}: no tiers.json (the segment stage's output folder)")
        s_version = f"{s_dir.name}@{_digest(s_dir / 'tiers.json')}"
    model = ArrearsModel.load(a_dir)
    segmenter = Segmenter.load(s_dir)
    only = workdir / "segments"  # the pipeline and its tier map, without every row's tier
    only.mkdir(parents=True, exist_ok=True)
    for name in ("pipeline.skops", "tiers.json"):
        shutil.copy2(s_dir / name, only / name)
    versions = {"arrears_model_version": a_version, "segments_model_version": s_version}
    return DecisionModel(model, segmenter, decision_config(params), versions), a_dir, only


def load_decision_pyfunc(uri: str, project_dir: Path = Path(".")) -> DecisionModel:
    """The decision model inside a logged ``gridscore-decision`` pyfunc (any MLflow URI)."""
    import mlflow

    from pipelines.tracking import tracking_uri

    mlflow.set_tracking_uri(tracking_uri(project_dir))
    try:
        pyfunc = mlflow.pyfunc.load_model(uri)
    except mlflow.exceptions.MlflowException as exc:
        raise ScoreError(f"{uri}: cannot load the decision model ({exc.message})") from exc
    return pyfunc.unwrap_python_model().model


def decision_config(params: Params) -> DecisionConfig:
    return DecisionConfig(
        grade_names=tuple(params.grades.names),
        grade_upper_pd=tuple(params.grades.upper_pd),
        lgd=params.grades.lgd,
        horizon_months=params.label.horizon_months,
        service=dict(params.policy.service),
        credit_action=dict(params.policy.credit_action),
        top_n=params.explain.top_n,
        min_contribution=params.explain.min_contribution,
        min_history_months=params.score.min_history_months,
    )


# ---------------------------------------------------------------- the output's Arrow schema


def output_schema(model: DecisionModel) -> pa.Schema:
    """Every column typed, so every partition (and the Spark path) has the same schema."""
    kinds = {
        "as_of": pa.date32(),
        "cluster": pa.int32(),
        "pd": pa.float64(),
        "exposure": pa.float64(),
        "expected_loss": pa.float64(),
        "raw_score": pa.float64(),
    }
    return pa.schema([(c, kinds.get(c, pa.string())) for c in model.columns()])


def to_arrow(decisions: pd.DataFrame, schema: pa.Schema, stats: dict | None = None) -> pa.Table:
    frame = decisions.assign(as_of=pd.to_datetime(decisions["as_of"]).dt.date)
    table = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
    if stats is not None:
        table = table.replace_schema_metadata({PART_KEY: json.dumps(stats).encode()})
    return table


# ---------------------------------------------------------------- who is active, and why not


def inactive_reasons(
    customers: pd.DataFrame, bills: pd.DataFrame, as_of: pd.Timestamp, grace_days: int
) -> pd.Series:
    """Why each customer of the chunk is not a row at ``as_of`` (None: active).

    The same rule as the feature engine, said in words: connected on or before as_of (or,
    with no connection date, billed by then) and not disconnected more than the grace period
    before it. The stage checks the count against the rows the engine made.
    """
    first_bill = bills.groupby("customer_id")["issued_on"].min()
    issued = customers["customer_id"].map(first_bill)
    connected = pd.to_datetime(customers["connected_on"])
    gone = pd.to_datetime(customers["disconnected_on"])
    reason = pd.Series(None, index=customers.index, dtype="object")
    no_date = connected.isna()
    start = connected.where(~no_date, pd.to_datetime(issued).where(issued <= as_of))
    reason[no_date & start.isna()] = "not_billed_yet"
    reason[~no_date & (connected > as_of)] = "not_connected_yet"
    left = gone.notna() & (gone < as_of - pd.Timedelta(days=grace_days))
    reason[reason.isna() & left] = "disconnected_before_as_of"
    return reason


# ---------------------------------------------------------------- the run


def default_as_of(end: pd.Timestamp) -> pd.Timestamp:
    """The last month end on or before the data's end."""
    month_end = end + pd.offsets.MonthEnd(0)
    return month_end if month_end == end.normalize() else end - pd.offsets.MonthEnd(1)


def _manifest(
    as_of: pd.Timestamp, size: int, model: DecisionModel, inputs: dict[str, Path], n: int
) -> dict:
    return {
        "as_of": str(as_of.date()),
        "partition_customers": size,
        "partitions": -(-n // size),
        "customers": n,
        "models": model.versions,
        "decision": json.loads(model.config.to_json()),
        "inputs": {
            t: {"file": str(p), "rows": pq.read_metadata(p).num_rows} for t, p in inputs.items()
        },
    }


def _done(path: Path) -> dict | None:
    """The stats of a finished partition file, or None if it is absent or unreadable."""
    try:
        meta = pq.read_metadata(path)
        stats = json.loads(meta.metadata[PART_KEY])
    except (OSError, KeyError, TypeError, ValueError, pa.ArrowInvalid):
        return None
    return stats if stats.get("active") == meta.num_rows else None


def _quarantined(quarantine: Path | None) -> dict[str, int]:
    if quarantine is None or not quarantine.is_dir():
        return {}
    return {p.stem: pq.read_metadata(p).num_rows for p in sorted(quarantine.glob("*.parquet"))}


def main(
    validated: Path,
    out: Path,
    params: Params,
    model: DecisionModel,
    as_of: str | None = None,
    quarantine: Path | None = None,
    overwrite: bool = False,
    progress: bool | None = None,
) -> dict:
    """Score the base; see the module docstring. Returns the reconciliation.

    Raises:
        ScoreError: ``out`` holds a run with another manifest (pass ``overwrite``), or there
            is no customer to score.
    """
    started = time.perf_counter()
    inputs = {t: validated / f"{t}.parquet" for t in TABLES}
    for path in inputs.values():
        if not path.exists():
            raise FileNotFoundError(f"{path}: missing (run the validate stage first)")
    costs, grace = engine_settings(params.features, params.tariffs)
    workdir = Path(tempfile.mkdtemp(prefix="gridscore-score-"))
    try:
        con = _connect(params.features, workdir)
        day = (
            pd.Timestamp(as_of or params.score.as_of)
            if (as_of or params.score.as_of)
            else default_as_of(data_end(con, inputs))
        )
        n = customer_count(inputs["customers"])
        if n == 0:
            raise ScoreError(f"{inputs['customers']}: no customers to score")
        size = params.score.partition_customers
        manifest = _manifest(day, size, model, inputs, n)
        _prepare_out(out, manifest, overwrite)
        try:  # inputs in customer order are streamed as they are; others sorted first
            stats = _run(n, inputs, size, day, costs, grace, model, out, progress)
        except _NotInOrder:
            # Partitions made before the disorder showed may lack rows found later: redo all.
            for part in out.glob("part-*.parquet"):
                part.unlink()
            inputs.update({t: _sort(con, inputs[t], workdir) for t in TABLES})
            stats = _run(n, inputs, size, day, costs, grace, model, out, progress)
        con.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    shutil.rmtree(out / "_tmp", ignore_errors=True)
    rec = _reconcile(stats, manifest, _quarantined(quarantine), time.perf_counter() - started)
    write_json(rec, out / RECONCILIATION)
    (out / SUCCESS).write_text("")
    log.info(
        "scored %d of %d customers at %s (%d flagged) in %d partitions, %.1f s",
        rec["scored"],
        rec["customers_in"],
        rec["as_of"],
        rec["flagged"],
        rec["partitions"],
        rec["seconds"],
    )
    return rec


def _prepare_out(out: Path, manifest: dict, overwrite: bool) -> None:
    path = out / MANIFEST
    if out.exists() and overwrite:
        shutil.rmtree(out)
    if out.exists() and any(out.iterdir()):
        if not path.exists():
            raise ScoreError(
                f"{out} holds files but no {MANIFEST}: not a scoring run; use --overwrite"
            )
        before = json.loads(path.read_text())
        if before != manifest:
            diff = sorted(k for k in manifest if before.get(k) != manifest[k])
            raise ScoreError(
                f"{out} holds a scoring run with other {', '.join(diff)}; "
                "use --overwrite to replace it (or another --out)"
            )
        (out / SUCCESS).unlink(missing_ok=True)
        log.info("resuming the scoring run in %s", out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(manifest, path)


def _run(n_customers, inputs, size, day, costs, grace, model, out, progress) -> list[dict]:
    schema = output_schema(model)
    snaps = Snapshots((day,))
    tmp = out / "_tmp"
    tmp.mkdir(exist_ok=True)
    n_parts = -(-n_customers // size)
    stats = []
    bar = tqdm(total=n_customers, desc="score", unit="customer", disable=progress is False)
    for i, (cust, bills, pays) in enumerate(_chunks(inputs, size)):
        t0 = time.perf_counter()
        path = out / f"part-{i:05d}.parquet"
        done = _done(path)
        if done is not None:
            stats.append({**done, "resumed": True})
            bar.update(len(cust))
            log.info("partition %d/%d: already complete, skipped", i + 1, n_parts)
            continue
        feats = FEATURE_TABLE.validate(features_of(prepare(cust, bills, pays), snaps, costs, grace))
        why = inactive_reasons(cust, bills, day, grace)
        inactive = why.value_counts().to_dict()
        if len(feats) + sum(inactive.values()) != len(cust):
            raise ScoreError(
                f"partition {i}: {len(cust)} customers but {len(feats)} active and "
                f"{sum(inactive.values())} inactive: the activity rule and the engine disagree"
            )
        decisions = model.decide(feats) if len(feats) else pd.DataFrame(columns=model.columns())
        flags = decisions["flags"].dropna().str.split(";").explode().value_counts().to_dict()
        part = {
            "partition": i,
            "customers": len(cust),
            "active": len(decisions),
            "inactive": {k: int(v) for k, v in inactive.items()},
            "flagged": int(decisions["flags"].notna().sum()),
            "flags": {k: int(v) for k, v in flags.items()},
            "grades": decisions["grade"].value_counts().sort_index().to_dict(),
            "tiers": decisions["tier"].value_counts().sort_index().to_dict(),
            "first_customer": str(cust["customer_id"].iloc[0]),
            "last_customer": str(cust["customer_id"].iloc[-1]),
        }
        staged = tmp / f"{path.name}.{os.getpid()}"
        pq.write_table(to_arrow(decisions, schema, part), staged, compression="zstd")
        os.replace(staged, path)  # atomic: a partition is there whole or not at all
        stats.append({**part, "resumed": False})
        bar.update(len(cust))
        log.info(
            "partition %d/%d: %d customers, %d scored, %d flagged, %.1f s",
            i + 1,
            n_parts,
            len(cust),
            len(decisions),
            part["flagged"],
            time.perf_counter() - t0,
        )
    bar.close()
    return stats


def _sum(dicts) -> dict:
    total: dict[str, int] = {}
    for d in dicts:
        for k, v in d.items():
            total[k] = total.get(k, 0) + int(v)
    return dict(sorted(total.items()))


def _reconcile(stats: list[dict], manifest: dict, quarantined: dict, seconds: float) -> dict:
    inactive = _sum(s["inactive"] for s in stats)
    rec = {
        "as_of": manifest["as_of"],
        "customers_in": sum(s["customers"] for s in stats),
        "scored": sum(s["active"] for s in stats),
        "not_active": inactive,
        "flagged": sum(s["flagged"] for s in stats),
        "flags": _sum(s["flags"] for s in stats),
        "grades": _sum(s["grades"] for s in stats),
        "tiers": _sum(s["tiers"] for s in stats),
        "quarantined_upstream": quarantined,
        "partitions": len(stats),
        "partitions_resumed": sum(s["resumed"] for s in stats),
        "models": manifest["models"],
        "seconds": round(seconds, 1),
    }
    rec["balanced"] = rec["customers_in"] == rec["scored"] + sum(inactive.values()) and (
        rec["customers_in"] == manifest["customers"] and rec["partitions"] == manifest["partitions"]
    )
    if not rec["balanced"]:
        raise ScoreError(f"the reconciliation does not add up: {rec}")
    return rec


def read_scores(out: Path) -> pd.DataFrame:
    """The scored base as one frame (for tests, notebooks and small bases)."""
    if not (out / SUCCESS).exists():
        raise ScoreError(f"{out}: no {SUCCESS}: the scoring run there did not finish")
    parts = sorted(out.glob("part-*.parquet"))
    frame = pq.ParquetDataset(parts).read().to_pandas() if parts else pd.DataFrame()
    return frame.reset_index(drop=True)


def feature_sample(
    validated: Path, params: Params, as_of: str, customers: int = 200
) -> pd.DataFrame:
    """Feature rows of the first customers at ``as_of`` (an input example for the pyfunc)."""
    inputs = {t: validated / f"{t}.parquet" for t in TABLES}
    first = pq.ParquetFile(inputs["customers"]).iter_batches(batch_size=customers)
    cust = _frame(pa.Table.from_batches([next(first)])).sort_values("customer_id")
    ids = cust["customer_id"].tolist()
    parts = []
    for t in ("bills", "payments"):
        table = pq.read_table(inputs[t], filters=[("customer_id", "in", ids)])
        parts.append(_frame(table))
    costs, grace = engine_settings(params.features, params.tariffs)
    feats = features_of(prepare(cust, *parts), Snapshots((pd.Timestamp(as_of),)), costs, grace)
    return feats.head(5).reset_index(drop=True)
