"""Draw a block of synthetic customers: static attributes and latent traits, vectorised."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from features.contract import TARIFF_CLASSES
from features.synthetic.archetypes import ARCHETYPES, REGION_RISK, REGIONS

ON_TIME, HABITUAL_LATE, PARTIAL_PAYER = 0, 1, 2
BEHAVIOURS: tuple[str, ...] = ("on_time", "habitual_late", "partial_payer")
ARCHETYPES_INDEX: dict[str, int] = {a.name: k for k, a in enumerate(ARCHETYPES)}


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@dataclass
class Window:
    """The billing window: ``months`` calendar months from ``start`` (numpy month)."""

    start: np.datetime64  # datetime64[M]
    months: int

    @property
    def month_starts(self) -> np.ndarray:
        """Day number (days since 1970-01-01) of the first day of each month, plus one more."""
        months = self.start + np.arange(self.months + 1)
        return months.astype("datetime64[D]").astype(np.int64)

    @property
    def calendar_month(self) -> np.ndarray:
        """0-based calendar month (0 = January) of each window month."""
        return (self.start.astype(int) + np.arange(self.months)) % 12

    @property
    def periods(self) -> list[str]:
        return [str(m) for m in self.start + np.arange(self.months)]

    @property
    def extract_day(self) -> int:
        """Day the data is extracted: the last day of the month after the last period."""
        return int((self.start + self.months + 1).astype("datetime64[D]").astype(np.int64) - 1)


@dataclass
class Population:
    """Static attributes and latent traits of a block of customers (one entry per customer)."""

    index: np.ndarray  # global customer number
    archetype: np.ndarray  # index into ARCHETYPES
    tariff_class: np.ndarray  # index into TARIFF_CLASSES
    industry: np.ndarray  # object: str or None
    energy_intensive: np.ndarray
    preferential: np.ndarray
    region: np.ndarray  # index into REGIONS, -1 unknown
    voltage_kv: np.ndarray  # nan unknown
    capacity_kva: np.ndarray  # nan unknown
    connected_day: np.ndarray  # day number
    connected_known: np.ndarray  # False: connected_on left empty in the data
    first_month: np.ndarray  # first billed window month
    last_month: np.ndarray  # last billed window month (voluntary leave), months-1 if none
    level: np.ndarray  # median monthly kWh
    trend: np.ndarray  # annual growth rate
    season_amp: np.ndarray  # amplitude of the seasonal profile
    risk: np.ndarray  # latent risk score
    behaviour: np.ndarray  # ON_TIME / HABITUAL_LATE / PARTIAL_PAYER
    reversal_rate: np.ndarray
    shock_month: np.ndarray  # -1: no shock
    shock_depth: np.ndarray  # multiplier of consumption from the shock on

    def __len__(self) -> int:
        return len(self.index)


def draw_population(
    first_index: int, n: int, window: Window, rng: np.random.Generator
) -> Population:
    """Draw ``n`` customers numbered from ``first_index``."""
    arch = rng.choice(len(ARCHETYPES), size=n, p=[a.weight for a in ARCHETYPES])
    tariff = np.empty(n, dtype=np.int8)
    industry = np.full(n, None, dtype=object)
    ei = np.zeros(n, dtype=bool)
    pref = np.zeros(n, dtype=bool)
    level = np.empty(n)
    trend = np.empty(n)
    volt = np.full(n, np.nan)
    cap = np.full(n, np.nan)
    shock = np.zeros(n, dtype=bool)
    risk = np.empty(n)
    for k, a in enumerate(ARCHETYPES):
        m = arch == k
        cnt = int(m.sum())
        if cnt == 0:
            continue
        classes, probs = zip(*a.tariff_classes, strict=True)
        tariff[m] = rng.choice([TARIFF_CLASSES.index(c) for c in classes], size=cnt, p=probs)
        if a.industries:
            industry[m] = rng.choice(np.array(a.industries, dtype=object), size=cnt)
        ei[m] = rng.random(cnt) < a.energy_intensive
        pref[m] = rng.random(cnt) < a.preferential
        level[m] = a.median_kwh * rng.lognormal(0.0, a.sigma_level, cnt)
        trend[m] = rng.normal(a.trend_mean, a.trend_sd, cnt)
        volt[m] = rng.choice(np.array(a.voltage_kv), size=cnt)
        if a.capacity_kva is not None:
            med, sd = a.capacity_kva
            # Capacity follows the load: scale by the customer's level against the median.
            raw_cap = med * (level[m] / a.median_kwh) ** 0.8 * rng.lognormal(0, sd, cnt)
            cap[m] = np.maximum(np.round(raw_cap, -1), 10.0)
        shock[m] = rng.random(cnt) < a.shock_prob
        risk[m] = a.risk_base
    # Manufacturers in energy-intensive industries (chemicals, building materials).
    ei |= np.isin(industry, ("chemicals", "building_materials"))
    # Capacity is unknown for some businesses, voltage for some records.
    cap[rng.random(n) < 0.04] = np.nan
    volt[rng.random(n) < 0.02] = np.nan
    region = rng.choice(len(REGIONS), size=n, p=[0.22, 0.2, 0.2, 0.12, 0.16, 0.1])
    region[rng.random(n) < 0.01] = -1

    first_month, connected_day, last_month = _connections(n, window, rng)
    connected_known = rng.random(n) >= 0.02
    tenure_years = (window.month_starts[0] - connected_day) / 365.25
    arch_median = np.array([a.median_kwh for a in ARCHETYPES])[arch]
    risk = (
        risk
        + np.where(region >= 0, REGION_RISK[region], 0.0)
        + 0.5 * (tenure_years < 2)
        + 0.3 * (ei & (ARCHETYPES_INDEX["manufacturer"] == arch))
        - 0.2 * np.log(level / arch_median)
        + rng.normal(0.0, 0.9, n)
    )
    u = rng.random(n)
    p_late = sigmoid(-1.8 + 0.9 * risk)
    p_partial = sigmoid(-3.0 + 0.8 * risk)
    behaviour = np.where(
        u < p_late, HABITUAL_LATE, np.where(u < p_late + p_partial, PARTIAL_PAYER, ON_TIME)
    )
    shock_month = np.where(shock, rng.integers(0, window.months, n), -1)
    return Population(
        index=np.arange(first_index, first_index + n, dtype=np.int64),
        archetype=arch.astype(np.int8),
        tariff_class=tariff,
        industry=industry,
        energy_intensive=ei,
        preferential=pref,
        region=region,
        voltage_kv=volt,
        capacity_kva=cap,
        connected_day=connected_day,
        connected_known=connected_known,
        first_month=first_month,
        last_month=last_month,
        level=level,
        trend=trend,
        season_amp=rng.lognormal(0.0, 0.35, n),
        risk=risk,
        behaviour=behaviour.astype(np.int8),
        reversal_rate=0.002 + 0.03 * sigmoid(risk - 2.0),
        shock_month=shock_month,
        shock_depth=rng.uniform(0.25, 0.7, n),
    )


def _connections(n: int, window: Window, rng: np.random.Generator):
    """First billed month, connection day and last billed month of each customer.

    About 8 % connect during the window; about 5 % leave voluntarily during it (customers
    disconnected for non-payment are decided later, by the payment simulation).
    """
    starts = window.month_starts
    new = rng.random(n) < 0.08
    first_month = np.where(new, rng.integers(1, max(window.months, 2), n), 0)
    first_month = np.minimum(first_month, window.months - 1)
    in_month = rng.integers(0, 27, n)
    years_before = rng.gamma(2.0, 5.0, n) + 0.05
    connected_day = np.where(
        new,
        starts[first_month] + in_month,
        starts[0] - (years_before * 365.25).astype(np.int64),
    )
    leaves = rng.random(n) < 0.05
    leave_month = rng.integers(0, window.months, n)
    last_month = np.where(leaves & (leave_month > first_month), leave_month, window.months - 1)
    return first_month, connected_day.astype(np.int64), last_month
