"""The arrears model as an MLflow pyfunc: a feature table in, calibrated probability out.

Logged with each training run, so ``models:/gridscore-arrears@champion`` scores a table that
follows the feature-table contract (categorical columns as text) without knowing LightGBM.
Needs the gridscore package installed where it is loaded.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd

from models.arrears import ArrearsModel, to_matrix


class ArrearsPyfunc(mlflow.pyfunc.PythonModel):
    """Loads ``model.txt``, ``calibrator.json`` and ``features.json`` from the logged artifacts."""

    def load_context(self, context) -> None:
        self.model = ArrearsModel.load(Path(context.artifacts["model_dir"]))

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        X = to_matrix(model_input, self.model.spec_)
        return pd.DataFrame({"pd": self.model.predict_proba(X)}, index=model_input.index)


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
        import json

        from models.decision import DecisionConfig, DecisionModel, Segmenter

        meta = json.loads(Path(context.artifacts["decision"]).read_text())
        self.model = DecisionModel(
            ArrearsModel.load(Path(context.artifacts["arrears"])),
            Segmenter.load(Path(context.artifacts["segments"])),
            DecisionConfig.from_json(json.dumps(meta["config"])),
            meta["versions"],
        )

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        """Decide each row; ``as_of`` is text (YYYY-MM-DD) in the signature, as in a CSV."""
        return self.model.decide(model_input)
