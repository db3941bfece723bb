"""params.yaml, read once at the edge into frozen, typed config; unknown keys are rejected."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Literal

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from features.contract import PERIOD_PATTERN, TARIFF_CLASSES
from features.errors import GridscoreError


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GenerateParams(_Frozen):
    """Size and seed of the embedded synthetic utility."""

    customers: int = Field(gt=0, description="customers in the generated base")
    months: int = Field(ge=1, le=240, description="billing months in the window")
    start_period: str = Field(pattern=PERIOD_PATTERN, description="first billing month, YYYY-MM")
    seed: int = Field(ge=0)
    defect_rate: float = Field(
        default=0.0, ge=0, le=0.05, description="share of rows damaged like a real extract"
    )


class ValidateParams(_Frozen):
    """Limits of the validation stage."""

    max_quarantine_share: float = Field(
        ge=0, le=1, description="stop when more than this share of a table is quarantined"
    )
    encoding: str = Field(default="utf-8", description="of the CSV files, e.g. gb18030")
    max_kwh_per_bill: float = Field(
        default=1.0e9, gt=0, description="a bill above this many kWh is implausible"
    )


class Tariff(_Frozen):
    """Prices and cost of one tariff class, in currency per kWh."""

    price_per_kwh: float = Field(gt=0)
    preferential_price_per_kwh: float = Field(gt=0)
    supply_cost_per_kwh: float = Field(ge=0)

    @model_validator(mode="after")
    def _preferential_not_above_standard(self) -> Tariff:
        if self.preferential_price_per_kwh > self.price_per_kwh:
            raise ValueError("preferential_price_per_kwh is above price_per_kwh")
        return self


class Tariffs(_Frozen):
    """One tariff per tariff class of the data contract."""

    currency: str = "CNY"
    residential: Tariff
    commercial: Tariff
    industrial: Tariff
    large_industrial: Tariff
    agricultural: Tariff

    def by_class(self) -> dict[str, Tariff]:
        return {c: getattr(self, c) for c in TARIFF_CLASSES}


class SnapshotParams(_Frozen):
    """Snapshot dates: an explicit list of month ends, or first / last / step. ``last: null``
    is the last month end the data covers, the date the score stage decides at by default."""

    dates: tuple[date, ...] | None = None
    first: date | None = None
    last: date | None = None
    step_months: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _one_way(self) -> SnapshotParams:
        if (self.dates is None) == (self.first is None):
            raise ValueError("give either dates, or first and last (with step_months)")
        for d in self.dates or (self.first, self.last):
            if d is not None and (pd.Timestamp(d) + pd.offsets.MonthEnd(0)).date() != d:
                raise ValueError(f"snapshot {d} is not a month end")
        if self.first is not None and self.last is not None and self.first > self.last:
            raise ValueError("first is after last")
        return self

    def as_of(self, data_last: date | None = None) -> list[date]:
        """The snapshot dates, in order; ``data_last`` stands for ``last: null``."""
        if self.dates is not None:
            return sorted(set(self.dates))
        last = self.last or data_last
        if last is None:
            raise ValueError("features.snapshots.last is null: give the data's last month end")
        rng = pd.date_range(self.first, last, freq=f"{self.step_months}ME")
        return [d.date() for d in rng]


class FeatureParams(_Frozen):
    """The feature engine."""

    snapshots: SnapshotParams
    disconnected_grace_months: int = Field(
        ge=0, description="keep customers this long after leaving"
    )
    chunk_rows: int = Field(
        ge=1000, description="at most this many customer-snapshot rows per chunk"
    )
    chunk_customers: int = Field(ge=100, description="at most this many customers per chunk")
    memory_limit: str = Field(pattern=r"^\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$")
    threads: int = Field(ge=1)


class LabelParams(_Frozen):
    """The arrears label."""

    horizon_months: int = Field(ge=1, le=24)
    dpd_threshold: int = Field(ge=1)
    min_amount: float = Field(ge=0)
    data_end: date | None = Field(
        default=None, description="last day the data covers; default: latest event"
    )


class SplitParams(_Frozen):
    """How the labelled table is split into train / valid / test."""

    kind: Literal["out_of_time", "random"] = "out_of_time"
    valid_snapshots: int = Field(default=3, ge=1)
    test_snapshots: int = Field(default=3, ge=1)
    test_share: float = Field(default=0.2, ge=0, lt=0.5, description="random split; 0: none")
    folds: int = Field(default=5, ge=2, le=20, description="cross-validation folds")


class TrainParams(_Frozen):
    """The arrears model (docs/arrears_model.md)."""

    target: str = "in_arrears"
    split: SplitParams = SplitParams()
    num_leaves: int = Field(ge=2)
    learning_rate: float = Field(gt=0, le=1)
    n_estimators: int = Field(ge=1)
    early_stopping_rounds: int = Field(ge=1)
    min_child_samples: int = Field(ge=1)
    feature_fraction: float = Field(gt=0, le=1)
    bagging_fraction: float = Field(gt=0, le=1)
    bagging_freq: int = Field(ge=0)
    lambda_l2: float = Field(ge=0)
    seed: int = Field(ge=0)
    threads: int = Field(ge=1)
    calibration: Literal["auto", "platt", "isotonic", "identity"] = "auto"
    calibration_level: Literal["long_run", "held_out"] = "long_run"
    monotone: bool = True
    exclude: tuple[str, ...] = ()
    numeric: tuple[str, ...] | None = None
    categorical: tuple[str, ...] | None = None
    register_model: bool = True


class GradeParams(_Frozen):
    """The master scale: grade names, best first, with the upper bound of each one's PD."""

    names: tuple[str, ...]
    upper_pd: tuple[float, ...]
    lgd: float = Field(ge=0, le=1, description="loss given arrears, for expected loss")

    @model_validator(mode="after")
    def _scale(self) -> GradeParams:
        if len(self.names) != len(self.upper_pd) or len(set(self.names)) != len(self.names):
            raise ValueError("names and upper_pd must pair up, with distinct names")
        if list(self.upper_pd) != sorted(self.upper_pd) or self.upper_pd[-1] < 1.0:
            raise ValueError("upper_pd must increase and end at 1.0")
        return self


class SegmentParams(_Frozen):
    """The value pyramid and the behaviour segments within it (docs/segments.md)."""

    value: Literal["risk_adjusted", "profit"] = "risk_adjusted"
    tier_rule: Literal["value_share", "head_count"] = "value_share"
    hysteresis: float = Field(default=0.1, ge=0, lt=1, description="share of a boundary")
    confirm_periods: int = Field(default=3, ge=1)
    features: tuple[str, ...]
    heavy_tailed: tuple[str, ...]
    k_range: tuple[int, int]
    criterion: Literal["silhouette", "bic"] = "silhouette"
    sample: int = Field(default=20000, ge=100)
    seed: int = 42
    tier_shares: tuple[float, float, float]
    abc_cutoffs: tuple[float, float]
    bootstrap: int = Field(default=5, ge=0)
    profile_medians: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _ranges(self) -> SegmentParams:
        lo, hi = self.k_range
        if not 2 <= lo <= hi:
            raise ValueError("k_range must be [low, high] with 2 <= low <= high")
        if not (0 < self.tier_shares[0] < self.tier_shares[1] < self.tier_shares[2] <= 1):
            raise ValueError("tier_shares must increase within (0, 1]")
        if not (0 < self.abc_cutoffs[0] < self.abc_cutoffs[1] <= 1):
            raise ValueError("abc_cutoffs must increase within (0, 1]")
        return self


class SecurityParams(_Frozen):
    """How a deposit or bank guarantee is sized (models/policy.py)."""

    months_of_bills: float = Field(default=2.0, gt=0, description="x the expected monthly bill")
    round_to: float = Field(default=100.0, gt=0, description="rounded up to a multiple of this")
    minimum: float = Field(default=200.0, ge=0)
    cap: float = Field(default=5_000_000.0, gt=0)
    guarantee_above: float = Field(
        default=50_000.0, ge=0, description="a larger security is asked as a bank guarantee"
    )
    reminder_first_below_dpd: int = Field(
        default=30,
        ge=0,
        description="at most one late bill in 12 months and none this many days past due at a "
        "month end: a payment reminder before any security; 0: off",
    )


class NoticeParams(_Frozen):
    """What a notice of adverse action tells the customer about a review (models/notice.py)."""

    contact_en: str = "our customer service hotline or any service hall"
    contact_zh: str = "客服热线或任一营业厅"
    reply_days: int = Field(default=15, gt=0, description="days the customer has to reply")


class SegmentServiceParams(_Frozen):
    """A service added for a behaviour-segment trait, in English and Chinese."""

    en: str = Field(min_length=1)
    zh: str = Field(min_length=1)


class PolicyParams(_Frozen):
    """Service per tier (and what a behaviour segment's traits add to it); credit action per
    grade (none, payment_reminder or security), how security is sized, and the tiers whose
    adverse grades go to the account manager."""

    service: dict[Literal["A", "B", "C", "D"], str]
    service_zh: dict[Literal["A", "B", "C", "D"], str] = {}  # the same, in Chinese
    #: trait of a segment's name (models.segments: "pays late", "seasonal", ...) -> service
    segment_service: dict[str, SegmentServiceParams] = {}

    @model_validator(mode="after")
    def _traits(self) -> PolicyParams:
        odd = [t for t in self.segment_service if not t.strip() or "," in t]
        if odd:
            raise ValueError(f"segment_service keys are single traits (no comma): {odd}")
        return self

    credit_action: dict[str, Literal["none", "payment_reminder", "security"]]
    security: SecurityParams = SecurityParams()
    account_manager_tiers: tuple[Literal["A", "B", "C", "D"], ...] = ("A", "B")
    notice: NoticeParams = NoticeParams()


class ExplainParams(_Frozen):
    """SHAP reason codes and global explanation reports (docs/explanations.md)."""

    as_of: str | None = Field(default=None, description="snapshot to explain; null: the latest")
    top_n: int = Field(default=3, ge=1, le=10, description="reasons per customer")
    min_contribution: float = Field(
        default=0.05, ge=0, description="log-odds a cause must add to be a reason"
    )
    plot_sample: int = Field(default=5000, ge=100, description="customers in the beeswarm")
    dependence_plots: int = Field(default=4, ge=0, description="top features given one")


class ScoreParams(_Frozen):
    """The batch scoring job (docs/scoring.md)."""

    as_of: str | None = Field(default=None, description="null: the last month end of the data")
    partition_customers: int = Field(default=50000, ge=1, description="customers per partition")
    min_history_months: int = Field(
        default=6, ge=0, description="fewer months of history: scored and flagged"
    )
    arrears_model: str = "artifacts/arrears"  # a folder, or models:/gridscore-arrears@champion
    segments_model: str = "artifacts/segments"  # or models:/gridscore-value-segments@champion
    register_model: bool = True  # log the decision pyfunc, registered as gridscore-decision
    allow_ahead: bool = False  # an as_of after the data's last month end (a forecast)
    runs: int = Field(
        default=1,
        ge=1,
        le=120,
        description="month ends kept in the run history (with --history), ending at as_of",
    )
    reasons: Literal["needed", "all"] = Field(
        default="needed",
        description="reason codes for the rows a decision or a person needs "
        "(models.decision.needs_reasons), or for every row",
    )


class PromoteParams(_Frozen):
    """The champion/challenger gate (models.gate): the margins a candidate must clear."""

    enabled: bool = True  # the promote stage moves the alias when the gate passes
    min_auc_gain: float = Field(default=0.0005, ge=0)  # over the champion, same test rows
    max_ks_loss: float = Field(default=0.01, ge=0)
    max_ece_rise: float = Field(default=0.002, ge=0)
    max_ece: float = Field(default=0.02, gt=0)  # the bar for any model, a first one too
    psi_alert: float = Field(default=0.25, gt=0)  # PSI of its PDs against the champion's
    bootstrap: int = Field(default=200, ge=10)  # resamples for the AUC gain's interval
    seed: int = 0


class MonitorParams(_Frozen):
    """The monitor stage: the runs watched and when a shift or a gap is flagged."""

    runs: int = Field(default=6, ge=2)  # the last month ends of the feature table
    psi_warn: float = Field(default=0.10, gt=0)
    psi_alert: float = Field(default=0.25, gt=0)
    groups: tuple[str, ...] = ("region", "tariff_class")  # fairness and stability within
    fairness_tolerance: float = Field(default=0.05, ge=0)  # a rate's gap from the rest
    calibration_tolerance: float = Field(default=0.25, ge=0)  # mean PD / realised, its gap
    watch_kwh_change: float = Field(default=0.25, gt=0)  # energy-intensive: a kWh change flagged
    watch_pd_ratio: float = Field(default=1.5, gt=1)  # ... or a PD this many times the first run's
    bootstrap: int = Field(default=200, ge=10)
    seed: int = 0


class TrackingParams(_Frozen):
    """MLflow settings; the tracking URI itself comes from MLFLOW_TRACKING_URI or the default."""

    experiment: str = "gridscore"
    enabled: bool = True
    unreachable: Literal["fail", "skip"] = Field(
        default="fail",
        description="a tracking server that does not answer: stop before the work, or skip "
        "tracking and write the outputs",
    )
    timeout_seconds: float = Field(default=5.0, gt=0, le=120)


class Params(_Frozen):
    """The whole of params.yaml."""

    generate: GenerateParams
    validate_: ValidateParams = Field(alias="validate")
    tariffs: Tariffs
    features: FeatureParams
    label: LabelParams
    train: TrainParams
    grades: GradeParams
    segment: SegmentParams
    policy: PolicyParams
    explain: ExplainParams = ExplainParams()
    score: ScoreParams = ScoreParams()
    promote: PromoteParams = PromoteParams()
    monitor: MonitorParams = MonitorParams()
    tracking: TrackingParams = TrackingParams()

    @model_validator(mode="after")
    def _policy_covers_grades(self) -> Params:
        missing = set(self.grades.names) - set(self.policy.credit_action)
        if missing:
            raise ValueError(f"policy.credit_action has no action for grade(s) {sorted(missing)}")
        return self

    def override(self, section: str, **values) -> Params:
        """A copy with the given keys of one section replaced (``None`` values ignored), checked
        like params.yaml itself: what a command-line option such as ``--as-of`` does.

        Raises:
            ParamsError: A value breaks the section's schema.
        """
        given = {k: v for k, v in values.items() if v is not None}
        if not given:
            return self
        field = "validate_" if section == "validate" else section
        current = getattr(self, field)
        try:
            updated = type(current).model_validate({**current.model_dump(), **given})
        except ValidationError as exc:
            raise ParamsError(f"{section}: {_problems(exc)}") from exc
        return self.model_copy(update={field: updated})

    def without_tracking(self) -> Params:
        """A copy with MLflow tracking off."""
        return self.model_copy(
            update={"tracking": self.tracking.model_copy(update={"enabled": False})}
        )


def _problems(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())


class ParamsError(GridscoreError):
    """params.yaml is missing or does not match the expected structure."""


def load_params(path: Path | str = "params.yaml") -> Params:
    """Read and validate params.yaml.

    Raises:
        ParamsError: The file is missing, not YAML, or breaks the schema (message lists
            every offending key).
    """
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"{path}: no such params file")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        raise ParamsError(f"{path}: {_problems(exc)}") from exc
