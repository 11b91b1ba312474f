"""abkit.simulate: reproducibility, split, labels (rate, delay), daily cycle, drift and bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from abkit.experiment import Experiment
from abkit.log import PredictionLog
from abkit.models import CostProfile, train_model
from abkit.simulate import SimulationConfig, SimulationError, simulate
from abkit.synthetic import make_corpus

START = "2024-06-03"


@pytest.fixture(scope="module")
def corpus():
    return make_corpus(1500, rng=21, new_vocab_rate=0.1)


@pytest.fixture(scope="module")
def models(corpus):
    train = make_corpus(600, rng=22)
    weak = train_model("tfidf_logreg", train["text"][:80], train["label"][:80], rng=0)
    strong = train_model("tfidf_logreg", train["text"], train["label"], rng=0)
    return {"champion": weak, "challenger": strong}


def _experiment(split: str = "50/50", coverage: float = 1.0, key: str = "sim-test") -> Experiment:
    return Experiment.from_params(
        key=key, split=split, variant_names="champion,challenger", coverage=coverage, start=START, duration_days=7
    )


def _run(tmp_path, name, models, corpus, *, seed=1, experiment=None, **cfg):
    cfg.setdefault("n_users", 400)
    cfg.setdefault("progress", False)
    summary = simulate(
        experiment or _experiment(),
        models,
        corpus,
        tmp_path / name,
        config=SimulationConfig(**cfg),
        rng=np.random.default_rng(seed),
    )
    log = PredictionLog(tmp_path / name)
    return summary, log.read_predictions().to_pandas(), log.read_labels().to_pandas()


def test_same_seed_same_log_content(tmp_path, models, corpus):
    _, p1, l1 = _run(tmp_path, "a", models, corpus, seed=7)
    _, p2, l2 = _run(tmp_path, "b", models, corpus, seed=7)
    _, p3, _ = _run(tmp_path, "c", models, corpus, seed=8)
    pd.testing.assert_frame_equal(p1, p2)
    pd.testing.assert_frame_equal(l1, l2)
    assert len(p1) > 500 and not p1["unit_id"].isin(p3["unit_id"]).any()


def test_predictions_are_the_models_own(tmp_path, models, corpus):
    summary, preds, _ = _run(tmp_path, "a", models, corpus)
    for variant, model in models.items():
        rows = preds[preds["variant"] == variant].head(50)
        labels, conf = model.predict(rows["text"].tolist())
        assert rows["predicted_label"].tolist() == labels.tolist()
        np.testing.assert_allclose(rows["confidence"], conf)
        assert set(rows["model_version"]) == {model.version}
    truth = dict(zip(corpus["text"], corpus["label"], strict=False))
    acc = preds.assign(ok=preds["predicted_label"] == preds["text"].map(truth)).groupby("variant")["ok"].mean()
    got = summary.per_variant.set_index("variant")["true_accuracy"]
    np.testing.assert_allclose(got[acc.index], acc, rtol=0.02)  # texts repeat across labels only rarely
    assert summary.per_variant["variant"].tolist() == ["champion", "challenger"]
    assert got["challenger"] > got["champion"]


@pytest.mark.parametrize("split, share", [("50/50", 0.5), ("10/90", 0.9)])
def test_split_within_binomial_bounds(tmp_path, models, corpus, split, share):
    n_users = 3000
    summary, _, _ = _run(
        tmp_path, "s", models, corpus, n_users=n_users, experiment=_experiment(split), requests_per_day=0.0
    )
    users = summary.per_variant.set_index("variant")["users"]
    assert users.sum() == n_users
    assert abs(users["challenger"] - share * n_users) <= 4 * np.sqrt(n_users * share * (1 - share))


def test_coverage_excludes_users(tmp_path, models, corpus):
    summary, preds, _ = _run(tmp_path, "c", models, corpus, n_users=2000, experiment=_experiment(coverage=0.5))
    share = preds["unit_id"].nunique() / 2000
    assert abs(share - 0.5) <= 4 * np.sqrt(0.25 / 2000) and summary.n_excluded_requests > 0


def test_labels_arrive_late_at_the_configured_rate(tmp_path, models, corpus):
    summary, preds, labels = _run(
        tmp_path, "l", models, corpus, n_users=1500, label_rate=0.3, label_delay_days=2.0, label_horizon_days=None
    )
    n = len(preds)
    assert abs(len(labels) / n - 0.3) <= 4 * np.sqrt(0.3 * 0.7 / n)
    joined = labels.merge(preds[["request_id", "ts", "text"]], on="request_id", validate="one_to_one")
    delay_days = (joined["labelled_at"] - joined["ts"]).dt.total_seconds() / 86400
    assert (delay_days >= 0).all()
    assert abs(delay_days.mean() - 2.0) <= 4 * 2.0 / np.sqrt(len(joined))  # exponential: sd = mean
    truth = dict(zip(corpus["text"], corpus["label"], strict=False))
    assert (joined["label"] == joined["text"].map(truth)).mean() > 0.98
    assert summary.n_labels == len(labels)


def test_label_horizon_and_immediate_labels(tmp_path, models, corpus):
    _, _, late = _run(tmp_path, "h", models, corpus, label_delay_days=3.0)  # default horizon: test end
    assert late["labelled_at"].max() <= pd.Timestamp(START, tz="UTC") + pd.Timedelta(days=7)
    _, preds, now = _run(tmp_path, "i", models, corpus, label_delay_days=0.0, label_rate=1.0)
    joined = now.merge(preds, on="request_id")
    assert len(now) == len(preds) and (joined["labelled_at"] == joined["ts"]).all()


def test_traffic_shape_heavy_tail_daily_cycle_latency(tmp_path, models, corpus):
    _, preds, _ = _run(tmp_path, "t", models, corpus, n_users=2000, daily_peak_hour=20.0, daily_amplitude=0.8)
    per_user = preds.groupby("unit_id").size()
    assert per_user.max() > 8 * per_user.median()
    hour = preds["ts"].dt.hour
    near_peak = hour.between(17, 22).mean()
    near_trough = hour.between(5, 10).mean()
    assert near_peak > 3 * near_trough  # density ratio (1+0.8cos)/(1-0.8cos) is ~5 at the extremes
    assert preds["ts"].min() >= pd.Timestamp(START, tz="UTC")
    assert preds["ts"].max() < pd.Timestamp(START, tz="UTC") + pd.Timedelta(days=7)
    profile: CostProfile = models["challenger"].cost_profile
    median = preds.loc[preds["variant"] == "challenger", "latency_ms"].median()
    assert abs(np.log(median) - profile.mu) < 0.1


def test_drift_schedule_moves_the_domain_mix(tmp_path, models, corpus):
    summary, preds, _ = _run(
        tmp_path, "d", models, corpus, mix_before="electronics", mix_after="restaurants", drift_day=3
    )
    domain = dict(zip(corpus["text"], corpus["domain"], strict=False))
    day = (preds["ts"] - pd.Timestamp(START, tz="UTC")).dt.days
    before, after = preds["text"][day < 3].map(domain), preds["text"][day >= 3].map(domain)
    assert (before == "electronics").mean() > 0.97 and (after == "restaurants").mean() > 0.97
    mix = summary.per_mix.pivot_table(index="date", columns="category", values="requests", fill_value=0)
    assert mix.loc["2024-06-03", "restaurants"] == 0 and mix.loc["2024-06-09", "electronics"] == 0


def test_gradual_drift_ramp(tmp_path, models, corpus):
    _, preds, _ = _run(
        tmp_path,
        "r",
        models,
        corpus,
        n_users=1500,
        mix_before="movies",
        mix_after="restaurants",
        drift_day=1,
        drift_ramp_days=4.0,
    )
    domain = preds["text"].map(dict(zip(corpus["text"], corpus["domain"], strict=False)))
    day = (preds["ts"] - pd.Timestamp(START, tz="UTC")).dt.days
    share = (domain == "restaurants").groupby(day).mean()
    assert share[0] < 0.03 and 0.25 < share[3] < 0.75 and share[6] > 0.97


def test_bad_inputs(tmp_path, models, corpus):
    exp = _experiment()
    cfg = SimulationConfig(n_users=10, progress=False)
    with pytest.raises(SimulationError, match=r"no model for variant\(s\) \['challenger'\]"):
        simulate(exp, {"champion": models["champion"]}, corpus, tmp_path, config=cfg, rng=0)
    other = train_model("tfidf_logreg", ["good", "bad"] * 4, ["pos", "neg"] * 4, rng=0, measure_cost=False)
    with pytest.raises(ValueError, match="disagree on their label sets"):
        simulate(exp, {"champion": models["champion"], "challenger": other}, corpus, tmp_path, config=cfg, rng=0)
    with pytest.raises(SimulationError, match="corpus lacks column 'label'"):
        simulate(exp, models, corpus[["text"]], tmp_path, config=cfg, rng=0)
    with pytest.raises(SimulationError, match=r"corpus labels \['meh'\]"):
        simulate(exp, models, corpus.assign(label="meh"), tmp_path, config=cfg, rng=0)
    with pytest.raises(SimulationError, match=r"mix categories \['yelp'\]"):
        simulate(exp, models, corpus, tmp_path, config=SimulationConfig(n_users=10, mix_before="yelp"), rng=0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_users": 0}, "n_users=0"),
        ({"label_rate": 1.2}, "label_rate=1.2"),
        ({"daily_amplitude": -0.1}, "daily_amplitude=-0.1"),
        ({"drift_day": 3}, "needs mix_after"),
        ({"mix_before": "a:x"}, "weight 'x' of 'a'"),
        ({"mix_before": "a:-1,b:2"}, "weights >= 0"),
    ],
)
def test_bad_config(kwargs, match):
    with pytest.raises(SimulationError, match=match):
        SimulationConfig(**kwargs)


def test_config_from_notebook_scalars():
    cfg = SimulationConfig.from_params(n_users=5, days=0, drift_day=-1, mix_before="", mix_after="")
    assert (cfg.days, cfg.drift_day, cfg.mix_before, cfg.mix_after) == (None, None, None, None)
    with pytest.raises(SimulationError, match=r"unknown simulation setting\(s\) \['users'\]"):
        SimulationConfig.from_params(users=5)


def test_existing_log_is_refused_replaced_or_appended(tmp_path, models, corpus):
    _, first, _ = _run(tmp_path, "x", models, corpus, seed=1)
    with pytest.raises(SimulationError, match="already holds experiment 'sim-test'"):
        _run(tmp_path, "x", models, corpus, seed=2)
    log = PredictionLog(tmp_path / "x")
    simulate(
        _experiment(),
        models,
        corpus,
        tmp_path / "x",
        config=SimulationConfig(n_users=400, progress=False),
        rng=2,
        if_exists="replace",
    )
    replaced = log.read_predictions().num_rows
    simulate(
        _experiment(),
        models,
        corpus,
        tmp_path / "x",
        config=SimulationConfig(n_users=400, progress=False),
        rng=1,
        if_exists="append",
    )
    assert log.read_predictions().num_rows == replaced + len(first)
