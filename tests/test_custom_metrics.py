"""Metrics declared by the user (SQL numerator and denominator, direction, unit): validated before anything runs,
reduced in the engine like the built-in ones."""

from __future__ import annotations

from collections.abc import Iterator
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
def private_registry() -> Iterator[None]:
    """Declared metrics stay inside each test: the registry's dicts are restored in place afterwards (modules such
    as ``abkit.analysis`` hold references to them)."""
    saved = [(d, dict(d)) for d in (R.METRICS, R.VARIABLES)]
    yield
    for d, before in saved:
        d.clear()
        d.update(before)


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


def _declare_examples() -> list[str]:
    """The issue's examples: the share of predictions with confidence below 0.6, an error cost that reads the
    label, and one over latency (kept in whole µs by the engine)."""
    declare_metric("low_confidence", "confidence < 0.6", "1", direction="lower", unit="share")
    declare_metric(
        "error_cost",
        "CASE WHEN label = 'pos' AND predicted_label = 'neg' THEN 5 WHEN label <> predicted_label THEN 1 ELSE 0 END",
        "label IS NOT NULL",
        direction="lower",
        unit="cost per labelled request",
    )
    declare_metric("slow_cost", "GREATEST(latency_ms - 45, 0) * 0.1", direction="lower", unit="ms over 45 ms")
    return ["low_confidence", "error_cost", "slow_cost"]


def test_a_declared_metric_that_the_engine_cannot_compile_is_a_metric_error(log: Path) -> None:
    """The engine check runs the declared SQL exactly as the pass would, on no rows: a variable registered around
    the declaration (bad SQL) is refused before any row is read, with the metric, the expression and the fix."""
    import duckdb

    from abkit.engine import open_engine
    from abkit.log.layout import log_source
    from abkit.metrics.custom import check_on_engine

    _declare_examples()
    name = "low_confidence"
    var = R.VARIABLES["u_low_confidence_num"]
    R.VARIABLES["u_low_confidence_num"] = R.Variable(
        var.name, var.per_user, var.side, var.scale, var.fixed.replace("confidence", "confidance"), "confidance < 0.6"
    )
    eng = open_engine(log_source(log, "custom"))
    try:
        with pytest.raises(
            MetricError,
            match=r"metric 'low_confidence': numerator 'confidance < 0\.6' is not valid "
            r"SQL on duckdb over the request columns.*confidance.*DuckDB and Spark both accept",
        ):
            check_on_engine(eng, [R.get_metric(name)])
    finally:
        eng.close()
    con = duckdb.connect()  # the analysis's own check, on the engine it was given
    try:
        with pytest.raises(MetricError, match="not valid SQL on duckdb"):
            collect(log, "custom", list(EXP.variant_names), metrics=[name], con=con)
    finally:
        con.close()


DIVIDES_BY_ZERO = r"the metrics could not be computed on {}: .*declared metrics \['ratio_of_nothing'\].*NULLIF\(x, 0\)"


def test_a_declared_metric_that_fails_on_the_rows_is_a_metric_error(log: Path) -> None:
    """Valid SQL that fails on the data (a division by zero) is a MetricError naming the declared metric and the
    fix, with the engine's error as its cause; guarded with NULLIF it is computed (the request adds nothing)."""
    declare_metric("ratio_of_nothing", "1 / (confidence - confidence)", direction="lower")
    with pytest.raises(MetricError, match=DIVIDES_BY_ZERO.format("duckdb")) as info:
        collect(log, "custom", list(EXP.variant_names), metrics=["ratio_of_nothing"], daily=False)
    assert info.value.__cause__ is not None
    declare_metric("guarded", "1 / NULLIF(confidence - confidence, 0)", direction="lower")
    st = collect(log, "custom", list(EXP.variant_names), metrics=["guarded"], daily=False).stats["guarded"]
    assert st.m_sum.tolist() == [0.0, 0.0] and st.d_sum.min() > 0


@pytest.mark.spark
@pytest.mark.slow
def test_declared_metrics_are_identical_on_duckdb_and_spark(log: Path, spark: object, tmp_path: Path) -> None:
    """User metrics reduced on Spark give the very same sums (hence statistics) as on DuckDB, on an appended log
    (deduplicated in the engine) and on its compacted copy (labels carry their prediction), per day and in total;
    the analysis with a declared primary metric gives the same effects; declaration errors are raised before any
    engine runs, and SQL that only DuckDB accepts is a clear error on Spark, not a Spark trace."""
    import shutil

    from abkit.analysis import analyze

    names = _declare_examples()
    compacted = tmp_path / "compacted"
    shutil.copytree(log, compacted)
    PredictionLog(compacted).compact("custom")
    for root in (log, compacted):
        d = collect(root, "custom", list(EXP.variant_names), metrics=names, quantiles=[0.5])
        s = collect(
            root, "custom", list(EXP.variant_names), metrics=names, quantiles=[0.5], engine="spark", spark=spark
        )
        assert set(s.stats) == set(d.stats) == set(names)
        for name in names:
            for f in ("n", "m_sum", "m_ss", "d_sum", "d_ss", "md_sum"):
                np.testing.assert_array_equal(getattr(s.stats[name], f), getattr(d.stats[name], f), err_msg=name)
                np.testing.assert_array_equal(getattr(s.daily[name], f), getattr(d.daily[name], f), err_msg=name)
        assert d.stats["error_cost"].m_sum.min() > 0 and d.stats["slow_cost"].m_sum.min() > 0  # not vacuous
    exp = Experiment.from_params(key="custom", start="2024-03-01", duration_days=4, primary_metric="error_cost")
    by_duckdb = analyze(log, exp, daily=False)
    by_spark = analyze(log, exp, daily=False, engine="spark", spark=spark)
    assert by_spark.effects.to_dicts() == by_duckdb.effects.to_dicts()
    assert by_spark.recommendation == by_duckdb.recommendation
    assert {e["metric"] for e in by_duckdb.effects.to_dicts()} >= set(names)

    # unknown column, bad SQL: refused when declared, whichever engine will run it (none has run yet)
    for numerator, says in (("confidance < 0.6", "confidance"), ("confidence <", "syntax error")):
        with pytest.raises(MetricError, match=rf"metric 'typo': numerator '{numerator}' is not valid SQL.*{says}"):
            declare_metric("typo", numerator, "1", direction="lower")
    assert "typo" not in R.METRICS
    # valid in DuckDB, not in Spark (a DuckDB-only function): DuckDB reduces it, Spark refuses it clearly
    declare_metric("long_label", "strlen(predicted_label) > 3", direction="higher")
    assert collect(log, "custom", list(EXP.variant_names), metrics=["long_label"]).stats["long_label"].n.sum() > 0
    declare_metric("ratio_of_nothing", "1 / (confidence - confidence)", direction="lower")  # fails on the rows
    with pytest.raises(MetricError, match=DIVIDES_BY_ZERO.format("spark")):
        collect(log, "custom", list(EXP.variant_names), metrics=["ratio_of_nothing"], engine="spark", spark=spark)
    with pytest.raises(
        MetricError,
        match=r"metric 'long_label': numerator 'strlen\(predicted_label\) > 3' is not "
        r"valid SQL on spark over the request columns.*strlen.*DuckDB and Spark both accept",
    ):
        collect(log, "custom", list(EXP.variant_names), metrics=["long_label"], engine="spark", spark=spark)
