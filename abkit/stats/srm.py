"""Sample-ratio mismatch: χ² goodness of fit of unit counts against the *configured* weights, any number
of arms, plus a practical-deviation guard.

>>> r = srm_test([1000, 1200], [0.5, 0.5])
>>> f"{r.p_value:.4e}", r.status
('2.0079e-05', 'mismatch')
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import stats as sps

from abkit.errors import AbkitError
from abkit.stats.config import check_alpha

SRM_METHODS = ("chi2", "binom", "norm")


class SRMResult(NamedTuple):
    """Outcome of the sample-ratio check."""

    p_value: float  # p-value of the test against the configured weights (nan when there are no units)
    statistic: float  # χ² (or z) statistic
    df: int  # degrees of freedom (arms − 1)
    observed: tuple[float, ...]  # units per arm
    expected: tuple[float, ...]  # expected units per arm under the configured weights
    max_share_deviation: float  # max |observed share − configured share| over arms
    status: str  # "ok" | "mismatch" | "insufficient"
    reason: str  # one sentence a report can show
    method: str


def check_weights(weights: object, n_arms: int | None = None) -> np.ndarray:
    """Validate configured weights: positive, one per arm, summing to 1 (±1e-6)."""
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or w.size < 2:
        raise AbkitError(f"weights={w.tolist()} must list one weight per arm (at least 2)")
    if n_arms is not None and w.size != n_arms:
        raise AbkitError(f"weights has {w.size} entries for {n_arms} arms; give one weight per arm")
    if np.any(~np.isfinite(w)) or np.any(w <= 0):
        raise AbkitError(f"weights={w.tolist()} must be finite and > 0")
    if abs(w.sum() - 1.0) > 1e-6:
        raise AbkitError(f"weights={w.tolist()} sum to {w.sum():.6g}; pass weights that sum to 1, e.g. [0.5, 0.5]")
    return w


def srm_test(
    counts: object,
    weights: object,
    *,
    alpha: float | None = None,
    method: str = "chi2",
    correction: bool = False,
    max_share_deviation: float = 0.05,
    min_units: int = 1000,
) -> SRMResult:
    """Test unit counts per arm against configured weights.

    ``status`` is "mismatch" when p < ``alpha`` (default ``srm_alpha`` = 0.001) or, once the total reaches
    ``min_units``, when any arm's share differs from its weight by more than ``max_share_deviation``
    (the practical guard: a large, visible imbalance is a bug even before it is significant);
    "insufficient" when there are no units. ``method`` "binom"/"norm" (two arms only) give the exact
    binomial and the normal approximation (with optional continuity ``correction``).
    """
    a = check_alpha(alpha, "srm_alpha")
    obs = np.asarray(counts, dtype=np.float64)
    if obs.ndim != 1 or np.any(obs < 0) or np.any(~np.isfinite(obs)):
        raise AbkitError(f"counts={obs.tolist()} must be a 1-d list of non-negative unit counts")
    w = check_weights(weights, obs.size)
    total = float(obs.sum())
    exp = total * w
    if total == 0:
        return SRMResult(
            float("nan"),
            float("nan"),
            obs.size - 1,
            tuple(obs),
            tuple(exp),
            0.0,
            "insufficient",
            "no units in any arm: the sample ratio cannot be checked",
            method,
        )
    if method == "chi2":
        stat = float(np.sum((obs - exp) ** 2 / exp))
        p = float(sps.chi2.sf(stat, obs.size - 1))
    elif method in ("binom", "norm"):
        if obs.size != 2:
            raise AbkitError(f"method={method!r} handles two arms; use method='chi2' for {obs.size} arms")
        if method == "binom":
            if np.any(obs != np.round(obs)):
                raise AbkitError("method='binom' needs integer counts")
            stat = float(obs[1])
            p = float(sps.binomtest(int(obs[1]), int(total), w[1]).pvalue)
        else:
            d = abs(obs[1] - exp[1]) - (0.5 if correction else 0.0)
            stat = float(max(d, 0.0) / np.sqrt(total * w[0] * w[1]))
            p = float(2.0 * sps.norm.sf(stat))
    else:
        raise AbkitError(f"method={method!r} is unknown; use one of {SRM_METHODS}")
    dev = float(np.max(np.abs(obs / total - w)))
    if p < a:
        status, reason = "mismatch", f"sample ratio mismatch: p = {p:.3g} < {a:g} against weights {w.round(4).tolist()}"
    elif total >= min_units and dev > max_share_deviation:
        status, reason = "mismatch", f"arm shares deviate by {dev:.3f} > {max_share_deviation:g} from the weights"
    else:
        status, reason = "ok", f"sample ratio consistent with weights (p = {p:.3g})"
    return SRMResult(p, stat, obs.size - 1, tuple(obs.tolist()), tuple(exp.tolist()), dev, status, reason, method)
