"""The closed loop through the real path: ramp ranges, the log, the analysis, the policy, the registry."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from abkit.assign import AssignError, assign_many, ramp_ranges
from abkit.rollout import RolloutPolicy
from abkit.rollout.evidence import alarm_texts
from abkit.rollout.lifecycle import (
    LifecycleConfig,
    ModelBehaviour,
    run_lifecycle,
    story,
)
from abkit.rollout.report import decision_table, results_json, timeline_plot, verdict

POLICY = RolloutPolicy(
    stages=(0.1, 0.25, 0.5, 1.0),
    min_units=300,
    primary_margin=0.02,
    stage_deadline_days=6,
    watch_days=6,
    guardrails=({"metric": "latency_ms", "statistic": "p95", "margin": 10.0},),
)
V1 = ModelBehaviour("v1", {"electronics": 0.90, "restaurants": 0.72}, 20.0)


@pytest.mark.parametrize("shares", [(0.1, 0.25, 0.5), (0.05, 0.2, 0.4, 0.75), (0.3,)])
def test_ramp_moves_no_user_who_already_saw_a_variant(shares: tuple[float, ...]) -> None:
    ids = [f"user-{i}" for i in range(20_000)]
    top = max(shares)
    arms = [assign_many(ids, seed="ramp", ranges=ramp_ranges(s, top)) for s in shares]
    for s, a in zip(shares, arms, strict=True):
        assert np.mean(a == 1) == pytest.approx(s, abs=0.01)  # the challenger's share of traffic
        control = min(s, 1 - top)
        assert np.mean(a == 0) == pytest.approx(control, abs=0.01)
    for before, after in itertools.pairwise(arms):
        seen = before >= 0
        assert np.array_equal(after[seen], before[seen])  # nobody in a variant is reassigned
        assert (after >= 0).sum() > seen.sum()
    with pytest.raises(AssignError, match="max_share"):
        ramp_ranges(0.6, 0.5)
    with pytest.raises(AssignError, match="switch itself"):
        ramp_ranges(1.0, 1.0)


def test_alarm_records_become_reasons_for_their_arm() -> None:
    class A:
        signal, window, reasons = "confidence_psi", "2024-06-10", ("PSI 0.31 >= 0.2",)

        def __init__(self, variant: str) -> None:
            self.variant = variant

    texts = alarm_texts([A("challenger"), A("champion"), A("all"), "manual alarm"], "challenger")
    assert texts == (
        "confidence_psi on challenger (2024-06-10): PSI 0.31 >= 0.2",
        "confidence_psi on all (2024-06-10): PSI 0.31 >= 0.2",
        "manual alarm",
    )


def _run(tmp_path: Path, candidate: ModelBehaviour, seed: int, days: int = 12) -> object:
    cfg = LifecycleConfig(
        champion=V1,
        candidates=(candidate,),
        start_with_challenger=True,
        shift_day=None,
        days=days,
        users_per_day=3000,
        n_users=12_000,
        key=f"t{seed}",
    )
    return run_lifecycle(cfg, POLICY, tmp_path / f"run{seed}", seed=seed)


def test_a_truly_better_challenger_ends_promoted(tmp_path: Path) -> None:
    better = ModelBehaviour("v2", {"electronics": 0.95, "restaurants": 0.9}, 21.0)
    r = _run(tmp_path, better, seed=3)
    acts = r.actions()
    assert "promote" in acts and "abort" not in acts and "rollback" not in acts
    assert acts.count("advance") >= 2  # the stages before the promotion
    assert r.aliases["champion"] == "v2" and r.aliases["previous_champion"] == "v1"
    promote = r.decisions[acts.index("promote")]
    assert promote.share == 0.5 and all(g.status == "pass" for g in promote.gate_results)
    # each stage's SRM was checked against that stage's own weights (10/10, 25/25, 50/50 of traffic)
    assert {g.name for g in promote.gate_results} >= {
        "srm",
        "min sample",
        "primary accuracy not worse",
        "drift",
        "guardrail p95 latency_ms",
        "promotion: accuracy better",
    }
    shares = [t["share"] for t in r.traffic if t["version"] == "v2"]
    for target in (0.1, 0.25, 0.5, 0.9):  # 10 %, 25 %, 50 %, then 90 % beside a 10 % holdback of v1
        assert min(abs(s - target) for s in shares) < 0.03


@pytest.mark.parametrize("seed", range(6))
def test_a_truly_worse_challenger_never_passes_the_first_stage(tmp_path: Path, seed: int) -> None:
    worse = ModelBehaviour("v3", {"electronics": 0.84, "restaurants": 0.66}, 20.0)
    r = _run(tmp_path, worse, seed=seed, days=8)
    acts = r.actions()
    assert "abort" in acts and "advance" not in acts and "promote" not in acts
    abort = r.decisions[acts.index("abort")]
    assert abort.stage == 0 and (abort.from_version, abort.to_version) == ("v3", "v1")
    assert r.aliases == {"champion": "v1"}


@pytest.mark.parametrize("models", ["classifiers", "simulated"])
def test_the_story_promotes_then_rolls_back_a_degraded_champion(tmp_path: Path, models: str) -> None:
    main, _ = story(days=24, users_per_day=2000, models=models)
    r = run_lifecycle(main, POLICY, tmp_path / "story", seed=42)
    acts = r.actions()
    assert r.events and r.events[0]["version"] == "v2"  # the monitor's alarm asked for a retrain
    assert acts.index("promote") < acts.index("rollback")
    rollback = r.decisions[acts.index("rollback")]
    assert (rollback.from_version, rollback.to_version) == ("v2", "v1")
    assert r.aliases["champion"] == "v1"
    table = r.registry.history().to_dicts()
    assert [row["what"] for row in table if row["what"] in ("start", "promote", "rollback")] == [
        "start",
        "promote",
        "rollback",
    ]
    assert all(row["status"] in ("committed", "done") for row in table)
    decisions = json.loads(json.dumps(r.decision_dicts(), allow_nan=False))
    assert {"time", "action", "from_version", "to_version", "gate_results", "reasons"} <= set(decisions[0])
    # what notebook 40_rollout shows
    summary = verdict({"main": r})
    assert summary.lines[0] == "main: v2 promoted, then rolled back to v1"
    assert "<b>main: v2 promoted" in summary._repr_html_()
    table = decision_table(r).to_dicts()
    assert [row["action"] for row in table] == [a for a in acts if a != "hold"]
    testing = [d.action for d in r.decisions if d.action != "hold" or d.phase in ("canary", "watch")]
    assert [row["action"] for row in decision_table(r, include_holds=True).to_dicts()] == testing
    out = json.loads(json.dumps(results_json({"main": r}, POLICY, summary), allow_nan=False))
    assert len(out["decisions"]) == len(acts) and out["aliases"]["main"]["champion"] == "v1"
    import matplotlib

    matplotlib.use("Agg")
    ax = timeline_plot(r)
    labels = [t.get_text() for t in ax.texts]
    assert "promote v2" in labels and "rollback v1" in labels and "start v2" in labels


def test_shadow_stage_pairs_the_same_requests_and_gates_the_canary(tmp_path: Path) -> None:
    from scipy import stats as sps

    from abkit.log import PredictionLog
    from abkit.rollout.shadow import paired_evidence, shadow_keys

    policy = RolloutPolicy(
        shadow=True,
        stages=(0.1, 0.25, 0.5, 1.0),
        min_units=300,
        primary_margin=0.02,
        stage_deadline_days=6,
        guardrails=({"metric": "latency_ms", "statistic": "p95", "margin": 10},),
    )
    worse = ModelBehaviour("v3", {"electronics": 0.84, "restaurants": 0.66}, 20.0)
    cfg = LifecycleConfig(
        champion=V1,
        candidates=(worse,),
        start_with_challenger=True,
        shift_day=None,
        days=3,
        users_per_day=1500,
        n_users=6000,
        key="sh",
    )
    r = run_lifecycle(cfg, policy, tmp_path / "run", seed=5)
    first = r.decisions[0]
    assert (first.phase, first.action) == ("shadow", "abort")  # the paired test catches it before any user sees it
    assert {g.name: g.status for g in first.gate_results}["primary accuracy (paired)"] == "fail"
    assert all(t["version"] == "v1" for t in r.traffic)  # shadow serves nothing
    # the log holds both predictions of every mirrored request; the paired numbers match a direct computation
    log = PredictionLog(tmp_path / "run" / "log")
    ref_key, tested_key = shadow_keys("sh-1-shadow")
    ref = log.read_predictions(ref_key).to_pandas()
    tested = log.read_predictions(tested_key).to_pandas()
    assert len(ref) == len(tested) and set(ref.request_id) == set(tested.request_id)
    labels = log.read_labels(ref_key).to_pandas()[["request_id", "label"]]
    every = ref.merge(tested, on="request_id", suffixes=("_r", "_t"))
    pairs = every.merge(labels, on="request_id")
    cr, ct = pairs.predicted_label_r == pairs.label, pairs.predicted_label_t == pairs.label
    b, c = int((cr & ~ct).sum()), int((~cr & ct).sum())
    ev = paired_evidence(tmp_path / "run" / "log", "sh-1-shadow", first.time, policy)
    acc = ev.find("accuracy")
    assert acc.estimate == pytest.approx((ct.astype(int) - cr.astype(int)).mean(), rel=1e-12)
    assert acc.p_value == pytest.approx(sps.binomtest(min(b, c), b + c, 0.5).pvalue, rel=1e-9)
    assert ev.units["tested"] == pairs.unit_id_r.nunique()
    lat = ev.find("latency_ms")
    assert lat.estimate == pytest.approx((every.latency_ms_t - every.latency_ms_r).mean(), rel=1e-9)
    assert ev.find("latency_ms", "p95").control_mean == pytest.approx(np.quantile(every.latency_ms_r, 0.95), rel=1e-9)


def test_a_ramp_phase_is_an_experiment_with_its_own_ranges_and_weights() -> None:
    from abkit.experiment import Experiment, ExperimentError, Variant

    ids = [f"user-{i}" for i in range(5000)]
    phases = [
        Experiment.ramp_phase(f"canary-{k}", "v1", "v2", s, 0.5, seed="rollout") for k, s in enumerate((0.1, 0.25, 0.5))
    ]
    assert [p.weights.tolist() for p in phases] == [[0.5, 0.5]] * 3
    arms = [p.assign(ids) for p in phases]
    assert np.array_equal(arms[0], assign_many(ids, seed="rollout", ranges=ramp_ranges(0.1, 0.5)))
    assert all(np.array_equal(b[a >= 0], a[a >= 0]) for a, b in itertools.pairwise(arms))
    wide = Experiment.ramp_phase("canary-w", "v1", "v2", 0.75, 0.75, seed="rollout")
    assert wide.weights.tolist() == pytest.approx([0.25, 0.75])  # a phase's own weights, checked by SRM
    assert Experiment.from_dict(json.loads(json.dumps(wide.to_dict()))) == wide
    assert "bucket_ranges" not in Experiment(key="x", variants=phases[0].variants).to_dict()  # old JSON unchanged
    with pytest.raises(ExperimentError, match="must not overlap"):
        Experiment(key="x", variants=(Variant("a", 0.5), Variant("b", 0.5)), bucket_ranges=((0.0, 0.5), (0.4, 0.9)))
    with pytest.raises(ExperimentError, match="ranges' shares"):
        Experiment(key="x", variants=(Variant("a", 0.5), Variant("b", 0.5)), bucket_ranges=((0.0, 0.1), (0.5, 0.9)))
    with pytest.raises(ExperimentError, match="one per variant"):
        Experiment(key="x", variants=(Variant("a", 0.5), Variant("b", 0.5)), bucket_ranges=((0.0, 0.5),))


def test_harm_right_after_promotion_is_caught_by_the_holdback_comparison(tmp_path: Path) -> None:
    # v2 is better, then loses 25 points the day after its promotion: the monitor has no clean reference
    # yet, so it is the always-valid comparison with v1's 10 % holdback that rolls it back
    regressing = ModelBehaviour("v2", {"electronics": 0.95}, 21.0, regression_day=5, regression_drop=0.25)
    cfg = LifecycleConfig(
        champion=V1,
        candidates=(regressing,),
        start_with_challenger=True,
        shift_day=None,
        days=8,
        users_per_day=3000,
        n_users=12_000,
        key="rg",
    )
    r = run_lifecycle(cfg, POLICY, tmp_path / "run", seed=3)
    acts = r.actions()
    assert acts.index("promote") < acts.index("rollback")
    rollback = r.decisions[acts.index("rollback")]
    assert rollback.phase == "watch" and rollback.reasons[0].startswith("after promotion: accuracy difference")
    assert {g.name: g.status for g in rollback.gate_results}["primary accuracy no harm after promotion"] == "fail"
    assert r.aliases == {"champion": "v1"}
