"""The whole decision for a customer, from its features: tier, PD, grade, loss, reasons, action.

One object bundles the value pyramid (risk-adjusted value -> tier, behaviour segment), the
arrears model (PD, grade, expected loss, SHAP reason codes) and the service/credit policy.
It is the one decision path: the score stage, the explain stage, ``gridscore explain
--customer``, the MLflow pyfunc and the Spark path all run :meth:`DecisionModel.decide` (or
:meth:`DecisionModel.explain`, the same decision with its SHAP contributions) on a feature
frame.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from features.errors import GridscoreError, InputMissing
from models import value
from models.arrears import ArrearsModel
from models.explain import Explained, reasons_of, score_rows
from models.policy import NONE, CreditPolicy, SecurityTerms, recommend
from models.reasons import CATALOG_VERSION, officer_context

#: Flags a scored row may carry (``;``-joined in the ``flags`` column).
INSUFFICIENT_HISTORY = "insufficient_history"
INCOMPLETE_LEDGER = "incomplete_ledger"  # quarantined bill/payment rows dated by as_of
REMINDER_FIRST = "reminder_before_security"  # security due by the grade: a payment reminder first
NO_TIER = "no_tier"
UNSEEN_CATEGORY = "unseen_category"  # a category the arrears model never saw: scored as missing

#: The decision columns, in order (``reason_<k>_*`` for k = 1..top_n follow ``credit_action``).
KEY_COLUMNS = (
    "customer_id",
    "as_of",
    "tier",
    "cluster",
    "pd",
    "grade",
    "exposure",
    "expected_loss",
    "raw_score",
    "service_level",
    "credit_action",
    "security_amount",
    "quarantined_rows",
    "quarantine_refs",
    "officer_context",
    "explained",  # the row's reason codes were computed (needs_reasons; all: every row)
)
#: Optional input columns: the customer's quarantined rows at as_of (features.completeness).
LEDGER_COLUMNS = ("quarantined_rows", "quarantine_refs")


@dataclass(frozen=True)
class DecisionConfig:
    """Everything beyond the two models that a decision needs (from params.yaml)."""

    grade_names: tuple[str, ...]
    grade_upper_pd: tuple[float, ...]
    lgd: float
    horizon_months: int
    service: Mapping[str, str]
    credit_action: Mapping[str, str]
    top_n: int
    min_contribution: float
    min_history_months: int
    security: Mapping[str, float] = field(default_factory=dict)  # SecurityTerms' fields
    currency: str = "CNY"
    account_manager_tiers: tuple[str, ...] = ("A", "B")
    #: segment trait -> {"en": service added, "zh": the same in Chinese}
    segment_service: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    #: whose reason codes :meth:`DecisionModel.decide` computes: needed (needs_reasons) or all
    reasons: str = "needed"

    def policy(self) -> CreditPolicy:
        return CreditPolicy(
            self.service,
            self.credit_action,
            SecurityTerms(**self.security),
            self.account_manager_tiers,
            {trait: text["en"] for trait, text in self.segment_service.items()},
        )

    def to_json(self) -> str:
        return json.dumps(
            {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in self.__dict__.items()},
            indent=2,
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> DecisionConfig:
        raw = json.loads(text)
        raw["grade_names"] = tuple(raw["grade_names"])
        raw["grade_upper_pd"] = tuple(raw["grade_upper_pd"])
        raw["account_manager_tiers"] = tuple(raw.get("account_manager_tiers", ("A", "B")))
        return cls(**raw)


@dataclass
class Segmenter:
    """The segment stage's value rule and behaviour pipeline (``pipelines/segment.py``).

    The tier comes from the customer's risk-adjusted value (``models.value``: expected margin
    minus the decision's expected loss) against the boundaries fitted by the segment stage;
    where the stage tiered the same customer at the same as_of (its ``tiers.parquet``, with
    hysteresis), that tier is used, so the decision and the pyramid agree. ``cluster`` is the
    behaviour segment.
    """

    pipeline: object
    features: Sequence[str]
    bounds: np.ndarray
    value_kind: str = "risk_adjusted"
    known: pd.DataFrame | None = None  # (customer_id, as_of) -> tier, the stage's latest
    names: Mapping[int, str] = field(default_factory=dict)

    @classmethod
    def load(cls, folder: Path) -> Segmenter:
        """Read ``pipeline.skops``, ``tiers.json`` and, if there, ``latest_tiers.parquet``
        (the tiers with hysteresis at the fitted snapshot; the segment stage's output folder)."""
        import pyarrow.parquet as pq
        import skops.io as sio

        path = folder / "pipeline.skops"
        if not path.exists() or not (folder / "tiers.json").exists():
            raise InputMissing(f"{folder}: no pipeline.skops and tiers.json (segment stage)")
        meta = json.loads((folder / "tiers.json").read_text())
        if "bounds" not in meta:
            raise InputMissing(
                f"{folder}/tiers.json: no value boundaries (rerun the segment stage)"
            )
        pipe = sio.load(path, trusted=sio.get_untrusted_types(file=path))
        known = None
        table = folder / "latest_tiers.parquet"
        if table.exists() and meta.get("fitted_as_of"):
            day = pd.Timestamp(meta["fitted_as_of"])
            known = pq.read_table(table, columns=["customer_id", "tier"]).to_pandas()
            known = known.set_index("customer_id")["tier"].rename(day)
        return cls(
            pipe,
            list(meta["features"]),
            np.asarray(meta["bounds"], float),
            meta.get("value", "risk_adjusted"),
            known,
            {int(k): v for k, v in meta.get("segments", {}).items()},
        )

    def assign(
        self, feats: pd.DataFrame, loss: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Behaviour segment and value tier of each row (``loss``: the decision's expected
        loss; None: none)."""
        missing = [c for c in self.features if c not in feats]
        if missing:
            raise FeatureMissing(f"the segment model needs columns missing here: {missing}")
        cluster = self.pipeline.predict(feats[list(self.features)].to_numpy(float))
        margin = value.expected_margin(feats)
        loss = np.zeros(len(feats)) if loss is None else np.asarray(loss, float)
        tier = value.tier_of(value.value(margin, loss, self.value_kind), self.bounds).astype(object)
        if self.known is not None and "as_of" in feats:
            same = pd.to_datetime(feats["as_of"]).to_numpy() == np.datetime64(self.known.name)
            held = self.known.reindex(feats["customer_id"].astype(str)).to_numpy()
            use = same & pd.notna(held)
            tier[use] = held[use]  # the stage's tier, with hysteresis
        return cluster.astype(int), tier


def _number(feats: pd.DataFrame, name: str) -> np.ndarray:
    if name not in feats:
        return np.full(len(feats), np.nan)
    return pd.to_numeric(feats[name], errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _ledger(feats: pd.DataFrame) -> pd.DataFrame:
    """The quarantined rows of each customer at as_of (0 and none when not given)."""
    rows = np.nan_to_num(_number(feats, "quarantined_rows"), nan=0).astype(np.int64)
    refs = (
        feats["quarantine_refs"] if "quarantine_refs" in feats else pd.Series([None] * len(feats))
    )
    refs = refs.astype(object).where(refs.notna(), None).to_numpy()
    return pd.DataFrame({"quarantined_rows": rows, "quarantine_refs": refs})


def needs_reasons(
    action: pd.Series | np.ndarray,
    tier: pd.Series | np.ndarray,
    overdue: np.ndarray,
    account_manager_tiers: Sequence[str],
) -> np.ndarray:
    """The rows whose reason codes a decision or a person needs: a credit action other than
    none (a reminder, a deposit or guarantee with its notice, a review), an overdue balance
    (the fee-recovery work list) or a tier with an account manager (A and B: their work
    list). Exact TreeSHAP is most of a scoring run's time (docs/benchmarks.md), so the batch
    computes it for these rows only; any other customer's reasons are computed on demand
    (``gridscore explain --customer``, the explain stage), exactly, in seconds."""
    acted = pd.Series(np.asarray(action, dtype=object)) != NONE
    managed = pd.Series(np.asarray(tier, dtype=object)).isin(list(account_manager_tiers))
    return (acted | managed).to_numpy() | (np.asarray(overdue, dtype=float) > 0)


class FeatureMissing(GridscoreError):
    """The feature frame lacks a column a model needs."""


def _texts(values) -> pd.api.extensions.ExtensionArray:
    """Strings or missing values as pandas' ``str`` column, built by Arrow in one pass
    (``pd.array(values, dtype="str")`` checks each value in Python: 8.8 ms against 1.4 ms
    for 50,000 rows). The same array: NaN, None and NA are all missing. A value that is not
    text is refused (pyarrow's ArrowTypeError) where pandas would have turned it into text."""
    arrow = pa.array(np.asarray(values, dtype=object), type=pa.large_string(), from_pandas=True)
    return pd.array(arrow, dtype="str")


@dataclass
class DecisionModel:
    """Features in, decisions out; see the module docstring."""

    arrears: ArrearsModel
    segmenter: Segmenter | None  # None: no value tiers (a feature table of one's own)
    config: DecisionConfig
    versions: dict[str, str] = field(default_factory=dict)

    def columns(self) -> list[str]:
        reasons = [
            f"reason_{k}_{part}"
            for k in range(1, self.config.top_n + 1)
            for part in ("code", "en", "zh")
        ]
        return [*KEY_COLUMNS, *reasons, "flags", *self.versions, "catalog_version"]

    def decide(self, feats: pd.DataFrame) -> pd.DataFrame:
        """One row per input row, in the order of :meth:`columns`; the reason codes of the
        rows :func:`needs_reasons` picks (``config.reasons: needed``) or of every row
        (``all``), and ``explained`` says which.

        Raises:
            FeatureMissing / models.arrears.FeatureMismatchError: a column a model needs is
                not in ``feats`` (never scored with a column silently absent).
        """
        return self._decide(feats, everyone=self.config.reasons == "all")[0]

    def explain(self, feats: pd.DataFrame) -> tuple[pd.DataFrame, Explained]:
        """The decisions (as :meth:`decide`, every row explained) and their explanation:
        per-feature and per-cause SHAP contributions and base values, aligned with the
        decisions' rows."""
        return self._decide(feats, everyone=True)

    def _decide(self, feats: pd.DataFrame, everyone: bool) -> tuple[pd.DataFrame, Explained]:
        c = self.config
        feats = feats.reset_index(drop=True)
        keys = score_rows(
            self.arrears, feats, c.grade_names, c.grade_upper_pd, c.lgd, c.horizon_months
        )
        out = keys.copy()
        if self.segmenter is None:
            cluster, tier = np.full(len(feats), None), np.full(len(feats), None, dtype=object)
        else:
            cluster, tier = self.segmenter.assign(feats, keys["expected_loss"].to_numpy())
        out["tier"] = _texts(tier)
        out["cluster"] = pd.array(cluster, dtype="Int64")
        gaps = _ledger(feats)
        bill = _number(feats, "amount_mean_12m")
        bill = np.where(np.isnan(bill), _number(feats, "amount_mean_3m"), bill)
        policy = c.policy()
        lapse = policy.security.reminder_first(
            _number(feats, "late_bills_12m"), _number(feats, "max_dpd_12m")
        )
        segment = None
        if self.segmenter is not None:
            names = self.segmenter.names
            segment = pd.Series(cluster).map(names).astype(object)
        action = recommend(
            out["tier"], out["grade"], policy, bill, gaps["quarantined_rows"], lapse, segment
        )
        out["service_level"] = action["service_level"].to_numpy()
        out["credit_action"] = action["credit_action"].to_numpy()
        out["security_amount"] = action["security_amount"].to_numpy()
        out["quarantined_rows"] = gaps["quarantined_rows"].to_numpy()
        out["quarantine_refs"] = _texts(gaps["quarantine_refs"].to_numpy())
        if everyone:
            need = np.ones(len(feats), dtype=bool)
        else:
            overdue = np.nan_to_num(_number(feats, "overdue_arrears"), nan=0.0)
            need = needs_reasons(out["credit_action"], tier, overdue, c.account_manager_tiers)
        rows = np.flatnonzero(need)
        margin = keys["raw_score"].to_numpy()[rows]  # predicted once, in score_rows
        why = reasons_of(
            self.arrears, feats.iloc[rows], c.top_n, c.min_contribution, c.currency, margin
        )
        context = np.full(len(out), None, dtype=object)
        context[rows] = officer_context(why.grouped, c.min_contribution)
        out["officer_context"] = _texts(context)
        out["explained"] = need
        r = why.reasons
        for k in range(1, c.top_n + 1):
            at = r[r["rank"] == k]
            for part, col in (("code", "code"), ("en", "text_en"), ("zh", "text_zh")):
                values = np.full(len(out), None, dtype=object)
                values[rows[at["row"].to_numpy()]] = at[col].to_numpy()
                out[f"reason_{k}_{part}"] = _texts(values)
        if "months_of_history" in feats:  # a table of one's own may not say: not flagged
            history = pd.to_numeric(feats["months_of_history"], errors="coerce").to_numpy()
            short = ~(history >= c.min_history_months)
        else:
            short = np.zeros(len(feats), dtype=bool)
        flags = np.where(short, INSUFFICIENT_HISTORY, "")
        flags = np.where(pd.isna(tier), np.char.add(flags, ";" + NO_TIER), flags)
        gap = gaps["quarantined_rows"].to_numpy() > 0
        flags = np.where(gap, np.char.add(flags, ";" + INCOMPLETE_LEDGER), flags)
        lapsed = action["reminder_first"].to_numpy()
        flags = np.where(lapsed, np.char.add(flags, ";" + REMINDER_FIRST), flags)
        for col in self.arrears.spec_.categorical:
            value = feats[col].astype("object")
            unseen = (
                value.notna() & ~value.astype(str).isin(self.arrears.spec_.levels[col])
            ).to_numpy()
            flags = np.where(unseen, np.char.add(flags, f";{UNSEEN_CATEGORY}:{col}"), flags)
        out["flags"] = _texts([f.strip(";") or None for f in flags])
        for name, version in self.versions.items():
            out[name] = version
        out["catalog_version"] = CATALOG_VERSION
        explained = None
        if everyone:
            keys.insert(2, "base_value", why.base)
            explained = Explained(keys, why.contrib, why.grouped, why.reasons, why.additivity_gap)
        return out[self.columns()], explained
