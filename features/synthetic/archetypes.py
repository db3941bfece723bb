"""The synthetic utility's customer archetypes and the figures they are calibrated to.

Every customer is drawn from one latent archetype (its ground-truth value segment). The
archetype fixes the tariff class, the industry mix, the consumption level and spread,
seasonality, trend, the chance of a business shock and the baseline payment risk. Numbers
are documented with their source in ``docs/generator.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Archetype:
    """One latent segment of the synthetic base."""

    name: str
    weight: float  # share of customers
    tariff_classes: tuple[tuple[str, float], ...]  # (class, probability)
    industries: tuple[str, ...]  # empty: industry is null
    median_kwh: float  # median monthly kWh of the customer level
    sigma_level: float  # lognormal spread of the level across customers
    noise: float  # month-to-month lognormal noise
    season: str  # key of SEASONALITY
    trend_mean: float  # mean annual growth rate
    trend_sd: float
    shock_prob: float  # chance of a consumption shock during the window
    risk_base: float  # baseline of the latent risk score
    energy_intensive: float  # chance the customer is in an energy-intensive industry
    preferential: float  # chance of a preferential tariff
    capacity_kva: tuple[float, float] | None  # lognormal median and sigma; None: not recorded
    voltage_kv: tuple[float, ...]  # voltages to draw from
    payment_terms_days: int  # days from issue to due date


ARCHETYPES: tuple[Archetype, ...] = (
    Archetype(
        "household",
        0.860,
        (("residential", 1.0),),
        (),
        254.0,
        0.62,
        0.12,
        "london_household",
        0.0,
        0.04,
        0.0,
        0.0,
        0.0,
        0.0,
        None,
        (0.22,),
        15,
    ),
    Archetype(
        "small_business",
        0.075,
        (("commercial", 1.0),),
        ("retail", "catering", "personal_services", "offices", "repair_shops"),
        1500.0,
        0.9,
        0.10,
        "commercial",
        0.02,
        0.10,
        0.15,
        0.45,
        0.0,
        0.0,
        (40.0, 0.6),
        (0.4,),
        20,
    ),
    Archetype(
        "commercial_key",
        0.012,
        (("commercial", 1.0),),
        ("shopping_mall", "hotel", "hospital", "office_tower", "data_center"),
        25000.0,
        0.8,
        0.07,
        "commercial",
        0.03,
        0.08,
        0.08,
        -0.6,
        0.0,
        0.0,
        (800.0, 0.6),
        (0.4, 10.0),
        20,
    ),
    Archetype(
        "manufacturer",
        0.030,
        (("industrial", 1.0),),
        (
            "food_processing",
            "textiles",
            "machinery",
            "electronics",
            "plastics",
            "printing",
            "chemicals",
            "building_materials",
        ),
        8000.0,
        1.0,
        0.09,
        "industrial",
        0.02,
        0.12,
        0.15,
        0.35,
        0.12,
        0.0,
        (315.0, 0.7),
        (10.0,),
        20,
    ),
    Archetype(
        "large_manufacturer",
        0.003,
        (("large_industrial", 1.0),),
        ("automotive", "machinery", "electronics", "pharmaceuticals", "paper"),
        200000.0,
        0.7,
        0.06,
        "industrial",
        0.03,
        0.08,
        0.10,
        -0.5,
        0.0,
        0.0,
        (6300.0, 0.6),
        (35.0, 110.0),
        20,
    ),
    Archetype(
        "energy_intensive",
        0.004,
        (("large_industrial", 0.6), ("industrial", 0.4)),
        ("steel", "electrolytic_aluminium", "cement", "ferroalloys", "chlor_alkali", "polysilicon"),
        400000.0,
        0.8,
        0.06,
        "industrial",
        -0.01,
        0.08,
        0.20,
        0.55,
        1.0,
        0.85,
        (12500.0, 0.7),
        (35.0, 110.0, 220.0),
        20,
    ),
    Archetype(
        "farm",
        0.016,
        (("agricultural", 1.0),),
        ("irrigation", "greenhouse", "livestock", "aquaculture"),
        2500.0,
        1.0,
        0.20,
        "agricultural",
        0.0,
        0.10,
        0.10,
        0.25,
        0.0,
        0.70,
        (50.0, 0.7),
        (0.4, 10.0),
        30,
    ),
)

#: Monthly multipliers (January first), each averaging 1 over the year.
SEASONALITY: dict[str, np.ndarray] = {
    # Real London households, 2013, mean of each household's month / its yearly mean
    # (docs/generator.md; recomputed by examples/calibrate_london.py).
    "london_household": np.array(
        [1.238, 1.085, 1.172, 0.978, 0.912, 0.841, 0.858, 0.842, 0.878, 0.974, 1.065, 1.156]
    ),
    # Cooling peak in summer, a smaller heating peak in winter.
    "commercial": np.array(
        [1.05, 0.92, 0.92, 0.90, 0.95, 1.08, 1.25, 1.25, 1.05, 0.92, 0.88, 0.98]
    ),
    # Flat, with the Spring Festival dip in February.
    "industrial": np.array(
        [0.98, 0.78, 1.02, 1.02, 1.03, 1.03, 1.02, 1.02, 1.03, 1.02, 1.03, 1.02]
    ),
    # Irrigation season from May to August.
    "agricultural": np.array(
        [0.45, 0.45, 0.70, 1.05, 1.60, 1.85, 1.85, 1.60, 1.05, 0.60, 0.45, 0.35]
    ),
}
for _key, _profile in SEASONALITY.items():
    SEASONALITY[_key] = _profile / _profile.mean()

REGIONS: tuple[str, ...] = ("north", "south", "east", "west", "central", "coastal")
#: Latent risk offset per region (an observable factor: local economy).
REGION_RISK: np.ndarray = np.array([0.0, 0.25, -0.2, 0.35, 0.05, -0.3])

#: Figures of real London households (Low Carbon London, 2013, 12 full months), which the
#: household archetype reproduces; checked by tests/features/test_synthetic.py.
LONDON_FIGURES: dict[str, float] = {
    "annual_kwh_median": 3044.0,
    "annual_kwh_p80": 5117.0,
    "annual_kwh_p95": 8324.0,
    "top20_kwh_share": 0.417,
    "monthly_noise_robust_sd": 0.137,
    "zero_month_share": 0.0015,
}
