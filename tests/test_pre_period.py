"""The simulator's pre-period (the champion serves every user before the test) and persistent users."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from abkit.cuped import pre_period_key
from abkit.errors import AbkitError
from abkit.experiment import Experiment
from abkit.log import PredictionLog
from abkit.models import train_model
from abkit.simulate import SimulationConfig, SimulationError, simulate
from abkit.synthetic import make_corpus

START = "2024-06-03"


@pytest.fixture(scope="module")
def corpus():
    return make_corpus(1500, rng=21, new_vocab_rate=0.1)


@pytest.fixture(scope="module")
def models():
    train = make_corpus(600, rng=22)
    weak = train_model("tfidf_logreg", train["text"][:80], train["label"][:80], rng=0)
    strong = train_model("tfidf_logreg", train["text"], train["label"], rng=0)
    return {"champion": weak, "challenger": strong}


def _sim(tmp_path, name, models, corpus, **cfg):
    exp = Experiment.from_params(
        key="pre-test", split="50/50", variant_names="champion,challenger", start=START, duration_days=7
    )
    cfg = {"n_users": 300, "progress": False, **cfg}
    simulate(exp, models, corpus, tmp_path / name, config=SimulationConfig(**cfg), rng=np.random.default_rng(3))
    return PredictionLog(tmp_path / name)


def _frame(log: PredictionLog, key: str) -> pd.DataFrame:
    preds = log.read_predictions().to_pandas()
    return preds[preds["experiment"] == key]


def test_pre_period_is_logged_apart_and_leaves_the_test_unchanged(tmp_path, models, corpus):
    plain = _sim(tmp_path, "plain", models, corpus)
    with_pre = _sim(tmp_path, "pre", models, corpus, pre_period_days=5)
    test_plain, test_pre = _frame(plain, "pre-test"), _frame(with_pre, "pre-test")
    pd.testing.assert_frame_equal(test_plain.reset_index(drop=True), test_pre.reset_index(drop=True))
    assert _frame(plain, pre_period_key("pre-test")).empty
    pre = _frame(with_pre, pre_period_key("pre-test"))
    assert set(pre["variant"]) == {"champion"}  # the champion serves everyone
    assert pre["unit_id"].nunique() == 300  # every user, inside the test's coverage or not
    start = pd.Timestamp(START, tz="UTC")
    assert (pre["ts"] < start).all() and (pre["ts"] >= start - pd.Timedelta(days=5)).all()
    labels = with_pre.read_labels().to_pandas()
    pre_labels = labels[labels["experiment"] == pre_period_key("pre-test")]
    assert 0.1 * len(pre) < len(pre_labels) < 0.5 * len(pre)  # label_rate 0.3, delivered before the start
    assert (pre_labels["labelled_at"] < start).all()


def test_user_affinity_makes_users_persistent(tmp_path, models, corpus):
    def correlation(log: PredictionLog) -> float:
        pre = _frame(log, pre_period_key("pre-test")).groupby("unit_id")["confidence"].mean()
        test = _frame(log, "pre-test")
        test = test[test["variant"] == "champion"].groupby("unit_id")["confidence"].mean()
        both = pd.concat([pre, test], axis=1, join="inner")
        return float(both.corr().iloc[0, 1])

    assert abs(correlation(_sim(tmp_path, "free", models, corpus, pre_period_days=7))) < 0.2
    assert (
        correlation(_sim(tmp_path, "sticky", models, corpus, pre_period_days=7, user_affinity=0.95, user_pool_size=2))
        > 0.5
    )


def test_bad_pre_period_settings_are_refused():
    with pytest.raises(SimulationError, match="pre_period_days"):
        SimulationConfig(pre_period_days=-1)
    with pytest.raises(SimulationError, match="user_affinity"):
        SimulationConfig(user_affinity=1.5)
    with pytest.raises(AbkitError, match="too long"):
        pre_period_key("k" * 126)
