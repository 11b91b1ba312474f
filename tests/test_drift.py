"""Drift detectors: published reference numbers, behaviour on shifted and unshifted data, bad input.

Reference numbers are transcribed from ../shared/reference/drift_parity.md (section given beside each).
"""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from abkit.drift import (
    Alarm,
    BernoulliCUSUM,
    DomainClassifierDrift,
    DriftError,
    EstimatedAccuracyDrift,
    KSDrift,
    LabelDistributionDrift,
    MMDDrift,
    OOVDrift,
    PSIDrift,
    TextLengthDrift,
    WassersteinDrift,
)
from abkit.drift._distributions import (
    bin_edges,
    binned_counts,
    category_counts,
    chi2_goodness_of_fit,
    chi2_two_sample,
    js_distance,
    psi,
    shares,
)
from abkit.drift.estimated_accuracy import expected_accuracy
from abkit.drift.mmd import sigma_median
from abkit.drift.wasserstein import wasserstein_1d

# ---------------------------------------------------------------------------------------- reference numbers


def test_psi_categorical_matches_evidently():
    # drift_parity.md §2.2: Evidently ColumnDriftMetric(stattest="psi"), ref [3,2,2] vs cur [1,2,3] -> 2.93 (±0.01),
    # replica 2.9341; empty bins filled with 1e-4 (Evidently utils.get_binned_data).
    _, ref, cur = category_counts([3, 2, 2], [1, 2, 3])
    assert psi(shares(ref), shares(cur)) == pytest.approx(2.9341, abs=1e-3)


def test_psi_and_js_on_binned_shares():
    # drift_parity.md §2.8 (computed independently): [.25]*4 vs [.1,.2,.3,.4]: PSI 0.2282; JS distance 0.1669 with
    # natural logarithms and 0.2005 with base 2.
    p, q = np.full(4, 0.25), np.array([0.1, 0.2, 0.3, 0.4])
    assert psi(p, q) == pytest.approx(0.2282, abs=1e-4)
    assert js_distance(p, q, base=math.e) == pytest.approx(0.1669, abs=1e-4)
    assert js_distance(p, q) == pytest.approx(0.2005, abs=1e-4)
    assert js_distance(p, q) == pytest.approx(jensenshannon(p, q, base=2))  # scipy as an independent replica


def test_chi_square_goodness_of_fit_matches_evidently_and_two_sample_matches_scipy():
    # drift_parity.md §2.2: Evidently test_freq_obs_eq_freq_exp: values 1..6 with counts [16,18,16,14,12,12] vs
    # [16,16,16,16,16,8]: p = 0.67309, unchanged when the reference counts are doubled.
    ref = np.repeat(np.arange(1, 7), [16, 18, 16, 14, 12, 12])
    cur = np.repeat(np.arange(1, 7), [16, 16, 16, 16, 16, 8])
    _, rc, cc = category_counts(ref, cur)
    assert stats.chi2.sf(*chi2_goodness_of_fit(rc, cc)) == pytest.approx(0.67309, abs=1e-5)
    assert stats.chi2.sf(*chi2_goodness_of_fit(2 * rc, cc)) == pytest.approx(0.67309, abs=1e-5)
    # abkit's detector uses the two-sample test (the reference is a sample too): scipy's contingency test agrees.
    chi2, df = chi2_two_sample(rc, cc)
    expected = stats.chi2_contingency(np.vstack([rc, cc]), correction=False)
    assert (chi2, df) == (pytest.approx(expected.statistic), expected.dof)
    result = LabelDistributionDrift(min_size=10).fit(ref).calculate(cur)
    assert result.p_value == pytest.approx(expected.pvalue)


def test_ks_matches_the_exact_two_sample_test():
    # drift_parity.md §2.2: scipy ks_2samp on the n=8 t-test pair: D = 0.6250, p = 0.0870 (exact); p > 0.05.
    a = [38.7, 41.5, 43.8, 44.5, 45.5, 46.0, 47.7, 58.0]
    b = [39.2, 39.3, 39.7, 41.4, 41.8, 42.9, 43.3, 45.8]
    r = KSDrift(min_size=5, alpha=0.05).fit(a).calculate(b)
    assert r.statistic == pytest.approx(0.6250) and r.p_value == pytest.approx(0.0870, abs=1e-4)
    assert r.alarm is False


def test_normal_shift_numbers():
    # drift_parity.md §2.8: N(0,1) vs N(0.1,1), n=5000 each, default_rng(0): KS D 0.0678, p 2.05e-10;
    # Wasserstein normed by the reference sd 0.1249.
    rng = np.random.default_rng(0)
    x, y = rng.normal(0, 1, 5000), rng.normal(0.1, 1, 5000)
    ks = KSDrift().fit(x).calculate(y)
    assert ks.statistic == pytest.approx(0.0678, abs=1e-4)
    assert ks.p_value == pytest.approx(2.05e-10, rel=0.03)  # asymptotic vs scipy's exact-ish 2.05e-10
    w = WassersteinDrift().fit(x).calculate(y)
    assert w.statistic == pytest.approx(0.1249, abs=1e-4)
    assert w.alarm and ks.alarm


def test_nannyml_js_and_wasserstein_cases():
    # drift_parity.md §2.3 (NannyML tests/drift/test_univariate_drift_methods.py, np.random.seed(1), JS base 2 on
    # Doane bins fit on the reference): N(0,1) 10k vs 1k -> 0.05; choice(linspace(0,2,6)) vs choice(linspace(0,2,3))
    # -> 0.73; {a,b,c,d} vs {a,b,c,e} -> 0.5; Wasserstein N(0,1) vs N(1,1) -> 1.01.
    np.random.seed(1)  # the published cases use the global generator; abkit code never does
    ref, cur = np.random.normal(0, 1, 10_000), np.random.normal(0, 1, 1_000)
    edges = bin_edges(ref, "doane")
    assert round(js_distance(binned_counts(ref, edges), binned_counts(cur, edges)), 2) == 0.05
    np.random.seed(1)
    ref, cur = np.random.choice(np.linspace(0, 2, 6), 10_000), np.random.choice(np.linspace(0, 2, 3), 1_000)
    edges = bin_edges(ref, "doane")
    assert round(js_distance(binned_counts(ref, edges), binned_counts(cur, edges)), 2) == 0.73
    r = LabelDistributionDrift(min_size=4).fit(list("abcd") * 25).calculate(list("abce") * 25)
    assert r.effect_size == pytest.approx(0.5)
    np.random.seed(1)
    ref, cur = np.random.normal(0, 1, 10_000), np.random.normal(1, 1, 1_000)
    assert round(wasserstein_1d(ref, cur), 2) == 1.01
    assert wasserstein_1d(ref, cur) == pytest.approx(stats.wasserstein_distance(ref, cur))


def test_median_heuristic_bandwidth():
    # drift_parity.md §2.2/§2.4 (Evidently / alibi-detect sigma_median): [[0,1,4],[1,0,1],[4,1,0]] -> sqrt(0.5).
    d2 = np.array([[0, 1, 4], [1, 0, 1], [4, 1, 0]], dtype=float)
    assert sigma_median(d2) == pytest.approx(math.sqrt(0.5))


def test_cbpe_expected_accuracy_is_nannymls_binary_formula():
    # drift_parity.md §2.3: NannyML CBPE binary expected accuracy = (Σ_{ŷ=1} p + Σ_{ŷ=0} (1 − p)) / n, p = P(y=1).
    p = np.array([0.9, 0.2, 0.6, 0.4, 0.55])
    y_hat = (p >= 0.5).astype(int)
    nannyml = (p[y_hat == 1].sum() + (1 - p[y_hat == 0]).sum()) / p.size
    confidence_of_predicted = np.where(y_hat == 1, p, 1 - p)
    assert expected_accuracy(confidence_of_predicted) == pytest.approx(nannyml) == pytest.approx(0.69)


def test_rff_mmd_approximates_the_exact_gaussian_mmd():
    # Independent replica: the biased (V-statistic) MMD² with k(x, y) = exp(-|x-y|²/(2σ²)) computed densely.
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(300, 5)), rng.normal(0.3, 1, size=(200, 5))
    det = MMDDrift(n_features=8192, n_permutations=99, random_state=0).fit(x)
    s = det.sigma_

    def k(a, b):
        return np.exp(-((a[:, None, :] - b[None, :, :]) ** 2).sum(-1) / (2 * s * s))

    exact = k(x, x).mean() + k(y, y).mean() - 2 * k(x, y).mean()
    assert det.calculate(y).statistic == pytest.approx(exact, rel=0.1)


# ------------------------------------------------------------------------------------------- behaviour


def test_mmd_permutation_p_value_counts_plus_one_and_flags_a_shift():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(200, 10))
    det = MMDDrift(n_permutations=99, random_state=1).fit(ref)
    same = det.calculate(rng.normal(size=(150, 10)), alpha=0.05)
    shifted = det.calculate(rng.normal(1.0, 1, size=(150, 10)), alpha=0.05)
    assert same.alarm is False and same.p_value >= 0.05  # alibi-detect's contract on the reference distribution
    assert shifted.alarm is True
    assert shifted.p_value == pytest.approx(1 / 100)  # +1: never 0, resolution 1/(B+1)
    assert shifted.statistic >= shifted.threshold
    # an alpha finer than the permutations can resolve can never alarm, and says so by an infinite threshold
    assert det.calculate(rng.normal(1.0, 1, size=(150, 10)), alpha=0.001).threshold == math.inf


def test_threshold_and_p_value_agree_for_every_detector():
    rng = np.random.default_rng(5)
    ref, cur = rng.normal(0, 1, 800), rng.normal(0.15, 1, 400)
    for det in (KSDrift(effect_threshold=0), PSIDrift(effect_threshold=0), WassersteinDrift(effect_threshold=0)):
        det.fit(ref)
        outcome = det.test(cur)
        for alpha in (0.2, 0.05, 0.01, 1e-3):
            r = outcome.decide(alpha)
            assert (r.statistic >= r.threshold) == (r.p_value <= alpha + 1e-4), (type(det).__name__, alpha)


def test_large_samples_need_an_effect_that_matters():
    # drift_parity.md §2.8: a 0.02-sd shift at 1 M per side gives KS p ~ 1e-37 while effect sizes stay ~0.02.
    rng = np.random.default_rng(1)
    ref, cur = rng.normal(0, 1, 1_000_000), rng.normal(0.02, 1, 1_000_000)
    r = KSDrift(alpha=0.001).fit(ref).calculate(cur)
    assert r.p_value < 1e-20 and r.statistic >= r.threshold
    assert r.alarm is False and "below the smallest that matters" in r.reasons[0]


def test_text_detectors_see_a_domain_change_and_not_a_resample():
    from abkit.synthetic import make_corpus

    ref = make_corpus(600, rng=0, domain_weights={"electronics": 1.0})["text"].tolist()
    same = make_corpus(300, rng=1, domain_weights={"electronics": 1.0})["text"].tolist()
    other = make_corpus(300, rng=2, domain_weights={"restaurants": 1.0})["text"].tolist()
    for det in (OOVDrift(alpha=0.001, random_state=0), DomainClassifierDrift(alpha=0.001, random_state=0)):
        det.fit(ref)
        assert det.calculate(same).alarm is False, type(det).__name__
        assert det.calculate(other).alarm is True, type(det).__name__
    length = TextLengthDrift(alpha=0.001).fit(ref)
    assert length.calculate(same).alarm is False
    longer = make_corpus(300, rng=3, domain_weights={"electronics": 1.0}, length=3.0)["text"].tolist()
    assert length.calculate(longer).alarm is True


def test_estimated_accuracy_tracks_realised_accuracy_within_its_band():
    rng = np.random.default_rng(4)
    conf = rng.uniform(0.5, 1.0, 3000)
    det = EstimatedAccuracyDrift(alpha=0.001).fit((conf, rng.random(3000) < conf))
    new_conf = rng.uniform(0.5, 0.9, 1000)  # the model is less sure on the new traffic, and right less often
    correct = rng.random(1000) < new_conf
    labels = np.where(rng.random(1000) < 0.3, correct, None)  # 30 % labelled so far
    r = det.calculate((new_conf, labels))
    assert r.alarm is True
    assert r.details["estimated_accuracy"] == pytest.approx(correct.mean(), abs=0.03)
    assert det.calculate((rng.uniform(0.5, 1.0, 1000), None)).alarm is False
    # the band holds the realised accuracy of the labelled part in about 95 % of windows (200 simulated windows)
    inside = []
    for _ in range(200):
        c = rng.uniform(0.5, 0.9, 300)
        inside.append(det.calculate((c, rng.random(300) < c)).details["realised_in_band"])
    assert 0.90 <= np.mean(inside) <= 0.99


def test_cusum_detects_a_step_and_resets():
    det = BernoulliCUSUM(ert=20_000, p0=0.85, random_state=0)
    rng = np.random.default_rng(0)
    hits = [
        i
        for i, x in enumerate(np.r_[rng.random(300) < 0.85, rng.random(300) < 0.5])
        if det.update(bool(x)).drift_detected
    ]
    assert hits and 300 <= hits[0] < 400
    det.update(True)
    assert det.drift_detected is False and det.statistic_ <= det.threshold


def _fitted_cases():
    """Every batch detector, fitted on data of its kind, with a window to check (generic contract checks)."""
    rng = np.random.default_rng(0)
    nums, texts = rng.normal(size=200), [f"word{i % 13} other{i % 7} text" for i in range(200)]
    conf = rng.uniform(0.5, 1, 200)
    return [
        (KSDrift(alpha=0.01), nums, nums + 1),
        (PSIDrift(alpha=0.01, bins=5), nums, nums * 2),
        (WassersteinDrift(alpha=0.01, n_null=500), nums, nums + 1),
        (LabelDistributionDrift(alpha=0.01), ["a", "b"] * 100, ["a"] * 150 + ["b"] * 50),
        (TextLengthDrift(alpha=0.01), texts, [t + " more words" for t in texts]),
        (OOVDrift(alpha=0.01), texts, [t + " novel" for t in texts]),
        (DomainClassifierDrift(alpha=0.01), texts, [t + " novel" for t in texts]),
        (MMDDrift(alpha=0.01, n_permutations=199), rng.normal(size=(120, 4)), rng.normal(1, 1, size=(80, 4))),
        (EstimatedAccuracyDrift(alpha=0.01), (conf, rng.random(200) < conf), (conf * 0.8, None)),
    ]


@pytest.mark.parametrize("det, ref, cur", _fitted_cases(), ids=lambda v: type(v).__name__ if hasattr(v, "fit") else "")
def test_every_detector_keeps_the_contract(det, ref, cur):
    """repr shows the settings; construction stores them; pickling keeps the fitted state; the same seed gives
    the same result; a clear shift alarms; the threshold and p-value agree."""
    assert repr(det).startswith(type(det).__name__ + "(") and "alpha=0.01" in repr(det)
    det.fit(ref)
    result = det.calculate(cur)
    assert result.alarm is True and result.statistic >= result.threshold and result.p_value <= 0.01
    assert pickle.loads(pickle.dumps(det)).calculate(cur) == result
    assert type(det)(**{k: v for k, v in vars(det).items() if not k.endswith("_")}).fit(ref).calculate(cur) == result


def test_same_seed_same_result():
    rng = np.random.default_rng(2)
    ref, cur = rng.normal(size=(120, 6)), rng.normal(0.2, 1, size=(80, 6))
    one = MMDDrift(n_permutations=199, random_state=7).fit(ref).calculate(cur)
    two = MMDDrift(n_permutations=199, random_state=7).fit(ref).calculate(cur)
    assert one == two


# ------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "current, why",
    [
        ([], "the current window is empty"),
        ([0.5] * 10, "the current window has 10 values"),
        ([0.5, float("nan")] * 40, "40 of 80 values are NaN"),
    ],
)
def test_bad_windows_are_insufficient_data_never_no_drift(current, why):
    det = KSDrift(min_size=30).fit(np.linspace(0, 1, 200))
    r = det.calculate(current)
    assert r.alarm is None and r.status == "insufficient data"
    assert any(why in reason for reason in r.reasons)


def test_bad_references_make_every_check_insufficient():
    one_class = LabelDistributionDrift(min_size=5).fit(["pos"] * 100)
    r = one_class.calculate(["pos"] * 50 + ["neg"] * 50)
    assert r.alarm is None and "one class only ('pos')" in r.reasons[0]
    nan_conf = PSIDrift().fit([0.9, float("nan")] * 50).calculate(np.full(60, 0.7))
    assert nan_conf.alarm is None and "reference: 50 of 100 values are NaN" in nan_conf.reasons[0]
    few_labels = EstimatedAccuracyDrift().fit((np.full(100, 0.8), [True] * 10 + [None] * 90))
    assert few_labels.calculate((np.full(100, 0.8), None)).alarm is None
    empty_ref = WassersteinDrift().fit([])
    assert "the reference window is empty" in empty_ref.calculate(np.ones(40)).reasons[0]
    missing_text = OOVDrift(min_size=2).fit(["a b", "c d", None])
    assert missing_text.calculate(["a b"] * 5).alarm is None
    nan_emb = MMDDrift(min_size=2).fit(np.ones((10, 3)))
    assert nan_emb.calculate(np.full((5, 3), np.nan)).alarm is None


def test_misuse_raises_clear_errors():
    with pytest.raises(DriftError, match="not fitted"):
        KSDrift().calculate([1.0] * 40)
    with pytest.raises(DriftError, match="alpha=1.5"):
        KSDrift(alpha=1.5)
    with pytest.raises(DriftError, match="ert=1"):
        BernoulliCUSUM(ert=1, p0=0.9)
    with pytest.raises(DriftError, match="needs p0"):
        BernoulliCUSUM(ert=100).update(True)
    with pytest.raises(DriftError, match="reference holds 5"):
        BernoulliCUSUM(ert=100).fit([True] * 5)


def test_an_alarm_record_round_trips_and_refuses_a_quiet_result():
    det = KSDrift(alpha=0.01).fit(np.linspace(0, 1, 500))
    fired = det.calculate(np.linspace(0.5, 1.5, 300)).with_context(variant="champion", window="2024-06-10")
    alarm = Alarm.from_result(fired, correction="bonferroni", seed=3, model_name="tfidf", model_version="1")
    assert Alarm.from_dict(alarm.to_dict()) == alarm
    assert alarm.reasons and alarm.threshold == fired.threshold and alarm.n_current == 300
    with pytest.raises(ValueError, match="did not alarm"):
        Alarm.from_result(det.calculate(np.linspace(0, 1, 300)), correction="bonferroni", seed=3)
