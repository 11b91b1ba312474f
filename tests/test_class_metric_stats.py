"""Class metrics as ratios (or smooth functions of ratios) of per-user sums: the delta-method intervals,
clustered by user, cover at 95 % in simulation; the naive per-prediction interval does not."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from abkit.errors import AbkitError
from abkit.stats.aggregates import ArmStats
from abkit.stats.smooth import VectorStats

SIMS, USERS = 2000, 400
MC = 3 * np.sqrt(0.95 * 0.05 / SIMS)  # three Monte-Carlo standard errors of a 95 % coverage


def _ratio_stats(m: np.ndarray, d: np.ndarray) -> ArmStats:
    """ArmStats over the last axis (users) of per-user numerators and denominators."""
    return ArmStats(
        np.full(m.shape[:-1], m.shape[-1], dtype=float),
        m.sum(-1),
        (m * m).sum(-1),
        d.sum(-1),
        (d * d).sum(-1),
        (m * d).sum(-1),
    )


def _covers(stats: ArmStats, truth: float) -> float:
    mo = stats.moments()
    half = sps.norm.ppf(0.975) * np.sqrt(mo.var / mo.n)
    return float(np.mean(np.abs(mo.mean - truth) <= half))


def _binary_users(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Users with their own spam share, recall and false-positive rate (13 % spam on average)."""
    shape = (SIMS, USERS)
    n = 1 + rng.poisson(6.0, shape)
    prevalence = rng.beta(0.13 * 2, 0.87 * 2, shape)
    recall = rng.beta(4.0, 1.0, shape)
    fpr = rng.beta(1.0, 30.0, shape)
    actual = rng.binomial(n, prevalence)
    tp = rng.binomial(actual, recall)
    fp = rng.binomial(n - actual, fpr)
    return {"n": n, "actual": actual, "tp": tp, "predicted": tp + fp}


# population values of the model above: E[n] cancels in every ratio
_TP, _FP, _AP = 0.13 * 0.8, 0.87 / 31, 0.13
TRUE = {"precision": _TP / (_TP + _FP), "recall": 0.8, "f1": 2 * _TP / (_TP + _FP + _AP)}


def test_precision_recall_f1_intervals_cover_with_clustered_users() -> None:
    u = _binary_users(np.random.default_rng(2024))
    stats = {
        "precision": _ratio_stats(u["tp"], u["predicted"]),
        "recall": _ratio_stats(u["tp"], u["actual"]),
        "f1": _ratio_stats(2 * u["tp"], u["predicted"] + u["actual"]),  # F1 = 2TP / (predicted + actual)
    }
    for name, st in stats.items():
        assert _covers(st, TRUE[name]) == pytest.approx(0.95, abs=MC), name
    # F1 is the harmonic mean of precision and recall on the pooled counts
    p, r = stats["precision"].ratio, stats["recall"].ratio
    assert stats["f1"].ratio == pytest.approx(2 * p * r / (p + r))


def test_naive_per_prediction_interval_undercovers() -> None:
    u = _binary_users(np.random.default_rng(2024))
    tp, actual = u["tp"].sum(-1), u["actual"].sum(-1)
    rec = tp / actual
    half = sps.norm.ppf(0.975) * np.sqrt(rec * (1 - rec) / actual)  # treats every prediction as independent
    assert np.mean(np.abs(rec - TRUE["recall"]) <= half) < 0.95 - MC


def test_macro_f1_and_recall_per_class_cover_with_three_classes() -> None:
    rng = np.random.default_rng(99)
    shape, k = (SIMS, USERS), 3
    share = np.array([0.6, 0.3, 0.1])
    recall = np.array([0.9, 0.7, 0.5])
    n = 1 + rng.poisson(5.0, shape)
    mix = rng.dirichlet(share * 3.0, shape)  # each user has their own class mix
    actual = rng.multinomial(n, mix)  # (sims, users, classes)
    tp = rng.binomial(actual, recall)
    wrong = actual - tp
    to_next = rng.binomial(wrong, 0.5)  # a wrong answer goes to either other class with equal chance
    predicted = tp + np.roll(to_next, 1, axis=-1) + np.roll(wrong - to_next, 2, axis=-1)
    # variables per user: 2TP_k then (predicted_k + actual_k), for k = 0, 1, 2
    x = np.concatenate([2 * tp, predicted + actual], axis=-1).astype(float)
    v = VectorStats(np.full((SIMS,), float(USERS)), x.sum(1), np.einsum("sui,suj->sij", x, x))
    mo = v.mean_of_ratios([(j, j + k) for j in range(k)])
    # population: E[predicted_k] = r_k a_k + Σ_{j≠k} (1 − r_j) a_j / 2, with a = class shares
    exp_pred = recall * share + np.array(
        [sum((1 - recall[j]) * share[j] / 2 for j in range(k) if j != i) for i in range(k)]
    )
    truth = float(np.mean(2 * recall * share / (exp_pred + share)))
    half = sps.norm.ppf(0.975) * np.sqrt(mo.var / mo.n)
    assert np.mean(np.abs(mo.mean - truth) <= half) == pytest.approx(0.95, abs=MC)
    for j in range(k):  # recall of each class is a plain ratio
        assert _covers(_ratio_stats(tp[..., j], actual[..., j]), recall[j]) == pytest.approx(0.95, abs=MC)


def test_vector_stats_agree_with_arm_stats_and_pool() -> None:
    rng = np.random.default_rng(1)
    x = rng.poisson(3.0, (50, 2)).astype(float) + [0.0, 1.0]
    v = VectorStats.from_units(x)
    a = _ratio_stats(x[:, 0], x[:, 1])
    assert float(v.mean_of_ratios([(0, 1)]).var) == pytest.approx(float(a.moments().var), rel=1e-12)
    both = VectorStats.from_units(x[:20]) + VectorStats.from_units(x[20:])
    assert both.ss == pytest.approx(v.ss) and float(both.n) == 50
    with pytest.raises(AbkitError, match="outside"):
        v.mean_of_ratios([(0, 5)])
    with pytest.raises(AbkitError, match="shape"):
        VectorStats(1.0, np.zeros(2), np.zeros((3, 3)))
