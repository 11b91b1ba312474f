"""abkit.decide: every rule of the recommendation, with the reasons it names."""

from __future__ import annotations

import math

import pytest

from abkit.decide import Comparison, Recommendation, decide
from abkit.errors import AbkitError
from abkit.experiment import Guardrail
from abkit.stats import srm_test

OK_SRM = srm_test([1000, 1000], [0.5, 0.5])
HIGHER = {"accuracy": True, "confidence": True, "latency_ms": False}
UNITS = {"control": 1000, "b": 1000}


def comp(est: float, lo: float, hi: float, p: float, *, metric: str = "accuracy", statistic: str = "mean",
         variant: str = "b") -> Comparison:
    # the same interval serves as fixed and always-valid one here
    return Comparison(metric, statistic, variant, est, lo, hi, p, lo, hi, p, (hi - lo) / 3.92, 0.16, 0.8, 2000.0)


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


def test_too_little_data_and_nan_are_invalid_never_a_pass() -> None:
    assert "too little data" in run(comp(0.03, 0.01, 0.05, 0.001), units={"control": 20, "b": 1000}).reasons[0]
    r = run(comp(math.nan, math.nan, math.nan, math.nan))
    assert r.decision == "invalid" and "undefined" in r.reasons[0]
    assert run().decision == "invalid"  # no comparison at all


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
