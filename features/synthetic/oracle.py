"""The oracle: the generator's own probability of arrears, for a ceiling on model AUC.

Only tests, benchmarks and the evaluation's reference metric read it; nothing that a model
learns from does.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.synthetic.simulate import DISTRESS_STAY


def oracle_probability(
    monthly: pd.DataFrame, keys: pd.DataFrame, horizon_months: int
) -> np.ndarray:
    """True probability of a distress month within the horizon after each (customer, as_of).

    From the generator's latent state at ``as_of`` (in distress or not) and its monthly
    entry hazards over the horizon: ``1 - P(no distress in any month of the horizon)``,
    where a customer in distress at ``as_of`` first has to leave it (``1 - DISTRESS_STAY``).
    Months where the customer is not active count as no distress.

    Args:
        monthly: ``truth/monthly.parquet``: customer_id, period, hazard, in_distress.
        keys: customer_id, as_of (month ends) to score.
    """
    m = monthly[["customer_id", "period", "hazard", "in_distress"]].copy()
    period = pd.PeriodIndex(m["period"], freq="M")
    m["month"] = period.year * 12 + period.month - 1
    lookup = m.set_index(["customer_id", "month"])
    as_of = pd.to_datetime(keys["as_of"])
    month0 = (as_of.dt.year * 12 + as_of.dt.month - 1).to_numpy()
    ids = keys["customer_id"].to_numpy()

    def column(name: str, offset: int) -> np.ndarray:
        idx = pd.MultiIndex.from_arrays([ids, month0 + offset])
        return lookup[name].reindex(idx).to_numpy(dtype=float, na_value=0.0)

    stay_out = np.ones(len(keys))
    in_now = column("in_distress", 0) > 0
    for k in range(1, horizon_months + 1):
        h = column("hazard", k)
        first = np.where(in_now, 1.0 - DISTRESS_STAY, 1.0 - h) if k == 1 else 1.0 - h
        stay_out *= first
    return 1.0 - stay_out
