"""MLflow at the edge: where runs go, and one place that logs a stage's results.

The tracking store is ``MLFLOW_TRACKING_URI`` when set, else a SQLite file ``mlflow.db`` in
the project with artifacts in ``mlartifacts/`` beside it. mlflow is imported only when a
run is logged, so the other commands start fast.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_DB = "mlflow.db"
DEFAULT_ARTIFACTS = "mlartifacts"


def tracking_uri(project_dir: Path) -> str:
    """The tracking URI: ``MLFLOW_TRACKING_URI`` or ``sqlite:///<project>/mlflow.db``."""
    return (
        os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(project_dir / DEFAULT_DB).resolve()}"
    )


def log_stage_run(
    experiment: str,
    stage: str,
    params: dict,
    metrics: dict[str, float],
    artifacts: list[Path],
    project_dir: Path = Path("."),
) -> str:
    """Log one stage run (params, metrics, files) and return its run id."""
    import mlflow

    uri = tracking_uri(project_dir)
    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        location = None
        if "MLFLOW_TRACKING_URI" not in os.environ:
            location = (project_dir / DEFAULT_ARTIFACTS).resolve().as_uri()
        exp_id = client.create_experiment(experiment, artifact_location=location)
    else:
        exp_id = exp.experiment_id
    with mlflow.start_run(
        experiment_id=exp_id, run_name=stage, tags={"gridscore.stage": stage}
    ) as run:
        mlflow.log_params(params)
        mlflow.log_metrics(metrics)
        for path in artifacts:
            mlflow.log_artifact(str(path))
    log.info("logged %s run %s to %s", stage, run.info.run_id, uri)
    return run.info.run_id
