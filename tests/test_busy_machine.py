"""The same seed gives the same decision on an idle and on a busy machine (issue 11, repro 5).

The scenarios run through the library calls their notebooks make (setup, simulation, analysis), with the
scenario file's parameters over the notebooks' defaults; only the traffic pool is smaller (1,000 texts) to keep
MiniLM's share of the run short. Models are trained once; the cost profiles are measured twice, quietly and
beside a CPU-burning process (the only step whose result could depend on the machine), then each set is
simulated and analysed with the run's seed.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import ROOT
from test_cost_profile import cpu_burner

from abkit import params as P
from abkit.analysis import analyze
from abkit.data import prepare_dataset
from abkit.experiment import Experiment
from abkit.models import ModelSpec, measure_cost_profile, train_variants
from abkit.simulate import SimulationConfig, simulate

pytestmark = pytest.mark.slow


def _params(scenario: str) -> dict[str, Any]:
    notebooks = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    defaults = {name: spec.default for name, spec in P.known_parameters(notebooks).items()}
    return defaults | P.merge_params([ROOT / "params" / "scenarios" / f"{scenario}.yaml"], ["n_traffic=1000"])


def _setup(scenario: str) -> tuple[dict[str, Any], Any, dict[str, Any], Experiment]:
    p = _params(scenario)
    rng = np.random.default_rng(p["seed"])
    data = prepare_dataset(
        p["dataset"],
        n_train=p["n_train"],
        rng=rng,
        n_pool=p["n_traffic"],
        new_vocab_rate=p["new_vocab_rate"],
        label_noise=p["label_noise"],
    )
    specs = {
        arm: ModelSpec.from_params(p[f"{arm}_model"], n_train=p[f"{arm}_n_train"], label_noise=p[f"{arm}_label_noise"])
        for arm in ("champion", "challenger")
    }
    models = train_variants(data.train, specs, rng=rng)
    exp = Experiment.from_params(
        key=p["experiment_key"],
        split=p["split"],
        variant_names="champion,challenger",
        start=p["start_date"],
        duration_days=p["duration_days"],
        primary_metric=p["primary_metric"],
        guardrail_latency_p95_ms=p["guardrail_latency_p95_ms"] or None,
    )
    return p, data, models, exp


def _profiles(models: dict[str, Any], texts: list[str]) -> dict[str, Any]:
    """The models with cost profiles measured now (the one step whose result could depend on the machine)."""
    return {v: dataclasses.replace(m, cost_profile=measure_cost_profile(m, texts, rng=0)) for v, m in models.items()}


def _run(tmp: Path, p: dict[str, Any], data: Any, measured: dict[str, Any], exp: Experiment) -> tuple[str, dict]:
    """Simulate and analyse with the scenario's seed."""
    cfg = SimulationConfig(
        n_users=p["n_users"], label_rate=p["label_rate"], label_delay_days=p["label_delay_days"], progress=False
    )
    simulate(exp, measured, data.pool, tmp / "log", config=cfg, rng=p["seed"])
    res = analyze(tmp / "log", exp, alpha=p["alpha"], daily=False)
    q = {(e["statistic"], e["variant"]): e["treatment"] for e in res.effects.to_dicts() if e["metric"] == "latency_ms"}
    return res.recommendation.decision, q


@pytest.mark.parametrize(("scenario", "decision"), [("clear_winner", "ship"), ("worse_challenger", "keep")])
def test_same_decision_quiet_and_beside_a_cpu_burner(tmp_path, scenario: str, decision: str) -> None:
    p, data, models, exp = _setup(scenario)
    texts = data.train["text"].tolist()
    quiet = _profiles(models, texts)
    with cpu_burner() as proc:
        busy = _profiles(models, texts)
        burned = proc.poll() is None
    assert burned, "the burner ended before the measurement did; raise BURN_SECONDS"
    (d_quiet, q_quiet), (d_busy, q_busy) = (
        _run(tmp_path / name, p, data, m, exp) for name, m in (("quiet", quiet), ("busy", busy))
    )
    assert (d_quiet, d_busy) == (decision, decision)
    # The bound of test_cost_profile (CPU time moves by up to ~10 % when CI's second pytest worker and the burner
    # share the two cores with it: a 3.08 ms against 2.78 ms p95 was seen); wall-clock profiles were 2-3x apart.
    for key in (("p50", "challenger"), ("p95", "challenger"), ("mean", "challenger")):
        assert q_busy[key] == pytest.approx(q_quiet[key], rel=0.25), key
