"""The whole decision as an MLflow pyfunc, logged by the score stage as ``gridscore-decision``.

Apart from ``pipelines.decision`` so that loading a decision model from folders does not
import mlflow (``gridscore explain --customer`` starts in seconds).
"""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pandas as pd

from models.arrears import ArrearsModel
from models.decision import DecisionConfig, DecisionModel, Segmenter


class DecisionPyfunc(mlflow.pyfunc.PythonModel):
    """The whole decision: a feature table in; tier, cluster, PD, grade, expected loss, the
    top reasons in English and Chinese, service level and credit action out.

    Artifacts: ``arrears`` (the train stage's folder), ``segments`` (``pipeline.skops`` and
    ``tiers.json``) and ``decision`` (a JSON file: the policy, grades and reason settings,
    and the versions of the two models). The same :class:`models.decision.DecisionModel`
    the batch job runs, so a registered version decides exactly as the job did. Every
    feature may be missing (the signature marks them optional); ``as_of`` is text.
    """

    def load_context(self, context) -> None:
        meta = json.loads(Path(context.artifacts["decision"]).read_text())
        self.model = DecisionModel(
            ArrearsModel.load(Path(context.artifacts["arrears"])),
            Segmenter.load(Path(context.artifacts["segments"]))
            if "segments" in context.artifacts
            else None,
            DecisionConfig.from_json(json.dumps(meta["config"])),
            meta["versions"],
        )

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        """Decide each row; ``as_of`` is text (YYYY-MM-DD) in the signature, as in a CSV."""
        return self.model.decide(model_input)
