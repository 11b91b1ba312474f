"""The rollout policy, every transition of the pure state machine, and crash-safe recording."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from abkit.decide import Comparison
from abkit.registry import ModelRegistry, RegistryError
from abkit.rollout import (
    Evidence,
    NonInferiority,
    Rollout,
    RolloutError,
    RolloutPolicy,
    RolloutState,
    Threshold,
    next_step,
    start,
)
from abkit.rollout.policy import GATE_STATUSES
from abkit.stats.srm import srm_test

T0 = dt.datetime(2024, 6, 3, tzinfo=dt.UTC)
NAN = float("nan")
POLICY = RolloutPolicy(
    stages=(0.1, 0.25, 0.5, 1.0),
    min_units=200,
    primary_margin=0.01,
    stage_deadline_days=5,
    watch_days=4,
    guardrails=({"metric": "latency_ms", "statistic": "p95", "margin": 10.0},),
)


def _day(d: float) -> dt.datetime:
    return T0 + dt.timedelta(days=d)


def comp(metric: str, est: float, lo: float, hi: float, statistic: str = "mean", ref: float = 0.8) -> Comparison:
    return Comparison(metric, statistic, "challenger", est, lo, hi, 0.5, lo, hi, 0.5, 0.01, 0.1, ref, 2000.0)


def ev(
    day: float,
    *,
    n: float = 1000,
    acc: tuple[float, float, float] | None = (0.03, 0.01, 0.05),
    lat: tuple[float, float, float] | None = (1.0, -3.0, 5.0),
    srm: str = "ok",
    alarms: tuple[str, ...] = (),
    champion_alarms: tuple[str, ...] = (),
) -> Evidence:
    comps = []
    if acc is not None:
        comps.append(comp("accuracy", *acc))
    if lat is not None:
        comps.append(comp("latency_ms", *lat, statistic="p95", ref=50.0))
    counts = {"ok": [500, 500], "mismatch": [500, 700], "none": [0, 0]}[srm]
    return Evidence(
        _day(day), {"tested": n, "reference": n}, tuple(comps), srm_test(counts, [0.5, 0.5]), alarms, champion_alarms
    )


CANARY = RolloutState("canary", "v1", T0, "v2")


def statuses(decision) -> dict[str, str]:
    return {g.name: g.status for g in decision.gate_results}


# ---------------------------------------------------------------------------------------------------------
# the policy


def test_policy_from_dict_round_trip_and_defaults() -> None:
    p = RolloutPolicy.from_dict(
        {
            "rollout": {
                "stages": [0.05, 0.5, 1.0],
                "shadow": True,
                "guardrails": [{"type": "non_inferiority", "metric": "latency_ms", "statistic": "p95", "margin": 10}],
            }
        }
    )
    assert p.canary_shares == (0.05, 0.5) and p.shadow
    assert isinstance(p.guardrails[0], NonInferiority) and p.guardrails[0].higher_is_better is False
    assert RolloutPolicy.from_dict(json.loads(json.dumps(p.to_dict()))) == p
    with pytest.raises(AttributeError):
        p.stages = (0.5,)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("stages", [0.5, 0.25], "increase strictly"),
        ("stages", [0.1, 0.1], "increase strictly"),
        ("stages", [0.0, 0.5], r"lie in \(0, 1\]"),
        ("stages", [0.5, 1.5], r"lie in \(0, 1\]"),
        ("stages", [1.0], "at least one canary share"),
        ("stages", "10,25", "separated by '/'"),
        ("stages", 0.5, "list of traffic shares"),
        ("primary_metric", "f2_score", "known metric"),
        ("guardrails", [{"metric": "latency_mss", "margin": 1}], "known metric"),
        ("guardrails", [{"type": "fixed_max", "metric": "latency_ms"}], "choose one of"),
        ("guardrails", [{"metric": "latency_ms", "statistic": "p95", "margin": -1}], "margin >= 0"),
        ("guardrails", [{"metric": "latency_ms", "bound": 3}], "unknown field"),
        ("min_units", 0, "whole number >= 2"),
        ("stage_deadline_days", 0, "> 0"),
        ("promote_when", "maybe", "choose one of"),
        ("registry_path", "/no/such/registry", "does not exist"),
        ("colour", "red", "unknown field"),
    ],
)
def test_bad_policies_are_refused_with_the_field_named(field: str, value: object, match: str) -> None:
    with pytest.raises(RolloutError, match=match) as info:
        RolloutPolicy.from_dict({field: value})
    assert field in str(info.value) or field == "guardrails"


def test_threshold_registry_parses_and_evaluates() -> None:
    g = Threshold.parse({"metric": "accuracy", "margin": 0.02})
    assert g.evaluate(-0.01, -0.015, 0.0).status == "pass"
    assert g.evaluate(-0.05, -0.07, -0.03).status == "fail"
    assert g.evaluate(-0.01, -0.04, 0.02).status == "inconclusive"
    assert g.evaluate(NAN, NAN, NAN).status == "inconclusive"  # NaN is never a pass
    lat = Threshold.parse({"metric": "latency_ms", "statistic": "p95", "margin": 10})
    assert lat.evaluate(5.0, 2.0, 9.0).status == "pass"  # at most 9 ms slower
    assert lat.evaluate(40.0, 30.0, 50.0).status == "fail"  # slower is harm for latency
    rel = Threshold.parse({"metric": "latency_ms", "statistic": "p95", "margin": 0.1, "relative": True})
    assert rel.evaluate(4.0, 1.0, 4.5, reference=50.0).status == "pass"  # 10 % of 50 ms = 5 ms
    assert rel.evaluate(4.0, 1.0, 5.5, reference=50.0).status == "inconclusive"


# ---------------------------------------------------------------------------------------------------------
# canary transitions


def test_canary_all_gates_pass_advances_to_the_next_stage() -> None:
    d = next_step(CANARY, ev(2), POLICY)
    assert d.action == "advance" and d.state.phase == "canary" and d.state.stage == 1 and d.state.since == _day(2)
    assert set(statuses(d).values()) == {"pass"} and d.share == 0.1
    assert (d.from_version, d.to_version) == ("v1", "v2")


def test_last_stage_shown_better_promotes() -> None:
    d = next_step(RolloutState("canary", "v1", T0, "v2", stage=2), ev(2), POLICY)
    assert d.action == "promote" and (d.from_version, d.to_version) == ("v1", "v2")
    assert d.state == RolloutState("watch", "v2", _day(2), None, "v1")
    assert d.alias_moves() == {"champion": "v2", "challenger": None, "previous_champion": "v1"}


def test_last_stage_not_yet_better_holds_then_aborts_at_the_deadline() -> None:
    last = RolloutState("canary", "v1", T0, "v2", stage=2)
    flat = (0.001, -0.005, 0.007)  # non-inferior, not better
    d = next_step(last, ev(2, acc=flat), POLICY)
    assert d.action == "hold" and d.state == last
    assert statuses(d)["promotion: accuracy better"] == "inconclusive"
    d = next_step(last, ev(5.5, acc=flat), POLICY)
    assert d.action == "abort" and d.state.phase == "idle" and d.state.champion == "v1"
    assert "deadline" in d.reasons[0]


@pytest.mark.parametrize(
    ("kwargs", "gate"),
    [
        ({"acc": (-0.05, -0.07, -0.03)}, "primary accuracy not worse"),
        ({"srm": "mismatch"}, "srm"),
        ({"lat": (40.0, 30.0, 50.0)}, "guardrail p95 latency_ms"),
        ({"alarms": ("embedding drift on the challenger's traffic",)}, "drift"),
    ],
)
def test_a_failed_gate_aborts_to_the_champion(kwargs: dict, gate: str) -> None:
    d = next_step(CANARY, ev(1, **kwargs), POLICY)
    assert d.action == "abort" and statuses(d)[gate] == "fail"
    assert (d.from_version, d.to_version) == ("v2", "v1")
    assert d.state.phase == "idle" and d.state.champion == "v1" and d.state.challenger is None
    assert d.alias_moves() == {"challenger": None}


def test_no_data_is_inconclusive_then_the_deadline_aborts() -> None:
    empty = Evidence(_day(1))  # no units, no comparisons, no SRM
    d = next_step(CANARY, empty, POLICY)
    assert d.action == "hold"
    assert [g for g, s in statuses(d).items() if s == "pass"] == ["drift"]  # only "no alarm" holds without data
    assert statuses(d)["min sample"] == "inconclusive"
    assert statuses(d)["srm"] == "inconclusive" and statuses(d)["primary accuracy not worse"] == "inconclusive"
    assert statuses(d)["guardrail p95 latency_ms"] == "inconclusive"
    d = next_step(CANARY, Evidence(_day(4.9)), POLICY)
    assert d.action == "hold"
    d = next_step(CANARY, Evidence(_day(5.0)), POLICY)
    assert d.action == "abort" and d.state.phase == "idle" and "deadline" in d.reasons[0]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"acc": (NAN, NAN, NAN)},  # labels missing: NaN estimate
        {"acc": (0.03, NAN, 0.05)},  # undefined interval
        {"acc": None},  # no comparison for the primary metric at all
        {"n": 20},  # a great-looking effect on too small a sample
        {"srm": "none"},  # the sample ratio cannot be checked
        {"lat": (NAN, NAN, NAN)},  # a guardrail without data
    ],
)
def test_missing_nan_or_small_evidence_never_passes(kwargs: dict) -> None:
    d = next_step(CANARY, ev(1, **kwargs), POLICY)
    assert d.action == "hold" and "inconclusive" in statuses(d).values()
    assert all(s in GATE_STATUSES for s in statuses(d).values())


def test_non_inferior_and_cheaper_promotes_a_faster_model() -> None:
    p = RolloutPolicy(stages=(0.5,), promote_when="non_inferior_and_cheaper", min_units=200)
    last = RolloutState("canary", "v1", T0, "v2")
    d = next_step(last, ev(1, acc=(0.0, -0.005, 0.005), lat=(-20.0, -30.0, -10.0)), p)
    assert d.action == "promote" and statuses(d)["promotion: p95 latency_ms cheaper"] == "pass"
    d = next_step(last, ev(1, acc=(0.0, -0.005, 0.005), lat=(-2.0, -6.0, 2.0)), p)
    assert d.action == "hold"


# ---------------------------------------------------------------------------------------------------------
# shadow, watch, stable, idle


def test_shadow_passes_into_the_first_canary_stage_or_aborts() -> None:
    p = RolloutPolicy(shadow=True, min_units=200)
    s = start("v1", "v2", T0, p)
    assert s.phase == "shadow" and s.share(p) == 0.0
    paired = Evidence(_day(1), {"tested": 500, "reference": 500}, (comp("accuracy", 0.02, 0.0, 0.04),))
    d = next_step(s, paired, p)  # no SRM is needed: shadow has no split
    assert d.action == "advance" and d.state.phase == "canary" and d.state.stage == 0
    worse = Evidence(_day(1), {"tested": 500, "reference": 500}, (comp("accuracy", -0.05, -0.07, -0.03),))
    d = next_step(s, worse, p)
    assert d.action == "abort" and d.state.phase == "idle"


WATCH = RolloutState("watch", "v2", T0, None, "v1")


def test_watch_rolls_back_on_harm_or_alarm() -> None:
    d = next_step(WATCH, ev(1, acc=(-0.04, -0.06, -0.02)), POLICY)
    assert d.action == "rollback" and (d.from_version, d.to_version) == ("v2", "v1")
    assert d.state.phase == "stable" and d.state.champion == "v1" and d.state.previous_champion is None
    assert d.alias_moves() == {"champion": "v1", "previous_champion": None, "challenger": None}
    d = next_step(WATCH, ev(1, alarms=("estimated accuracy below its band",)), POLICY)
    assert d.action == "rollback" and statuses(d)["drift"] == "fail"


def test_watch_holds_then_confirms_or_rolls_back_without_evidence() -> None:
    fine = (0.0, -0.01, 0.01)
    assert next_step(WATCH, ev(1, acc=fine), POLICY).action == "hold"
    d = next_step(WATCH, ev(4, acc=fine), POLICY)
    assert d.action == "advance" and d.state == RolloutState("stable", "v2", _day(4), None, "v1")
    assert next_step(WATCH, Evidence(_day(5)), POLICY).action == "hold"  # no data: wait, do not confirm
    d = next_step(WATCH, Evidence(_day(9)), POLICY)  # watch_days + deadline without data
    assert d.action == "rollback" and "could not be confirmed" in d.reasons[0]


def test_stable_rolls_back_on_a_champion_alarm_when_it_can() -> None:
    stable = RolloutState("stable", "v2", T0, None, "v1")
    assert next_step(stable, ev(1), POLICY).action == "hold"
    d = next_step(stable, ev(1, champion_alarms=("accuracy change detected",)), POLICY)
    assert d.action == "rollback" and d.state.champion == "v1"
    alone = RolloutState("stable", "v1", T0)
    d = next_step(alone, ev(1, champion_alarms=("accuracy change detected",)), POLICY)
    assert d.action == "hold" and "retrain" in d.reasons[-1]
    assert next_step(RolloutState("idle", "v1", T0), ev(1), POLICY).action == "hold"


def test_bad_state_or_evidence_is_refused() -> None:
    with pytest.raises(RolloutError, match="before the state began"):
        next_step(RolloutState("canary", "v1", _day(3), "v2"), ev(1), POLICY)
    with pytest.raises(RolloutError, match="needs a challenger"):
        RolloutState("canary", "v1", T0)
    with pytest.raises(RolloutError, match="3 canary stages"):
        next_step(RolloutState("canary", "v1", T0, "v2", stage=3), ev(1), POLICY)
    with pytest.raises(RolloutError, match="is the champion"):
        start("v1", "v1", T0, POLICY)
    with pytest.raises(RolloutError, match="phase"):
        RolloutState("limbo", "v1", T0)


def test_decision_record_is_json_without_nan() -> None:
    d = next_step(CANARY, ev(1, acc=(NAN, NAN, NAN)), POLICY)
    rec = json.loads(json.dumps(d.to_dict(), allow_nan=False))
    assert {"time", "action", "from_version", "to_version", "gate_results", "reasons"} <= set(rec)
    assert rec["gate_results"][2]["value"] is None


# ---------------------------------------------------------------------------------------------------------
# applying and recording


def _setup(tmp_path: Path) -> ModelRegistry:
    reg = ModelRegistry(tmp_path / "reg", create=True)
    reg.register("v1", {"model": "tfidf"}, time=T0)
    reg.register("v2", {"model": "minilm"}, time=T0)
    reg.set_alias("champion", "v1", time=T0, reasons=["first model"])
    return reg


def test_rollout_records_every_decision_and_moves_aliases(tmp_path: Path) -> None:
    reg = _setup(tmp_path)
    applied = []
    ro = Rollout(POLICY, reg, apply=lambda rec: applied.append(rec["action"]))
    assert ro.state().phase == "idle"
    ro.begin("v2", T0)
    assert reg.aliases() == {"champion": "v1", "challenger": "v2"}
    actions = [ro.step(ev(d)).action for d in (1, 2, 3)]
    assert actions == ["advance", "advance", "promote"]
    assert reg.aliases() == {"champion": "v2", "previous_champion": "v1"}
    assert ro.state().phase == "watch"
    assert ro.step(ev(4, acc=(-0.04, -0.06, -0.02))).action == "rollback"
    assert reg.aliases() == {"champion": "v1"}
    assert applied == ["start", "advance", "advance", "promote", "rollback"]
    table = reg.history().to_dicts()
    assert [r["what"] for r in table[3:]] == ["start", "advance", "advance", "promote", "rollback"]
    assert all(r["status"] == "committed" for r in table[2:])


def test_a_crash_between_decision_and_record_is_replayed(tmp_path: Path) -> None:
    reg = _setup(tmp_path)
    Rollout(POLICY, reg).begin("v2", T0)

    def dies(rec: dict) -> None:
        raise KeyboardInterrupt("killed while switching traffic")

    with pytest.raises(KeyboardInterrupt):
        Rollout(POLICY, reg, apply=dies).step(ev(1))
    ro = Rollout(POLICY, ModelRegistry(tmp_path / "reg"))  # a restarted process
    assert [p.payload["action"] for p in ro.registry.pending()] == ["advance"]
    assert ro.state().stage == 0  # not yet applied
    with pytest.raises(RolloutError, match="recover"):
        ro.step(ev(2))
    assert [r.payload["action"] for r in ro.recover()] == ["advance"]
    assert ro.state().stage == 1 and ro.registry.pending() == []
    assert ro.step(ev(2)).action == "advance"


def test_starting_with_a_missing_version_moves_nothing(tmp_path: Path) -> None:
    reg = _setup(tmp_path)
    n = len(reg.records())
    with pytest.raises(RegistryError, match="not registered"):
        Rollout(POLICY, reg).begin("v7", T0)
    assert len(reg.records()) == n and reg.aliases() == {"champion": "v1"}
    with pytest.raises(RolloutError, match="no champion"):
        Rollout(POLICY, ModelRegistry(tmp_path / "empty", create=True)).state()
