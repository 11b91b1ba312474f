"""Multiple-testing adjustments over a stated family of p-values.

>>> adjust([0.01, 0.04, 0.03, 0.005, 0.55, 0.6], "holm").p_adjusted.round(2).tolist()
[0.05, 0.12, 0.12, 0.03, 1.0, 1.0]
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from abkit.errors import AbkitError
from abkit.stats.config import check_alpha

METHODS = ("bonferroni", "sidak", "holm", "holm-sidak", "hochberg", "hochberg-sidak", "bh", "by")


class MultipleResult(NamedTuple):
    """Adjusted p-values of one family."""

    p_adjusted: np.ndarray  # adjusted p-values, in the input order
    reject: np.ndarray  # p_adjusted <= alpha
    method: str  # adjustment method
    family_size: int  # number of hypotheses in the family


def _step(p: np.ndarray, m: int, sidak: bool, n_tests: np.ndarray) -> np.ndarray:
    return 1.0 - (1.0 - p) ** n_tests if sidak else p * n_tests


def adjust(p_values: object, method: str = "holm", *, alpha: float | None = None) -> MultipleResult:
    """Adjust p-values for FWER (Bonferroni, Šidák, Holm, Hochberg, with Šidák variants) or FDR
    (Benjamini–Hochberg ``"bh"``; Benjamini–Yekutieli ``"by"`` for arbitrary dependence)."""
    a = check_alpha(alpha)
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1:
        raise AbkitError("p_values must be a 1-d sequence")
    if np.any(np.isnan(p)) or np.any((p < 0) | (p > 1)):
        raise AbkitError(f"p_values={p.tolist()} must lie in [0, 1] with no NaN; drop missing tests from the family")
    if method not in METHODS:
        raise AbkitError(f"method={method!r} is unknown; use one of {METHODS}")
    m = p.size
    if m == 0:
        return MultipleResult(p, p.astype(bool), method, 0)
    order = np.argsort(p, kind="stable")
    ps = p[order]
    rank = np.arange(1, m + 1, dtype=np.float64)
    sidak = method.endswith("sidak")
    if method in ("bonferroni", "sidak"):
        adj = _step(ps, m, sidak, np.full(m, float(m)))
    elif method.startswith("holm"):
        adj = np.maximum.accumulate(_step(ps, m, sidak, m - rank + 1))
    elif method.startswith("hochberg"):
        adj = np.minimum.accumulate(_step(ps, m, sidak, m - rank + 1)[::-1])[::-1]
    else:
        c = np.sum(1.0 / rank) if method == "by" else 1.0
        adj = np.minimum.accumulate((ps * m * c / rank)[::-1])[::-1]
    adj = np.minimum(adj, 1.0)
    out = np.empty(m)
    out[order] = adj
    return MultipleResult(out, out <= a, method, m)


def bh_threshold(p_values: object, *, alpha: float | None = None, arbitrary_dependence: bool = False) -> float:
    """The BH (or BY) rejection threshold kα/m (kα/(m·Σ1/i)), k = the largest rank with p_(k) <= kα/m;
    0.0 when nothing is rejected."""
    a = check_alpha(alpha)
    ps = np.sort(np.asarray(p_values, dtype=np.float64))
    m = ps.size
    c = np.sum(1.0 / np.arange(1, m + 1)) if arbitrary_dependence else 1.0
    ok = np.nonzero(ps <= np.arange(1, m + 1) * a / (m * c))[0]
    if not ok.size:
        return 0.0
    k = ok[-1] + 1
    return float(k * a / (m * c))
