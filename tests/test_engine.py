"""abkit.engine: the exactly-once views over a log source, on DuckDB and on Spark."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest

from abkit.engine import EngineError, open_engine
from abkit.log import PredictionLog
from abkit.log.layout import log_source

UTC = dt.UTC
T0 = dt.datetime(2024, 3, 1, 10, tzinfo=UTC)
ONCE = (
    "SELECT variant, request_id, latency_ms FROM abkit_pred_once ORDER BY request_id",
    "SELECT request_id, label FROM abkit_lab_once ORDER BY request_id",
)


def _rec(request_id: str, variant: str = "control", latency_ms: float = 10.0, hours: int = 0) -> dict:
    return dict(
        variant=variant,
        unit_id="u" + request_id[-1],
        request_id=request_id,
        ts=T0 + dt.timedelta(hours=hours),
        text="t",
        predicted_label="pos",
        confidence=0.5,
        latency_ms=latency_ms,
        model_name="m",
        model_version="1",
    )


def _log(root: Path, compacted: bool) -> Path:
    """r1 logged twice (the later copy in another writer's file), r2 once; r1 labelled twice; another
    experiment's rows beside them; compacted or as appended."""
    log = PredictionLog(root)
    with log.writer("exp", ["control", "challenger"]) as w:
        w.append([_rec("r1"), _rec("r2", "challenger", 20.0)])
    with log.writer("exp", ["control", "challenger"]) as w:
        w.append([_rec("r1", latency_ms=99.0, hours=1)])
    with log.writer("other", ["control"]) as w:
        w.append([_rec("r9")])
    log.append_labels([dict(experiment="exp", request_id="r1", label="pos", labelled_at=T0)])
    log.append_labels([dict(experiment="exp", request_id="r1", label="neg", labelled_at=T0 + dt.timedelta(days=1))])
    if compacted:
        log.compact()
    return root


EXPECTED = ([("control", "r1", 10.0), ("challenger", "r2", 20.0)], [("r1", "pos")])


@pytest.mark.parametrize("checked", [True, False])
def test_once_views_hold_each_request_once(tmp_path: Path, checked: bool) -> None:
    root = _log(tmp_path, checked)
    src = log_source(root, "exp")
    assert src.unique is checked  # appended files: the engine deduplicates them
    eng = open_engine(src)
    try:
        assert (eng.sql(ONCE[0]), eng.sql(ONCE[1])) == EXPECTED
        assert eng.arrow(ONCE[0]).column("request_id").to_pylist() == ["r1", "r2"]
        assert eng.arrays(ONCE[0])["latency_ms"].tolist() == [10.0, 20.0]
        assert src.variants() == ({"control", "challenger"} if checked else None)
    finally:
        eng.close()


def test_unknown_engine_names_the_choices(tmp_path: Path) -> None:
    src = log_source(_log(tmp_path, True), "exp")
    with pytest.raises(EngineError, match=r"engine='polars' is unknown; use one of \('duckdb', 'spark'\)"):
        open_engine(src, "polars")


@pytest.mark.spark
@pytest.mark.slow
@pytest.mark.skipif(shutil.which("java") is None, reason="Java is not installed; Spark needs a JVM")
def test_spark_gives_the_same_once_views(tmp_path: Path) -> None:
    pytest.importorskip("pyspark", reason="pyspark is not installed")
    from abkit.engine import spark_session

    session = spark_session("abkit-engine-tests")
    try:
        for checked in (True, False):
            eng = open_engine(log_source(_log(tmp_path / str(checked), checked), "exp"), "spark", spark=session)
            assert (eng.sql(ONCE[0]), eng.sql(ONCE[1])) == EXPECTED
    finally:
        session.stop()
