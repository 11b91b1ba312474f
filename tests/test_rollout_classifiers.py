"""The lifecycle with real classifiers: a challenger retrained on the log's recent labelled requests, no
train/test leakage, a real serving fault rolled back, a badly trained model aborted, and drift alarms on the
challenger's own traffic feeding the drift gate."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from abkit.log import PredictionLog
from abkit.rollout import RolloutPolicy
from abkit.rollout.corpus import TRAIN, TrafficCorpus
from abkit.rollout.lifecycle import LifecycleConfig, Recipe, run_lifecycle, story
from abkit.rollout.policy import RolloutError
from abkit.rollout.report import versions_table
from abkit.rollout.watch import VersionMonitor

POLICY = RolloutPolicy(
    stages=(0.1, 0.25, 0.5, 1.0),
    min_units=300,
    primary_margin=0.02,
    stage_deadline_days=6,
    watch_days=6,
    guardrails=({"metric": "latency_ms", "statistic": "p95", "margin": 10.0},),
)


def _joined(root: Path) -> pd.DataFrame:
    """Every logged prediction (a request once per log key), with its label (None if unlabelled) and whether it
    was answered right."""
    log = PredictionLog(root / "log")
    preds = log.read_predictions().to_pandas()
    labels = log.read_labels().to_pandas()[["experiment", "request_id", "label"]]
    rows = preds.merge(labels, on=["experiment", "request_id"], how="left")
    return rows.assign(correct=rows["predicted_label"] == rows["label"])


@pytest.fixture(scope="module")
def main_story(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, Path]:
    main, _ = story(days=24, users_per_day=2000)
    root = tmp_path_factory.mktemp("story")
    return run_lifecycle(main, POLICY, root, seed=42), root


def test_v2_is_fitted_on_the_logs_recent_labelled_requests_and_never_served_them(main_story) -> None:
    r, root = main_story
    meta = dict(r.registry.versions()["v2"].metadata)
    start = dt.datetime.fromisoformat(r.events[0]["time"])
    rows = _joined(root)
    window = rows[(rows.ts >= pd.Timestamp(start - dt.timedelta(days=3))) & (rows.ts < pd.Timestamp(start))]
    labelled = window[window.label.notna()]
    # what the registry says v2 was trained on is what the log held: rows, days, domains
    assert meta["data"] == "log" and meta["labelled_requests"] == len(labelled)
    assert meta["days"] == [labelled.ts.min().date().isoformat(), labelled.ts.max().date().isoformat()]
    assert set(meta["domains"]) == {"electronics", "restaurants"} and sum(meta["domains"].values()) == meta["rows"]
    assert 0 < meta["rows"] < labelled.text.nunique()  # distinct texts minus the held-out validation texts
    assert meta["rows"] + 1 < labelled.text.nunique() * (1 - 0.2) + 2
    assert meta["trained_on"].startswith("retrained after the drift alarm: ")
    # no leakage: nothing served after the retrain was among the texts v2 could have been fitted on
    later = rows[rows.ts >= pd.Timestamp(start)]
    assert len(later) > 10_000 and not set(later.text) & set(window.text)
    v1 = dict(r.registry.versions()["v1"].metadata)
    assert v1["data"] == "training" and v1["domains"] == {"electronics": v1["rows"]}


def test_the_healthy_challenger_raises_no_alarm_and_the_serving_fault_is_real(main_story) -> None:
    r, root = main_story
    fault = dt.date(2024, 6, 3) + dt.timedelta(days=17)  # story's regression_day: the faulty release
    testing = [d for d in r.decisions if d.phase in ("canary", "watch") and d.time.date() <= fault]
    assert testing and all({g.name: g.status for g in d.gate_results}["drift"] == "pass" for d in testing)
    assert {a.window for a in r.monitors["v2"].alarms} == {fault.isoformat()}  # nothing before the fault
    assert {a.signal for a in r.monitors["v2"].alarms} == {"accuracy_cusum", "confidence_ks"}
    rows = _joined(root)
    v2 = rows[(rows.model_version == "v2") & rows.label.notna()]
    before, after = v2[v2.ts.dt.date < fault], v2[v2.ts.dt.date >= fault]
    assert before.correct.mean() > 0.88 and after.correct.mean() < 0.65  # percent-encoded requests
    assert (after.confidence.mean() + 0.2) < before.confidence.mean()
    rollback = r.decisions[r.actions().index("rollback")]
    assert (rollback.from_version, rollback.to_version) == ("v2", "v1") and rollback.time.date() > fault
    assert "accuracy_cusum on v2" in rollback.reasons[0] and "confidence_ks on v2" in rollback.reasons[0]
    assert "confidences of v2 left its reference: KS D = " in rollback.reasons[0]
    assert r.aliases["champion"] == "v1"
    # what the report shows reads as text for people: no 1e-05 style numbers in any reason
    assert not [x for d in r.decisions for x in d.reasons if re.search(r"\d[eE][+-]?\d", x)]
    table = versions_table(r).to_dicts()
    assert [row["version"] for row in table] == ["v1", "v2"] and table[1]["by"] == "retrain"
    assert (
        table[1]["trained on"].startswith("retrained after the drift alarm: ") and table[1]["validation accuracy"] > 0.9
    )


def test_a_badly_trained_challenger_is_aborted_at_its_first_stage(tmp_path: Path) -> None:
    _, bad = story()
    r = run_lifecycle(bad, POLICY, tmp_path / "bad", seed=43)
    meta = dict(r.registry.versions()["v3"].metadata)
    assert (meta["rows"], meta["label_noise"]) == (100, 0.25) and meta["validation_accuracy"] < 0.7
    acts = r.actions()
    assert "advance" not in acts and "promote" not in acts
    abort = r.decisions[acts.index("abort")]
    assert abort.stage == 0 and (abort.from_version, abort.to_version) == ("v3", "v1")
    assert {g.name: g.status for g in abort.gate_results}["primary accuracy not worse"] == "fail"
    assert r.aliases == {"champion": "v1"}


@pytest.mark.parametrize("seed", [0, 2])
def test_a_challenger_whose_own_traffic_drifts_during_its_canary_is_aborted_by_the_drift_gate(
    tmp_path: Path, seed: int
) -> None:
    # both models know electronics only; on day 2 restaurant reviews take 70 % of traffic. The A/B comparison
    # sees no difference (both degrade alike), but the challenger's own traffic left its validation reference.
    cfg = LifecycleConfig(
        champion=Recipe("v1"),
        candidates=(Recipe("v2", latency_ms=21.0),),
        start_with_challenger=True,
        shift_day=2.0,
        days=8,
        users_per_day=3000,
        n_users=12_000,
        key=f"d{seed}",
    )
    r = run_lifecycle(cfg, POLICY, tmp_path / "run", seed=seed)
    acts = r.actions()
    assert "advance" not in acts and "promote" not in acts
    abort = r.decisions[acts.index("abort")]
    gates = {g.name: g.status for g in abort.gate_results}
    assert abort.stage == 0 and gates["drift"] == "fail" and gates["primary accuracy not worse"] != "fail"
    assert abort.reasons[0].startswith("a gate failed: open alarm(s) on the challenger's traffic: ")
    assert "confidence_ks on v2 (2024-06-05)" in abort.reasons[0]
    assert all(a.window >= "2024-06-05" for m in r.monitors.values() for a in m.alarms)  # none before the shift


def test_traffic_corpus_parts_are_disjoint_by_text_and_bad_names_are_refused() -> None:
    c = TrafficCorpus.build("synthetic", ("electronics", "restaurants"), 2, np.random.default_rng(0), rows=2000)
    for d in ("electronics", "restaurants"):
        parts = [set(c.part(d, g).text) for g in (TRAIN, 0, 1)]
        assert all(p for p in parts) and not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
        assert c.part(d, 0)["text"].is_unique
    texts, labels = c.draw(np.array(["restaurants"] * 50), 1, np.random.default_rng(1))
    assert set(texts) <= set(c.part("restaurants", 1).text) and set(labels) <= {"negative", "positive"}
    assert set(c.domain_of(list(texts[:3]))) == {"restaurants"}
    with pytest.raises(RolloutError, match="generation 2 does not exist"):
        c.draw(np.array(["electronics"]), 2, np.random.default_rng(1))
    with pytest.raises(RolloutError, match="'cars'"):
        TrafficCorpus.build("synthetic", ("electronics", "cars"), 1, np.random.default_rng(0))
    with pytest.raises(RolloutError, match="dataset='imdb'"):
        TrafficCorpus.build("imdb", ("electronics",), 1, np.random.default_rng(0))
    with pytest.raises(RolloutError, match="label_noise"):
        Recipe("v9", label_noise=0.6)
    with pytest.raises(RolloutError, match="data='web'"):
        Recipe("v9", data="web")
    with pytest.raises(RolloutError, match="models='bert'"):
        story(models="bert")
    with pytest.raises(RolloutError, match="dataset='sms'"):
        story(dataset="sms")


def test_a_lifecycle_mixing_simulated_and_real_versions_is_refused(tmp_path: Path) -> None:
    from abkit.rollout.lifecycle import ModelBehaviour

    cfg = LifecycleConfig(
        champion=Recipe("v1"),
        candidates=(ModelBehaviour("v2", {"electronics": 0.9}),),
        start_with_challenger=True,
        days=2,
        users_per_day=200,
        n_users=800,
        corpus_rows=800,
    )
    with pytest.raises(RolloutError, match="takes Recipe versions only"):
        run_lifecycle(cfg, POLICY, tmp_path / "mixed", seed=0)


def test_version_monitor_reference_is_a_lower_bound_and_thin_references_give_no_cusum() -> None:
    rng = np.random.default_rng(3)
    flags = rng.random(400) < 0.9
    m = VersionMonitor("v2", ert=10_000).fit(flags, rng.uniform(0.5, 1, 400), n_effective=100)
    acc = flags.mean()  # the reference accuracy minus 2 standard errors over 100 distinct items
    assert m.cusum_.p0_ == pytest.approx(acc - 2 * np.sqrt(acc * (1 - acc) / 100), rel=1e-12)
    assert VersionMonitor("v3").fit(np.ones(20, bool), np.full(20, 0.9)).cusum_ is None
    shifted = VersionMonitor("v4", alpha=1e-3).fit(rng.random(500) < 0.9, rng.uniform(0.5, 1, 500))
    shifted.add(0, "2024-06-03", rng.random(300) < 0.9, rng.uniform(0.5, 1, 300))
    assert shifted.alarms == ()
    shifted.add(1, "2024-06-04", rng.random(300) < 0.9, rng.uniform(0.4, 0.7, 300))
    (alarm,) = shifted.alarms
    assert (alarm.signal, alarm.variant, alarm.window) == ("confidence_ks", "v4", "2024-06-04")
    # without held-out predictions the first reference_days of its own traffic are the reference
    own = VersionMonitor("v5", reference_days=2, confidences=False)
    own.add(0, "d0", rng.random(200) < 0.9, np.zeros(200)).add(1, "d1", rng.random(200) < 0.9, np.zeros(200))
    assert own.fitted and own.ks_ is None and own.n_reference_ == 400


def test_the_uci_story_runs_on_real_sentences(tmp_path: Path) -> None:
    from abkit.data import UCI_DOMAINS, data_dir, load_uci

    root = data_dir() / "sentiment_labelled_sentences"
    if not (root / UCI_DOMAINS["amazon"]).is_file():
        pytest.skip(f"real UCI data not found at {root}; set ABKIT_DATA_DIR to run the UCI lifecycle")
    main, bad = story(dataset="uci")
    r = run_lifecycle(main, POLICY, tmp_path / "main", seed=42)
    meta = {v: dict(m.metadata) for v, m in r.registry.versions().items()}
    assert meta["v1"]["domains"] == {"amazon": meta["v1"]["rows"]}
    assert set(meta["v2"]["domains"]) == {"amazon", "imdb"} and meta["v2"]["data"] == "log"
    served = set(_joined(tmp_path / "main").text)
    assert served <= set(load_uci("amazon").text) | set(load_uci("imdb").text)
    acts = [a for a in r.actions() if a != "hold"]
    assert acts == ["advance", "advance", "promote", "rollback"]  # the fault hits during the watch
    assert r.aliases["champion"] == "v1"
    r = run_lifecycle(bad, POLICY, tmp_path / "bad", seed=43)
    assert {v: dict(m.metadata)["rows"] for v, m in r.registry.versions().items()}["v3"] == 100
    abort = r.decisions[r.actions().index("abort")]
    assert abort.stage == 0 and abort.from_version == "v3" and "promote" not in r.actions()


def test_a_badly_trained_challenger_is_caught_in_the_shadow_stage_before_any_user_sees_it(tmp_path: Path) -> None:
    policy = RolloutPolicy(
        shadow=True,
        stages=(0.1, 0.25, 0.5, 1.0),
        min_units=300,
        primary_margin=0.02,
        stage_deadline_days=6,
        guardrails=({"metric": "latency_ms", "statistic": "p95", "margin": 10},),
    )
    _, bad = story(bad_days=3)
    r = run_lifecycle(bad, policy, tmp_path / "run", seed=5)
    first = r.decisions[0]
    assert (first.phase, first.action) == ("shadow", "abort")
    assert {g.name: g.status for g in first.gate_results}["primary accuracy (paired)"] == "fail"
    assert all(t["version"] == "v1" for t in r.traffic)  # shadow serves nothing
    rows = _joined(tmp_path / "run")
    mirrored = rows[rows.experiment.str.endswith("shadow-challenger")]
    assert len(mirrored) > 1000 and set(mirrored.model_version) == {"v3"}
    assert mirrored.correct[mirrored.label.notna()].mean() < 0.7  # v3's own answers on the mirrored texts
