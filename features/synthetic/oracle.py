"""The oracle: the generator's own probability of arrears, for a ceiling on model AUC.

Only tests, benchmarks and the evaluation's reference metric read it; nothing that a model
learns from does.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.synthetic.simulate import (
    HAZARD_INTERCEPT,
    HAZARD_RISK,
    HAZARD_SHOCK,
    SHOCK_LAG,
)


def _ex_ante_hazards(customers: pd.DataFrame, month0: np.ndarray, horizon: int) -> np.ndarray:
    """Entry hazard of months ``M .. M + horizon - 1`` as known before month ``M`` began.

    Shocks of month ``M`` or later are not known (they show in bills issued after as_of).
    """
    risk = customers["latent_risk"].to_numpy(float)
    shock = pd.PeriodIndex(customers["shock_period"], freq="M")
    shock_month = np.where(
        customers["shock_period"].notna(), shock.year * 12 + shock.month - 1, -(10**9)
    )
    known = shock_month < month0
    household = (customers["latent_segment"] == "household").to_numpy()
    out = np.empty((len(month0), horizon))
    for k in range(horizon):
        lag = month0 + k - shock_month
        after = known & (lag >= SHOCK_LAG[0]) & (lag <= SHOCK_LAG[1])
        winter = household & np.isin((month0 + k) % 12, (0, 1))
        logit = HAZARD_INTERCEPT + HAZARD_RISK * risk + HAZARD_SHOCK * after + 0.3 * winter
        out[:, k] = 1.0 / (1.0 + np.exp(-logit))
    return out


def oracle_probability(
    monthly: pd.DataFrame, customers: pd.DataFrame, keys: pd.DataFrame, horizon_months: int
) -> np.ndarray:
    """The generator's probability of a distress month among those that can put a customer
    in arrears within the horizon.

    A customer in distress in month ``m`` leaves the bill for ``m`` unpaid; it falls due in
    month ``m + 1`` and is 30 days past due by the end of ``m + 2``. So the label of the
    month ends ``M+1 .. M+horizon`` (``M`` = the as_of month) hangs on distress in months
    ``M-1 .. M+horizon-2``. The state of ``M-1`` (already in the ledger at as_of as an
    unpaid bill) is taken as known; from ``M`` on, only probabilities: the chain's entry
    hazards (with the shocks known before ``M``) and its staying probability.

    Args:
        monthly: ``truth/monthly.parquet``; customers: ``truth/customers.parquet``.
        keys: customer_id, as_of (month ends) to score.
    """
    month0, ids = _months(keys)
    prev = _in_distress(monthly, ids, month0 - 1)
    c = customers.set_index("customer_id").reindex(ids).reset_index()
    hazards = _ex_ante_hazards(c, month0, max(horizon_months - 1, 1))
    # Distress in M-1 is already a hit; else no entry in any of M .. M+h-2.
    none = np.where(prev, 0.0, 1.0)
    for k in range(hazards.shape[1]):
        none = none * (1.0 - hazards[:, k])
    return 1.0 - none


def _months(keys: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    as_of = pd.to_datetime(keys["as_of"])
    return (as_of.dt.year * 12 + as_of.dt.month - 1).to_numpy(), keys["customer_id"].to_numpy()


def _in_distress(monthly: pd.DataFrame, ids: np.ndarray, month0: np.ndarray) -> np.ndarray:
    period = monthly["period"].astype(str)
    month = period.str[:4].astype(int).to_numpy() * 12 + period.str[5:7].astype(int).to_numpy() - 1
    # one integer key per (customer, month): customer code x 10^6 + month number
    codes = pd.Index(pd.unique(monthly["customer_id"].to_numpy()))
    have = codes.get_indexer(monthly["customer_id"].to_numpy()).astype(np.int64) * 10**6 + month
    want_code = codes.get_indexer(ids).astype(np.int64)
    want = np.where(want_code >= 0, want_code * 10**6 + np.asarray(month0, np.int64), -1)
    lookup = pd.Series(monthly["in_distress"].to_numpy(dtype=bool), index=have)
    return lookup.reindex(want).fillna(False).to_numpy(dtype=bool)


def oracle_features(
    monthly: pd.DataFrame, customers: pd.DataFrame, keys: pd.DataFrame, horizon_months: int
) -> pd.DataFrame:
    """What the generator knows at each (customer, as_of) and a model cannot see.

    The latent risk, payment behaviour and segment, whether the customer was in distress in
    the month before as_of's, the months since its consumption shock (if it happened before
    as_of's month) and the chain's probability (``oracle_probability``): the generator's
    state before the as_of month, and its probabilities after. Fitted on top of the
    observable features, these give the oracle: the best AUC the generated data allows.
    """
    month0, ids = _months(keys)
    c = customers.set_index("customer_id").reindex(ids)
    shock = pd.PeriodIndex(c["shock_period"], freq="M")
    since = (
        month0 - 1 - np.where(c["shock_period"].notna(), shock.year * 12 + shock.month - 1, 10**9)
    )
    out = pd.DataFrame(index=keys.index)
    out["truth_in_distress_before"] = _in_distress(monthly, ids, month0 - 1).astype(float)
    out["truth_months_since_shock"] = np.where(since >= 0, since, np.nan)
    out["truth_p_horizon"] = oracle_probability(monthly, customers, keys, horizon_months)
    out["truth_latent_risk"] = c["latent_risk"].to_numpy(float)
    out["truth_behaviour"] = c["behaviour"].astype(str).to_numpy()
    out["truth_segment"] = c["latent_segment"].astype(str).to_numpy()
    return out
