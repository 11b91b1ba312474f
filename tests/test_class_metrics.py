"""Class metrics reduced in SQL (precision, recall, F1 of a positive label; recall per class and macro-F1):
against a pandas reference on every log layout, DuckDB and Spark identical, F1 driving a decision, and a
real imbalanced dataset (SMS spam, 13 % positive)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from abkit.analysis import analyze
from abkit.errors import AbkitError
from abkit.experiment import Experiment, Guardrail
from abkit.log import PredictionLog
from abkit.metrics import MetricError, collect
from abkit.stats.smooth import VectorStats

EXP = Experiment.from_params(key="ctest", start="2024-03-01", duration_days=4)
CLASSES = ("ham", "promo", "spam")
T0 = dt.datetime(2024, 3, 1, 8, tzinfo=dt.UTC)


def _write(
    root: Path,
    *,
    n_users: int = 600,
    seed: int = 4,
    classes: tuple[str, ...] = CLASSES,
    recall: dict[str, float] | None = None,
    compact: bool = True,
) -> pd.DataFrame:
    """A log whose users each have their own class mix; the challenger finds spam more often; compacted (the
    fast path) or as appended. Returns the requests with their labels (None where unlabelled)."""
    rng = np.random.default_rng(seed)
    recall = recall or {"control": 0.7, "challenger": 0.85}
    ids = np.array([f"u{i:05d}" for i in range(n_users)])
    arms = np.asarray(EXP.assign(ids))
    rows = []
    for u, a in zip(ids, arms):
        mix = rng.dirichlet(np.ones(len(classes)))
        variant = EXP.variant_names[a]
        for k in range(1 + rng.poisson(3)):
            truth = classes[rng.choice(len(classes), p=mix)]
            ok = rng.random() < (recall[variant] if truth == "spam" else 0.8)
            pred = truth if ok else classes[(classes.index(truth) + 1 + rng.integers(len(classes) - 1)) % len(classes)]
            rows.append(
                {
                    "variant": variant,
                    "unit_id": u,
                    "request_id": f"{u}-{k}",
                    "ts": T0 + dt.timedelta(hours=k),
                    "text": "t",
                    "predicted_label": pred,
                    "confidence": 0.7,
                    "latency_ms": 5.0,
                    "model_name": "m",
                    "model_version": "1",
                    "truth": truth,
                    "labelled": rng.random() < 0.6,
                }
            )
    frame = pd.DataFrame(rows)
    log = PredictionLog(root)
    with log.writer("ctest", list(EXP.variant_names)) as w:
        w.append(frame.drop(columns=["truth", "labelled"]))
    lab = frame[frame["labelled"]]
    log.append_labels(
        pd.DataFrame(
            {
                "experiment": "ctest",
                "request_id": lab["request_id"],
                "label": lab["truth"],
                "labelled_at": T0 + dt.timedelta(days=1),
            }
        )
    )
    if compact:
        log.compact()
    return frame.assign(label=frame["truth"].where(frame["labelled"]))


def _user_sums(frame: pd.DataFrame, cls: str) -> pd.DataFrame:
    f = frame.assign(
        tp=(frame["label"] == cls) & (frame["predicted_label"] == cls),
        pp=frame["label"].notna() & (frame["predicted_label"] == cls),
        ap=frame["label"] == cls,
    )
    return f.groupby(["variant", "unit_id"])[["tp", "pp", "ap"]].sum().astype(float).reset_index()


def _ratio_ref(frame: pd.DataFrame, cls: str, num: str, den: str) -> dict[str, np.ndarray]:
    u = _user_sums(frame, cls)
    u["f1n"], u["f1d"] = 2 * u["tp"], u["pp"] + u["ap"]
    out = {k: [] for k in ("n", "m_sum", "m_ss", "d_sum", "d_ss", "md_sum")}
    for v in EXP.variant_names:
        g = u[u["variant"] == v]
        m, d = g[num].to_numpy(), g[den].to_numpy()
        carrying = int(((m != 0) | (d != 0)).sum())  # n: the users with the metric's data (issue 11)
        for k, x in zip(out, (carrying, m.sum(), (m * m).sum(), d.sum(), (d * d).sum(), (m * d).sum())):
            out[k].append(x)
    return {k: np.array(v) for k, v in out.items()}


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, pd.DataFrame]]:
    base = tmp_path_factory.mktemp("class")
    return {"unique": (base / "u", _write(base / "u")), "plain": (base / "p", _write(base / "p", compact=False))}


@pytest.mark.parametrize("layout", ["unique", "plain"])
def test_class_metrics_match_a_pandas_reference(logs, layout: str) -> None:
    root, frame = logs[layout]
    s = collect(root, "ctest", list(EXP.variant_names), positive_label="spam", class_metrics=True, daily=False)
    for name, (num, den) in {"precision": ("tp", "pp"), "recall": ("tp", "ap"), "f1": ("f1n", "f1d")}.items():
        ref = _ratio_ref(frame, "spam", num, den)
        for k, v in ref.items():
            np.testing.assert_allclose(getattr(s.stats[name], k), v, rtol=1e-12, err_msg=f"{name}.{k}")
    for c in CLASSES:  # recall per class (three classes)
        np.testing.assert_allclose(s.stats[f"recall:{c}"].m_sum, _ratio_ref(frame, c, "tp", "ap")["m_sum"])
    # macro-F1: mean of the classes' F1, delta method on the joint per-user sums
    users = {c: _user_sums(frame, c).set_index(["variant", "unit_id"]) for c in CLASSES}
    for i, v in enumerate(EXP.variant_names):
        x = np.column_stack(
            [col for c in CLASSES for col in (2 * users[c].loc[v, "tp"], users[c].loc[v, "pp"] + users[c].loc[v, "ap"])]
        )
        ref = VectorStats.from_units(x).mean_of_ratios([(0, 1), (2, 3), (4, 5)])
        assert s.moments["macro_f1"].mean[i] == pytest.approx(float(ref.mean), rel=1e-12)
        assert s.moments["macro_f1"].var[i] == pytest.approx(float(ref.var), rel=1e-9)
    lab = frame[frame["label"].notna()]
    ref_conf = lab.groupby(["variant", "label", "predicted_label"]).size()
    assert {(v, a, b): n for v, a, b, n in s.confusion} == {k: int(n) for k, n in ref_conf.items()}


def test_two_classes_have_no_macro_metrics(tmp_path: Path) -> None:
    _write(tmp_path / "bin", classes=("ham", "spam"))
    s = collect(tmp_path / "bin", "ctest", list(EXP.variant_names), positive_label="spam", daily=False)
    assert {"precision", "recall", "f1"} <= set(s.stats) and not s.moments
    assert not any(k.startswith(("recall:", "__")) for k in s.stats)
    with pytest.raises(MetricError, match="more than two classes"):
        collect(tmp_path / "bin", "ctest", list(EXP.variant_names), metrics=["macro_f1"], class_metrics=True)


def test_a_label_with_quotes_is_safe_sql(tmp_path: Path) -> None:
    _write(tmp_path / "q", classes=("it's", "spam", "x"))
    s = collect(tmp_path / "q", "ctest", list(EXP.variant_names), positive_label="it's", daily=False)
    assert s.stats["recall"].d_sum.sum() > 0


def test_f1_as_primary_metric_drives_the_decision(tmp_path: Path) -> None:
    exp = dataclasses.replace(EXP, duration_days=1, primary_metric="f1", guardrails=(Guardrail("recall", margin=0.02),))
    _write(tmp_path / "f1", n_users=3000, classes=("ham", "spam"), recall={"control": 0.55, "challenger": 0.9})
    r = analyze(tmp_path / "f1", exp, positive_label="spam", inference="fixed")
    assert (r.recommendation.decision, r.recommendation.variant) == ("ship", "challenger")
    assert any(x.startswith("f1 challenger − control") for x in r.recommendation.reasons)
    rows = {(m["name"], m["variant"]): m for m in r.metrics.to_dicts()}
    f1 = rows[("f1", "challenger")]
    assert f1["ci_low"] < f1["estimate"] < f1["ci_high"] and "of class 'spam'" in f1["method"]
    js = r.to_json()
    assert {c["label"] for c in js["confusion"]} == {"ham", "spam"}
    with pytest.raises(AbkitError, match="positive_label"):
        analyze(tmp_path / "f1", exp)


SMS = Path(os.environ.get("ABKIT_DATA_DIR", Path(__file__).resolve().parents[1] / ".." / "shared" / "data"))


@pytest.mark.skipif(
    not (SMS / "sms_spam_collection" / "SMSSpamCollection").exists(),
    reason="the SMS Spam Collection is not in ../shared/data (or ABKIT_DATA_DIR)",
)
def test_imbalanced_sms_spam_gets_f1_and_recall_per_arm(tmp_path: Path) -> None:
    from abkit.models import train_model
    from abkit.simulate import SimulationConfig, simulate

    lines = (SMS / "sms_spam_collection" / "SMSSpamCollection").read_text(encoding="utf-8", errors="replace")
    pairs = [line.split("\t", 1) for line in lines.split("\n") if "\t" in line]
    data = pd.DataFrame(pairs, columns=["label", "text"]).drop_duplicates("text").sample(frac=1.0, random_state=3)
    assert 0.10 < (data["label"] == "spam").mean() < 0.16  # imbalanced: about 13 % spam
    train, pool = data.iloc[:1500], data.iloc[1500:].reset_index(drop=True)
    weak = train_model("tfidf_logreg", train["text"][:60], train["label"][:60], rng=0)  # misses most spam
    strong = train_model("tfidf_logreg", train["text"], train["label"], rng=0)
    exp = Experiment.from_params(
        key="sms", variant_names="champion,challenger", start="2024-03-01", duration_days=7, primary_metric="f1"
    )
    simulate(
        exp,
        {"champion": weak, "challenger": strong},
        pool,
        tmp_path / "log",
        config=SimulationConfig(n_users=1500, label_rate=0.6, label_delay_days=0.0, progress=False),
        rng=5,
    )
    r = analyze(tmp_path / "log", exp, positive_label="spam", daily=False)
    rows = {(m["name"], m["variant"]): m for m in r.metrics.to_dicts()}
    for name in ("f1", "recall", "precision"):
        for v in exp.variant_names:
            m = rows[(name, v)]
            assert m["ci_low"] is not None and m["ci_low"] <= m["estimate"] <= m["ci_high"], (name, v)
    assert rows[("recall", "champion")]["estimate"] < rows[("recall", "challenger")]["estimate"]
    assert rows[("accuracy", "champion")]["estimate"] > 0.8  # accuracy hides what the weak filter misses
    assert (r.recommendation.decision, r.recommendation.variant) == ("ship", "challenger")
    assert r.recommendation.reasons[0].startswith("f1 challenger − control")


@pytest.mark.spark
@pytest.mark.slow
def test_duckdb_and_spark_agree_on_class_metrics(logs, spark) -> None:
    for root, _ in logs.values():
        d = collect(root, "ctest", list(EXP.variant_names), positive_label="spam", daily=False)
        s = collect(
            root, "ctest", list(EXP.variant_names), positive_label="spam", daily=False, engine="spark", spark=spark
        )
        assert s.confusion == d.confusion and set(s.stats) == set(d.stats)
        for name in d.stats:
            for f in ("n", "m_sum", "m_ss", "d_sum", "d_ss", "md_sum"):
                np.testing.assert_array_equal(getattr(s.stats[name], f), getattr(d.stats[name], f))
        np.testing.assert_array_equal(s.moments["macro_f1"].var, d.moments["macro_f1"].var)
