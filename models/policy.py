"""The service policy: what each value tier gets, and the credit action each grade calls for."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from features.errors import GridscoreError


class PolicyError(GridscoreError):
    """params.yaml's policy has no entry for a tier or grade the models produce."""


def recommend(
    tier: pd.Series, grade: pd.Series, service: Mapping[str, str], credit_action: Mapping[str, str]
) -> pd.DataFrame:
    """Service level by tier and credit action by grade, row by row.

    Raises:
        PolicyError: A tier or grade has no entry in the policy (never a silent blank).
    """
    missing_t = set(tier.dropna()) - set(service)
    missing_g = set(grade.dropna()) - set(credit_action)
    if missing_t or missing_g:
        raise PolicyError(
            f"policy has no entry for tier(s) {sorted(missing_t)} / grade(s) {sorted(missing_g)}"
        )
    return pd.DataFrame(
        {"service_level": tier.map(dict(service)), "credit_action": grade.map(dict(credit_action))},
        index=tier.index,
    )
