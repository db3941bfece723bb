"""The Spark path (local mode) decides every customer exactly as the single-machine job."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines import decision, score
from pipelines.tracking import Tracker
from pipelines.validate import validate_raw
from tests.conftest import first_customers

AS_OF = "2024-12-31"


@pytest.fixture(scope="module")
def spark():
    from pipelines.spark import session

    s = session(
        "gridscore-tests",
        master="local[2]",
        **{"spark.sql.shuffle.partitions": "4", "spark.driver.memory": "2g"},
    )
    yield s
    s.stop()


@pytest.mark.slow  # a JVM and the scored fixture: handed out first (conftest), not left last
def test_spark_scores_equal_the_single_machine_scores(
    spark, small_base, default_run, segmented, scored, params, tmp_path, monkeypatch
):
    from pipelines.spark import score_spark

    root, _, _ = default_run
    everyone = tmp_path / "all"
    validate_raw(
        small_base / "raw", everyone / "validated", everyone / "quarantine", everyone / "v.json",
        params,
    )  # fmt: skip
    # 600 of the 3,000 customers: three partitions locally, four on Spark
    validated, quarantine = first_customers(
        everyone / "validated", everyone / "quarantine", 600, tmp_path
    )
    model = decision.load(root / "model", segmented[0] / "model", params, tmp_path / "m").model
    p = params.override("score", partition_customers=200, as_of=AS_OF)
    # three customers whose ledger misses a payment validation held back (a zeroed amount)
    held = pd.read_parquet(validated / "customers.parquet", columns=["customer_id"]).head(3)
    pd.DataFrame(
        {
            "source_file": "payments.csv",
            "source_row": [11, 12, 13],
            "reason": "zero_amount",
            "customer_id": held["customer_id"],
            "paid_on": "2024-06-15",
            "amount": "0",
        }
    ).to_parquet(quarantine / "payments.parquet", index=False)
    rec = score.score_base(validated, tmp_path / "local", p, model, quarantine, progress=False)
    local = score.read_scores(tmp_path / "local").sort_values("customer_id")
    # the Spark path runs the model inside the registered gridscore-decision pyfunc
    _, uri, _ = scored
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    pyfunc_model = decision.load_pyfunc(f"models:/{decision.DECISION_MODEL}@candidate", Tracker())
    pyfunc_model.versions = dict(model.versions)  # same files, named as the local run names them
    rows = score_spark(
        spark, str(validated), str(tmp_path / "spark"), params, pyfunc_model, AS_OF, 4,
        str(quarantine),
    )  # fmt: skip
    remote = pd.read_parquet(tmp_path / "spark").sort_values("customer_id")
    assert rows == len(remote) == len(local) == rec["scored"] > 400
    assert rec["partitions"] == 3
    assert (tmp_path / "spark" / "_SUCCESS").exists()
    assert list(remote.columns) == list(local.columns)
    local, remote = local.reset_index(drop=True), remote.reset_index(drop=True)
    assert (local["customer_id"] == remote["customer_id"]).all()
    for col in ("pd", "expected_loss", "exposure", "raw_score"):
        np.testing.assert_allclose(remote[col], local[col], rtol=1e-9, atol=1e-12, err_msg=col)
    exact = [c for c in local.columns if c not in ("pd", "expected_loss", "exposure", "raw_score")]
    pd.testing.assert_frame_equal(remote[exact], local[exact], check_dtype=False)
    flagged = remote.set_index("customer_id").loc[held["customer_id"]]
    assert (flagged["quarantined_rows"] == 1).all()
    assert flagged["quarantine_refs"].str.startswith("payments.csv:1").all()
    assert not flagged["credit_action"].isin(["deposit", "bank_guarantee"]).any()
