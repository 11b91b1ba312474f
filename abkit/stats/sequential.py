"""Peeking-safe inference: the asymptotic confidence sequence of GrowthBook/Eppo (Howard et al. 2021),
the mixture SPRT p-value made monotone over looks, and group-sequential alpha-spending boundaries.

A look without a usable standard error (zero or undefined variance) is "insufficient data" in every method
here, as in the fixed-horizon and Bayesian tests: NaN interval and p-value, never a zero-width interval.

>>> r = confidence_sequence(-0.074074074, 0.050657, 220, tuning=600)
>>> round(float(r.p_value), 3)
0.892
>>> b = group_sequential_bounds([0.2, 0.4, 0.6, 0.8, 1.0], kind="obrien-fleming")
>>> [round(float(z), 2) for z in b.z]
[4.88, 3.36, 2.68, 2.29, 2.03]
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import optimize
from scipy import stats as sps

from abkit.errors import AbkitError
from abkit.stats._common import usable_se
from abkit.stats.config import check_alpha, resolve

SPENDING_KINDS = ("obrien-fleming", "pocock", "power")


class SequentialResult(NamedTuple):
    """Always-valid interval and p-value of an effect at one look (arrays broadcast)."""

    estimate: np.ndarray  # effect estimate
    ci_low: np.ndarray  # lower bound of the always-valid (two-sided) interval
    ci_high: np.ndarray  # upper bound
    halfwidth: np.ndarray  # half width of the interval
    p_value: np.ndarray  # always-valid p-value (stop at any look and keep the type-I error)
    method: str


def _rho(alpha: float, tuning: float) -> float:
    if tuning <= 0:
        raise AbkitError(f"sequential tuning={tuning!r} must be > 0 (the sample size where the sequence is tightest)")
    la = -2.0 * np.log(alpha)
    return float(np.sqrt((la + np.log(la + 1.0)) / tuning))


def confidence_sequence(
    estimate: object, se: object, n: object, *, tuning: float | None = None, alpha: float | None = None
) -> SequentialResult:
    """Asymptotic confidence sequence (GrowthBook/Eppo): valid at every look, ``tuning`` = N where it is tightest.

    ``n`` is the total number of units in both arms, ``se`` the fixed-horizon standard error of ``estimate``.
    """
    a = check_alpha(alpha)
    rho = _rho(a, float(resolve("sequential_tuning", tuning)))
    est, s, nn = (np.asarray(v, dtype=np.float64) for v in (estimate, se, n))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        nr2 = nn * rho * rho + 1.0
        half = s * np.sqrt(nn) * np.sqrt(2.0 * nr2 * np.log(np.sqrt(nr2) / a) / (nn * rho) ** 2)
        p = np.minimum(1.0, np.sqrt(nr2) * np.exp(-rho * rho * (est * est * nn / (s * s)) / (2.0 * nr2)))
        ok = usable_se(s) & np.isfinite(nn) & (nn > 0) & np.isfinite(est)
    half, p = np.where(ok, half, np.nan), np.where(ok, p, np.nan)
    return SequentialResult(
        est, est - half, est + half, half, p, f"confidence sequence (N={resolve('sequential_tuning', tuning):g})"
    )


def msprt_p_values(estimates: object, se: object, *, tau2: float) -> np.ndarray:
    """Mixture-SPRT p-values over looks (last axis = looks), made monotone by a running minimum.

    ``Λ = sqrt(V/(V+τ²)) · exp(τ² θ̂² / (2V(V+τ²)))`` with V = se²; p = min(1, 1/Λ) (Johari et al. 2017).
    A look with zero or undefined se is insufficient data: NaN until the first usable look, after which
    the running minimum carries over it.
    """
    if tau2 <= 0:
        raise AbkitError(f"tau2={tau2!r} must be > 0 (the variance of the effect mixing distribution)")
    est, s = np.broadcast_arrays(np.asarray(estimates, dtype=np.float64), np.asarray(se, dtype=np.float64))
    v = s * s
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        z = est / s  # the same Λ, written so that a huge se cannot overflow v = se²
        log_lam = -0.5 * np.log1p(tau2 / v) + 0.5 * z * z * (tau2 / (v + tau2))
        p = np.minimum(1.0, np.exp(-log_lam))
    p = np.where(usable_se(s) & np.isfinite(est), p, np.nan)
    return np.fmin.accumulate(p, axis=-1) if p.ndim else p  # one look (a scalar): nothing to accumulate


def spending(t: object, alpha: float | None = None, kind: str = "obrien-fleming", rho: float = 2.0) -> np.ndarray:
    """Lan–DeMets alpha-spending function α(t) (two-sided) at information fractions ``t``.

    ``kind="power"`` is the power family α·t^ρ (Kim & DeMets 1987; spotify-confidence uses ρ = 2): ρ = 1
    spends evenly (close to Pocock), ρ = 3 close to O'Brien–Fleming.
    """
    a = check_alpha(alpha)
    tt = np.clip(np.asarray(t, dtype=np.float64), 0.0, 1.0)
    with np.errstate(divide="ignore"):
        if kind == "obrien-fleming":
            # two one-sided O'Brien–Fleming-type spending functions at α/2 each (as gsDesign/ldbounds)
            return np.where(tt > 0, 4.0 * sps.norm.sf(sps.norm.isf(a / 4) / np.sqrt(np.where(tt > 0, tt, 1.0))), 0.0)
        if kind == "pocock":
            return a * np.log1p((np.e - 1.0) * tt)
        if kind == "power":
            if not (np.isfinite(rho) and rho > 0):
                raise AbkitError(f"rho={rho!r} must be > 0 (power-family spending α·t^ρ; 2 is common)")
            return a * tt**rho
    raise AbkitError(f"kind={kind!r} is unknown; use one of {SPENDING_KINDS}")


class GroupSequentialBounds(NamedTuple):
    """Boundaries for planned looks: two-sided symmetric (``sides=2``) or upper only (``sides=1``)."""

    fractions: np.ndarray  # information fractions of the looks (increasing, last = 1)
    z: np.ndarray  # reject at look k when |Z_k| >= z[k] (sides=2) or Z_k >= z[k] (sides=1)
    alpha_spent: np.ndarray  # cumulative α spent up to each look
    nominal_p: np.ndarray  # nominal p-value threshold at each look (two-sided for sides=2, one-sided for sides=1)
    kind: str


def group_sequential_bounds(
    fractions: object,
    alpha: float | None = None,
    kind: str = "obrien-fleming",
    grid: int = 1201,
    *,
    rho: float = 2.0,
    sides: int = 2,
) -> GroupSequentialBounds:
    """Boundaries by Lan–DeMets spending (O'Brien–Fleming, Pocock or power-family type), computed by numerical
    integration of the score process (Armitage–McPherson–Rowe recursion) on a grid.

    ``sides=1`` spends all of α on the upper boundary (a one-sided test, e.g. non-inferiority); the lower
    side of the continuation region is then open (truncated at Z = −12, never reached).
    """
    a = check_alpha(alpha)
    if sides not in (1, 2):
        raise AbkitError(f"sides={sides!r} must be 1 (one-sided) or 2 (two-sided)")
    t = np.asarray(fractions, dtype=np.float64)
    if t.ndim != 1 or t.size == 0 or np.any(np.diff(t) <= 0) or t[0] <= 0 or t[-1] > 1 + 1e-12:
        raise AbkitError(f"fractions={t.tolist()} must increase strictly within (0, 1]")
    cum = spending(t, a, kind, rho)
    inc = np.diff(np.concatenate([[0.0], cum]))
    z = np.empty_like(t)
    z[0] = sps.norm.isf(inc[0] / sides)
    # density of the score S_1 = Z_1·sqrt(t_1) on the continuation region (|Z| > 12 is never reached)
    nodes, weights = _grid(min(z[0], 12.0) * np.sqrt(t[0]), grid, two_sided=sides == 2, t=t[0])
    dens = sps.norm.pdf(nodes, scale=np.sqrt(t[0]))
    for k in range(1, t.size):
        dt = t[k] - t[k - 1]
        sd = np.sqrt(dt)
        w = dens * weights
        hi = 12.0 * np.sqrt(t[k])
        if _crossing(hi, nodes, w, sd, sides) >= inc[k]:
            z[k] = 12.0
        else:
            lo = 1e-6 if sides == 2 else -hi
            root = optimize.brentq(_excess_crossing, lo, hi, args=(nodes, w, sd, sides, inc[k]), xtol=1e-12)
            z[k] = root / np.sqrt(t[k])
        b = z[k] * np.sqrt(t[k])
        new_nodes, new_weights = _grid(b, grid, two_sided=sides == 2, t=t[k])
        dens = (sps.norm.pdf((new_nodes[:, None] - nodes[None, :]) / sd) / sd) @ w
        nodes, weights = new_nodes, new_weights
    return GroupSequentialBounds(t, z, cum, sides * sps.norm.sf(z), kind)


def _crossing(b: float, nodes: np.ndarray, w: np.ndarray, sd: float, sides: int) -> float:
    """Probability of first crossing ±b (or +b one-sided) at the next look, from weighted density ``w`` on ``nodes``
    with increment standard deviation ``sd``."""
    lower = sps.norm.cdf((-b - nodes) / sd) if sides == 2 else 0.0
    return float(np.sum(w * (sps.norm.sf((b - nodes) / sd) + lower)))


def _excess_crossing(b: float, nodes: np.ndarray, w: np.ndarray, sd: float, sides: int, target: float) -> float:
    """``_crossing`` minus the alpha to spend at this look (its root is the boundary)."""
    return _crossing(b, nodes, w, sd, sides) - target


def _grid(bound: float, size: int, *, two_sided: bool = True, t: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Simpson nodes and weights on [−bound, bound] (two-sided) or [−12·sqrt(t), bound] (one-sided)."""
    size = size + (size + 1) % 2  # odd number of nodes
    nodes = np.linspace(-bound if two_sided else -12.0 * np.sqrt(t), bound, size)
    h = nodes[1] - nodes[0]
    w = np.ones(size)
    w[1:-1:2], w[2:-1:2] = 4.0, 2.0
    return nodes, w * h / 3.0
