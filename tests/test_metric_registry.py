"""abkit.metrics.registry: one list of metrics that experiments, analysis and reports read."""

from __future__ import annotations

import pytest

from abkit.experiment import ExperimentError, Guardrail
from abkit.metrics import registry as R


def test_lookup_names_the_known_metrics() -> None:
    m = R.check_metric("latency_ms")
    assert (m.higher_is_better, m.unit, m.numerator, m.denominator, m.reduce) == (
        False,
        "ms",
        "latency_ms",
        "n",
        "ratio",
    )
    known = r"\['accuracy', 'confidence', 'f1', 'latency_ms', 'macro_f1', 'precision', 'recall'\]"
    with pytest.raises(R.MetricError, match=rf"metric 'f2' is unknown; use one of {known}"):
        R.check_metric("f2")


def test_register_checks_what_a_metric_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(R, "METRICS", dict(R.METRICS))
    monkeypatch.setattr(R, "VARIABLES", dict(R.VARIABLES))
    with pytest.raises(R.MetricError, match="already registered"):
        R.register(R.Metric("accuracy", "correct", "labelled", True, "again"))
    with pytest.raises(R.MetricError, match=r"numerator 'hits' is not a registered variable"):
        R.register(R.Metric("hit_rate", "hits", "n", True, "share of hits"))
    with pytest.raises(R.MetricError, match=r"reduce='median' is unknown"):
        R.register(R.Metric("m", "n", "n", True, "d", reduce="median"))
    R.register_variable(R.Variable("positive", "COUNT_IF(predicted_label = 'pos')", "predictions"))
    R.register(R.Metric("positive_rate", "positive", "n", True, "share of positive predictions", "share"))
    assert R.names()[-1] == "positive_rate"
    assert Guardrail("positive_rate").metric == "positive_rate"  # experiments read the registry


def test_experiments_reject_unknown_metrics_with_the_list() -> None:
    with pytest.raises(
        ExperimentError,
        match=r"choose one of \['accuracy', 'confidence', 'latency_ms', 'precision', "
        r"'recall', 'f1', 'macro_f1'\]",
    ):
        Guardrail("f2")


def test_what_reports_and_rollout_read() -> None:
    acc, lat = R.get_metric("accuracy"), R.get_metric("latency_ms")
    assert (acc.direction, acc.needs_labels, acc.title) == ("higher", True, "Accuracy")
    assert (lat.direction, lat.needs_labels, lat.unit) == ("lower", False, "ms")
    assert R.get_metric("confidence").direction == "neutral"  # a diagnostic: reports give it no good or bad side
