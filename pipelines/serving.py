"""The arrears model as an MLflow pyfunc: a feature table in, calibrated probability out.

(The whole decision's pyfunc, logged by the score stage, is ``pipelines.decision_pyfunc``.)

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

    @classmethod
    def of(cls, model: ArrearsModel) -> ArrearsPyfunc:
        """The pyfunc around a model in memory (to infer a signature before logging)."""
        wrapped = cls()
        wrapped.model = model
        return wrapped

    def load_context(self, context) -> None:
        self.model = ArrearsModel.load(Path(context.artifacts["model_dir"]))

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        X = to_matrix(model_input, self.model.spec_)
        return pd.DataFrame({"pd": self.model.predict_proba(X)}, index=model_input.index)
