"""Batch scoring: every active customer decided once, as the explain stage would; resumable;
models from the registry; the whole-decision pyfunc offline; mismatches stop clearly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from features.engine import Snapshots
from features.errors import GridscoreError, InputMissing
from models.arrears import FeatureMismatchError
from models.decision import FeatureMissing
from pipelines import decision, score, streaming
from pipelines import notice as notice_stage
from pipelines.cli import app
from pipelines.config import load_params
from tests.conftest import PARAMS, PROJECT, first_customers, shared

AS_OF = "2026-01-31"  # the default: the last month end the data covers


def _params(tmp: Path, **score_params) -> Path:
    """A params file like the project's, tracking off, with score settings changed."""
    raw = yaml.safe_load(PARAMS.read_text())
    raw["score"].update(score_params)
    raw["tracking"]["enabled"] = False
    path = tmp / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_every_active_customer_is_scored_once_and_the_counts_add_up(scored, default_run, params):
    tmp, _, scores = scored
    root, _, _ = default_run
    feats = pd.read_parquet(
        root / "features" / "features.parquet", columns=["customer_id", "as_of"]
    )
    active = feats.loc[pd.to_datetime(feats["as_of"]) == pd.Timestamp(AS_OF), "customer_id"]
    assert scores["customer_id"].is_unique
    assert sorted(scores["customer_id"]) == sorted(active)
    rec = json.loads((tmp / "scores" / score.RECONCILIATION).read_text())
    customers = pd.read_parquet(root / "validated" / "customers.parquet", columns=["customer_id"])
    assert rec["balanced"] and rec["customers_in"] == len(customers)
    assert rec["scored"] == len(scores) == rec["customers_in"] - sum(rec["not_active"].values())
    assert rec["flagged"] == scores["flags"].notna().sum()
    quarantined = {p.stem: len(pd.read_parquet(p)) for p in (root / "quarantine").glob("*.parquet")}
    assert rec["quarantined_upstream"] == quarantined and sum(quarantined.values()) > 0
    assert json.loads((tmp / "score.json").read_text()) == {
        k: v for k, v in rec.items() if k != "seconds"
    }
    assert (scores["as_of"].astype(str) == AS_OF).all()


def test_the_decision_is_the_explain_stage_decision(scored, explained):
    _, _, scores = scored
    out = explained[0]
    keys = pd.read_parquet(out / "data" / "contributions.parquet")
    assert str(keys["as_of"].iloc[0].date()) == AS_OF
    both = scores.merge(keys, on="customer_id", suffixes=("", "_x"))
    assert len(both) == len(scores) == len(keys)
    np.testing.assert_allclose(both["pd"], both["pd_x"])
    np.testing.assert_allclose(both["expected_loss"], both["expected_loss_x"])
    for col in ("grade", "tier", "credit_action", "service_level"):
        assert (both[col] == both[f"{col}_x"]).all(), col
    # The batch gives reasons where a decision or a person needs them (score.reasons:
    # needed), the same reasons as the explain stage's, which explains everyone.
    feats = pd.read_parquet(
        explained[3]["features"], columns=["customer_id", "as_of", "overdue_arrears"]
    )
    feats = feats[pd.to_datetime(feats["as_of"]) == pd.Timestamp(AS_OF)].set_index("customer_id")
    overdue = feats.loc[scores["customer_id"], "overdue_arrears"].fillna(0).to_numpy()
    need = (
        (scores["credit_action"] != "none").to_numpy()
        | scores["tier"].isin(["A", "B"]).to_numpy()
        | (overdue > 0)
    )
    assert (scores["explained"].to_numpy() == need).all() and 0 < need.mean() < 0.5
    assert scores.loc[~need, ["reason_1_code", "officer_context"]].isna().all().all()
    reasons = pd.read_parquet(out / "data" / "reasons.parquet")
    first = reasons[reasons["rank"] == 1].set_index("customer_id")
    first = first[first.index.isin(scores.loc[need, "customer_id"])]
    mine = scores.set_index("customer_id").loc[first.index]
    assert len(first) > 100
    assert (mine["reason_1_code"] == first["code"]).all()
    assert (mine["reason_1_zh"] == first["text_zh"]).all()
    explained_rows = scores[need]
    assert (
        explained_rows.loc[
            ~explained_rows["customer_id"].isin(reasons["customer_id"]), "reason_1_code"
        ]
        .isna()
        .all()
    )
    np.testing.assert_allclose(both["raw_score"], both["raw_score_x"])


def test_short_history_is_scored_and_flagged_never_dropped(scored, params):
    _, _, scores = scored
    short = scores["flags"].fillna("").str.contains("insufficient_history")
    assert short.any() and scores.loc[short, "pd"].notna().all()
    assert scores.loc[short, "grade"].notna().all()


@pytest.fixture(scope="session")
def base_slice(default_run, segmented, params, tmp_path_factory):
    """The default base's first 1,200 customers, scored in one partition: what the tests that
    score again (other partitions, shuffled inputs, a killed run) must give back.
    ``(validated, quarantine, model, scores)``."""
    root, _, _ = default_run
    p = params.override("score", partition_customers=20000, as_of=AS_OF)

    def build(tmp: Path) -> dict:
        validated, quarantine = first_customers(root / "validated", root / "quarantine", 1200, tmp)
        model = decision.load(root / "model", segmented[0] / "model", params, tmp / "m").model
        rec = score.score_base(validated, tmp / "scores", p, model, quarantine, progress=False)
        assert rec["partitions"] == 1 and rec["customers_in"] == 1200
        return {}

    tmp = shared(tmp_path_factory, "base_slice", build)[0]
    work = tmp_path_factory.mktemp("slice_models")
    model = decision.load(root / "model", segmented[0] / "model", params, work).model
    validated, quarantine = tmp / "validated", tmp / "quarantine"
    return validated, quarantine, model, score.read_scores(tmp / "scores")


def test_the_run_history_keeps_each_month_end_and_grows_a_month_at_a_time(
    default_run, segmented, base_slice, tmp_path, params
):
    root, _, _ = default_run
    validated, quarantine, _, want = base_slice
    p = params.without_tracking().override(
        "score",
        runs=2,
        partition_customers=20000,
        arrears_model=str(root / "model"),
        segments_model=str(segmented[0] / "model"),
    )
    out, history = tmp_path / "scores", tmp_path / "history"
    paths = score.Paths(out, validated, quarantine=quarantine, history=history)
    score.run(p, paths)
    runs = [r["as_of"] for r in json.loads((history / score.HISTORY).read_text())["runs"]]
    assert runs == ["2025-12-31", AS_OF]
    # nothing else: no lock or staging file (its bytes would differ run to run under DVC)
    assert sorted(f.name for f in history.iterdir()) == [
        "_history.json", "as_of=2025-12-31", f"as_of={AS_OF}",
    ]  # fmt: skip
    latest = score.read_scores(score.run_folder(history, AS_OF))
    pd.testing.assert_frame_equal(latest, score.read_scores(out))  # the decision of record
    pd.testing.assert_frame_equal(latest, want)
    both = score.read_history(history)
    assert both["as_of"].astype(str).value_counts().to_dict().keys() == {"2025-12-31", AS_OF}
    before = both[both["as_of"].astype(str) == "2025-12-31"]
    assert 0 < before["customer_id"].isin(latest["customer_id"]).mean() <= 1
    # The month before is decided at its own as_of: features of that month end, not a copy.
    moved = before.merge(latest, on="customer_id", suffixes=("", "_now"))
    assert (moved["pd"] != moved["pd_now"]).mean() > 0.5

    # A month more of history: the months already there are kept as they are, not rescored.
    kept = score.run_folder(history, "2025-12-31") / "part-00000.parquet"
    stamp = kept.stat().st_mtime_ns
    score.run(p.override("score", runs=3), paths)
    summary = json.loads((history / score.HISTORY).read_text())["runs"]
    assert [r["as_of"] for r in summary] == ["2025-11-30", "2025-12-31", AS_OF]
    assert kept.stat().st_mtime_ns == stamp
    counts = {r["as_of"]: r["scored"] for r in summary}
    assert counts == score.read_history(history)["as_of"].astype(str).value_counts().to_dict()

    # A month left unfinished by a killed run is resumed, the others untouched.
    gone = score.run_folder(history, "2025-11-30")
    (gone / score.SUCCESS).unlink()
    before_kill = score.read_scores(score.run_folder(history, "2025-12-31"))
    score.run(p.override("score", runs=3), paths)
    assert (gone / score.SUCCESS).exists()
    rec = json.loads((gone / score.RECONCILIATION).read_text())
    assert rec["partitions_resumed"] == 1
    pd.testing.assert_frame_equal(
        score.read_scores(score.run_folder(history, "2025-12-31")), before_kill
    )


def test_partition_size_does_not_change_the_output(base_slice, tmp_path, params):
    validated, quarantine, model, want = base_slice
    p = params.override("score", partition_customers=350, as_of=AS_OF)
    rec = score.score_base(validated, tmp_path / "out", p, model, quarantine, progress=False)
    assert rec["partitions"] == 4  # 1,200 customers, 350 a partition
    got = score.read_scores(tmp_path / "out")
    pd.testing.assert_frame_equal(
        got.sort_values("customer_id", ignore_index=True),
        want.sort_values("customer_id", ignore_index=True),
    )


@pytest.mark.parametrize(
    ("failure", "error", "said"),
    [
        ("full disk", OSError, "No space left"),
        ("worker killed", score.ScoreError, r"the process finishing partition 2 died .* resume"),
    ],
)
def test_a_failure_while_a_partition_is_finished_stops_the_run_with_whole_partitions_only(
    base_slice, tmp_path, params, monkeypatch, failure, error, said
):
    """Partition i's notices and file are made in a worker process while i + 1 is decided:
    an error there is the run's error (not lost in the worker), a worker killed (the OOM
    killer) is one line saying so, the partitions before it are whole, nothing of it or
    after it is on disk, and the next run resumes to the serial output."""
    validated, quarantine, model, want = base_slice
    p = params.override("score", partition_customers=350, as_of=AS_OF)
    real, decided = notice_stage.check_and_write, []

    def fail_on_third(decisions, bills, pays, out, prm, top_n, partition):  # in the worker
        if partition == 2 and failure == "full disk":
            raise OSError(28, "No space left on device")
        if partition == 2:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(decisions, bills, pays, out, prm, top_n, partition)

    def counted(*args):
        decided.append(args[1])
        return real_decide(*args)

    real_decide = score._decide_partition
    monkeypatch.setattr(notice_stage, "check_and_write", fail_on_third)
    monkeypatch.setattr(score, "_decide_partition", counted)
    with pytest.raises(error, match=said):
        score.score_base(validated, tmp_path / "out", p, model, quarantine, progress=False)
    on_disk = sorted(f.name for f in (tmp_path / "out").glob("part-*.parquet"))
    assert on_disk == ["part-00000.parquet", "part-00001.parquet"]
    assert sorted(f.name for f in (tmp_path / "out" / "notices").glob("*.parquet")) == on_disk
    assert not (tmp_path / "out" / score.SUCCESS).exists()
    assert decided == [0, 1, 2, 3]  # partition 3 was decided while 2 was being finished
    monkeypatch.setattr(notice_stage, "check_and_write", real)
    rec = score.score_base(validated, tmp_path / "out", p, model, quarantine, progress=False)
    assert rec["partitions"] == 4 and rec["partitions_resumed"] == 2 and rec["balanced"]
    got = score.read_scores(tmp_path / "out")
    pd.testing.assert_frame_equal(
        got.sort_values("customer_id", ignore_index=True),
        want.sort_values("customer_id", ignore_index=True),
    )


def test_an_as_of_outside_the_data_is_refused_with_its_range(base_slice, tmp_path, params):
    validated, quarantine, model, _ = base_slice
    for day, words in (
        ("2031-01-31", r"after the data's last month end 2026-01-31: the data runs from 2023-01"),
        ("2020-01-31", r"before the data's first month end 2023-01-31"),
    ):
        p = params.override("score", as_of=day)
        with pytest.raises(GridscoreError, match=words):
            score.score_base(validated, tmp_path / day, p, model, quarantine, progress=False)
        assert not (tmp_path / day).exists()  # refused before anything is written


def test_scoring_ahead_of_the_data_is_a_choice():
    from pipelines.streaming import check_as_of

    start, end = pd.Timestamp("2023-01-01"), pd.Timestamp("2026-02-09")
    check_as_of(pd.Timestamp("2026-01-31"), start, end, ahead=False)  # the last month end
    check_as_of(pd.Timestamp("2023-01-31"), start, end, ahead=False)  # the first
    with pytest.raises(GridscoreError, match="allow_ahead"):
        check_as_of(pd.Timestamp("2026-02-28"), start, end, ahead=False)
    check_as_of(pd.Timestamp("2026-06-30"), start, end, ahead=True)  # a forecast, on purpose


def test_inputs_out_of_customer_order_give_the_same_scores(base_slice, tmp_path, params):
    import pyarrow.parquet as pq

    validated, quarantine, model, want = base_slice
    shuffled = tmp_path / "validated"
    shuffled.mkdir()
    rng = np.random.default_rng(3)
    for table in ("customers", "bills", "payments"):
        t = pq.read_table(validated / f"{table}.parquet")
        pq.write_table(t.take(rng.permutation(t.num_rows)), shuffled / f"{table}.parquet")
    p = params.override("score", partition_customers=500, as_of=AS_OF)
    rec = score.score_base(shuffled, tmp_path / "out", p, model, quarantine, progress=False)
    got = score.read_scores(tmp_path / "out")
    assert rec["partitions"] == 3
    assert got["customer_id"].is_monotonic_increasing
    pd.testing.assert_frame_equal(got, want)


def test_a_raw_folder_is_validated_then_scored(default_run, segmented, tiny_raw, tmp_path):
    root, _, _ = default_run
    params_path = _params(tmp_path)
    out = tmp_path / "scores"
    cmd = _cli(params_path, root, segmented[0] / "model", out)
    at = cmd.index("--validated")
    cmd[at : at + 4] = ["--raw", str(tiny_raw)]  # its quarantine goes beside OUT
    cmd[cmd.index("--as-of") + 1] = "2024-03-31"
    done = CliRunner().invoke(app, cmd[1:])
    assert done.exit_code == 0, done.output[-2000:]
    rec = json.loads((out / score.RECONCILIATION).read_text())
    assert rec["customers_in"] == rec["scored"] == 3 and rec["balanced"]
    assert rec["quarantined_upstream"] == {"bills": 0, "customers": 0, "payments": 0}
    got = score.read_scores(out)
    assert got["flags"].str.contains("insufficient_history").all()  # three months billed
    (tiny_raw / "bills.csv").write_text("customer_id,period\nC1,2024-01\n")
    bad = CliRunner().invoke(app, [*cmd[1:], "--overwrite"])
    assert bad.exit_code == 2 and "bills.csv" in bad.output and "kwh" in bad.output


def _cli(
    params_path: Path, root: Path, seg: Path, out: Path, *extra: str, inputs=None
) -> list[str]:
    """``gridscore score`` on the default run's models; ``inputs``: (validated, quarantine)
    folders, the default run's if None."""
    validated, quarantine = inputs or (root / "validated", root / "quarantine")
    return [
        str(Path(sys.executable).parent / "gridscore"),
        "score",
        "--validated",
        str(validated),
        "--quarantine",
        str(quarantine),
        "--out",
        str(out),
        "--as-of",
        AS_OF,
        "--arrears-model",
        str(root / "model"),
        "--segments-model",
        str(seg),
        "--params",
        str(params_path),
        *extra,
    ]


_KILLED_AT_PART_4 = """
import os, signal, sys, time
import pyarrow.parquet as pq
from pipelines.cli import app
stage, real, written = os.getpid(), pq.write_table, []
def write_then_die(table, where, **kw):
    # in the worker process that finishes partitions (forked: it has this patch too)
    if "_tmp" in str(where):  # a partition file (its notice table is written just before)
        written.append(where)
    if len(written) == 4:  # the 4th partition: half written, then the stage killed as by
        with open(where, "wb") as fh:  # the OOM killer; the worker must die with it
            fh.write(b"PAR1 half a partition")
        with open(os.environ["WORKER_PID_FILE"], "w") as fh:
            fh.write(str(os.getpid()))
        os.kill(stage, signal.SIGKILL)
        time.sleep(60)  # a worker that outlived the stage would write a whole file next
    return real(table, where, **kw)
pq.write_table = write_then_die
sys.argv = ["gridscore", *sys.argv[1:]]
app()
"""


def _killed_stage(args: list[str], pid_file: Path) -> None:
    """Run the stage with :data:`_KILLED_AT_PART_4`: it is killed while its worker writes the
    4th partition, and the worker dies with it (within seconds, not after its sleep)."""
    env = {**os.environ, "WORKER_PID_FILE": str(pid_file)}
    log = pid_file.with_suffix(".log")
    with log.open("wb") as fh:  # a file, not a pipe: a worker that outlives the stage
        killed = subprocess.run(  # would hold a pipe open and hang the run
            [sys.executable, "-c", _KILLED_AT_PART_4, *args], stdout=fh, stderr=fh, env=env
        )
    assert killed.returncode == -signal.SIGKILL, log.read_text()[-2000:]
    worker = Path(f"/proc/{pid_file.read_text()}")
    deadline = time.monotonic() + 10
    while worker.exists() and "Z" not in _state(worker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not worker.exists() or "Z" in _state(worker), "the worker outlived the stage"


def _state(proc: Path) -> str:
    try:
        return (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"  # gone meanwhile


def test_a_killed_run_resumes_with_no_duplicate_missing_or_corrupt_partition(
    default_run, segmented, base_slice, tmp_path
):
    root, _, _ = default_run
    seg = segmented[0] / "model"
    inputs = base_slice[:2]
    params_path = _params(tmp_path, partition_customers=240)
    out = tmp_path / "scores"
    args = _cli(params_path, root, seg, out, inputs=inputs)[1:]
    _killed_stage(args, tmp_path / "worker.pid")
    done = sorted(out.glob("part-*.parquet"))
    assert [p.name for p in done] == [f"part-{i:05d}.parquet" for i in range(3)]
    assert not (out / score.SUCCESS).exists() and list((out / "_tmp").iterdir())
    with pytest.raises(score.ScoreError, match="did not finish"):
        score.read_scores(out)
    done[0].write_bytes(done[0].read_bytes()[:100])  # a damaged partition is redone, not kept
    again = CliRunner().invoke(app, _cli(params_path, root, seg, out, inputs=inputs)[1:])
    assert again.exit_code == 0, again.output
    rec = json.loads((out / score.RECONCILIATION).read_text())
    assert rec["partitions"] == 5 and rec["partitions_resumed"] == 2
    resumed = score.read_scores(out)
    assert resumed["customer_id"].is_unique and len(resumed) == rec["scored"]
    never_stopped = base_slice[3].sort_values("customer_id", ignore_index=True)
    pd.testing.assert_frame_equal(
        resumed.sort_values("customer_id", ignore_index=True), never_stopped
    )
    assert not (out / "_tmp").exists()
    # a different run into the same folder is refused, unless asked to overwrite
    (tmp_path / "other").mkdir()
    other_params = _params(tmp_path / "other", partition_customers=999)
    other = CliRunner().invoke(app, _cli(other_params, root, seg, out, inputs=inputs)[1:])
    assert other.exit_code == 2 and "holds a scoring run with other" in other.output
    # --overwrite killed midway: the previous run is still there, whole and readable ...
    other_params = _params(tmp_path / "other", partition_customers=260)
    args = [*_cli(other_params, root, seg, out, inputs=inputs)[1:], "--overwrite"]
    _killed_stage(args, tmp_path / "worker2.pid")
    pd.testing.assert_frame_equal(score.read_scores(out), resumed)
    assert json.loads((out / score.MANIFEST).read_text())["partition_customers"] == 240
    assert len(list(score.next_folder(out).glob("part-*.parquet"))) == 3
    # ... and the next --overwrite finishes the replacement and puts it in place
    replaced = CliRunner().invoke(app, args)
    assert replaced.exit_code == 0, replaced.output
    rec = json.loads((out / score.RECONCILIATION).read_text())
    assert rec["partitions_resumed"] == 3 and rec["partitions"] == -(-rec["customers_in"] // 260)
    assert json.loads((out / score.MANIFEST).read_text())["partition_customers"] == 260
    assert not score.next_folder(out).exists() and not list(tmp_path.glob(".scores.old-*"))
    pd.testing.assert_frame_equal(
        score.read_scores(out).sort_values("customer_id", ignore_index=True), never_stopped
    )


def test_reasons_where_needed_decide_as_reasons_for_everyone(
    default_run, segmented, tmp_path, params
):
    """score.reasons: needed skips TreeSHAP for the rows no decision or person needs it for;
    every decision, and every reason it gives, is what explaining every row gives."""
    root, _, _ = default_run
    feats = pd.read_parquet(root / "features" / "features.parquet")
    rows = feats[pd.to_datetime(feats["as_of"]) == pd.Timestamp(AS_OF)].reset_index(drop=True)
    load = lambda p, d: decision.load(root / "model", segmented[0] / "model", p, tmp_path / d)  # noqa: E731
    needed = load(params, "a").model.decide(rows)
    everyone = load(params.override("score", reasons="all"), "b").model.decide(rows)
    assert everyone["explained"].all() and 0 < needed["explained"].mean() < 0.5
    reason_cols = [c for c in needed if c.startswith("reason_")] + ["officer_context"]
    same = [c for c in needed if c not in (*reason_cols, "explained")]
    pd.testing.assert_frame_equal(needed[same], everyone[same])
    shown = needed["explained"].to_numpy()
    pd.testing.assert_frame_equal(needed.loc[shown, reason_cols], everyone.loc[shown, reason_cols])
    assert needed.loc[~shown, reason_cols].isna().all().all()
    assert everyone.loc[~shown, "reason_1_code"].notna().any()  # they exist, on demand
    acted = needed["credit_action"] != "none"
    assert acted.any() and needed.loc[acted, "explained"].all()


def test_model_or_feature_mismatch_is_a_clear_error_or_a_flag(
    default_run, segmented, tmp_path, params
):
    root, _, _ = default_run
    model = decision.load(root / "model", segmented[0] / "model", params, tmp_path / "m").model
    feats = pd.read_parquet(root / "features" / "features.parquet")
    rows = (
        feats[pd.to_datetime(feats["as_of"]) == pd.Timestamp(AS_OF)]
        .head(300)
        .reset_index(drop=True)
    )
    with pytest.raises(FeatureMismatchError, match="lacks the model's feature.*dpd"):
        model.decide(rows.drop(columns="dpd"))
    with pytest.raises(FeatureMissing, match="segment model needs.*kwh_mean_12m"):
        model.segmenter.assign(rows.drop(columns="kwh_mean_12m"))
    with pytest.raises(FeatureMismatchError, match="must be numeric"):
        model.decide(rows.assign(balance="a lot"))
    odd = rows.assign(region=np.where(np.arange(len(rows)) < 5, "atlantis", rows["region"]))
    decided = model.decide(odd)
    assert (decided["flags"].fillna("").str.contains("unseen_category:region").sum()) == 5
    assert decided["pd"].notna().all()
    # a model trained on other features: its columns are not in the table
    with pytest.raises(InputMissing, match="no model.txt"):
        decision.load(tmp_path, segmented[0] / "model", params, tmp_path / "n")


def test_models_from_the_registry_and_the_pyfunc_decide_the_same(
    scored, default_run, tmp_path, monkeypatch
):
    tmp, uri, scores = scored
    root, _, _ = default_run
    client = mlflow.MlflowClient(uri)
    version = client.get_model_version_by_alias(decision.DECISION_MODEL, "candidate")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    pyfunc = mlflow.pyfunc.load_model(f"models:/{decision.DECISION_MODEL}@candidate")
    feats = pd.read_parquet(root / "features" / "features.parquet")
    rows = (
        feats[pd.to_datetime(feats["as_of"]) == pd.Timestamp(AS_OF)]
        .head(400)
        .reset_index(drop=True)
    )
    ledger = pd.read_parquet(root / "features" / "ledger.parquet")
    ledger["as_of"] = pd.to_datetime(ledger["as_of"])
    rows["as_of"] = pd.to_datetime(rows["as_of"])
    rows = rows.merge(ledger, on=["customer_id", "as_of"], how="left")  # as the batch job does
    rows["quarantined_rows"] = rows["quarantined_rows"].fillna(0).astype("int64")
    assert (rows["quarantined_rows"] > 0).any()
    out = pyfunc.predict(rows.assign(as_of=AS_OF))
    want = scores.set_index("customer_id").loc[rows["customer_id"]].reset_index()
    np.testing.assert_allclose(out["pd"], want["pd"])
    assert (out["grade"].to_numpy() == want["grade"].to_numpy()).all()
    assert (
        out["reason_1_en"].fillna("-").to_numpy() == want["reason_1_en"].fillna("-").to_numpy()
    ).all()
    # offline, as an operator would: `mlflow models predict` on a CSV feature file
    csv = tmp_path / "features.csv"
    rows.head(50).to_csv(csv, index=False)
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    bin_dir = Path(sys.executable).parent
    done = subprocess.run(
        [
            str(bin_dir / "mlflow"),
            "models",
            "predict",
            "-m",
            f"models:/{decision.DECISION_MODEL}/{version.version}",
            "-i",
            str(csv),
            "-t",
            "csv",
            "-o",
            str(tmp_path / "pred.json"),
            "--env-manager",
            "local",
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    pred = pd.DataFrame(json.loads((tmp_path / "pred.json").read_text())["predictions"])
    np.testing.assert_allclose(pred["pd"], want["pd"].head(50), rtol=1e-9)
    assert (pred["credit_action"].to_numpy() == want["credit_action"].head(50).to_numpy()).all()


def test_scoring_with_models_from_the_registry(
    scored, default_run, segmented, tmp_path, params, monkeypatch
):
    from pipelines import segment, train
    from pipelines.tracking import Tracker, TrackingError

    _, uri, scores = scored
    root, _, _ = default_run
    seg = segmented[0] / "model"
    feats = pd.read_parquet(root / "features" / "features.parquet")
    rows = (
        feats[pd.to_datetime(feats["as_of"]) == pd.Timestamp(AS_OF)]
        .head(300)
        .reset_index(drop=True)
    )
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    tracker = Tracker("registry-test")
    model_dir = tmp_path / "arrears"  # a copy: the stage notes its run beside the folder
    model_dir.mkdir()
    for f in (root / "model").iterdir():
        (model_dir / f.name).write_bytes(f.read_bytes())
    from models.arrears import ArrearsModel

    summary = json.loads((model_dir / "train.json").read_text())
    train._log(tracker, params.train, summary, model_dir, ArrearsModel.load(model_dir),
               rows.head(5))  # fmt: skip
    seg_paths = segment.Paths(
        root / "features" / "features.parquet", seg, segmented[0] / "reports",
        segmented[0] / "segments.json",
    )  # fmt: skip
    seg_copy = tmp_path / "segments"
    seg_copy.mkdir()
    for name in ("pipeline.skops", "tiers.json", "latest_tiers.parquet"):
        (seg_copy / name).write_bytes((seg / name).read_bytes())
    segment._log(tracker, params.segment, replace(seg_paths, out=seg_copy), segmented[1])
    assert tracker.read_note(model_dir)["version"] == "1"
    model = decision.load(
        "models:/gridscore-arrears@candidate",
        "models:/gridscore-value-segments@candidate",
        params,
        tmp_path / "m",
    ).model
    with pytest.raises(TrackingError, match="no such registered model version"):
        decision.load("models:/gridscore-arrears@champion", seg, params, tmp_path / "n")
    assert model.versions == {
        "arrears_model_version": "gridscore-arrears/1",
        "segments_model_version": "gridscore-value-segments/1",
    }
    out = model.decide(rows)
    want = scores.set_index("customer_id").loc[rows["customer_id"]].reset_index()
    np.testing.assert_allclose(out["pd"], want["pd"])
    assert (out["tier"].to_numpy() == want["tier"].to_numpy()).all()


def test_snapshots_helper_is_month_end():
    assert streaming.last_month_end(pd.Timestamp("2026-02-14")) == pd.Timestamp("2026-01-31")
    assert streaming.last_month_end(pd.Timestamp("2026-01-31")) == pd.Timestamp("2026-01-31")
    assert Snapshots((pd.Timestamp(AS_OF),)).as_of[0] == pd.Timestamp(AS_OF)
    assert load_params(PROJECT / "params.yaml").score.partition_customers > 0


def test_score_spark_names_a_missing_table_before_starting_spark(tmp_path):
    result = CliRunner().invoke(
        app,
        [
            "score-spark",
            "--validated",
            str(tmp_path),
            "--out",
            str(tmp_path / "o"),
            "--quarantine",
            str(tmp_path),
            "--as-of",
            AS_OF,
        ],
    )
    assert result.exit_code == 2 and "customers.parquet: missing" in result.output
    no_quarantine = CliRunner().invoke(
        app, ["score-spark", "--validated", str(tmp_path), "--out", "o", "--as-of", AS_OF]
    )
    assert no_quarantine.exit_code == 2 and "give --quarantine" in no_quarantine.output


def test_score_spark_refuses_an_as_of_after_the_data_before_starting_spark(base_slice, tmp_path):
    validated, quarantine, _, _ = base_slice
    args = ["score-spark", "--validated", str(validated), "--out", str(tmp_path / "o")]
    args += ["--quarantine", str(quarantine), "--as-of", "2031-01-31"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "after the data's last month end 2026-01-31" in result.output
    assert not (tmp_path / "o").exists()


def test_a_quarantine_folder_that_is_not_there_stops_the_run(default_run, segmented, tmp_path):
    root, _, _ = default_run
    cmd = _cli(_params(tmp_path), root, segmented[0] / "model", tmp_path / "scores")[1:]
    cmd[cmd.index("--quarantine") + 1] = str(tmp_path / "quarantin")  # a typo
    res = CliRunner().invoke(app, cmd)
    assert res.exit_code == 2 and "quarantin: no quarantine folder" in res.output
    assert not (tmp_path / "scores" / score.SUCCESS).exists()


QUOTED = ("overdue_arrears", "dpd", "late_bills_6m", "late30_bills_12m", "max_dpd_12m",
          "partial_bills_12m", "reversals_12m", "months_of_history", "kwh_yoy_change",
          "kwh_max_drop_12m", "balance")  # fmt: skip


def test_every_deposit_or_guarantee_has_a_notice_whose_reasons_the_records_bear_out(
    scored, default_run, params
):
    from features.statement import facts
    from models.notice import verify
    from pipelines.notice import terms

    tmp, _, scores = scored
    root, _, _ = default_run
    asked = scores[scores["credit_action"].isin(["deposit", "bank_guarantee"])]
    assert len(asked) > 100
    folder = tmp / "scores" / "notices"  # one table per partition
    parts = sorted(p.name for p in folder.iterdir())
    assert parts == sorted(p.name for p in (tmp / "scores").glob("part-*.parquet"))
    pages = pd.read_parquet(folder)
    assert sorted(zip(pages["customer_id"], pages["lang"], strict=True)) == sorted(
        (c, lang) for c in asked["customer_id"] for lang in ("en", "zh")
    )
    ids = set(asked["customer_id"])
    bills = pd.read_parquet(root / "validated" / "bills.parquet")
    pays = pd.read_parquet(root / "validated" / "payments.parquet")
    found = facts(bills[bills["customer_id"].isin(ids)], pays[pays["customer_id"].isin(ids)],
                  pd.Timestamp(AS_OF))  # fmt: skip
    # every stated reason and amount, recomputed from the validated rows: no contradiction
    assert verify(asked, found, params.explain.top_n, "CNY", terms(params)[0]).isna().all()
    # and the records' facts are the feature engine's, for every customer asked
    feats = pd.read_parquet(root / "features" / "features.parquet",
                            filters=[("as_of", "=", pd.Timestamp(AS_OF))])  # fmt: skip
    both = feats.merge(found, on="customer_id", suffixes=("", "_records"))
    assert len(both) == len(asked)
    for col in QUOTED:
        np.testing.assert_allclose(both[col], both[f"{col}_records"], atol=1e-6, err_msg=col)
    first = asked["customer_id"].iloc[0]
    page = pages.loc[(pages["customer_id"] == first) & (pages["lang"] == "zh"), "html"].item()
    assert "通知编号" in page and asked["reason_1_zh"].iloc[0] in page


def test_notice_on_demand_is_the_stage_notice_and_refuses_a_customer_not_asked(scored, default_run):
    tmp, _, scores = scored
    root, _, _ = default_run
    asked = scores.loc[scores["credit_action"] == "deposit", "customer_id"].iloc[0]
    other = scores.loc[scores["credit_action"] == "none", "customer_id"].iloc[0]
    args = ["notice", "--scores", str(tmp / "scores"), "--validated", str(root / "validated")]
    result = CliRunner().invoke(app, [*args, "--customer", asked, "--lang", "en",
                                      "--out", str(tmp / "n.html")])  # fmt: skip
    assert result.exit_code == 0, result.output
    stage = notice_stage.stored(tmp / "scores", asked, "en")
    assert (tmp / "n.html").read_text(encoding="utf-8") == stage
    refused = CliRunner().invoke(app, [*args, "--customer", other])
    assert refused.exit_code == 2
    assert "was not asked for a deposit or guarantee" in refused.output
    with pytest.raises(notice_stage.NoNotice, match="stored no en notice"):
        notice_stage.stored(tmp / "scores", other, "en")
    # every stored notice out as files, for a print or mail job
    files = tmp / "printed"
    done = CliRunner().invoke(app, ["notices", "--scores", str(tmp / "scores"), "--out", str(files),
                                    "--lang", "zh"])  # fmt: skip
    assert done.exit_code == 0, done.output
    n_asked = scores["credit_action"].isin(["deposit", "bank_guarantee"]).sum()
    assert f"notices: {n_asked} file(s)" in done.output
    assert sorted(p.name for p in files.iterdir()) == sorted(
        f"{c}.zh.html" for c in scores.loc[scores["credit_action"].isin(
            ["deposit", "bank_guarantee"]), "customer_id"]
    )  # fmt: skip
    assert (files / f"{asked}.zh.html").read_text(encoding="utf-8") == notice_stage.stored(
        tmp / "scores", asked, "zh"
    )
    unfinished = CliRunner().invoke(app, ["notices", "--scores", str(tmp), "--out", str(files)])
    assert unfinished.exit_code == 2 and "no finished scoring run" in unfinished.output


def test_a_second_run_into_a_folder_being_written_is_refused_and_the_first_finishes_whole(
    default_run, segmented, base_slice, tmp_path
):
    """Two real ``gridscore score`` processes into one folder (a scheduler retry, an
    operator relaunch with --overwrite): the second is refused while the first lives, and
    the first ends with every partition, reconciled from the files on disk."""
    root, _, _ = default_run
    seg = segmented[0] / "model"
    inputs = base_slice[:2]
    params_path = _params(tmp_path, partition_customers=240)
    out = tmp_path / "scores"
    first = subprocess.Popen(
        _cli(params_path, root, seg, out, inputs=inputs), stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 120
    while not (out / score.MANIFEST).exists():  # written under the lock: the first holds it
        assert first.poll() is None and time.monotonic() < deadline, first.stderr.read()
        time.sleep(0.05)
    second = CliRunner().invoke(
        app, [*_cli(params_path, root, seg, out, inputs=inputs)[1:], "--overwrite"]
    )
    finished = first.wait(timeout=300)
    assert second.exit_code == 2, second.output
    assert f"is being written by another run (pid {first.pid} " in second.output
    assert finished == 0, first.stderr.read()
    rec = json.loads((out / score.RECONCILIATION).read_text())
    assert rec["balanced"] and rec["partitions"] == 5 and rec["partitions_resumed"] == 0
    got = score.read_scores(out).sort_values("customer_id", ignore_index=True)
    pd.testing.assert_frame_equal(got, base_slice[3].sort_values("customer_id", ignore_index=True))
    # a partition lost after the run: the folder no longer reads as finished ...
    (out / "part-00002.parquet").unlink()
    with pytest.raises(score.ScoreError, match="4 partition"):
        score.read_scores(out)
    manifest = json.loads((out / score.MANIFEST).read_text())
    with pytest.raises(score.ScoreError, match=r"missing \['part-00002.parquet'\]"):
        score._on_disk(out, manifest, {})
    # ... and a rerun scores only what is missing
    again = CliRunner().invoke(app, _cli(params_path, root, seg, out, inputs=inputs)[1:])
    assert again.exit_code == 0, again.output
    rec = json.loads((out / score.RECONCILIATION).read_text())
    assert rec["partitions_resumed"] == 4 and len(score.read_scores(out)) == len(got)
