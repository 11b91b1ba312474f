"""The decision policy "ship if non-inferior on the primary metric and better on a named secondary"."""

from __future__ import annotations

import math

import pytest

from abkit.decide import (
    Comparison,
    NonInferiorityPolicy,
    Recommendation,
    decide_non_inferior,
    decide_policy,
)
from abkit.errors import AbkitError
from abkit.experiment import Guardrail
from abkit.stats import srm_test

OK_SRM = srm_test([1000, 1000], [0.5, 0.5])
HIGHER = {"accuracy": True, "confidence": True, "latency_ms": False}
UNITS = {"control": 1000, "b": 1000}
POLICY = NonInferiorityPolicy(margin=0.02, secondary_metric="latency_ms", secondary_statistic="p50")


def comp(
    est: float,
    se: float,
    *,
    metric: str = "accuracy",
    statistic: str = "mean",
    variant: str = "b",
    mean: float = 0.8,
    n: float = 1000.0,
) -> Comparison:
    """A comparison whose fixed and always-valid views are the normal 95 % interval (enough for the rules)."""
    lo, hi = est - 1.96 * se, est + 1.96 * se
    p = math.erfc(abs(est / se) / math.sqrt(2)) if se > 0 else math.nan
    return Comparison(
        metric, statistic, variant, est, lo, hi, p, lo, hi, p, se, 0.16, mean, 2 * n, n_control=n, n_treatment=n
    )


def run(*cs: Comparison, policy: NonInferiorityPolicy = POLICY, **kw: object) -> Recommendation:
    kw = {"primary_metric": "accuracy", "higher_is_better": HIGHER, "units": UNITS, "inference": "fixed", **kw}
    return decide_non_inferior(list(cs), kw.pop("srm", OK_SRM), policy=policy, **kw)  # type: ignore[arg-type]


FASTER = comp(-8.0, 0.5, metric="latency_ms", statistic="p50")


def test_ships_a_faster_model_of_equal_accuracy() -> None:
    r = run(comp(0.001, 0.006), FASTER)
    assert (r.decision, r.variant) == ("ship", "b")
    assert any("non-inferiority of accuracy for b (margin 0.02)" in x and "> -0.02" in x for x in r.reasons)
    assert any("p50 latency_ms b − control = -8" in x and "better" in x for x in r.reasons)
    assert "ship if non-inferior on accuracy" in r.method
    # the plain superiority rule would not ship it: the accuracy difference is not significant
    assert (
        decide_policy(
            [comp(0.001, 0.006), FASTER],
            OK_SRM,
            policy=None,
            primary_metric="accuracy",
            higher_is_better=HIGHER,
            units=UNITS,
            inference="fixed",
        ).decision
        == "continue"
    )


def test_keeps_a_faster_model_that_is_worse_beyond_the_margin() -> None:
    r = run(comp(-0.04, 0.006), FASTER)
    assert r.decision == "keep"
    assert any("does not clear" in x for x in r.reasons)


def test_non_inferior_but_not_faster_does_not_ship() -> None:
    r = run(comp(0.0, 0.006), comp(0.3, 0.5, metric="latency_ms", statistic="p50"))
    assert r.decision == "continue" and any("not shown better" in x for x in r.reasons)
    r = run(comp(0.0, 0.006))  # no secondary comparison at all
    assert r.decision == "continue" and any("no comparison" in x for x in r.reasons)


def test_undecided_non_inferiority_waits() -> None:
    r = run(comp(-0.01, 0.01), FASTER)  # lower bound -0.026 < -0.02, upper 0.006 > -0.02: not yet known
    assert r.decision == "continue"


def test_thin_evidence_never_ships() -> None:
    r = run(comp(0.001, 0.006, n=30), FASTER, units={"control": 30, "b": 30})
    assert r.decision == "continue" and r.reasons[0].startswith("too little evidence")
    r = run(comp(0.8, math.nan), FASTER)
    assert r.decision == "continue" and any("insufficient data" in x for x in r.reasons)


def test_relative_margin_is_a_share_of_the_control_mean() -> None:
    pol = NonInferiorityPolicy(0.025, "latency_ms", "p50", relative=True)  # 2.5 % of 0.8 = 0.02 points
    assert run(comp(0.001, 0.006), FASTER, policy=pol).decision == "ship"
    tight = NonInferiorityPolicy(0.005, "latency_ms", "p50", relative=True)  # 0.004 points
    assert run(comp(0.001, 0.006), FASTER, policy=tight).decision == "continue"


def test_sequential_inference_is_more_demanding() -> None:
    c = comp(-0.006, 0.006)  # fixed one-sided bound -0.0159 > -0.02; always-valid bound is wider
    assert run(c, FASTER).decision == "ship"
    assert run(c, FASTER, inference="sequential", sequential_tuning=2000).decision == "continue"


def test_guardrails_still_apply() -> None:
    bad = Guardrail("latency_ms", "p95", 5.0)
    worse_tail = comp(20.0, 1.0, metric="latency_ms", statistic="p95")
    r = run(comp(0.001, 0.006), FASTER, worse_tail, guardrails=[bad])
    assert r.decision != "ship" and any("guardrail p95 latency_ms" in x for x in r.reasons)


def test_srm_and_plain_winner_stand() -> None:
    assert run(comp(0.001, 0.006), FASTER, srm=srm_test([1000, 1300], [0.5, 0.5])).decision == "invalid"
    r = run(comp(0.05, 0.006), comp(3.0, 0.5, metric="latency_ms", statistic="p50"))
    assert r.decision == "ship"  # plainly better on the primary metric: the ordinary rule ships it


def test_policy_is_validated() -> None:
    with pytest.raises(AbkitError, match="ni_margin"):
        NonInferiorityPolicy(-0.1, "latency_ms")
    with pytest.raises(AbkitError, match="ni_margin"):
        NonInferiorityPolicy(math.nan, "latency_ms")
    with pytest.raises(AbkitError, match="secondary_statistic"):
        NonInferiorityPolicy(0.02, "latency_ms", "p42")
    with pytest.raises(AbkitError, match="secondary_metric"):
        run(comp(0.001, 0.006), policy=NonInferiorityPolicy(0.02, "speed"))
