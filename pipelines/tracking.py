"""MLflow at the edge: where runs go, and one place that logs a stage's results.

The tracking store is ``MLFLOW_TRACKING_URI`` when set, else a SQLite file ``mlflow.db`` in
the project with artifacts in ``mlartifacts/`` beside it. mlflow is imported only when a
run is logged, so the other commands start fast.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_DB = "mlflow.db"
DEFAULT_ARTIFACTS = "mlartifacts"


def _default_uri(project_dir: Path) -> str:
    return f"sqlite:///{(project_dir / DEFAULT_DB).resolve()}"


def tracking_uri(project_dir: Path) -> str:
    """The tracking URI: ``MLFLOW_TRACKING_URI`` or ``sqlite:///<project>/mlflow.db``."""
    return os.environ.get("MLFLOW_TRACKING_URI") or _default_uri(project_dir)


def _experiment(experiment: str, project_dir: Path):
    import mlflow

    uri = tracking_uri(project_dir)
    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is not None:
        return client, exp.experiment_id
    location = None
    if uri == _default_uri(project_dir):  # the project's own store keeps artifacts beside it
        location = (project_dir / DEFAULT_ARTIFACTS).resolve().as_uri()
    return client, client.create_experiment(experiment, artifact_location=location)


@contextmanager
def _stage_run(
    experiment: str, stage: str, params: dict, metrics: dict[str, float], project_dir: Path
):
    """An MLflow run of a stage, tagged with it, with its params and metrics logged."""
    import mlflow

    client, exp_id = _experiment(experiment, project_dir)
    with mlflow.start_run(
        experiment_id=exp_id, run_name=stage, tags={"gridscore.stage": stage}
    ) as run:
        mlflow.log_params(params)
        mlflow.log_metrics(metrics)
        yield client, run


def log_model_run(
    experiment: str,
    stage: str,
    params: dict,
    metrics: dict[str, float],
    model_dir: Path,
    loaded_model,
    example,
    register_as: str | None,
    project_dir: Path = Path("."),
) -> dict:
    """Log a training run with its model as a pyfunc (signature, input example) and register it.

    The pyfunc (``pipelines.serving.ArrearsPyfunc``) wraps the LightGBM text model, the
    calibrator and the feature list logged beside it, and returns the calibrated PD.

    The registered version gets the alias ``candidate``; ``gridscore promote`` decides
    whether it becomes ``champion``.

    Returns:
        ``run_id``, and ``version`` when registered.
    """
    import mlflow
    from mlflow.models import infer_signature

    with _stage_run(experiment, stage, params, metrics, project_dir) as (client, run):
        mlflow.log_artifacts(str(model_dir), artifact_path="arrears")
        from pipelines.serving import ArrearsPyfunc

        model = ArrearsPyfunc()
        model.model = loaded_model
        signature = infer_signature(example, model.predict(None, example))
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=ArrearsPyfunc(),
            artifacts={"model_dir": str(model_dir)},
            signature=signature,
            input_example=example,
            registered_model_name=register_as,
        )
    out = {"run_id": run.info.run_id, "model_uri": info.model_uri}
    if register_as:
        version = str(info.registered_model_version)
        client.set_registered_model_alias(register_as, "candidate", version)
        out["version"] = version
    log.info(
        "logged %s run %s to %s %s",
        stage,
        run.info.run_id,
        tracking_uri(project_dir),
        out.get("version", ""),
    )
    return out


def log_sklearn_run(
    experiment: str,
    stage: str,
    params: dict,
    metrics: dict[str, float],
    files: list[Path],
    pipeline,
    example,
    register_as: str | None,
    trusted: list[str] | None = None,
    project_dir: Path = Path("."),
) -> dict:
    """Log a fitted scikit-learn pipeline with its signature, its files, and register it.

    MLflow saves it in the skops format; ``trusted`` names the project's own classes in it.
    """
    import mlflow
    from mlflow.models import infer_signature

    with _stage_run(experiment, stage, params, metrics, project_dir) as (client, run):
        for path in files:
            mlflow.log_artifact(str(path), artifact_path=stage)
        signature = infer_signature(example, pipeline.predict(example))
        info = mlflow.sklearn.log_model(
            pipeline,
            name="model",
            signature=signature,
            input_example=example,
            registered_model_name=register_as,
            skops_trusted_types=trusted,
        )
    out = {"run_id": run.info.run_id, "model_uri": info.model_uri}
    if register_as:
        out["version"] = str(info.registered_model_version)
        client.set_registered_model_alias(register_as, "candidate", out["version"])
    log.info("logged %s run %s %s", stage, run.info.run_id, out.get("version", ""))
    return out


def log_to_run(
    run_id: str, metrics: dict[str, float], artifacts: list[Path], project_dir: Path = Path(".")
) -> None:
    """Add metrics and files to an existing run (the evaluation of a trained model)."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri(project_dir))
    with mlflow.start_run(run_id=run_id):
        mlflow.log_metrics(metrics)
        for path in artifacts:
            mlflow.log_artifact(str(path), artifact_path="evaluation")


def promote(
    model_name: str, metric: str = "test_auc", project_dir: Path = Path(".")
) -> tuple[bool, str]:
    """Move the ``champion`` alias to the ``candidate`` version if its metric is no worse.

    Returns:
        Whether the candidate was promoted, and a sentence saying why.
    """
    import mlflow

    client = mlflow.MlflowClient(tracking_uri(project_dir))
    try:
        cand = client.get_model_version_by_alias(model_name, "candidate")
    except mlflow.exceptions.MlflowException as exc:
        raise ValueError(f"{model_name} has no version with the alias candidate") from exc
    cand_score = client.get_run(cand.run_id).data.metrics.get(metric)
    if cand_score is None:
        raise ValueError(f"the candidate's run {cand.run_id} has no metric {metric}")
    try:
        champ = client.get_model_version_by_alias(model_name, "champion")
    except mlflow.exceptions.MlflowException:
        champ = None
    if champ is not None:
        champ_score = client.get_run(champ.run_id).data.metrics.get(metric, float("-inf"))
        if champ.version == cand.version:
            return False, f"version {cand.version} is already the champion"
        if cand_score < champ_score:
            return False, (
                f"kept champion version {champ.version}: candidate version {cand.version} has "
                f"{metric} {cand_score:.4f} < {champ_score:.4f}"
            )
    client.set_registered_model_alias(model_name, "champion", cand.version)
    before = f" (was version {champ.version})" if champ is not None else ""
    return True, f"champion is now version {cand.version} with {metric} {cand_score:.4f}{before}"


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

    with _stage_run(experiment, stage, params, metrics, project_dir) as (_, run):
        for path in artifacts:
            mlflow.log_artifact(str(path))
    log.info("logged %s run %s to %s", stage, run.info.run_id, tracking_uri(project_dir))
    return run.info.run_id


def log_decision_model(
    experiment: str,
    metrics: dict[str, float],
    files: list[Path],
    arrears_dir: Path,
    segments_dir: Path,
    decision_model,
    example,
    register_as: str | None,
    project_dir: Path = Path("."),
) -> dict:
    """Log the scoring run and the whole-decision pyfunc (``pipelines.serving.DecisionPyfunc``).

    The pyfunc carries its two models and its policy as artifacts and a signature from
    ``example`` (feature rows); the registered version gets the alias ``candidate``.
    """
    import json
    import tempfile

    import mlflow
    from mlflow.models import ModelSignature

    from pipelines.serving import DecisionPyfunc

    params = {"as_of": str(example["as_of"].iloc[0])[:10], **decision_model.versions}
    with (
        _stage_run(experiment, "score", params, metrics, project_dir) as (client, run),
        tempfile.TemporaryDirectory() as tmp,
    ):
        for path in files:
            mlflow.log_artifact(str(path), artifact_path="score")
        decision = Path(tmp) / "decision.json"
        decision.write_text(
            json.dumps(
                {
                    "config": json.loads(decision_model.config.to_json()),
                    "versions": decision_model.versions,
                },
                indent=2,
            )
        )
        example = example.assign(as_of=example["as_of"].astype(str).str[:10])
        signature = ModelSignature(
            _optional_schema(example, required=("customer_id", "as_of")),
            _optional_schema(decision_model.decide(example), required=()),
        )
        info = mlflow.pyfunc.log_model(
            name="decision",
            python_model=DecisionPyfunc(),
            artifacts={
                "arrears": str(arrears_dir),
                "segments": str(segments_dir),
                "decision": str(decision),
            },
            signature=signature,
            input_example=example,
            registered_model_name=register_as,
        )
    out = {"run_id": run.info.run_id, "model_uri": info.model_uri}
    if register_as:
        out["version"] = str(info.registered_model_version)
        client.set_registered_model_alias(register_as, "candidate", out["version"])
    log.info("logged score run %s %s", run.info.run_id, out.get("version", ""))
    return out


def _optional_schema(frame, required: tuple[str, ...]):
    """A column schema where every column but ``required`` may be missing (NaN): real
    feature rows have gaps the five rows of an input example do not show."""
    import pandas as pd
    from mlflow.types import ColSpec, Schema

    def kind(col: pd.Series) -> str:
        if pd.api.types.is_bool_dtype(col):
            return "boolean"
        if pd.api.types.is_integer_dtype(col):
            return "long"
        if pd.api.types.is_float_dtype(col):
            return "double"
        return "string"

    return Schema([ColSpec(kind(frame[c]), c, required=c in required) for c in frame.columns])
