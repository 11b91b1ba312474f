"""Compaction (abkit.log.compact): exact readers at every point, crash safety, foreign files, temp cleanup."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from abkit.log import LogError, LogFileError, PredictionLog
from abkit.log.layout import log_source
from abkit.metrics import LogStats, collect

VARIANTS = ["control", "challenger"]
UTC = dt.UTC
T0 = dt.datetime(2024, 3, 1, tzinfo=UTC)


def _table(n: int, seed: int, prefix: str = "r", days: int = 3) -> pa.Table:
    """``n`` predictions of experiment exp-1 over ``days`` days, ids ``<prefix><i>``, users u0..u(n/4)."""
    rng = np.random.default_rng(seed)
    i = np.arange(n)
    ts = T0.timestamp() * 1e6 + rng.integers(0, days * 86_400_000_000, n)
    return pa.table(
        {
            "experiment": ["exp-1"] * n,
            "variant": np.where(rng.random(n) < 0.5, *VARIANTS),
            "unit_id": np.strings.add("u", (i % max(n // 4, 1)).astype(str)),
            "request_id": np.strings.add(prefix, i.astype(str)),
            "ts": pa.array(ts.astype(np.int64), pa.timestamp("us", tz="UTC")),
            "text": ["t"] * n,
            "predicted_label": np.where(rng.random(n) < 0.6, "pos", "neg"),
            "confidence": np.round(rng.random(n), 4),
            "latency_ms": np.round(rng.gamma(2.0, 10.0, n), 3),
            "model_name": ["m"] * n,
            "model_version": ["1"] * n,
        }
    )


def _labels(preds: pa.Table, seed: int, share: float = 0.5) -> pa.Table:
    rng = np.random.default_rng(seed)
    keep = rng.random(preds.num_rows) < share
    ids = preds["request_id"].filter(pa.array(keep))
    return pa.table(
        {
            "experiment": ["exp-1"] * len(ids),
            "request_id": ids,
            "label": np.where(rng.random(len(ids)) < 0.7, "pos", "neg"),
            "labelled_at": pa.array([T0 + dt.timedelta(days=5)] * len(ids), pa.timestamp("us", tz="UTC")),
        }
    )


def _same(a: LogStats, b: LogStats) -> None:
    assert (a.days, a.duplicates) == (b.days, b.duplicates)
    for f in ("units", "predictions", "labelled"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f)
    for name, st in a.stats.items():
        for f in ("n", "m_sum", "m_ss", "d_sum", "d_ss", "md_sum"):
            np.testing.assert_array_equal(getattr(st, f), getattr(b.stats[name], f), err_msg=f"{name}.{f}")
    for p, q in a.quantiles.items():
        np.testing.assert_array_equal(q.estimate, b.quantiles[p].estimate)


def _logged(root: Path, n: int = 4_000) -> tuple[PredictionLog, LogStats]:
    """A log of ``n`` requests appended by two writers with overlapping ids, and labels in two calls; its stats."""
    log = PredictionLog(root)
    preds = _table(n, seed=1)
    with log.writer("exp-1", VARIANTS, batch_size=1_000) as w:
        w.append(preds.slice(0, 3 * n // 4))
    with log.writer("exp-1", VARIANTS, batch_size=1_000) as w:
        w.append(preds.slice(n // 2))  # a quarter of the ids again
    labels = _labels(preds, seed=2)
    log.append_labels(labels.slice(0, labels.num_rows // 2))
    log.append_labels(labels.slice(labels.num_rows // 3))
    return log, collect(root, "exp-1", VARIANTS)


def test_readers_give_the_same_answer_before_and_after_compaction_while_writers_go_on(tmp_path: Path) -> None:
    log, before = _logged(tmp_path)
    assert before.duplicates == 1_000 and before.predictions.sum() == 4_000
    (report,) = log.compact()
    assert (report.predictions, report.dropped_predictions, report.collided) == (4_000, 1_000, False)
    assert log_source(tmp_path, "exp-1").unique  # the fast path: no deduplication left to do
    _same(collect(tmp_path, "exp-1", VARIANTS), before)
    more = _table(500, seed=3, prefix="late")  # appended after the compaction, some ids repeated again
    with log.writer("exp-1", VARIANTS) as w:
        w.append(pa.concat_tables([more, _table(4_000, seed=1).slice(0, 100)]))
    mixed = collect(tmp_path, "exp-1", VARIANTS)  # compacted rows as they are, the new ones deduplicated
    assert mixed.predictions.sum() == 4_500 and mixed.duplicates == 1_100
    log.compact()
    _same(collect(tmp_path, "exp-1", VARIANTS), mixed)
    assert log.compact()[0].predictions == 0  # idempotent


def test_compaction_shows_its_stages_unless_told_not_to(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from abkit.log.compact import compact
    from abkit.progress import progress_hidden

    _logged(tmp_path / "a", n=200)
    capsys.readouterr()
    compact(tmp_path / "a")
    err = capsys.readouterr().err
    assert "abkit log compact" in err and "5/5" in err
    assert all(f"exp-1: {stage}" in err for stage in ("snapshot", "predictions", "labels", "key checks", "commit"))
    compact(tmp_path / "a")  # nothing to do: the stages it skips still complete the bar
    assert "5/5" in capsys.readouterr().err
    _logged(tmp_path / "b", n=200)
    capsys.readouterr()
    compact(tmp_path / "b", progress=False)
    with progress_hidden():
        compact(tmp_path / "a")
    assert capsys.readouterr().err == ""


COMPACT = textwrap.dedent("""
    import sys
    from abkit.log.compact import compact
    print("go", flush=True)
    compact(sys.argv[1])
    print("done", flush=True)
""")


def test_compaction_killed_at_random_points_leaves_readers_exact(tmp_path: Path) -> None:
    original, expected = _logged(tmp_path / "original", n=40_000)
    rng = np.random.default_rng(7)
    start = time.monotonic()
    original.compact()
    took = time.monotonic() - start  # in this process, imports done: the child needs about as long
    finished = 0
    for k, delay in enumerate(rng.uniform(0.0, 1.5 * took + 0.2, 6)):
        root = tmp_path / f"kill{k}"
        shutil.copytree(tmp_path / "original", root)
        for m in root.rglob("_manifest.json"):  # start from the appended log again (the compacted files orphans)
            m.unlink()
        proc = subprocess.Popen([sys.executable, "-c", COMPACT, str(root)], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline() == "go\n"  # type: ignore[union-attr]
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        out = proc.communicate()[0]
        finished += "done" in out
        _same(collect(root, "exp-1", VARIANTS), expected)  # exact wherever it stopped
        assert PredictionLog(root).read_predictions("exp-1").num_rows == 40_000
        PredictionLog(root).compact()  # a re-run completes
        assert log_source(root, "exp-1").unique
        _same(collect(root, "exp-1", VARIANTS), expected)
        assert not [p for p in root.rglob("*.tmp")]
    assert finished < 6  # at least one run was killed before it finished


def _foreign(preds: pa.Table) -> pa.Table:
    """The records as another tool might store them: other column order, float32, naive ns timestamps,
    dictionary strings, an extra column, no keys."""
    out = pa.table({name: preds[name] for name in reversed(preds.column_names)})
    out = out.set_column(out.column_names.index("confidence"), "confidence", preds["confidence"].cast(pa.float32()))
    out = out.set_column(out.column_names.index("ts"), "ts", preds["ts"].cast(pa.timestamp("ns")))
    out = out.set_column(out.column_names.index("variant"), "variant", preds["variant"].dictionary_encode())
    return out.append_column("region", pa.array(["eu"] * preds.num_rows))


def test_foreign_pyarrow_files_are_analysed_exactly_before_and_after_compaction(tmp_path: Path) -> None:
    preds = _table(3_000, seed=4)
    labels = _labels(preds, seed=5)
    ref = PredictionLog(tmp_path / "ref")  # the same records through abkit's writer
    preds = preds.set_column(
        preds.column_names.index("confidence"),
        "confidence",  # values float32 holds exactly
        preds["confidence"].cast(pa.float32()).cast(pa.float64()),
    )
    with ref.writer("exp-1", VARIANTS) as w:
        w.append(preds)
    ref.append_labels(labels)
    expected = collect(tmp_path / "ref", "exp-1", VARIANTS)
    root = tmp_path / "foreign"
    (root / "predictions" / "from-prod").mkdir(parents=True)
    (root / "labels").mkdir()
    pq.write_table(_foreign(preds.slice(0, 2_000)), root / "predictions" / "from-prod" / "part-00000.parquet")
    pq.write_table(_foreign(preds.slice(1_500)), root / "predictions" / "from-prod" / "part-00001.parquet")
    pq.write_table(labels.select(["label", "request_id", "labelled_at", "experiment"]), root / "labels" / "l.parquet")
    before = collect(root, "exp-1", VARIANTS)
    assert before.duplicates == 500
    _same(collect(root, "exp-1", VARIANTS), before)
    (report,) = PredictionLog(root).compact()
    assert report.predictions == 3_000 and log_source(root, "exp-1").copied
    after = collect(root, "exp-1", VARIANTS)
    _same(after, before)
    for f in ("units", "predictions", "labelled"):
        np.testing.assert_array_equal(getattr(after, f), getattr(expected, f))
    for name, st in after.stats.items():
        np.testing.assert_array_equal(st.m_sum, expected.stats[name].m_sum)
    assert (root / "predictions" / "from-prod" / "part-00000.parquet").exists()  # foreign files are kept, skipped


def test_a_bad_foreign_file_is_named_and_the_rest_stays_readable(tmp_path: Path) -> None:
    log, _ = _logged(tmp_path, n=400)
    good = _table(100, seed=9)
    good = good.set_column(0, "experiment", pa.array(["exp-2"] * 100))
    with log.writer("exp-2", VARIANTS) as w:
        w.append(good)
    bad_dir = tmp_path / "predictions" / "experiment=exp-1" / "imported"
    bad_dir.mkdir()
    pq.write_table(_table(10, seed=1).drop_columns(["latency_ms"]), bad_dir / "missing.parquet")
    with pytest.raises(LogFileError, match=r"missing\.parquet: column 'latency_ms' is missing; expected a number"):
        collect(tmp_path, "exp-1", VARIANTS)
    with pytest.raises(LogFileError, match="missing.parquet"):
        log.compact("exp-1")
    assert collect(tmp_path, "exp-2", VARIANTS).predictions.sum() == 100  # other experiments: unaffected
    typed = _table(10, seed=1)
    typed = typed.set_column(typed.column_names.index("confidence"), "confidence", pa.array(["high"] * 10))
    (bad_dir / "missing.parquet").unlink()
    pq.write_table(typed, bad_dir / "typed.parquet")
    with pytest.raises(LogFileError, match=r"typed\.parquet: column 'confidence' has type string; expected a number"):
        log.read_predictions("exp-1")
    assert log_source(tmp_path, "exp-1", on_bad_file="skip").deltas["predictions"]  # skipping it reads the rest
    (bad_dir / "typed.parquet").unlink()
    assert log.read_predictions("exp-1").num_rows == 400


def test_temp_files_of_killed_writers_are_cleaned(tmp_path: Path) -> None:
    log, _ = _logged(tmp_path, n=100)
    day = next((tmp_path / "predictions" / "experiment=exp-1").glob("date=*"))
    host = socket.gethostname().replace(".", "_")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    gone = day / f".part-a.parquet.{host}.{dead.pid}.tmp"  # this host, a process that no longer runs
    old = day / ".part-b.parquet.other-host.1.tmp"  # another host, older than the limit
    fresh = day / ".part-c.parquet.other-host.2.tmp"  # another host, maybe still writing
    mine = day / f".part-d.parquet.{host}.{os.getpid()}.tmp"  # a live writer here
    for p in (gone, old, fresh, mine):
        p.write_bytes(b"partial")
    os.utime(old, (time.time() - 7_200, time.time() - 7_200))
    log.compact(temp_max_age_s=3_600)
    assert (gone.exists(), old.exists(), fresh.exists(), mine.exists()) == (False, False, True, True)


def test_the_command_compacts_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from abkit.cli import main

    _logged(tmp_path, n=400)
    assert main(["log", "compact", str(tmp_path), "--experiment", "exp-1", "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (report["experiment"], report["predictions"], report["dropped_predictions"]) == ("exp-1", 400, 100)
    assert log_source(tmp_path, "exp-1").unique
    assert main(["log", "compact", str(tmp_path / "nothing")]) == 2  # not a log: a clear error, exit 2
    assert "holds no log" in capsys.readouterr().err


def test_compaction_names_a_bad_engine_and_options_of_the_other_engine(tmp_path: Path) -> None:
    from abkit.engine import EngineError
    from abkit.log.compact import compact

    log, _ = _logged(tmp_path, n=100)
    with pytest.raises(EngineError, match=r"compact: engine='polars' is unknown; use one of \('duckdb', 'spark'\)"):
        log.compact(engine="polars")
    with pytest.raises(LogError, match="memory_limit='2GB' caps DuckDB only"):
        compact(tmp_path, engine="spark", memory_limit="2GB")
    assert not log_source(tmp_path, "exp-1").compacted["predictions"]  # nothing happened


def test_the_command_passes_the_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import abkit.log.compact
    from abkit.cli import main

    seen: list[tuple[tuple[object, ...], dict[str, object]]] = []
    monkeypatch.setattr(abkit.log.compact, "compact", lambda *a, **k: seen.append((a, k)) or [])
    assert main(["log", "compact", str(tmp_path), "--engine", "spark"]) == 0
    assert main(["log", "compact", str(tmp_path), "--memory-limit", "1GB"]) == 0
    assert seen == [
        ((str(tmp_path), None), {"engine": "spark", "memory_limit": None}),
        ((str(tmp_path), None), {"engine": "duckdb", "memory_limit": "1GB"}),
    ]


# ---------------------------------------------------------------------------------------------------
# compaction on Spark: the same rows, keys, files and manifest as on DuckDB (one shared session: slow to start)


def _mixed(root: Path, spark: object) -> None:
    """A log as production leaves it: two writers' appends with retried ids, labels appended before and after
    their predictions (some twice), foreign files written by pyarrow (other column order and types, naive
    nanosecond timestamps, an unusable row) and by Spark (INT96 timestamps)."""
    log = PredictionLog(root)
    preds = _table(3_000, seed=11)
    labels = _labels(preds, seed=12)
    early = labels.filter(pa.array(np.isin(labels["request_id"].to_numpy(False), preds["request_id"][2_400:])))
    log.append_labels(early.slice(0, early.num_rows // 2))  # labels of requests logged later
    with log.writer("exp-1", VARIANTS, batch_size=500) as w:
        w.append(preds.slice(0, 1_200))
    with log.writer("exp-1", VARIANTS, batch_size=500) as w:
        w.append(preds.slice(900, 600))  # a retried batch on another worker
    log.append_labels(labels.slice(0, labels.num_rows // 3))
    log.append_labels(labels.slice(labels.num_rows // 4, labels.num_rows // 4))  # some labelled twice
    foreign = _foreign(preds.slice(1_500, 600))
    nanos = pa.compute.add(foreign["ts"].cast(pa.int64()), 789)  # below a microsecond: both engines round
    foreign = foreign.set_column(foreign.column_names.index("ts"), "ts", nanos.cast(pa.timestamp("ns")))
    bad = foreign.slice(0, 1).set_column(foreign.column_names.index("request_id"), "request_id", pa.array(["bad-0"]))
    bad = bad.set_column(bad.column_names.index("confidence"), "confidence", pa.array([float("nan")], pa.float32()))
    (root / "predictions" / "from-prod").mkdir(parents=True)
    pq.write_table(pa.concat_tables([foreign, bad]), root / "predictions" / "from-prod" / "part-00000.parquet")
    spark.createDataFrame(preds.slice(2_000, 400)).write.parquet(  # type: ignore[attr-defined]
        str(root / "predictions" / "from-spark")
    )


def _compacted_rows(root: Path, kind: str) -> pa.Table:
    manifest = json.loads((root / "predictions" / "experiment=exp-1" / "_manifest.json").read_text())
    table = pa.concat_tables(pq.read_table(root / f) for f in manifest["compacted"][kind])
    return table.sort_by([("request_id", "ascending")])


def _same_compaction(duck: Path, on_spark: Path, spark: object) -> None:
    """Two copies of a log, one compacted on DuckDB, one on Spark: the same manifest counts, files per date and
    arm (each of one arm, in the stored schema), rows and keys, and statistics on both engines."""
    from abkit.log.layout import STORED_LABEL_SCHEMA, STORED_PREDICTION_SCHEMA, single_values

    m_duck, m_spark = (
        json.loads((r / "predictions" / "experiment=exp-1" / "_manifest.json").read_text()) for r in (duck, on_spark)
    )
    for field in ("dropped", "invalid", "days", "collided", "generation"):
        assert m_spark[field] == m_duck[field], field
    for kind in ("predictions", "labels"):  # the same files absorbed (appended ones have each copy's own names)
        assert len(m_spark["consumed"][kind]) == len(m_duck["consumed"][kind])
        assert {e[0] for e in m_spark["consumed"][kind] if "experiment=" not in e[0]} == {
            e[0] for e in m_duck["consumed"][kind] if "experiment=" not in e[0]
        }
    for kind, schema in (("predictions", STORED_PREDICTION_SCHEMA), ("labels", STORED_LABEL_SCHEMA)):
        cells = []
        for root, manifest in ((duck, m_duck), (on_spark, m_spark)):
            files = [root / f for f in manifest["compacted"][kind]]
            arms = [set(pq.read_table(f, columns=["variant"])["variant"].to_pylist()) for f in files]
            for f, arm in zip(files, arms):
                assert pq.read_schema(f).equals(schema, check_metadata=False), f
                assert len(arm) == 1, f  # one arm per file (labels of no logged request: none)
                if kind == "predictions":
                    assert single_values([str(f)], "variant") == arm  # as readers see it: row-group statistics
            cells.append(sorted((f.parent.name, str(arm)) for f, arm in zip(files, arms)))
        assert cells[1] == cells[0]
        assert _compacted_rows(on_spark, kind).equals(_compacted_rows(duck, kind)), kind
    expected = collect(duck, "exp-1", VARIANTS)
    _same(collect(on_spark, "exp-1", VARIANTS), expected)
    _same(collect(on_spark, "exp-1", VARIANTS, engine="spark", spark=spark), expected)
    _same(collect(duck, "exp-1", VARIANTS, engine="spark", spark=spark), expected)


@pytest.mark.spark
@pytest.mark.slow
def test_files_written_by_spark_are_analysed_exactly(tmp_path: Path, spark: object) -> None:
    preds, root = _table(2_000, seed=6), tmp_path / "spark"
    labels = _labels(preds, seed=8)
    ref = PredictionLog(tmp_path / "ref")
    with ref.writer("exp-1", VARIANTS) as w:
        w.append(preds)
    ref.append_labels(labels)
    expected = collect(tmp_path / "ref", "exp-1", VARIANTS)
    spark.createDataFrame(preds).repartition(3).write.parquet(str(root / "predictions" / "prod"))  # type: ignore[attr-defined]
    spark.createDataFrame(labels).write.parquet(str(root / "labels" / "prod"))  # type: ignore[attr-defined]
    for stage in ("as written", "compacted"):
        got = collect(root, "exp-1", VARIANTS)
        for name, st in got.stats.items():
            np.testing.assert_array_equal(st.m_sum, expected.stats[name].m_sum, err_msg=f"{stage} {name}")
        np.testing.assert_array_equal(got.units, expected.units)
        on_spark = collect(root, "exp-1", VARIANTS, engine="spark", spark=spark)
        np.testing.assert_array_equal(on_spark.stats["accuracy"].m_sum, expected.stats["accuracy"].m_sum)
        PredictionLog(root).compact()
    assert log_source(root, "exp-1").unique


@pytest.mark.spark
@pytest.mark.slow
def test_compaction_on_spark_matches_duckdb_first_incrementally_and_idempotently(tmp_path: Path, spark: object) -> None:
    duck, on_spark = tmp_path / "duckdb", tmp_path / "spark"
    _mixed(duck, spark)
    shutil.copytree(duck, on_spark)
    before = collect(duck, "exp-1", VARIANTS)
    # ids 0-1199 and 900-1499 by writers, 1500-2099 (and bad-0, unusable) by pyarrow, 2000-2399 by Spark
    assert before.duplicates == 400 and before.predictions.sum() == 2_400 and before.invalid_predictions == 1
    _same(collect(duck, "exp-1", VARIANTS, engine="spark", spark=spark), before)  # Spark reads the mixed types too
    (r_duck,) = PredictionLog(duck).compact()
    (r_spark,) = PredictionLog(on_spark).compact(engine="spark", spark=spark)
    assert r_spark == r_duck and r_spark.predictions == 2_400 and r_spark.dropped_predictions == 400
    _same_compaction(duck, on_spark, spark)
    _same(collect(on_spark, "exp-1", VARIANTS), before)
    assert spark.conf.get("spark.sql.parquet.outputTimestampType") != "TIMESTAMP_MICROS"  # type: ignore[attr-defined]

    preds, labels = _table(3_000, seed=11), _labels(_table(3_000, seed=11), seed=12)
    for root in (duck, on_spark):  # more appends: new requests, retries of compacted ones, the early labels' requests
        log = PredictionLog(root)
        with log.writer("exp-1", VARIANTS) as w:
            w.append(pa.concat_tables([preds.slice(2_400), preds.slice(100, 50), _table(200, seed=13, prefix="late")]))
        log.append_labels(labels.slice(labels.num_rows // 3))
    (r_duck,) = PredictionLog(duck).compact()
    (r_spark,) = PredictionLog(on_spark).compact(engine="spark", spark=spark)
    assert r_spark == r_duck and r_spark.predictions == 800 and r_spark.dropped_predictions == 50
    _same_compaction(duck, on_spark, spark)
    assert log_source(on_spark, "exp-1").copied  # the early labels got their prediction's copy
    again = PredictionLog(on_spark).compact(engine="spark", spark=spark)[0]
    assert (again.predictions, again.labels, again.consumed) == (0, 0, 0)  # idempotent (it retires what it absorbed)
    assert PredictionLog(duck).compact()[0] == again
    _same_compaction(duck, on_spark, spark)


@pytest.mark.spark
@pytest.mark.slow
def test_compaction_on_spark_interrupted_before_its_commit_leaves_readers_exact_and_a_rerun_completes(
    tmp_path: Path, spark: object, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from abkit.cli import main
    from abkit.log import layout

    log, _ = _logged(tmp_path, n=2_000)
    log.compact()  # on DuckDB: the engines take turns on one log
    with log.writer("exp-1", VARIANTS) as w:  # new requests and retries of compacted ones
        w.append(pa.concat_tables([_table(300, seed=21, prefix="late"), _table(2_000, seed=1).slice(0, 40)]))
    expected = collect(tmp_path, "exp-1", VARIANTS)
    assert (expected.predictions.sum(), expected.duplicates) == (2_300, 540)

    def killed(*args: object) -> None:
        raise RuntimeError("killed before the commit")

    monkeypatch.setattr(layout, "write_manifest", killed)
    with pytest.raises(RuntimeError, match="killed before the commit"):
        log.compact(engine="spark", spark=spark)
    monkeypatch.undo()
    manifest = json.loads((tmp_path / "predictions" / "experiment=exp-1" / "_manifest.json").read_text())
    listed = {*manifest["compacted"]["predictions"], *manifest["compacted"]["labels"]}
    orphans = [p for p in tmp_path.rglob("*.compacted.parquet") if str(p.relative_to(tmp_path)) not in listed]
    assert orphans  # the interrupted run had moved its files into the log
    assert spark.conf.get("spark.sql.parquet.outputTimestampType") != "TIMESTAMP_MICROS"  # type: ignore[attr-defined]
    _same(collect(tmp_path, "exp-1", VARIANTS), expected)  # readers exact: orphans are not read
    _same(collect(tmp_path, "exp-1", VARIANTS, engine="spark", spark=spark), expected)
    assert main(["log", "compact", str(tmp_path), "--engine", "spark", "--json"]) == 0  # the re-run, from the CLI
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (report["predictions"], report["dropped_predictions"]) == (300, 40)
    assert report["removed"] >= len(orphans) and not any(p.exists() for p in orphans)
    assert log_source(tmp_path, "exp-1").unique
    _same(collect(tmp_path, "exp-1", VARIANTS), expected)
    with log.writer("exp-1", VARIANTS) as w:  # Spark reads files compacted by both engines, with new appends
        w.append(_table(50, seed=22, prefix="last"))
    _same(collect(tmp_path, "exp-1", VARIANTS, engine="spark", spark=spark), collect(tmp_path, "exp-1", VARIANTS))


COMPACT_ON_SPARK = textwrap.dedent("""
    import sys
    from abkit.engine import spark_session
    from abkit.log.compact import compact
    session = spark_session("abkit-killed")
    print("go", flush=True)
    compact(sys.argv[1], engine="spark", spark=session)
    print("done", flush=True)
""")


@pytest.mark.spark
@pytest.mark.slow
def test_compaction_on_spark_killed_at_random_points_leaves_readers_exact(tmp_path: Path, spark: object) -> None:
    """The driver and its JVM killed together (SIGKILL to the process group: the machine going down) at random
    points of a compaction on Spark; readers stay exact and a re-run completes."""
    original, expected = _logged(tmp_path / "original", n=4_000)
    timing = tmp_path / "timing"
    shutil.copytree(tmp_path / "original", timing)
    start = time.monotonic()
    PredictionLog(timing).compact(engine="spark", spark=spark)
    took = time.monotonic() - start  # on the warm shared session: the child's compaction needs about as long
    finished = 0
    for k, delay in enumerate(np.random.default_rng(11).uniform(0.0, 1.5 * took, 3)):
        root = tmp_path / f"kill{k}"
        shutil.copytree(tmp_path / "original", root)
        proc = subprocess.Popen(
            [sys.executable, "-c", COMPACT_ON_SPARK, str(root)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        assert proc.stdout.readline() == "go\n"  # type: ignore[union-attr]
        time.sleep(delay)
        os.killpg(proc.pid, signal.SIGKILL)
        finished += "done" in proc.communicate()[0]
        _same(collect(root, "exp-1", VARIANTS), expected)  # exact wherever it stopped
        PredictionLog(root).compact(engine="spark", spark=spark)  # a re-run completes
        assert log_source(root, "exp-1").unique
        _same(collect(root, "exp-1", VARIANTS), expected)
        assert not list(root.rglob("*.tmp")) and not list((root / ".abkit-compact-tmp").rglob("*.parquet"))
    assert finished < 3  # at least one run was killed before it finished


@pytest.mark.spark
def test_both_engines_round_nanoseconds_alike_on_ties_and_before_1970(tmp_path: Path, spark: object) -> None:
    from abkit.engine import DuckDBEngine, SparkEngine
    from abkit.log.layout import LogSource

    nanos = [1_700_000_000_000_000_499, 1_700_000_000_000_000_500, 1_700_000_000_000_001_500, -1_499, -1_500, -501]
    preds = _foreign(_table(len(nanos), seed=5))
    preds = preds.set_column(preds.column_names.index("ts"), "ts", pa.array(nanos, pa.timestamp("ns")))
    pq.write_table(preds, tmp_path / "ns.parquet")
    src = LogSource(
        "exp-1",
        {"predictions": (), "labels": ()},
        {"predictions": (str(tmp_path / "ns.parquet"),), "labels": ()},
        unique=False,
    )
    micros = [1_700_000_000_000_000, 1_700_000_000_000_001, 1_700_000_000_000_002, -1, -2, -1]  # half away from 0
    expected = sorted(zip(preds["request_id"].to_pylist(), micros, strict=True))
    query = "SELECT request_id, {us}(ts) FROM abkit_pred_dall ORDER BY request_id"
    assert DuckDBEngine(src).sql(query.format(us="epoch_us")) == expected
    assert SparkEngine(src, spark).sql(query.format(us="unix_micros")) == expected


@pytest.mark.spark
def test_spark_reads_and_compacts_files_with_nanosecond_timestamps(tmp_path: Path, spark: object) -> None:
    """pandas' timestamps reach Parquet in nanoseconds, which Spark refuses as timestamps: the engine reads them
    as integers and rounds them to microseconds as DuckDB does (half away from zero)."""
    log, _ = _logged(tmp_path, n=100)
    (tmp_path / "predictions" / "from-prod").mkdir()
    preds = _foreign(_table(10, seed=3, prefix="ns"))
    utc = pa.compute.add(preds["ts"].cast(pa.int64()), 500).cast(pa.timestamp("ns", tz="UTC"))  # a tie: rounds up
    pq.write_table(
        preds.set_column(preds.column_names.index("ts"), "ts", utc),
        tmp_path / "predictions" / "from-prod" / "ns.parquet",
    )
    labels = _labels(_table(10, seed=3, prefix="ns"), seed=4)
    stamps = labels["labelled_at"].cast(pa.timestamp("ns"))  # naive: taken as UTC
    pq.write_table(
        labels.set_column(labels.column_names.index("labelled_at"), "labelled_at", stamps),
        tmp_path / "labels" / "ns.parquet",
    )
    expected = collect(tmp_path, "exp-1", VARIANTS)
    assert expected.predictions.sum() == 110
    _same(collect(tmp_path, "exp-1", VARIANTS, engine="spark", spark=spark), expected)
    (report,) = log.compact(engine="spark", spark=spark)
    assert (report.predictions, report.labels) == (110, expected.labelled.sum())
    _same(collect(tmp_path, "exp-1", VARIANTS), expected)
    stored = _compacted_rows(tmp_path, "predictions").filter(
        pa.compute.starts_with(pa.compute.field("request_id"), "ns")
    )
    whole = pa.compute.divide(preds["ts"].cast(pa.int64()), 1000)  # the records' microseconds (+500 ns: one more)
    micros = pa.compute.add(whole, 1).cast(pa.timestamp("us", tz="UTC"))
    assert sorted(stored["ts"].to_pylist()) == sorted(micros.to_pylist())


@pytest.mark.spark
def test_compaction_on_spark_says_when_its_python_workers_lack_abkit(
    tmp_path: Path, spark: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    log, _ = _logged(tmp_path, n=100)
    bare = tmp_path / "bare-python"  # this Python without its site-packages: no pyarrow, no numpy
    bare.write_text(f'#!/bin/sh\nexec {sys.executable} -S "$@"\n')
    bare.chmod(0o755)
    # the interpreter Spark starts for UDFs created from now on (PYSPARK_PYTHON, read when the session started)
    monkeypatch.setattr(spark.sparkContext, "pythonExec", str(bare))  # type: ignore[attr-defined]
    with pytest.raises(LogError, match=r"cannot compute the ids' keys with abkit \(.*No module.*PYSPARK_PYTHON"):
        log.compact(engine="spark", spark=spark)
    assert not log_source(tmp_path, "exp-1").compacted["predictions"]  # nothing happened
