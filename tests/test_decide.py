"""abkit.decide: every rule of the recommendation, with the reasons it names."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from abkit.decide import DECISIONS, INFERENCES, Comparison, Recommendation, decide
from abkit.errors import AbkitError
from abkit.experiment import Guardrail
from abkit.stats import (
    Moments,
    bayes_test,
    confidence_sequence,
    config_context,
    get_config,
    msprt_p_values,
    sample_size,
    srm_test,
    ttest,
)

OK_SRM = srm_test([1000, 1000], [0.5, 0.5])
HIGHER = {"accuracy": True, "confidence": True, "latency_ms": False}
UNITS = {"control": 1000, "b": 1000}


def comp(
    est: float, lo: float, hi: float, p: float, *, metric: str = "accuracy", statistic: str = "mean", variant: str = "b"
) -> Comparison:
    # the same interval serves as fixed and always-valid one here
    return Comparison(
        metric,
        statistic,
        variant,
        est,
        lo,
        hi,
        p,
        lo,
        hi,
        p,
        (hi - lo) / 3.92,
        0.16,
        0.8,
        2000.0,
        n_control=1000.0,
        n_treatment=1000.0,
    )


def run(*cs: Comparison, **kw: object) -> Recommendation:
    kw = {"primary_metric": "accuracy", "higher_is_better": HIGHER, "units": UNITS, **kw}
    return decide(list(cs), kw.pop("srm", OK_SRM), **kw)  # type: ignore[arg-type]


def test_ship_a_significant_winner() -> None:
    r = run(comp(0.03, 0.01, 0.05, 0.001))
    assert (r.decision, r.variant) == ("ship", "b")
    assert "better" in r.reasons[0] and r.p_adjusted == {"b": 0.001}


def test_srm_makes_everything_invalid() -> None:
    r = run(comp(0.03, 0.01, 0.05, 0.001), srm=srm_test([1000, 1200], [0.5, 0.5]))
    assert r.decision == "invalid" and "sample ratio mismatch" in r.reasons[0]


def test_thin_evidence_and_nan_are_continue_never_a_pass() -> None:
    r = run(comp(0.03, 0.01, 0.05, 0.001), units={"control": 20, "b": 1000})
    assert r.decision == "continue" and "too little evidence: users per arm control: 20" in r.reasons[0]
    assert r.samples_needed == 80
    r = run(comp(math.nan, math.nan, math.nan, math.nan))
    assert r.decision == "continue" and "undefined" in r.reasons[0]
    r = run(comp(0.8, math.nan, math.nan, math.nan))  # zero variance: the "insufficient data" result
    assert r.decision == "continue" and "insufficient data" in r.reasons[0]
    assert run().decision == "invalid"  # no comparison at all: the analysis is broken, not thin


def test_minimum_labelled_units_per_arm() -> None:
    """A clear winner on 20 labelled users per arm is not shipped; the reason says how many more are needed."""
    thin = comp(0.3, 0.2, 0.4, 1e-6)._replace(n_control=20.0, n_treatment=25.0)
    r = run(thin)
    assert r.decision == "continue" and r.samples_needed == 10 + 5
    assert "units carrying accuracy per arm control: 20, b: 25" in r.reasons[0]
    assert r.days_needed is None
    assert run(thin, units_per_day=3.0).days_needed == pytest.approx(5.0)
    assert run(thin, min_labelled_units=20).decision == "ship"
    with config_context(min_labelled_units=10):
        assert run(thin).decision == "ship"
    with pytest.raises(AbkitError, match="min_labelled_units"):
        run(thin, min_labelled_units=0)


def test_min_units_enforced_without_units() -> None:
    """Without ``units`` the users per arm come from the comparisons' own counts; unknown counts never pass."""
    small = comp(0.3, 0.2, 0.4, 1e-6)._replace(n_control=50.0, n_treatment=50.0)
    r = run(small, units=None, min_labelled_units=10)
    assert r.decision == "continue" and "users per arm control: 50, b: 50" in r.reasons[0]
    bigger = comp(1.0, -2.0, 4.0, 0.5, metric="latency_ms")._replace(n_control=500.0, n_treatment=500.0)
    assert run(small, bigger, units=None, min_labelled_units=10).decision == "ship"
    unknown = Comparison("accuracy", "mean", "b", 0.3, 0.2, 0.4, 1e-6, 0.2, 0.4, 1e-6, 0.03, 0.16, 0.8, 2000.0)
    r = run(unknown, units=None)
    assert r.decision == "continue" and any("unknown" in x for x in r.reasons)


def test_crash_repro_sample_size_root_below_the_bracket() -> None:
    """Issue 11, repro 3: sizing a "continue" when n = 4 already suffices raised ValueError through analyze."""
    c = Comparison("accuracy", "mean", "challenger", -0.1, -0.3, 0.1, 0.3, -0.5, 0.3, 0.6, 0.1, 1e-5, 0.99, 400.0)
    kw = dict(primary_metric="accuracy", higher_is_better={"accuracy": True}, units={"control": 200, "challenger": 200})
    r = decide([c], srm_test([200, 200], [0.5, 0.5]), **kw)  # type: ignore[arg-type]
    assert r.decision == "continue"  # per-arm labelled counts unknown: no verdict
    r = decide([c._replace(n_control=200.0, n_treatment=200.0)], srm_test([200, 200], [0.5, 0.5]), **kw)  # type: ignore[arg-type]
    assert r.decision == "continue" and r.samples_needed == 0
    assert sample_size(0.1, mean=0.99, var=1e-5, relative=False) == 4


def test_guardrail_direction_comes_from_the_registry() -> None:
    """Issue 11, repro 2: a latency guardrail declared without the flag let a challenger 40 ms slower ship."""
    win = comp(0.03, 0.01, 0.05, 0.001)
    slower = comp(40.0, 33.93, 46.07, 1e-9, metric="latency_ms", statistic="p95")
    for g in (
        Guardrail("latency_ms", "p95", margin=10.0),
        Guardrail(**{"metric": "latency_ms", "statistic": "p95", "margin": 10.0}),
    ):
        assert g.higher_is_better is False
        r = run(win, slower, guardrails=[g])
        assert r.decision == "keep" and any("worse by more than the margin" in x for x in r.reasons)
    with pytest.raises(AbkitError, match="registry"):
        Guardrail("latency_ms", "p95", margin=10.0, higher_is_better=True)

    class Loose:  # a duck-typed guardrail as a rollout gate might build it
        metric, statistic, margin = "latency_ms", "p95", 10.0

    assert run(win, slower, guardrails=[Loose()]).decision == "keep"
    Loose.metric = "energy_j"
    with pytest.raises(AbkitError, match="no direction"):
        run(win, slower, guardrails=[Loose()])
    Loose.higher_is_better = True  # type: ignore[attr-defined]
    with pytest.raises(AbkitError, match="registry says"):
        run(win, slower, guardrails=[Loose()], higher_is_better={**HIGHER, "energy_j": False})


def test_keep_when_control_is_better() -> None:
    r = run(comp(-0.03, -0.05, -0.01, 0.001))
    assert r.decision == "keep" and "control is better" in r.reasons[-1]


def test_guardrails_pass_fail_and_undecided() -> None:
    win = comp(0.03, 0.01, 0.05, 0.001)
    g = Guardrail("latency_ms", "p95", margin=10.0, higher_is_better=False)
    ok = comp(2.0, -1.0, 5.0, 0.2, metric="latency_ms", statistic="p95")
    bad = comp(25.0, 15.0, 35.0, 0.001, metric="latency_ms", statistic="p95")
    unsure = comp(8.0, 3.0, 13.0, 0.01, metric="latency_ms", statistic="p95")
    assert run(win, ok, guardrails=[g]).decision == "ship"
    r = run(win, bad, guardrails=[g])
    assert r.decision == "keep" and any("worse by more than the margin" in x for x in r.reasons)
    r = run(win, unsure, guardrails=[g])
    assert r.decision == "continue" and any("cannot yet rule out" in x for x in r.reasons)
    r = run(win, comp(math.nan, math.nan, math.nan, math.nan, metric="latency_ms", statistic="p95"), guardrails=[g])
    assert r.decision == "continue" and any("not a pass" in x for x in r.reasons)


def test_multiple_testing_over_challengers() -> None:
    b = comp(0.03, 0.001, 0.05, 0.03, variant="b")
    c = comp(0.02, 0.001, 0.04, 0.04, variant="c")
    units = {"control": 1000, "b": 1000, "c": 1000}
    assert run(b, units=units).decision == "ship"  # alone: p = 0.03 < 0.05
    r = run(b, c, units=units)  # Holm over two challengers: 0.06, 0.06
    assert r.decision == "continue" and r.p_adjusted == {"b": pytest.approx(0.06), "c": pytest.approx(0.06)}


def test_futility_stop_and_continue_with_size() -> None:
    r = run(comp(0.001, -0.004, 0.006, 0.7), min_effect=0.02)
    assert r.decision == "stop" and "futility" in r.reasons[-1]
    r = run(comp(0.01, -0.02, 0.04, 0.4), min_effect=0.02, units_per_day=100.0)
    assert r.decision == "continue" and r.samples_needed and r.samples_needed > 0
    assert r.days_needed == pytest.approx(r.samples_needed / 100.0)
    assert run(comp(0.01, -0.02, 0.04, 0.4), duration_over=True).decision == "keep"


def test_bad_arguments() -> None:
    with pytest.raises(AbkitError, match="inference"):
        run(comp(0.03, 0.01, 0.05, 0.001), inference="bayes")
    with pytest.raises(AbkitError, match="no direction"):
        run(comp(0.03, 0.01, 0.05, 0.001), primary_metric="recall")
    with pytest.raises(AbkitError, match="decision"):
        Recommendation("promote", None, ())  # type: ignore[arg-type]


def test_html_banner_escapes_text() -> None:
    r = Recommendation("invalid", None, ("<script>alert(1)</script>",))
    assert "<script>" not in r._repr_html_() and "&lt;script&gt;" in r._repr_html_()


# --- property: decide never raises on numbers -------------------------------------------------------------

ARM_COUNTS = st.one_of(
    st.sampled_from([0.0, 1.0, 2.0, 29.0, 30.0, 1e6, 1e300, math.nan, math.inf]), st.floats(0, 1e5)
)  # sufficient statistics never hold a negative count (ttest refuses one)
COUNTS = ARM_COUNTS | st.just(-1.0)
NUMBERS = st.one_of(st.sampled_from([0.0, math.nan, math.inf, -math.inf, 1e308, -1e308, 1e-300]), st.floats(-1e3, 1e3))


@st.composite
def arm_moments(draw: st.DrawFn) -> Moments:
    """Sufficient statistics of one arm: a mean, a per-unit variance (zero, NaN, huge…) and a unit count."""
    var = draw(st.one_of(st.sampled_from([0.0, math.nan, 1e300]), st.floats(0, 1e4)))
    return Moments(np.float64(draw(NUMBERS)), np.float64(var), np.float64(draw(ARM_COUNTS)))


def _comparison(metric: str, c: Moments, t: Moments) -> Comparison:
    """As the analysis builds it: Welch t, confidence sequence, on per-arm moments."""
    with np.errstate(all="ignore"):
        res = ttest(c, t)
        seq = confidence_sequence(res.estimate, res.se, c.n + t.n)
    return Comparison(
        metric,
        "mean",
        "b",
        *(
            float(x)
            for x in (res.estimate, res.ci_low, res.ci_high, res.p_value, seq.ci_low, seq.ci_high, seq.p_value, res.se)
        ),
        float(c.var),
        float(c.mean),
        float(c.n + t.n),
        n_control=float(c.n),
        n_treatment=float(t.n),
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    arms=st.lists(arm_moments(), min_size=4, max_size=4),
    units=st.none() | st.tuples(COUNTS, COUNTS),
    srm_counts=st.tuples(st.integers(0, 10**6), st.integers(0, 10**6)),
    min_effect=st.none() | NUMBERS,
    per_day=st.none() | NUMBERS,
    inference=st.sampled_from(INFERENCES),
    over=st.booleans(),
)
def test_decide_never_raises_on_numbers(arms, units, srm_counts, min_effect, per_day, inference, over) -> None:
    comps = [_comparison("accuracy", arms[0], arms[1]), _comparison("latency_ms", arms[2], arms[3])]
    g = Guardrail("latency_ms", "mean", margin=5.0)
    r = decide(
        comps,
        srm_test(list(srm_counts), [0.5, 0.5]),
        primary_metric="accuracy",
        higher_is_better=HIGHER,
        guardrails=[g],
        units=None if units is None else {"control": units[0], "b": units[1]},
        inference=inference,
        min_effect=min_effect,
        units_per_day=per_day,
        duration_over=over,
    )
    assert r.decision in DECISIONS and r.reasons and all(isinstance(x, str) and x for x in r.reasons)
    json.dumps(r.to_dict(), allow_nan=False)
    if r.decision in ("ship", "stop"):  # a verdict only on sufficient evidence
        acc = comps[0]
        assert min(acc.n_control, acc.n_treatment) >= get_config("min_labelled_units")
        assert min(arms[0].var, arms[1].var) > 0 and math.isfinite(acc.p_value)


@settings(max_examples=200, deadline=None)
@given(c=arm_moments(), t=arm_moments())
def test_every_method_gives_one_insufficient_result(c: Moments, t: Moments) -> None:
    """Fixed, sequential (CS and mSPRT) and Bayesian agree on when there is no estimable variance."""
    with np.errstate(all="ignore"):
        fixed = ttest(c, t)
        cs = confidence_sequence(fixed.estimate, fixed.se, c.n + t.n)
        ms = msprt_p_values(fixed.estimate, fixed.se, tau2=0.01)
        bay = bayes_test(c, t, relative=False)
    missing = [bool(np.isnan(x)) for x in (fixed.p_value, cs.p_value, ms, bay.chance_to_win)]
    assert len(set(missing)) == 1, missing  # the methods agree: all give a result, or none does
    if not (c.n >= 2 and t.n >= 2 and c.var > 0 and t.var > 0 and np.isfinite(c.var) and np.isfinite(t.var)):
        assert all(missing)
    elif (
        all(np.isfinite(x) and abs(x) < 1e300 for x in (c.mean, t.mean, c.n, t.n, c.var, t.var))
        and min(c.var, t.var) > 1e-300
    ):  # a subnormal variance underflows to a zero standard error
        assert not any(missing)
