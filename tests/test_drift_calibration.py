"""Drift alarms by simulation: the false-alarm rate over many windows without drift is at most the target
plus Monte-Carlo error, and the streaming CUSUM honours its expected-run-length (ERT) contract
(contract from alibi-detect's online MMD test, drift_parity.md §2.4: ERT/3 < mean run length < 3·ERT under
no change; mean detection delay < ERT/2 after a step)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from abkit.drift import (
    BernoulliCUSUM,
    DomainClassifierDrift,
    EstimatedAccuracyDrift,
    KSDrift,
    LabelDistributionDrift,
    MMDDrift,
    OOVDrift,
    PSIDrift,
    TextLengthDrift,
    WassersteinDrift,
)


def _bound(alpha: float, n: int) -> float:
    """Target plus three Monte-Carlo standard errors."""
    return alpha + 3 * math.sqrt(alpha * (1 - alpha) / n)


_SEEDS = itertools.count(1000)  # each detector gets its own fixed seed: the simulation is reproducible


def _rate(make_detector, draw_ref, draw_cur, n_windows: int, alpha: float, seed: int) -> float:
    """Share of no-drift windows that alarm; a fresh reference per window, effect floors off."""
    rng = np.random.default_rng(seed)
    alarms = []
    for _ in range(n_windows):
        r = make_detector().fit(draw_ref(rng)).calculate(draw_cur(rng), alpha=alpha)
        assert r.alarm is not None, r.reasons
        alarms.append(r.alarm)
    return float(np.mean(alarms))


@pytest.mark.parametrize(
    "name, make",
    [
        ("ks", lambda: KSDrift(effect_threshold=0)),
        ("psi", lambda: PSIDrift(effect_threshold=0)),
        ("wasserstein", lambda: WassersteinDrift(effect_threshold=0, n_null=2000, grid=100, random_state=next(_SEEDS))),
    ],
)
def test_numeric_detectors_false_alarm_rate(name, make):
    alpha, n = 0.05, 300
    rate = _rate(make, lambda g: g.gamma(2.0, 1.0, 600), lambda g: g.gamma(2.0, 1.0, 200), n, alpha, seed=11)
    assert rate <= _bound(alpha, n), (name, rate)


def test_numeric_detectors_with_ties_stay_within_the_target():
    # Confidences of a model on a pool of repeated sentences take few distinct values.
    values = np.round(np.linspace(0.5, 1.0, 40), 3)
    weights = np.linspace(1, 3, 40) / np.linspace(1, 3, 40).sum()

    def draw(size):
        return lambda g: g.choice(values, size, p=weights)

    alpha, n = 0.05, 300
    for make in (
        lambda: KSDrift(effect_threshold=0),
        lambda: PSIDrift(effect_threshold=0),
        lambda: WassersteinDrift(effect_threshold=0, n_null=2000, grid=100, random_state=next(_SEEDS)),
    ):
        assert _rate(make, draw(600), draw(200), n, alpha, seed=12) <= _bound(alpha, n)


def test_label_distribution_false_alarm_rate():
    alpha, n = 0.05, 400

    def draw(size):
        return lambda g: g.choice(["neg", "pos", "neutral"], size, p=[0.45, 0.45, 0.1])

    rate = _rate(lambda: LabelDistributionDrift(effect_threshold=0), draw(500), draw(150), n, alpha, seed=13)
    assert rate <= _bound(alpha, n)


def test_estimated_accuracy_false_alarm_rate():
    alpha, n = 0.05, 300

    def ref(g):
        c = g.uniform(0.5, 1.0, 800)
        return c, g.random(800) < c

    rate = _rate(
        lambda: EstimatedAccuracyDrift(effect_threshold=0),
        ref,
        lambda g: (g.uniform(0.5, 1.0, 200), None),
        n,
        alpha,
        seed=14,
    )
    assert rate <= _bound(alpha, n)


def test_mmd_false_alarm_rate():
    alpha, n = 0.05, 150
    rate = _rate(
        lambda: MMDDrift(n_permutations=99, n_features=64, random_state=next(_SEEDS)),
        lambda g: g.normal(size=(100, 8)),
        lambda g: g.normal(size=(80, 8)),
        n,
        alpha,
        seed=15,
    )
    assert rate <= _bound(alpha, n)


@pytest.fixture(scope="module")
def texts():
    from abkit.synthetic import make_corpus

    return make_corpus(6000, rng=5, new_vocab_rate=0.1)["text"].to_numpy(dtype=object)


def _picker(pool):
    """``pick(size)`` is a sampler drawing ``size`` distinct items of ``pool`` with the generator it is given."""

    def pick(size):
        return lambda g: pool[g.choice(pool.size, size, replace=False)]

    return pick


def test_text_statistics_false_alarm_rate(texts):
    alpha, n = 0.05, 120
    pick = _picker(texts)
    for make in (
        lambda: TextLengthDrift(effect_threshold=0),
        lambda: OOVDrift(effect_threshold=0, random_state=next(_SEEDS)),
    ):
        assert _rate(make, pick(400), pick(150), n, alpha, seed=16) <= _bound(alpha, n)


def test_domain_classifier_false_alarm_rate(texts):
    # The out-of-fold test: every text is scored by a model that never saw it; per-fold Mann-Whitney U summed.
    alpha, n = 0.1, 60
    pick = _picker(texts)
    rate = _rate(
        lambda: DomainClassifierDrift(effect_threshold=0, random_state=next(_SEEDS)),
        pick(150),
        pick(100),
        n,
        alpha,
        seed=17,
    )
    assert rate <= _bound(alpha, n)


def _run_length(det: BernoulliCUSUM, rng: np.random.Generator, p: float, cap: int) -> int:
    det._reset()
    for start in range(0, cap, 1000):
        for i, x in enumerate(rng.random(1000) < p):
            if det.update(bool(x)).drift_detected:
                return start + i + 1
    return cap


@pytest.mark.parametrize("ert, p0", [(200, 0.8), (1000, 0.9)])
def test_cusum_expected_run_length_contract(ert, p0):
    det = BernoulliCUSUM(ert=ert, p0=p0, shift=0.1, random_state=0)
    rng = np.random.default_rng(21)
    runs = [_run_length(det, rng, p0, 30 * ert) for _ in range(150)]
    assert ert / 3 < np.mean(runs) < 3 * ert
    delays = []
    while len(delays) < 100:  # a step after 50 quiet observations; runs that alarm before it are drawn again
        det._reset()
        if any(det.update(bool(x)).drift_detected for x in rng.random(50) < p0):
            continue
        delays.append(_run_length_continuing(det, rng, p0 - 0.3, 30 * ert))
    assert np.mean(delays) < ert / 2


def _run_length_continuing(det: BernoulliCUSUM, rng: np.random.Generator, p: float, cap: int) -> int:
    for i, x in enumerate(rng.random(cap) < p):
        if det.update(bool(x)).drift_detected:
            return i + 1
    return cap


def test_cusum_calibration_is_close_to_the_target():
    # Page's identity with importance sampling gives h; a direct simulation agrees within 20 %.
    det = BernoulliCUSUM(ert=300, p0=0.85, random_state=1)
    rng = np.random.default_rng(3)
    runs = [_run_length(det, rng, 0.85, 10_000) for _ in range(400)]
    assert np.mean(runs) == pytest.approx(300, rel=0.2)
