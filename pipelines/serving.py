"""The arrears model as an MLflow pyfunc: a feature table in, calibrated probability out.

(The whole decision's pyfunc, logged by the score stage, is ``pipelines.decision_pyfunc``.)

Logged with each training run, so ``models:/gridscore-arrears@champion`` scores a table that
follows the feature-table contract without knowing LightGBM. Its signature (:func:`signature`)
takes every feature by name whatever its type (``to_matrix`` checks the types), so a CSV
whose codes look numeric (``mlflow models predict -t csv``) is read as written;
``customer_id`` and ``as_of`` are optional inputs, passed over quietly. Needs the gridscore
package installed where it is loaded.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd

from models.arrears import KEYS, ArrearsModel, to_matrix


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


def signature(model: ArrearsModel):
    """The pyfunc's signature: the model's features, required, of any type (MLflow refuses a
    bool or int64 column for a double, and numeric-looking codes for a string: the types
    are checked by ``to_matrix``, which names the column), the id columns optional, ``pd``
    out."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import AnyType, ColSpec, Schema

    spec = model.spec_
    inputs = [ColSpec(AnyType(), c) for c in spec.columns]
    inputs += [ColSpec(AnyType(), k, required=False) for k in KEYS]
    return ModelSignature(inputs=Schema(inputs), outputs=Schema([ColSpec("double", "pd")]))
