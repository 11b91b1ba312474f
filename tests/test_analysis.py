"""abkit.analysis end to end on simulated logs: JSON shape, decisions, SRM, NaN-free output, HTML."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from abkit.analysis import analyze
from abkit.calibrate import write_log
from abkit.experiment import Experiment, Guardrail

EXP = Experiment.from_params(key="atest", start="2024-03-01", duration_days=7)


def _all_finite(obj: object) -> bool:
    if isinstance(obj, float):
        return math.isfinite(obj)
    if isinstance(obj, dict):
        return all(_all_finite(v) for v in obj.values())
    if isinstance(obj, list):
        return all(_all_finite(v) for v in obj)
    return True


@pytest.fixture(scope="module")
def winner_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("win") / "log"
    write_log(root, EXP, n_users=3000, accuracy={"challenger": 0.86}, seed=2)
    return root


def test_json_shape_and_ship(winner_log: Path) -> None:
    res = analyze(winner_log, EXP)
    j = res.to_json()
    json.dumps(j, allow_nan=False)
    assert _all_finite(j)
    keys = {"name", "variant", "estimate", "ci_low", "ci_high", "p_value", "method", "n"}
    assert all(set(r) == keys for r in j["metrics"])
    names = {r["name"] for r in j["metrics"]}
    assert {"accuracy", "confidence", "latency_ms", "latency_p95", "predictions"} <= names
    ctrl = [r for r in j["metrics"] if r["variant"] == "control" and r["name"] == "accuracy"][0]
    assert ctrl["p_value"] is None and ctrl["ci_low"] < ctrl["estimate"] < ctrl["ci_high"]
    assert 0 <= j["srm"]["p_value"] <= 1
    assert j["recommendation"]["decision"] == "ship" and j["recommendation"]["variant"] == "challenger"
    assert len(j["sequential"]) == 3 * len(j["counts"]["days"])
    assert res.to_pandas().shape[0] == len(j["metrics"])


def test_same_result_from_experiment_json(winner_log: Path, tmp_path: Path) -> None:
    EXP.save(tmp_path / "experiment.json")
    a = analyze(winner_log, tmp_path / "experiment.json").to_json()
    b = analyze(winner_log, EXP).to_json()
    assert a == b


def test_srm_makes_the_recommendation_invalid(tmp_path: Path) -> None:
    write_log(tmp_path / "log", EXP, n_users=3000, drop_share={"challenger": 0.2}, seed=3)
    j = analyze(tmp_path / "log", EXP).to_json()
    assert j["srm"]["status"] == "mismatch" and j["srm"]["p_value"] < 0.001
    assert j["recommendation"]["decision"] == "invalid"


def test_too_little_data_is_continue_without_nan(tmp_path: Path) -> None:
    write_log(tmp_path / "log", EXP, n_users=30, seed=4)
    j = analyze(tmp_path / "log", EXP).to_json()
    rec = j["recommendation"]
    assert rec["decision"] == "continue" and "too little evidence: users per arm" in rec["reasons"][0]
    assert rec["samples_needed"] > 0
    assert _all_finite(j)


def test_five_labels_never_ship(tmp_path: Path) -> None:
    """Issue 11, repro 1: 2 against 3 labels with accuracy 0.1 against 0.9 shipped (zero-width interval)."""
    write_log(
        tmp_path / "log", EXP, n_users=2000, label_rate=0.0006, accuracy={"control": 0.1, "challenger": 0.9}, seed=3
    )
    r = analyze(tmp_path / "log", EXP)
    acc = next(c for c in r.comparisons if c.metric == "accuracy")
    assert (acc.n_control, acc.n_treatment) == (2, 3)  # labelled users, not the 2,000 users
    assert r.recommendation.decision == "continue" and r.recommendation.samples_needed == 2 * 30 - 5
    assert "units carrying accuracy per arm control: 2, challenger: 3" in r.recommendation.reasons[0]
    assert r.stats.daily["accuracy"].n[-1].tolist() == [2, 3]  # the daily view counts them on their first day
    eff = next(e for e in r.effects.to_dicts() if e["metric"] == "accuracy")
    assert math.isnan(eff["seq_p_value"]) and math.isnan(eff["p_value"]) and math.isnan(eff["chance_to_win"])


def test_mean_confidence_is_a_diagnostic_without_chance_to_win(winner_log: Path) -> None:
    effects = {e["metric"]: e for e in analyze(winner_log, EXP).to_json()["effects"] if e["statistic"] == "mean"}
    assert effects["confidence"]["chance_to_win"] is None and effects["confidence"]["risk_control"] is None
    assert 0.99 < effects["accuracy"]["chance_to_win"] <= 1.0


def test_unknown_variant_in_log_is_invalid(tmp_path: Path) -> None:
    three = Experiment.from_params(
        key="atest", split="34/33/33", variant_names="control,challenger,extra", start="2024-03-01", duration_days=7
    )
    write_log(tmp_path / "log", three, n_users=600, seed=5)
    r = analyze(tmp_path / "log", EXP)
    assert r.recommendation.decision == "invalid" and "extra" in r.recommendation.reasons[0]


def test_guardrail_blocks_slow_challenger(tmp_path: Path) -> None:
    guarded = Experiment.from_params(key="atest", start="2024-03-01", duration_days=7, guardrail_latency_p95_ms=5.0)
    assert guarded.guardrails == (Guardrail("latency_ms", "p95", 5.0, False),)
    write_log(
        tmp_path / "log", guarded, n_users=3000, accuracy={"challenger": 0.86}, latency_ms={"challenger": 80.0}, seed=6
    )
    r = analyze(tmp_path / "log", guarded)
    assert r.recommendation.decision == "keep"
    assert any("worse by more than the margin" in x for x in r.recommendation.reasons)


def test_html_is_escaped(winner_log: Path) -> None:
    res = analyze(winner_log, EXP)
    html = res._repr_html_()
    assert "<table" in html and "<script" not in html
    assert res.srm_table().to_html().count("<tr>") == 2


@pytest.mark.slow
def test_notebook_20_analyze_runs(tmp_path: Path) -> None:
    papermill = pytest.importorskip("papermill")
    root = Path(__file__).resolve().parents[1]
    EXP.save(tmp_path / "experiment.json")
    write_log(tmp_path / "log", EXP, n_users=1500, accuracy={"challenger": 0.86}, seed=7)
    papermill.execute_notebook(
        str(root / "notebooks" / "20_analyze.ipynb"),
        str(tmp_path / "out.ipynb"),
        parameters={"run_dir": str(tmp_path), "calibration_sims": 50},
        kernel_name="abkit",
        progress_bar=False,
    )
    results = json.loads((tmp_path / "20_analyze.json").read_text())
    assert results["recommendation"]["decision"] in {"ship", "keep", "continue", "stop", "invalid"}
    assert {"metrics", "srm", "recommendation", "calibration"} <= set(results)


def test_three_arms_with_holm_over_challengers(tmp_path: Path) -> None:
    three = Experiment.from_params(
        key="three", split="34/33/33", variant_names="control,b,c", start="2024-03-01", duration_days=7
    )
    write_log(tmp_path / "log", three, n_users=3000, accuracy={"b": 0.85, "c": 0.8}, seed=1)
    j = analyze(tmp_path / "log", three).to_json()
    assert (j["recommendation"]["decision"], j["recommendation"]["variant"]) == ("ship", "b")
    assert set(j["recommendation"]["p_adjusted"]) == {"b", "c"}
    assert len([r for r in j["metrics"] if r["name"] == "accuracy"]) == 3
