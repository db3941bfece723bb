"""Loading the one decision model (``models.decision.DecisionModel``) at the edge.

The two fitted models come from the DVC artifact folders (``artifacts/arrears``,
``artifacts/segments``) or from the MLflow registry (``models:/NAME@ALIAS`` or
``models:/NAME/VERSION``); the policy, grades and reason settings from params.yaml. The
score and explain stages, ``gridscore explain --customer`` and the Spark job all load the
decision here, so they decide alike.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from features.errors import InputMissing
from models.arrears import ArrearsModel
from models.decision import DecisionConfig, DecisionModel, Segmenter
from pipelines.config import Params
from pipelines.io import digest, model_version
from pipelines.tracking import Tracker

#: The registered name of the whole-decision pyfunc the score stage logs.
DECISION_MODEL = "gridscore-decision"
_SEGMENT_FILES = ("pipeline.skops", "tiers.json", "latest_tiers.parquet")


@dataclass(frozen=True)
class Loaded:
    """A decision model and the local folders of its two models (for logging them again)."""

    model: DecisionModel
    arrears_dir: Path
    segments_dir: Path | None


def config(params: Params) -> DecisionConfig:
    """What a decision takes from params.yaml beyond the two models."""
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
        security=params.policy.security.model_dump(),
        account_manager_tiers=tuple(params.policy.account_manager_tiers),
        currency=params.tariffs.currency,
        segment_service={k: v.model_dump() for k, v in params.policy.segment_service.items()},
        reasons=params.score.reasons,
    )


def arrears_folder(where: str, workdir: Path, tracker: Tracker | None) -> tuple[Path, str]:
    """The arrears model's local folder and its version (``NAME/VERSION`` for a registry URI,
    downloaded into ``workdir``; ``folder@digest`` for a folder, which needs no tracking)."""
    if where.startswith("models:/"):
        if tracker is None:
            raise InputMissing(f"{where}: a registry URI needs tracking (tracking.enabled)")
        return tracker.download(where, "arrears", workdir)
    folder = Path(where)
    if not (folder / "model.txt").exists():
        raise InputMissing(f"{folder}: no model.txt (the train stage's output folder)")
    return folder, model_version(folder)


def _segments(where: str, workdir: Path, tracker: Tracker) -> tuple[Path, str]:
    if where.startswith("models:/"):
        folder, version = tracker.download(where, "segment", workdir)
    else:
        folder = Path(where)
        if not (folder / "tiers.json").exists():
            raise InputMissing(f"{folder}: no tiers.json (the segment stage's output folder)")
        version = f"{folder.name}@{digest(folder / 'tiers.json')}"
    only = workdir / "segments"  # the pipeline and its tier map, without every row's tier
    only.mkdir(parents=True, exist_ok=True)
    for name in _SEGMENT_FILES:
        if (folder / name).exists():  # latest_tiers.parquet: optional (the value rule alone)
            shutil.copy2(folder / name, only / name)
    return only, version


def load(
    arrears: str | Path,
    segments: str | Path | None,
    params: Params,
    workdir: Path,
    tracker: Tracker | None = None,
) -> Loaded:
    """The decision model from folders or registry URIs; registered models are downloaded
    into ``workdir``. Without ``segments``, decisions carry no tier (flag ``no_tier``).

    Raises:
        InputMissing: A folder lacks the model's files.
        TrackingError: A registry URI names no version.
    """
    tracker = tracker or Tracker(params.tracking.experiment)
    a_dir, a_version = arrears_folder(str(arrears), workdir, tracker)
    versions = {"arrears_model_version": a_version}
    s_dir = segmenter = None
    if segments is not None:
        s_dir, versions["segments_model_version"] = _segments(str(segments), workdir, tracker)
        segmenter = Segmenter.load(s_dir)
    model = DecisionModel(ArrearsModel.load(a_dir), segmenter, config(params), versions)
    return Loaded(model, a_dir, s_dir)


def load_pyfunc(uri: str, tracker: Tracker) -> DecisionModel:
    """The decision model inside a logged ``gridscore-decision`` pyfunc (any MLflow URI)."""
    return tracker.load_pyfunc(uri).model
