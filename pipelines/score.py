"""The ``score`` stage: the whole customer base decided at one ``as_of``, partition by partition.

Streams the validated tables in customer order (``pipelines.streaming``), builds each
partition's point-in-time features for ``as_of`` and runs the whole decision on them
(:class:`models.decision.DecisionModel`), so memory is bounded by the partition size, not by
the base. Writes to ``out``:

- ``part-NNNNN.parquet``: one row per customer active at ``as_of`` (docs/scoring.md), each
  file written to ``out/_tmp`` and moved into place only when complete (``os.replace``); its
  counts (customers in, active, inactive by reason, flagged) ride in its Parquet footer;
- ``notices/part-NNNNN.parquet``: the notice (printable HTML, in Chinese and in English) of
  every deposit or guarantee the partition asks, its reasons and amount first checked against
  the customer's records (``pipelines.notice``); written before the partition's own file is
  moved into place, so a whole partition has its notices;
- ``_manifest.json``: what the run is (as_of, partitioning, model versions, inputs): a rerun
  into the same folder with the same manifest resumes, skipping finished partitions;
- ``_reconciliation.json``: customers in = scored + not active (by reason); flagged; quarantined
  upstream; written last, with ``_SUCCESS``.

With tracking on, the run is logged to MLflow with the whole-decision pyfunc, registered as
``gridscore-decision`` (alias ``candidate``).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from features.completeness import gaps_at
from features.engine import Snapshots, features_and_inactive, features_of, prepare
from features.errors import GridscoreError
from models.decision import DecisionModel
from models.notice import LANGUAGES
from models.policy import ADVERSE
from pipelines import decision, partition, streaming
from pipelines import notice as notices
from pipelines import validate as validation
from pipelines.config import Params
from pipelines.features import FEATURE_TABLE
from pipelines.io import (
    clear_stale_temp,
    exclusive,
    process_alive,
    readable,
    replace_folder,
    write_json,
)
from pipelines.tracking import Tracker, model_requirements, optional_schema

log = logging.getLogger(__name__)

HISTORY = "_history.json"
MANIFEST = "_manifest.json"
RECONCILIATION = "_reconciliation.json"
SUCCESS = "_SUCCESS"
#: Temporary folders of a run, named with its pid so the next run can clear a dead one's.
SCORE_TEMP, MODELS_TEMP = "gridscore-score-", "gridscore-models-"


class ScoreError(GridscoreError):
    """The scoring run cannot go on (a mismatch, a folder from another run, no data)."""


@dataclass(frozen=True)
class Paths:
    """Where the stage reads and writes. Give ``validated`` (the validate stage's tables) or
    ``raw`` (a raw folder, validated first into ``<out>.validated`` and ``<out>.quarantine``)."""

    out: Path
    validated: Path | None = None
    raw: Path | None = None
    quarantine: Path | None = None
    metrics: Path | None = None  # a copy of the reconciliation without the run time
    #: the run history: every month end of ``score.runs`` under ``as_of=YYYY-MM-DD/``
    history: Path | None = None


def run(params: Params, paths: Paths, overwrite: bool = False) -> dict:
    """Run the stage: validate a raw folder if given, load the models (``score.arrears_model``
    and ``score.segments_model``: folders or registry URIs), score, write, log.

    Returns:
        The reconciliation.
    """
    if (paths.raw is None) == (paths.validated is None):
        raise ScoreError("give one of --validated (validated tables) or --raw (a raw folder)")
    if paths.validated is not None and paths.quarantine is None:
        raise ScoreError(
            "give --quarantine with --validated (the validate stage's quarantine folder): "
            "without it no decision can tell a complete ledger from one with rows held back"
        )
    Tracker.of(params)  # a dead tracking server stops the run before any work
    readable(paths.validated, paths.quarantine, paths.raw)  # empty or truncated Parquet: one line
    with exclusive(paths.out):  # one run at a time into a folder, for the run's whole life
        return _run_locked(params, paths, overwrite)


def _run_locked(params: Params, paths: Paths, overwrite: bool) -> dict:
    validated, quarantine = paths.validated, paths.quarantine
    if paths.raw is not None:
        out = paths.out
        validated = out.with_name(f"{out.name}.validated")
        quarantine = quarantine or out.with_name(f"{out.name}.quarantine")
        summary = out.with_name(f"{out.name}.validation.json")
        validation.validate_raw(paths.raw, validated, quarantine, summary, params)
    tracker = Tracker.of(params)
    with tempfile.TemporaryDirectory(prefix=f"{MODELS_TEMP}{os.getpid()}-") as workdir:
        loaded = decision.load(
            params.score.arrears_model, params.score.segments_model, params, Path(workdir), tracker
        )
        rec = score_base(validated, paths.out, params, loaded.model, quarantine, overwrite)
        if paths.history is not None:
            keep_history(
                validated, paths.out, paths.history, params, loaded.model, quarantine, overwrite
            )
        if paths.metrics is not None:  # without the run time: a rerun leaves it unchanged
            write_json({k: v for k, v in rec.items() if k != "seconds"}, paths.metrics)
        if tracker is not None:
            _log(tracker, params, validated, paths.out, rec, loaded, paths.history)
    return rec


def _log(
    tracker: Tracker,
    params: Params,
    validated: Path,
    out: Path,
    rec: dict,
    loaded,
    history: Path | None = None,
) -> None:
    """The scoring run and the whole-decision pyfunc (``pipelines.decision_pyfunc.DecisionPyfunc``),
    which carries its two models and its policy as artifacts."""
    import mlflow
    from mlflow.models import ModelSignature

    from pipelines.decision_pyfunc import DecisionPyfunc

    model = loaded.model
    example = feature_sample(validated, params, rec["as_of"])
    example = example.assign(
        as_of=example["as_of"].astype(str).str[:10],
        quarantined_rows=0,  # the ledger columns are inputs too (optional, as every feature)
        quarantine_refs="payments.parquet:1 zero_amount 2024-01-01",
    )
    metrics = {k: rec[k] for k in ("customers_in", "scored", "flagged", "seconds")}
    run_params = {"as_of": rec["as_of"], **model.versions, **_registered(tracker, params)}
    with (
        tracker.stage_run("score", run_params, metrics, _read(validated, params)),
        tempfile.TemporaryDirectory() as tmp,
    ):
        tracker.log_files([out / RECONCILIATION, out / MANIFEST], "score")
        if history is not None and (history / HISTORY).exists():
            tracker.log_files([history / HISTORY], "score")
        meta = Path(tmp) / "decision.json"
        config = json.loads(model.config.to_json())
        meta.write_text(json.dumps({"config": config, "versions": model.versions}, indent=2))
        signature = ModelSignature(
            optional_schema(example, required=("customer_id", "as_of")),
            optional_schema(model.decide(example), required=()),
        )
        artifacts = {"arrears": str(loaded.arrears_dir), "decision": str(meta)}
        if loaded.segments_dir is not None:
            artifacts["segments"] = str(loaded.segments_dir)
        info = mlflow.pyfunc.log_model(
            name="decision",
            python_model=DecisionPyfunc(),
            artifacts=artifacts,
            signature=signature,
            input_example=example,
            registered_model_name=decision.DECISION_MODEL if params.score.register_model else None,
            pip_requirements=model_requirements(),
        )
    registered = decision.DECISION_MODEL if params.score.register_model else None
    tracker.note(out, tracker.register_candidate(info, registered))


def _model_folders(params: Params) -> list[Path]:
    where = (params.score.arrears_model, params.score.segments_model)
    return [Path(w) for w in where if not str(w).startswith("models:/")]


def _read(validated: Path, params: Params) -> list[Path]:
    """The data a scoring run reads: the validated tables and the model folders."""
    return [validated, *_model_folders(params)]


def _registered(tracker: Tracker, params: Params) -> dict[str, str]:
    """The registered version (``gridscore-arrears/19``) of each model loaded from a folder
    whose stage noted one; a registry URI's version is in ``model.versions`` already."""
    out = {}
    for folder, key in zip(
        (Path(params.score.arrears_model), Path(params.score.segments_model)),
        ("arrears_model_registered", "segments_model_registered"),
        strict=True,
    ):
        note = None if str(folder).startswith("models:") else tracker.read_note(folder)
        if note and note.get("name") and note.get("version"):
            out[key] = f"{note['name']}/{note['version']}"
    return out


# ---------------------------------------------------------------- the run


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
    """The stats of a finished partition file, or None if it or its notice table is absent,
    unreadable, or not the size its footer says."""
    try:
        meta = pq.read_metadata(path)
        stats = json.loads(meta.metadata[partition.PART_KEY])
        pages = pq.read_metadata(notices.table_path(path.parent, stats["partition"])).num_rows
    except (OSError, KeyError, TypeError, ValueError, pa.ArrowInvalid):
        return None
    whole = pages == len(LANGUAGES) * stats.get("notices", 0)
    return stats if stats.get("active") == meta.num_rows and whole else None


def _quarantined(quarantine: Path | None) -> dict[str, int]:
    if quarantine is None or not quarantine.is_dir():
        return {}
    return {p.stem: pq.read_metadata(p).num_rows for p in sorted(quarantine.glob("*.parquet"))}


def score_base(
    validated: Path,
    out: Path,
    params: Params,
    model: DecisionModel,
    quarantine: Path | None = None,
    overwrite: bool = False,
    progress: bool | None = None,
) -> dict:
    """Score the base at ``score.as_of`` (default: the data's last month end) into ``out``;
    see the module docstring. Returns the reconciliation.

    Raises:
        ScoreError: ``out`` holds a run with another manifest (pass ``overwrite``), or there
            is no customer to score.
    """
    with exclusive(out):
        return _score_base(validated, out, params, model, quarantine, overwrite, progress)


def _score_base(validated, out, params, model, quarantine, overwrite, progress) -> dict:
    started = time.perf_counter()
    inputs = streaming.inputs(validated)
    costs, grace = streaming.engine_settings(params)
    gaps = streaming.ledger_gaps(inputs, quarantine)
    for prefix in (SCORE_TEMP, MODELS_TEMP):  # left by runs killed before they cleaned up
        if cleared := clear_stale_temp(prefix):
            log.info("removed %d temporary folder(s) of dead runs (%s*)", cleared, prefix)
    workdir = Path(tempfile.mkdtemp(prefix=f"{SCORE_TEMP}{os.getpid()}-"))
    try:
        con = streaming.connect(params.features, workdir)
        as_of = params.score.as_of
        end = streaming.data_end(con, inputs)
        day = pd.Timestamp(as_of) if as_of else streaming.last_month_end(end)
        start = streaming.data_start(con, inputs)
        streaming.check_as_of(day, start, end, params.score.allow_ahead)
        n = streaming.customer_count(inputs["customers"])
        if n == 0:
            raise ScoreError(f"{inputs['customers']}: no customers to score")
        size = params.score.partition_customers
        manifest = _manifest(day, size, model, inputs, n)
        target = _target(out, manifest, overwrite)
        _prepare_out(target, manifest)

        def redo_all() -> None:  # partitions made before the disorder showed may lack rows
            notice_tables = target.glob(f"{notices.FOLDER}/part-*.parquet")
            for part in [*target.glob("part-*.parquet"), *notice_tables]:
                part.unlink()

        stats = streaming.in_customer_order(
            con,
            inputs,
            workdir,
            lambda paths: _run(
                n, paths, size, day, costs, grace, gaps, model, target, progress, params
            ),
            redo_all,
        )
        con.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    shutil.rmtree(target / "_tmp", ignore_errors=True)
    stats = _on_disk(target, manifest, {s["partition"]: s["resumed"] for s in stats})
    rec = _reconcile(stats, manifest, _quarantined(quarantine), time.perf_counter() - started)
    # the run's time is logged and tracked, not written: the same run gives the same files
    write_json({k: v for k, v in rec.items() if k != "seconds"}, target / RECONCILIATION)
    (target / SUCCESS).write_text("")
    if target != out:  # the replacement is whole: it takes the previous run's place
        replace_folder(target, out)
        log.info("replaced the previous scoring run in %s", out)
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


def _on_disk(out: Path, manifest: dict, resumed: dict[int, bool]) -> list[dict]:
    """Every partition's counts as its file on disk says (its Parquet footer), after
    checking the folder holds exactly the run's partitions, each whole, and its manifest:
    the reconciliation and ``_SUCCESS`` rest on what a reader will find, not on what the
    run remembers writing."""
    on_disk = json.loads((out / MANIFEST).read_text()) if (out / MANIFEST).exists() else None
    if on_disk != manifest:
        raise ScoreError(f"{out}/{MANIFEST} changed under the run: not marked as finished")
    want = [f"part-{i:05d}.parquet" for i in range(manifest["partitions"])]
    found = sorted(p.name for p in out.glob("part-*.parquet"))
    if found != want:
        missing, extra = sorted(set(want) - set(found)), sorted(set(found) - set(want))
        raise ScoreError(
            f"{out}: partitions on disk do not match the run (missing {missing or 'none'}, "
            f"not of this run {extra or 'none'}): not marked as finished; score again"
        )
    stats = []
    for i, name in enumerate(want):
        part = _done(out / name)
        if part is None or part.get("partition") != i:
            raise ScoreError(f"{out / name}: unreadable or not whole: not marked as finished")
        stats.append({**part, "resumed": resumed.get(i, True)})
    return stats


def _manifest_in(folder: Path) -> dict | None:
    path = folder / MANIFEST
    return json.loads(path.read_text()) if path.is_file() else None


def _holds_files(folder: Path) -> bool:
    return folder.is_dir() and any(folder.iterdir())


def next_folder(out: Path) -> Path:
    """Where ``--overwrite`` writes the run that replaces the one in ``out`` (beside it)."""
    return out.with_name(f".{out.name}.next")


def _target(out: Path, manifest: dict, overwrite: bool) -> Path:
    """The folder this run writes: ``out`` itself when it is empty or holds this very run
    (resumed); with ``overwrite``, :func:`next_folder`, renamed over ``out`` only once
    whole: the previous run stays readable until its replacement is complete, and a
    replacement killed midway resumes there on the next ``--overwrite``. Folders that a
    replacement killed during the swap left are cleared first (their pid is dead).

    Raises:
        ScoreError: ``out`` holds another run (or files that are no run) and ``overwrite``
            is not given.
    """
    for old in out.parent.glob(f".{out.name}.old-*"):
        pid = old.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not process_alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    nxt, here = next_folder(out), _manifest_in(out)
    if _manifest_in(nxt) == manifest and (overwrite or not _holds_files(out)):
        return nxt  # a replacement killed midway (or during the swap): resumed there
    if not _holds_files(out) or (here == manifest and not overwrite):
        shutil.rmtree(nxt, ignore_errors=True)  # a replacement of other settings is dropped
        return out  # a new run, or this very run resumed
    if overwrite:
        shutil.rmtree(nxt, ignore_errors=True)
        log.info("scoring into %s; it replaces %s once whole", nxt, out)
        return nxt
    if here is None:
        raise ScoreError(f"{out} holds files but no {MANIFEST}: not a scoring run; use --overwrite")
    diff = sorted(k for k in manifest if here.get(k) != manifest[k])
    raise ScoreError(
        f"{out} holds a scoring run with other {', '.join(diff)}; "
        "use --overwrite to replace it (or another --out)"
    )


def _prepare_out(folder: Path, manifest: dict) -> None:
    if _manifest_in(folder) == manifest:
        (folder / SUCCESS).unlink(missing_ok=True)
        log.info("resuming the scoring run in %s", folder)
    folder.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(folder / "_tmp", ignore_errors=True)  # a dead run's half-written partitions
    write_json(manifest, folder / MANIFEST)


@dataclass(frozen=True)
class _Job:
    """What deciding every partition of a run needs."""

    day: pd.Timestamp
    costs: dict
    grace: int
    gaps: pd.DataFrame
    model: DecisionModel


def _decide_partition(job: _Job, i: int, cust, bills, pays) -> tuple:
    """Partition ``i``'s features and whole decision: ``(decisions, inactive counts)``."""
    model = job.model
    snaps = Snapshots((job.day,))
    feats, why = features_and_inactive(prepare(cust, bills, pays), snaps, job.costs, job.grace)
    feats = FEATURE_TABLE.validate(feats)
    feats = pd.concat([feats, gaps_at(job.gaps, feats)], axis=1)  # incomplete ledgers
    inactive = why["reason"].value_counts().to_dict()
    decisions = model.decide(feats) if len(feats) else pd.DataFrame(columns=model.columns())
    return decisions, inactive


def _run(
    n_customers, inputs, size, day, costs, grace, gaps, model, out, progress, params
) -> list[dict]:
    """Every partition not already whole in ``out``, in customer order.

    Two partitions overlap: while a worker process checks partition i's notices against its
    records and writes it (``pipelines.partition``: pandas and Python), this process decides
    partition i + 1. At most one partition is being finished at a time, and partitions are
    finished and written in order, each atomically as before: a run killed at any moment
    leaves whole partitions only, and the output is the serial run's, byte for byte.
    """
    (out / "_tmp").mkdir(exist_ok=True)
    n_parts = -(-n_customers // size)
    job = _Job(day, costs, grace, gaps, model)
    to_finish = partition.Finish(
        out, params, model.config.top_n, partition.output_schema(model.columns())
    )
    stats: list[dict] = []
    bar = tqdm(total=n_customers, desc="score", unit="customer", disable=progress is False)
    with partition.Finisher() as finisher:
        pending: tuple[int, int, float] | None = None  # the partition being finished

        def settle() -> None:  # its counts, in order
            nonlocal pending
            if pending is not None:
                at, n, t0 = pending
                pending = None
                try:
                    part = finisher.result()
                except partition.WorkerDied:
                    raise _worker_died(out, at) from None
                stats.append({**part, "resumed": False})
                bar.update(n)
                log.info(
                    "partition %d/%d: %d customers, %d scored, %d flagged, %.1f s",
                    part["partition"] + 1,
                    n_parts,
                    part["customers"],
                    part["active"],
                    part["flagged"],
                    time.perf_counter() - t0,
                )

        for i, (cust, bills, pays) in enumerate(streaming.chunks(inputs, size)):
            done = _done(out / f"part-{i:05d}.parquet")
            if done is not None:
                settle()
                stats.append({**done, "resumed": True})
                log.info("partition %d/%d: already complete, skipped", i + 1, n_parts)
                bar.update(len(cust))
                continue
            t0 = time.perf_counter()
            decided = _decide_partition(job, i, cust, bills, pays)
            # the finisher is sent only what it needs: not the partition's whole ledger
            records = notices.records_of(decided[0], bills, pays)
            ids = cust["customer_id"]
            span = (len(cust), str(ids.iloc[0]), str(ids.iloc[-1]))
            del bills, pays
            settle()  # partition i - 1 written (or its error raised) before i is finished
            try:
                finisher.hand_over(to_finish, i, span, records, decided)
            except partition.WorkerDied:
                raise _worker_died(out, i) from None
            # the worker holds partition i now: not this process too while it decides i + 1
            del decided, records
            pending = (i, len(cust), t0)
        settle()
    bar.close()
    return stats


def _worker_died(out: Path, at: int) -> ScoreError:
    return ScoreError(
        f"{out}: the process finishing partition {at} died (killed, or out of memory); the "
        "partitions before it are whole: run again to resume"
    )


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
        "credit_actions": _sum(s.get("credit_actions", {}) for s in stats),
        "tiers": _sum(s["tiers"] for s in stats),
        "notices": sum(s.get("notices", 0) for s in stats),
        "quarantined_upstream": quarantined,
        "partitions": len(stats),
        "partitions_resumed": sum(s["resumed"] for s in stats),
        "models": manifest["models"],
        "seconds": round(seconds, 1),
    }
    asked = sum(rec["credit_actions"].get(a, 0) for a in ADVERSE)
    rec["balanced"] = rec["customers_in"] == rec["scored"] + sum(inactive.values()) and (
        rec["customers_in"] == manifest["customers"]
        and rec["partitions"] == manifest["partitions"]
        and rec["notices"] == asked  # every deposit or guarantee asked has its notice
    )
    if not rec["balanced"]:
        raise ScoreError(f"the reconciliation does not add up: {rec}")
    return rec


# ---------------------------------------------------------------- the run history


def run_folder(history: Path, day: str | pd.Timestamp) -> Path:
    """The folder of the run at ``day`` in a history: ``as_of=YYYY-MM-DD``."""
    return history / f"as_of={pd.Timestamp(day).date()}"


def history_days(latest: str | pd.Timestamp, runs: int) -> list[pd.Timestamp]:
    """The ``runs`` month ends up to ``latest``, oldest first."""
    last = pd.Timestamp(latest) + pd.offsets.MonthEnd(0)
    return [last - pd.offsets.MonthEnd(k) for k in range(runs - 1, -1, -1)]


def keep_history(
    validated: Path,
    out: Path,
    history: Path,
    params: Params,
    model: DecisionModel,
    quarantine: Path | None,
    overwrite: bool = False,
    progress: bool | None = None,
) -> dict:
    """Keep the run in ``out`` (the decision of record) and the ``score.runs`` - 1 month ends
    before it in ``history``, each a whole scoring run under ``as_of=YYYY-MM-DD/``, so runs
    can be compared without scoring again (DuckDB: ``read_parquet('data/score_history/
    as_of=*/part-*.parquet', hive_partitioning = true)``).

    - The latest month end is a copy of ``out``; it replaces the one there if it differs.
    - An earlier month end already there whole (``_SUCCESS``) is kept as it is, whatever model
      decided it: it is the record of that month (a monthly job adds one folder per month).
      One missing is decided now by this model (``params`` at that as_of), so a first run
      back-fills the history; one left unfinished by a killed run is resumed (one of other
      settings is replaced only with ``overwrite``).
    - ``_history.json`` (written last) lists every whole run in ``history`` with its counts.

    Returns:
        The content of ``_history.json``.
    """
    with exclusive(history):
        return _keep_history(
            validated, out, history, params, model, quarantine, overwrite, progress
        )


def _keep_history(validated, out, history, params, model, quarantine, overwrite, progress) -> dict:
    rec = json.loads((out / RECONCILIATION).read_text())
    days = history_days(rec["as_of"], params.score.runs)
    history.mkdir(parents=True, exist_ok=True)
    for day in days[:-1]:
        folder = run_folder(history, day)
        if (folder / SUCCESS).exists():
            continue
        at = params.override("score", as_of=str(day.date()))
        # under the history's lock (held by the caller): no lock file of its own inside
        # the history, which would make its bytes differ run to run
        _score_base(validated, folder, at, model, quarantine, overwrite, progress)
    latest = run_folder(history, days[-1])
    if _manifest_in(latest) != _manifest_in(out) or not (latest / SUCCESS).exists():
        staged = history / f".{latest.name}.copy-{os.getpid()}"
        shutil.rmtree(staged, ignore_errors=True)
        shutil.copytree(out, staged, ignore=shutil.ignore_patterns("_tmp", ".*"))
        replace_folder(staged, latest)
    summary = history_summary(history)
    write_json(summary, history / HISTORY)
    log.info("run history in %s: %s", history, ", ".join(r["as_of"] for r in summary["runs"]))
    return summary


def history_summary(history: Path) -> dict:
    """Every whole run in ``history``, oldest first, with its headline counts."""
    runs = []
    for folder in sorted(history.glob("as_of=*")):
        if not (folder / SUCCESS).exists():
            continue
        r = json.loads((folder / RECONCILIATION).read_text())
        runs.append(
            {
                "as_of": r["as_of"],
                "folder": folder.name,
                "scored": r["scored"],
                "flagged": r["flagged"],
                "asked_for_security": sum(r["credit_actions"].get(a, 0) for a in ADVERSE),
                "credit_actions": r["credit_actions"],
                "grades": r["grades"],
                "tiers": r["tiers"],
                "models": r["models"],
            }
        )
    return {"runs": runs}


def read_history(history: Path) -> pd.DataFrame:
    """Every whole run in ``history`` as one frame (``as_of`` tells the runs apart)."""
    runs = history_summary(history)["runs"]
    if not runs:
        raise ScoreError(f"{history}: no finished scoring run (as_of=YYYY-MM-DD folders)")
    return pd.concat([read_scores(history / r["folder"]) for r in runs], ignore_index=True)


def read_scores(out: Path) -> pd.DataFrame:
    """The scored base as one frame (for tests, notebooks and small bases).

    Raises:
        ScoreError: the run there did not finish, or its files do not match its
            reconciliation (a partition missing or added since).
    """
    if not (out / SUCCESS).exists():
        raise ScoreError(f"{out}: no {SUCCESS}: the scoring run there did not finish")
    parts = sorted(out.glob("part-*.parquet"))
    rec = json.loads((out / RECONCILIATION).read_text())
    rows = sum(pq.read_metadata(p).num_rows for p in parts)
    if len(parts) != rec["partitions"] or rows != rec["scored"]:
        raise ScoreError(
            f"{out}: {len(parts)} partition(s) with {rows} rows on disk, but the run "
            f"reconciled {rec['partitions']} with {rec['scored']}: score again"
        )
    frame = (
        pq.ParquetDataset(parts, partitioning=None).read().to_pandas() if parts else pd.DataFrame()
    )
    return frame.reset_index(drop=True)


def feature_sample(
    validated: Path, params: Params, as_of: str, customers: int = 200
) -> pd.DataFrame:
    """Feature rows of the first customers at ``as_of`` (an input example for the pyfunc)."""
    cust, bills, pays = streaming.first_customers(streaming.inputs(validated), customers)
    costs, grace = streaming.engine_settings(params)
    feats = features_of(prepare(cust, bills, pays), Snapshots((pd.Timestamp(as_of),)), costs, grace)
    return feats.head(5).reset_index(drop=True)
