"""Metrics declared by the user (SQL numerator and denominator, direction, unit): validated before anything runs,
reduced in the engine like the built-in ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from abkit.calibrate import write_log
from abkit.experiment import Experiment, Guardrail
from abkit.log import PredictionLog
from abkit.metrics import MetricError, collect
from abkit.metrics import registry as R
from abkit.metrics.custom import declare_from_params, declare_metric

EXP = Experiment.from_params(key="custom", start="2024-03-01", duration_days=4)


@pytest.fixture(autouse=True)
def private_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Declared metrics stay inside each test."""
    monkeypatch.setattr(R, "METRICS", dict(R.METRICS))
    monkeypatch.setattr(R, "VARIABLES", dict(R.VARIABLES))
    import abkit.metrics.compute as C

    monkeypatch.setattr(C, "VARIABLES", R.VARIABLES)


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("custom") / "log"
    write_log(root, EXP, n_users=300, requests_per_user=4, accuracy={"challenger": 0.9}, seed=3)
    return root


def _reference(root: Path, fn_num, fn_den) -> dict[str, np.ndarray]:
    log = PredictionLog(root)
    p = log.read_predictions("custom").to_pandas()
    lab = log.read_labels("custom").to_pandas().drop_duplicates("request_id")
    p = p.merge(lab[["request_id", "label"]], on="request_id", how="left")
    p["num"], p["den"] = fn_num(p), fn_den(p)
    u = p.groupby(["variant", "unit_id"])[["num", "den"]].sum().reset_index()
    return {v: u[u["variant"] == v][["num", "den"]].to_numpy() for v in EXP.variant_names}


def test_declared_metrics_match_a_pandas_reference(log: Path) -> None:
    declare_metric("low_confidence", "confidence < 0.6", "1", direction="lower", unit="share")
    declare_metric(
        "error_cost",
        "CASE WHEN label <> predicted_label THEN 2.5 ELSE 0 END",
        "label IS NOT NULL",
        direction="lower",
        unit="cost per labelled request",
    )
    declare_metric("slow_share", "latency_ms > 45", direction="lower")
    s = collect(
        log, "custom", list(EXP.variant_names), metrics=["low_confidence", "error_cost", "slow_share"], daily=False
    )
    refs = {
        "low_confidence": _reference(log, lambda p: (p["confidence"] < 0.6) * 1.0, lambda p: 1.0),
        "error_cost": _reference(
            log,
            lambda p: np.where(p["label"].notna() & (p["label"] != p["predicted_label"]), 2.5, 0.0),
            lambda p: p["label"].notna() * 1.0,
        ),
        # latency is kept in whole µs (the engine's fixed point): 45.0004 ms counts as 45 ms
        "slow_share": _reference(log, lambda p: (np.round(p["latency_ms"] * 1000) / 1000 > 45) * 1.0, lambda p: 1.0),
    }
    for name, ref in refs.items():
        st = s.stats[name]
        for i, v in enumerate(EXP.variant_names):
            m, d = ref[v][:, 0], ref[v][:, 1]
            assert st.m_sum[i] == pytest.approx(m.sum(), abs=1e-6), name
            assert st.d_sum[i] == pytest.approx(d.sum(), abs=1e-6), name
            assert st.md_sum[i] == pytest.approx((m * d).sum(), abs=1e-6), name
    assert R.get_metric("error_cost").needs_labels and not R.get_metric("low_confidence").needs_labels
    assert Guardrail("error_cost", margin=0.1).metric == "error_cost"  # usable as a guardrail (and primary)


def test_bad_declarations_are_refused_before_anything_runs() -> None:
    with pytest.raises(MetricError, match="direction=None"):
        declare_metric("low", "confidence < 0.6", "1")
    with pytest.raises(MetricError, match=r"numerator 'confidance < 0\.6' is not valid SQL.*confidance"):
        declare_metric("low", "confidance < 0.6", "1", direction="lower")
    with pytest.raises(MetricError, match="not valid SQL"):
        declare_metric("low", "confidence <", "1", direction="lower")
    with pytest.raises(MetricError, match="not valid SQL"):
        declare_metric("low", "COUNT(*)", "1", direction="lower")  # an aggregate: the engine sums per user
    with pytest.raises(MetricError, match="';' or a comment"):
        declare_metric("low", "1; DROP TABLE x", "1", direction="lower")
    with pytest.raises(MetricError, match="mixes label"):
        declare_metric("odd", "label = 'spam' AND confidence > 0.9", "1", direction="higher")
    with pytest.raises(MetricError, match="metric name"):
        declare_metric("Low Conf", "confidence < 0.6", "1", direction="lower")
    with pytest.raises(MetricError, match="another definition"):
        declare_metric("accuracy", "1", "1", direction="higher")


def test_params_route() -> None:
    (m,) = declare_from_params(
        '[{"name": "low_conf", "numerator": "confidence < 0.6", "direction": "lower", "unit": "share"}]'
    )
    assert (m.name, m.higher_is_better, m.unit) == ("low_conf", False, "share")
    assert declare_from_params("") == []
    with pytest.raises(MetricError, match="not JSON"):
        declare_from_params("[{name: x}]")
    with pytest.raises(MetricError, match="unknown fields"):
        declare_from_params('[{"name": "x", "numerator": "1", "direction": "lower", "units": "s"}]')
