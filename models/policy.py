"""The service and credit policy: what each value tier gets, and what each decision asks of
the customer, with the amount of any deposit or guarantee.

The credit action of a customer follows its grade (params ``policy.credit_action``: ``none``,
``payment_reminder`` or ``security``), then three rules a credit officer can defend:

1. An incomplete ledger is never acted on automatically: a customer with quarantined bill or
   payment rows (``features.completeness``) whose grade calls for any action is sent to a
   review of its records (``review_incomplete_records``), with the rows behind it.
2. Differentiated service: a tier A or B customer (``policy.account_manager_tiers``) whose
   grade calls for security goes to its account manager (``account_manager_review``), who
   decides; no automatic request.
3. A reminder comes before security: a customer whose records show at most one bill not
   paid by its due date in 12 months, and no bill ``reminder_first_below_dpd`` (30) days past
   due at a month end, gets a payment reminder (flagged ``reminder_before_security``); the
   request waits until the records show a serious or repeated lapse.
4. Security is sized to the customer: ``months_of_bills`` x the expected monthly bill, rounded
   up to ``round_to``, at least ``minimum``, at most ``cap``; above ``guarantee_above`` it is
   asked as a bank guarantee instead of a cash deposit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from features.errors import GridscoreError

NONE = "none"
REMINDER = "payment_reminder"
SECURITY = "security"  # a grade's action: becomes DEPOSIT or GUARANTEE by the amount
DEPOSIT = "deposit"
GUARANTEE = "bank_guarantee"
REVIEW_RECORDS = "review_incomplete_records"
REVIEW_MANAGER = "account_manager_review"
REVIEW_UNVERIFIED = "review_unverified_reasons"  # the records do not bear a request out
GRADE_ACTIONS = (NONE, REMINDER, SECURITY)
#: The actions that ask a customer for money up front (a notice is written for each).
ADVERSE = (DEPOSIT, GUARANTEE)
ACTION_TEXT = {
    NONE: ("none", "无"),
    REMINDER: ("payment reminder before the due date", "到期前缴费提醒"),
    DEPOSIT: ("ask for a cash deposit", "要求缴纳电费保证金"),
    GUARANTEE: ("ask for a bank guarantee", "要求提供银行履约保函"),
    REVIEW_RECORDS: (
        "review by a credit officer: the customer's records are incomplete",
        "人工复核：客户的账单或缴费记录不完整",
    ),
    REVIEW_MANAGER: (
        "review by the account manager (tier A/B customer)",
        "由客户经理复核（A/B级客户）",
    ),
    REVIEW_UNVERIFIED: (
        "review by a credit officer: the reasons could not be checked against the records",
        "人工复核：原因未能与客户记录核对一致",
    ),
}


class PolicyError(GridscoreError):
    """params.yaml's policy has no entry for a tier or grade the models produce."""


@dataclass(frozen=True)
class SecurityTerms:
    """How a deposit or guarantee is sized (params ``policy.security``)."""

    months_of_bills: float = 2.0
    round_to: float = 100.0
    minimum: float = 200.0
    cap: float = 5_000_000.0
    guarantee_above: float = 50_000.0
    reminder_first_below_dpd: int = 30  # 0: security on the grade alone

    def reminder_first(self, late_bills_12m: np.ndarray, max_dpd_12m: np.ndarray) -> np.ndarray:
        """Rows whose records show at most one late bill in 12 months and no bill this many
        days past due at a month end (a missing value shows nothing: security as graded)."""
        late = np.asarray(late_bills_12m, float)
        worst = np.asarray(max_dpd_12m, float)
        if self.reminder_first_below_dpd <= 0:
            return np.zeros(len(late), dtype=bool)
        return (late <= 1) & (worst < self.reminder_first_below_dpd)

    def amount(self, monthly_bill: np.ndarray) -> np.ndarray:
        """The security asked of each customer from its expected monthly bill."""
        raw = np.nan_to_num(np.asarray(monthly_bill, float), nan=0.0) * self.months_of_bills
        rounded = np.ceil(raw / self.round_to) * self.round_to
        return np.clip(rounded, self.minimum, self.cap)


@dataclass(frozen=True)
class CreditPolicy:
    service: Mapping[str, str]
    credit_action: Mapping[str, str]  # grade -> none | payment_reminder | security
    security: SecurityTerms = field(default_factory=SecurityTerms)
    account_manager_tiers: Sequence[str] = ("A", "B")
    segment_service: Mapping[str, str] = field(default_factory=dict)  # trait -> service added


def service_levels(
    tier: pd.Series,
    segment: pd.Series | None,
    service: Mapping[str, str],
    segment_service: Mapping[str, str],
) -> np.ndarray:
    """Each row's service: its tier's (``service``), then the service ``segment_service``
    adds for each trait of its behaviour segment's name (``models.segments.traits``), in the
    order the name says them, joined by "; ". No tier, no service (None)."""
    from models.segments import traits

    base = tier.map(dict(service)).to_numpy(dtype=object)
    base[pd.isna(base)] = None
    if segment is None or not segment_service:
        return base
    added = {}  # once per segment name, not per row
    for name in pd.unique(segment.dropna()):
        texts = [segment_service[t] for t in traits(name) if t in segment_service]
        if texts:
            added[name] = "; " + "; ".join(texts)
    suffix = segment.map(added).to_numpy(dtype=object)
    extend = pd.notna(suffix) & pd.notna(base)
    out = base.copy()
    out[extend] = base[extend] + suffix[extend]
    return out


def recommend(
    tier: pd.Series,
    grade: pd.Series,
    policy: CreditPolicy,
    monthly_bill: np.ndarray | None = None,
    quarantined_rows: np.ndarray | None = None,
    reminder_first: np.ndarray | None = None,
    segment: pd.Series | None = None,
) -> pd.DataFrame:
    """Service level, credit action and security amount, row by row.

    Returns:
        ``service_level`` (by tier, with what the behaviour ``segment``'s traits add:
        :func:`service_levels`), ``credit_action`` (one of :data:`ACTION_TEXT`),
        ``security_amount`` (the deposit or guarantee asked; for an account manager's
        review, the amount the policy would ask; NaN otherwise).
        ``reminder_first`` (bool): security was due by the grade, a reminder comes first.

    Raises:
        PolicyError: A tier or grade has no entry in the policy (never a silent blank).
    """
    missing_t = set(tier.dropna().unique()) - set(policy.service)  # unique: no loop per row
    missing_g = set(grade.dropna().unique()) - set(policy.credit_action)
    if missing_t or missing_g:
        raise PolicyError(
            f"policy has no entry for tier(s) {sorted(missing_t)} / grade(s) {sorted(missing_g)}"
        )
    n = len(tier)
    base = grade.map(dict(policy.credit_action)).to_numpy(dtype=object)
    gaps = np.zeros(n) if quarantined_rows is None else np.nan_to_num(quarantined_rows, nan=0)
    bill = np.zeros(n) if monthly_bill is None else np.asarray(monthly_bill, float)
    amount = policy.security.amount(bill)
    lapse = np.zeros(n, dtype=bool) if reminder_first is None else np.asarray(reminder_first, bool)
    lapse = lapse & (base == SECURITY)
    base = np.where(lapse, REMINDER, base).astype(object)
    secure = base == SECURITY
    action = np.where(
        secure, np.where(amount > policy.security.guarantee_above, GUARANTEE, DEPOSIT), base
    ).astype(object)
    managed = secure & tier.isin(list(policy.account_manager_tiers)).to_numpy()
    action[managed] = REVIEW_MANAGER
    incomplete = (base != NONE) & (gaps > 0)
    action[incomplete] = REVIEW_RECORDS
    asked = secure & ~incomplete
    return pd.DataFrame(
        {
            "service_level": service_levels(tier, segment, policy.service, policy.segment_service),
            "credit_action": action,
            "security_amount": np.where(asked, amount, np.nan),
            "reminder_first": lapse & ~incomplete,
        },
        index=tier.index,
    )
