"""Shares of binned or categorical values and the distances between two share vectors (pure numpy)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def bin_edges(reference: np.ndarray, bins: str | int = "doane") -> np.ndarray:
    """Inner bin edges fit on the reference only: ``"doane"`` (numpy's rule), ``"quantile"`` (10 equal-share bins)
    or an integer number of equal-share (quantile) bins. The outer bins are open (−inf, inf)."""
    ref = np.asarray(reference, dtype=float)
    if bins == "doane":
        edges = np.histogram_bin_edges(ref, bins="doane")[1:-1]
    else:
        k = 10 if bins == "quantile" else int(bins)
        edges = np.quantile(ref, np.linspace(0, 1, k + 1)[1:-1])
    return np.unique(edges)


def binned_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts per bin (len(edges) + 1 bins, the outer ones open); a value on an edge goes to the right bin."""
    idx = np.searchsorted(edges, np.asarray(values, dtype=float), side="right")
    return np.bincount(idx, minlength=len(edges) + 1).astype(float)


def category_counts(
    reference: Sequence[object] | np.ndarray, current: Sequence[object] | np.ndarray
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Categories of reference ∪ current and the counts of each side (hash-based, a million values in well
    under a second). Categories are named by their text; values with the same text (1 and "1") are merged."""
    import pandas as pd

    ref = np.asarray(reference, dtype=object).ravel()
    cur = np.asarray(current, dtype=object).ravel()
    codes, uniques = pd.factorize(np.concatenate([ref, cur]))
    names = sorted({str(u) for u in uniques})
    to_name = np.array([names.index(str(u)) for u in uniques], dtype=np.int64)
    merged = to_name[codes] if codes.size else codes
    ref_counts = np.bincount(merged[: ref.size], minlength=len(names)).astype(float)
    cur_counts = np.bincount(merged[ref.size :], minlength=len(names)).astype(float)
    return names, ref_counts, cur_counts


def shares(counts: np.ndarray) -> np.ndarray:
    counts = np.asarray(counts, dtype=float)
    total = counts.sum()
    return counts / total if total > 0 else counts


def fill_empty(p: np.ndarray) -> np.ndarray:
    """Replace empty bins as Evidently does before a log ratio: by min_nonzero/1e6 when the smallest non-zero
    share is <= 1e-4, else by 1e-4."""
    p = np.asarray(p, dtype=float)
    nonzero = p[p > 0]
    eps = nonzero.min() / 1e6 if nonzero.size and nonzero.min() <= 1e-4 else 1e-4
    return np.where(p > 0, p, eps)


def psi(reference_shares: np.ndarray, current_shares: np.ndarray) -> float:
    """Population stability index Σ (c − r)·ln(c/r), empty bins filled (``fill_empty``)."""
    r, c = fill_empty(reference_shares), fill_empty(current_shares)
    return float(np.sum((c - r) * np.log(c / r)))


def js_distance(p: np.ndarray, q: np.ndarray, base: float = 2.0) -> float:
    """Jensen–Shannon *distance* (square root of the divergence) with logarithms to ``base`` (abkit: base 2,
    so it lies in [0, 1]; scipy's default is the natural log)."""
    p, q = shares(p), shares(q)
    m = 0.5 * (p + q)

    def kl(a: np.ndarray) -> float:
        keep = a > 0
        return float(np.sum(a[keep] * np.log(a[keep] / m[keep])))

    divergence = max(0.5 * (kl(p) + kl(q)), 0.0) / np.log(base)
    return float(np.sqrt(divergence))


def chi2_two_sample(reference_counts: np.ndarray, current_counts: np.ndarray) -> tuple[float, int]:
    """Pearson's χ² of homogeneity for a 2 × k table (categories empty on both sides dropped): statistic, df."""
    table = np.vstack([reference_counts, current_counts]).astype(float)
    table = table[:, table.sum(axis=0) > 0]
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    return float(np.sum((table - expected) ** 2 / expected)), table.shape[1] - 1


def chi2_goodness_of_fit(reference_counts: np.ndarray, current_counts: np.ndarray) -> tuple[float, int]:
    """χ² of the current counts against the reference *shares* taken as known (Evidently's convention):
    expected = reference share × n_current. Categories absent from the reference are dropped."""
    ref, cur = np.asarray(reference_counts, float), np.asarray(current_counts, float)
    keep = ref > 0
    expected = ref[keep] / ref.sum() * cur.sum()
    return float(np.sum((cur[keep] - expected) ** 2 / expected)), int(keep.sum()) - 1
