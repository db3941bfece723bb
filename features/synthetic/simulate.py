"""Simulate a block of customers month by month: consumption, distress, bills and payments.

Vectorised over customers; the only loop is over the window's months. All arrays are
``(customers, months)`` unless said otherwise. See ``docs/generator.md`` for the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from features.synthetic.archetypes import ARCHETYPES, SEASONALITY
from features.synthetic.population import (
    HABITUAL_LATE,
    PARTIAL_PAYER,
    Population,
    Window,
    sigmoid,
)

#: Log-odds of entering distress: intercept, per unit of latent risk, after a shock.
HAZARD_INTERCEPT = -5.4
HAZARD_RISK = 1.0
HAZARD_SHOCK = 2.3
#: Months after a shock during which the distress hazard is raised (a fall comes first).
SHOCK_LAG = (1, 4)
#: Chance that a customer in distress stays in distress the next month.
DISTRESS_STAY = 0.62
#: After this many months in distress, each further month may end in disconnection.
DISCONNECT_AFTER = 4
DISCONNECT_PROB = 0.2


@dataclass
class Prices:
    """Per-customer price and supply cost per kWh."""

    price: np.ndarray
    cost: np.ndarray


@dataclass
class Simulation:
    """What one block produced."""

    kwh: np.ndarray
    billed: np.ndarray  # bool: a bill exists for the month
    amount: np.ndarray
    issued_day: np.ndarray
    due_day: np.ndarray
    hazard: np.ndarray
    p_distress: np.ndarray
    in_distress: np.ndarray
    active: np.ndarray
    disconnected_day: np.ndarray  # per customer, -1: still connected
    disconnected_for_nonpayment: np.ndarray  # per customer
    payments: dict[str, np.ndarray]  # customer (block row), month, kind, day, amount


def consumption(pop: Population, window: Window, rng: np.random.Generator) -> np.ndarray:
    """Monthly kWh before connection dates are applied: level x season x trend x shock x noise."""
    n, months = len(pop), window.months
    cal = window.calendar_month
    season_keys = sorted(SEASONALITY)
    profiles = np.stack([SEASONALITY[k] for k in season_keys])
    season_idx = np.array([season_keys.index(a.season) for a in ARCHETYPES])[pop.archetype]
    season = 1.0 + pop.season_amp[:, None] * (profiles[season_idx][:, cal] - 1.0)
    t = np.arange(months)[None, :]
    trend = np.exp(pop.trend[:, None] * t / 12.0)
    shock = np.where(
        (pop.shock_month[:, None] >= 0) & (t >= pop.shock_month[:, None]),
        pop.shock_depth[:, None],
        1.0,
    )
    noise_sd = np.array([a.noise for a in ARCHETYPES])[pop.archetype][:, None]
    noise = np.exp(rng.standard_normal((n, months)) * noise_sd - noise_sd**2 / 2)
    away = rng.random((n, months)) < 0.02  # holidays, a half-empty month
    noise = np.where(away, noise * rng.uniform(0.3, 0.8, (n, months)), noise)
    kwh = pop.level[:, None] * np.clip(season, 0.05, None) * trend * shock * noise
    kwh[rng.random((n, months)) < 0.0015] = 0.0  # vacant property, plant standing still
    return kwh


def simulate(
    pop: Population, window: Window, prices: Prices, rng: np.random.Generator
) -> Simulation:
    """Run consumption, the distress chain, billing and payments for a block."""
    n, months = len(pop), window.months
    starts = window.month_starts
    kwh = consumption(pop, window, rng)
    t = np.arange(months)[None, :]
    active = (t >= pop.first_month[:, None]) & (t <= pop.last_month[:, None])
    hazard, p_distress, distress, active, disc_month = _distress_chain(pop, window, active, rng)

    # Part months at connection and disconnection are billed for the days connected.
    days_in = np.diff(starts)[None, :]
    first_frac = np.clip(
        (starts[pop.first_month + 1] - pop.connected_day) / days_in[0, pop.first_month], 0.05, 1
    )
    kwh[np.arange(n), pop.first_month] *= np.where(pop.first_month > 0, first_frac, 1.0)
    disconnected_day = np.full(n, -1, dtype=np.int64)
    voluntary = pop.last_month < months - 1
    leave_day = starts[pop.last_month] + rng.integers(1, 28, n)
    disconnected_day[voluntary] = leave_day[voluntary]
    forced = disc_month >= 0
    disconnected_day[forced] = starts[disc_month[forced]] + rng.integers(1, 20, int(forced.sum()))
    last = np.where(forced, disc_month, pop.last_month)
    kwh[np.arange(n), last] *= np.where(
        voluntary | forced, (disconnected_day - starts[last]) / days_in[0, last], 1.0
    )
    kwh = np.round(kwh, 1)

    billed = active & (rng.random((n, months)) >= 0.004)  # a few meters not read
    amount = np.round(kwh * prices.price[:, None], 2)
    terms = np.array([a.payment_terms_days for a in ARCHETYPES])[pop.archetype]
    issued_day = starts[None, 1:] + rng.integers(0, 6, (n, months))
    due_day = issued_day + terms[:, None]
    payments = _payments(pop, window, billed, amount, issued_day, due_day, distress, forced, rng)
    return Simulation(
        kwh=kwh,
        billed=billed,
        amount=amount,
        issued_day=issued_day,
        due_day=due_day,
        hazard=hazard,
        p_distress=p_distress,
        in_distress=distress,
        active=active,
        disconnected_day=disconnected_day,
        disconnected_for_nonpayment=forced,
        payments=payments,
    )


def _distress_chain(pop: Population, window: Window, active: np.ndarray, rng: np.random.Generator):
    """Markov chain of payment distress; long distress can end in disconnection."""
    n, months = active.shape
    cal = window.calendar_month
    since_shock = np.arange(months)[None, :] - pop.shock_month[:, None]
    after_shock = (
        (pop.shock_month[:, None] >= 0)
        & (since_shock >= SHOCK_LAG[0])
        & (since_shock <= SHOCK_LAG[1])
    )
    winter = np.isin(cal, (0, 1))[None, :] & (pop.archetype == 0)[:, None]  # heating bills
    logit = (
        HAZARD_INTERCEPT
        + HAZARD_RISK * pop.risk[:, None]
        + HAZARD_SHOCK * after_shock
        + 0.3 * winter
    )
    hazard = sigmoid(logit)
    p_distress = np.zeros((n, months))
    distress = np.zeros((n, months), dtype=bool)
    run = np.zeros(n, dtype=np.int64)
    disc_month = np.full(n, -1, dtype=np.int64)
    prev = np.zeros(n, dtype=bool)
    for m in range(months):
        on = active[:, m] & (disc_month < 0)
        p = np.where(prev, DISTRESS_STAY, hazard[:, m])
        now = on & (rng.random(n) < p)
        p_distress[:, m] = np.where(on, p, 0.0)
        run = np.where(now, run + 1, 0)
        cut = now & (run >= DISCONNECT_AFTER) & (rng.random(n) < DISCONNECT_PROB)
        cut &= m + 1 <= pop.last_month
        disc_month[cut] = m + 1
        distress[:, m] = now
        prev = now
    t = np.arange(months)[None, :]
    active = active & ((disc_month[:, None] < 0) | (t <= disc_month[:, None]))
    return hazard, p_distress, distress, active, disc_month


def _payments(pop, window, billed, amount, issued_day, due_day, distress, forced, rng):
    """One payment a month against the running balance; reversals; final settlements."""
    n, months = billed.shape
    terms = due_day[:, 0] - issued_day[:, 0]
    carry = np.zeros(n)
    rows: list[tuple[np.ndarray, ...]] = []
    extract = window.extract_day
    for m in range(months):
        bill = np.where(billed[:, m], amount[:, m], 0.0)
        total = carry + bill
        due = due_day[:, m]
        frac = np.ones(n)
        partial = (pop.behaviour == PARTIAL_PAYER) & (rng.random(n) < 0.35)
        frac[partial] = rng.uniform(0.4, 0.9, int(partial.sum()))
        stress_frac = np.where(rng.random(n) < 0.6, 0.0, rng.uniform(0.05, 0.3, n))
        frac = np.where(distress[:, m], stress_frac, frac)
        delay = _delay(pop.behaviour, terms, rng)
        delay = np.where(distress[:, m], rng.integers(0, 25, n), delay)
        day = np.maximum(due + delay, issued_day[:, m])
        pay = np.round(total * frac, 2)
        pays = (pay >= 0.01) & (billed[:, m] | (carry > 0)) & (day <= extract)
        carry = np.where(pays, total - pay, total)
        rows.append((np.flatnonzero(pays), m, 0, day[pays], pay[pays]))
        rev = pays & (rng.random(n) < pop.reversal_rate)
        rev_day = day + rng.integers(1, 8, n)
        rev &= rev_day <= extract
        carry = np.where(rev, carry + pay, carry)
        rows.append((np.flatnonzero(rev), m, 1, rev_day[rev], -pay[rev]))
    # Leavers settle the balance; customers cut off for non-payment mostly do not.
    last_due = np.where(
        billed.any(axis=1),
        due_day[np.arange(n), months - 1 - np.argmax(billed[:, ::-1], axis=1)],
        0,
    )
    settles = (carry >= 0.01) & np.where(forced, rng.random(n) < 0.25, True)
    settle_day = last_due + rng.integers(5, 90, n)
    settles &= settle_day <= extract
    rows.append(
        (np.flatnonzero(settles), months - 1, 2, settle_day[settles], np.round(carry[settles], 2))
    )
    customer = np.concatenate([r[0] for r in rows])
    return {
        "customer": customer,
        "month": np.concatenate([np.full(len(r[0]), r[1], dtype=np.int16) for r in rows]),
        "kind": np.concatenate([np.full(len(r[0]), r[2], dtype=np.int8) for r in rows]),
        "day": np.concatenate([r[3] for r in rows]).astype(np.int64),
        "amount": np.concatenate([r[4] for r in rows]),
    }


def _delay(behaviour: np.ndarray, terms: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Days from the due date to payment when not in distress (negative: early)."""
    n = len(behaviour)
    early = -np.floor(rng.uniform(0, 1, n) * terms).astype(np.int64)
    slip = rng.random(n) < 0.04
    early = np.where(slip, rng.integers(1, 12, n), early)
    late = np.round(rng.lognormal(np.log(9.0), 0.8, n)).astype(np.int64)
    return np.where(behaviour == HABITUAL_LATE, late, early)
