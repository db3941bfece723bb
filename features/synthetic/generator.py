"""The embedded default data: a synthetic electricity distribution company.

:func:`generate_blocks` yields the raw tables (customers, bills, payments, following the data
contract) and the ground truth (latent segment and monthly arrears probabilities) block by
block, so a base of millions of customers is written in bounded memory. Blocks have a fixed
size, so the data depend only on the seed, customers, months and start period.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.contract import TARIFF_CLASSES, arrow_schema
from features.synthetic.archetypes import ARCHETYPES, REGIONS
from features.synthetic.defects import inject
from features.synthetic.population import BEHAVIOURS, Window, draw_population
from features.synthetic.simulate import (
    DISCONNECT_AFTER,
    DISCONNECT_PROB,
    DISTRESS_STAY,
    Prices,
    Simulation,
    simulate,
)

#: Customers per block. Fixed, so that a seed gives the same base on any machine.
BLOCK_SIZE = 25_000
#: Cumulative shares of expected profit that close tiers A, B and C of the true pyramid.
TRUE_TIER_SHARES = (0.50, 0.80, 0.95)

TRUTH_CUSTOMERS_SCHEMA = pa.schema(
    [
        ("customer_id", pa.string()),
        ("latent_segment", pa.string()),
        ("behaviour", pa.string()),
        ("latent_risk", pa.float64()),
        ("level_kwh", pa.float64()),
        ("expected_monthly_profit", pa.float64()),
        ("expected_monthly_loss", pa.float64()),
        ("shock_period", pa.string()),
        ("disconnected_for_nonpayment", pa.bool_()),
    ]
)
TRUTH_MONTHLY_SCHEMA = pa.schema(
    [
        ("customer_id", pa.string()),
        ("period", pa.string()),
        ("hazard", pa.float64()),
        ("p_distress", pa.float64()),
        ("in_distress", pa.bool_()),
    ]
)


@dataclass(frozen=True)
class TariffPrices:
    """Price, preferential price and supply cost per kWh for each tariff class."""

    price: Mapping[str, float]
    preferential_price: Mapping[str, float]
    supply_cost: Mapping[str, float]

    def for_customers(self, tariff_class: np.ndarray, preferential: np.ndarray) -> Prices:
        std = np.array([self.price[c] for c in TARIFF_CLASSES])[tariff_class]
        pref = np.array([self.preferential_price[c] for c in TARIFF_CLASSES])[tariff_class]
        cost = np.array([self.supply_cost[c] for c in TARIFF_CLASSES])[tariff_class]
        return Prices(price=np.where(preferential, pref, std), cost=cost)


@dataclass
class Block:
    """The tables of one block of customers."""

    customers: pa.Table
    bills: pa.Table
    payments: pa.Table
    truth_customers: pa.Table
    truth_monthly: pa.Table
    defects: dict[str, list[tuple[int, str]]]  # table -> (row in this block, expected reason)


def generate_blocks(
    customers: int,
    months: int,
    start_period: str,
    seed: int,
    tariffs: TariffPrices,
    defect_rate: float = 0.0,
) -> Iterator[Block]:
    """Yield the synthetic base block by block.

    Args:
        customers: Customers in the base.
        months: Billing months in the window.
        start_period: First billing month, ``YYYY-MM``.
        seed: Seed of the whole base.
        tariffs: Prices and supply costs, from params.yaml.
        defect_rate: Share of rows damaged the way real extracts are (see
            :mod:`features.synthetic.defects`); 0 gives clean tables.
    """
    window = Window(np.datetime64(start_period, "M"), months)
    n_blocks = -(-customers // BLOCK_SIZE)
    seeds = np.random.SeedSequence(seed).spawn(n_blocks)
    for b in range(n_blocks):
        rng = np.random.default_rng(seeds[b])
        first = b * BLOCK_SIZE
        n = min(BLOCK_SIZE, customers - first)
        pop = draw_population(first, n, window, rng)
        prices = tariffs.for_customers(pop.tariff_class, pop.preferential)
        sim = simulate(pop, window, prices, rng)
        block = _tables(pop, sim, window, prices)
        dirty = inject(block.customers, block.bills, block.payments, defect_rate, rng)
        block.customers, block.bills, block.payments = dirty.customers, dirty.bills, dirty.payments
        block.defects = dirty.expected
        yield block


def _ids(prefix: str, index: np.ndarray) -> pa.Array:
    return pa.array(np.char.add(prefix, np.char.zfill(index.astype(str), 8)).tolist(), pa.string())


def _dates(days: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    return pa.array(days.astype(np.int32), pa.date32(), mask=None if valid is None else ~valid)


def _tables(pop, sim: Simulation, window: Window, prices: Prices) -> Block:
    ids = _ids("C", pop.index)
    periods = pa.array(window.periods, pa.string())
    regions = np.array((*REGIONS, None), dtype=object)[pop.region]
    capacity = _recorded_capacity(pop.capacity_kva, sim.kwh, window)
    customers = pa.table(
        {
            "customer_id": ids,
            "tariff_class": pa.array(np.array(TARIFF_CLASSES, dtype=object)[pop.tariff_class]),
            "industry": pa.array(pop.industry, pa.string()),
            "energy_intensive": pa.array(pop.energy_intensive),
            "preferential_tariff": pa.array(pop.preferential),
            "region": pa.array(regions, pa.string()),
            "voltage_kv": pa.array(pop.voltage_kv, from_pandas=True),
            "contract_capacity_kva": pa.array(capacity, from_pandas=True),
            "connected_on": _dates(pop.connected_day, pop.connected_known),
            "disconnected_on": _dates(sim.disconnected_day, sim.disconnected_day >= 0),
        },
        schema=arrow_schema("customers"),
    )
    rows, months = np.nonzero(sim.billed)
    bills = pa.table(
        {
            "customer_id": ids.take(rows),
            "period": periods.take(months),
            "kwh": sim.kwh[rows, months],
            "amount": sim.amount[rows, months],
            "issued_on": _dates(sim.issued_day[rows, months]),
            "due_date": _dates(sim.due_day[rows, months]),
        },
        schema=arrow_schema("bills"),
    )
    return Block(
        customers=customers,
        bills=bills,
        payments=_payments_table(pop, sim, periods),
        truth_customers=_truth_customers(pop, sim, window, prices, ids),
        truth_monthly=_truth_monthly(sim, ids, periods),
        defects={},
    )


#: The highest monthly load factor a connection runs at (mean kW over its kVA).
MAX_LOAD_FACTOR = 0.9


def _recorded_capacity(capacity_kva: np.ndarray, kwh: np.ndarray, window: Window) -> np.ndarray:
    """The contract capacity on record: at least what the customer drew in its busiest month
    at :data:`MAX_LOAD_FACTOR`, rounded up to 10 kVA (a connection cannot deliver more than
    kVA x hours, and validation quarantines a bill that says otherwise); unknown stays
    unknown."""
    hours = np.diff(window.month_starts).astype(float) * 24.0
    need = (kwh / hours[None, :]).max(axis=1) / MAX_LOAD_FACTOR
    floor = np.ceil(need / 10.0) * 10.0
    return np.where(np.isnan(capacity_kva), np.nan, np.maximum(capacity_kva, floor))


def _payments_table(pop, sim: Simulation, periods: pa.Array) -> pa.Table:
    p = sim.payments
    order = np.lexsort((p["kind"], p["day"], p["customer"]))
    cust, month, kind = p["customer"][order], p["month"][order], p["kind"][order]
    prefix = _ids("P", pop.index).take(cust)
    kind_code = pa.array(["N", "R", "F"]).take(kind)
    payment_id = pc.binary_join_element_wise(prefix, periods.take(month), kind_code, "-")
    return pa.table(
        {
            "payment_id": payment_id,
            "customer_id": _ids("C", pop.index).take(cust),
            "paid_on": _dates(p["day"][order]),
            "amount": p["amount"][order],
        },
        schema=arrow_schema("payments"),
    )


def _truth_customers(pop, sim: Simulation, window: Window, prices: Prices, ids) -> pa.Table:
    shock = np.where(pop.shock_month >= 0, pop.shock_month, 0)
    shock_period = pa.array(np.array(window.periods, dtype=object)[shock]).to_pandas()
    shock_period[pop.shock_month < 0] = None
    return pa.table(
        {
            "customer_id": ids,
            "latent_segment": pa.array(
                np.array([a.name for a in ARCHETYPES], dtype=object)[pop.archetype]
            ),
            "behaviour": pa.array(np.array(BEHAVIOURS, dtype=object)[pop.behaviour]),
            "latent_risk": pop.risk,
            "level_kwh": pop.level,
            "expected_monthly_profit": pop.level * (prices.price - prices.cost),
            "expected_monthly_loss": expected_monthly_loss(
                pop.level * prices.price, _mean_hazard(sim)
            ),
            "shock_period": pa.array(shock_period, pa.string()),
            "disconnected_for_nonpayment": pa.array(sim.disconnected_for_nonpayment),
        },
        schema=TRUTH_CUSTOMERS_SCHEMA,
    )


def _mean_hazard(sim: Simulation) -> np.ndarray:
    """Each customer's mean monthly hazard of falling into distress over its active months."""
    active = sim.active.sum(axis=1)
    total = np.where(sim.active, sim.hazard, 0.0).sum(axis=1)
    return np.where(active > 0, total / np.maximum(active, 1), 0.0)


def expected_monthly_loss(monthly_bill: np.ndarray, hazard: np.ndarray) -> np.ndarray:
    """The money a customer is expected never to pay, per month, from its latent process.

    Distress starts at the monthly ``hazard`` when not in distress and lasts with probability
    DISTRESS_STAY a month; from DISCONNECT_AFTER months on, each month in distress ends in a
    disconnection with probability DISCONNECT_PROB, and a customer cut off leaves its unpaid
    balance unsettled 3 times in 4 (``_payments``). A customer in distress pays next to
    nothing (0 six times in ten, else 5 to 30 %: 93 % of the bill unpaid on average), and pays
    it all back when the distress ends, so only a disconnection loses money:

        runs a month      r = (1 - pi) h, with pi = h / (h + 1 - stay) the share in distress
        P(cut | a run)    c = p stay^(n-1) / (1 - stay (1 - p)),     n = DISCONNECT_AFTER
        bills unpaid      u = 0.93 (n + stay (1 - p) / (1 - stay (1 - p)))
        loss a month      r c u 0.75 x the monthly bill
    """
    h = np.asarray(hazard, float)
    stay, n, p = DISTRESS_STAY, DISCONNECT_AFTER, DISCONNECT_PROB
    rate = (1.0 - h / (h + 1.0 - stay)) * h
    keep = stay * (1.0 - p)
    cut = p * stay ** (n - 1) / (1.0 - keep)
    unpaid = 0.93 * (n + keep / (1.0 - keep))
    return rate * cut * unpaid * 0.75 * np.asarray(monthly_bill, float)


def _truth_monthly(sim: Simulation, ids: pa.Array, periods: pa.Array) -> pa.Table:
    rows, months = np.nonzero(sim.active)
    return pa.table(
        {
            "customer_id": ids.take(rows),
            "period": periods.take(months),
            "hazard": sim.hazard[rows, months],
            "p_distress": sim.p_distress[rows, months],
            "in_distress": sim.in_distress[rows, months],
        },
        schema=TRUTH_MONTHLY_SCHEMA,
    )


def true_value_tiers(
    expected_profit: pd.Series, shares: tuple[float, ...] = TRUE_TIER_SHARES
) -> pd.Series:
    """Tier A/B/C/D of each customer by its share of the base's expected profit.

    Customers are ranked by expected profit; A holds the first ``shares[0]`` of the total,
    B up to ``shares[1]``, C up to ``shares[2]``, D the rest.
    """
    order = expected_profit.sort_values(ascending=False, kind="stable")
    cum = order.clip(lower=0).cumsum() / max(order.clip(lower=0).sum(), 1e-12)
    before = cum.shift(fill_value=0.0)  # share held by customers ranked above
    tier = np.select(
        [before < shares[0], before < shares[1], before < shares[2]], ["A", "B", "C"], "D"
    )
    return pd.Series(tier, index=order.index).reindex(expected_profit.index)
