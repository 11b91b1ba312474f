"""Benchmark of the A/B analysis: a 10 M-row Parquet log analysed end to end, against baselines measured in
the same run (bare DuckDB aggregation, tea-tasting on DuckDB per-user aggregates, pandas + statsmodels),
and 10,000 simulated A/A experiments.

    .venv/bin/python benchmarks/bench_stats.py [--quick] [--rows N]

Prints one JSON object; exits 1 when a target is missed (never with --quick).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROUNDS = 5  # interleaved rounds of the gated timings
TARGETS = {
    "analysis_s": 1.0,
    "ratio_vs_bare_duckdb": 2.0,
    "ratio_vs_tea_tasting": 1.0,
    "speedup_vs_pandas_statsmodels": 5.0,
    "aa_10000_s": 10.0,
}


def _rounds(fns: dict[str, Callable[[], Any]], rounds: int) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """Seconds of each function per round, the functions interleaved within a round so that a slow spell of
    this (shared) machine hits the analysis and its baselines alike; and each function's last result."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    out: dict[str, Any] = {}
    for _ in range(rounds):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            out[k] = fn()
            times[k].append(time.perf_counter() - t0)
    return times, out


def _time(fn: Callable[[], Any], repeat: int = 2) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def _log_tables(rows: int, seed: int) -> tuple[Any, Any, Any]:
    """A realistic log as Arrow tables: skewed users (several requests each) over 14 days, labels for 30 %
    of the requests, and 0.1 % of the requests retried (logged a second time)."""
    import duckdb

    users = max(rows // 10, 10)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")
    con.execute(f"SELECT setseed({seed / 1e9})")
    con.execute(f"""
CREATE TABLE p AS
SELECT 'bench' AS experiment,
       CASE WHEN hash(u) % 2 = 0 THEN 'control' ELSE 'challenger' END AS variant,
       'user-' || u AS unit_id, 'req-' || i AS request_id,
       TIMESTAMPTZ '2024-01-01 00:00:00+00' + to_microseconds(CAST(((u % 10) + random() * 4) * 86400e6 AS BIGINT)) AS ts,
       'text' AS text, CASE WHEN random() < 0.5 THEN 'pos' ELSE 'neg' END AS predicted_label,
       random() AS confidence,
       20 + 10 * random() + CASE WHEN random() < 0.02 THEN 100 ELSE 0 END
          + CASE WHEN hash(u) % 2 = 0 THEN 0 ELSE 1 END AS latency_ms,
       'model' AS model_name, '1' AS model_version
FROM (SELECT i, CAST(floor(pow(random(), 2) * {users}) AS BIGINT) AS u FROM range({rows}) t(i))""")
    preds = con.sql("SELECT * FROM p").to_arrow_table()
    retried = con.sql("SELECT * FROM p USING SAMPLE 0.1 PERCENT (bernoulli, 1)").to_arrow_table()
    labels = con.sql("""SELECT experiment, request_id,
        CASE WHEN random() < 0.8 THEN predicted_label WHEN predicted_label = 'pos' THEN 'neg' ELSE 'pos' END AS label,
        ts + INTERVAL 6 HOUR AS labelled_at FROM p WHERE random() < 0.3""").to_arrow_table()
    return preds, retried, labels


def make_log(root: Path, rows: int, seed: int = 0, *, foreign: bool = False) -> int:
    """Write the log through abkit's writers and compact it (the retries are dropped by compaction) or, with
    ``foreign``, as plain Parquet files that another tool wrote, retries included, which readers must
    deduplicate. Returns the number of retried rows."""
    from abkit.log import PredictionLog

    preds, retried, labels = _log_tables(rows, seed)
    if foreign:
        import pyarrow.parquet as pq

        pred = root / "predictions" / "experiment=bench" / "date=2024-01-01"
        lab = root / "labels" / "experiment=bench" / "date=2024-01-01"
        pred.mkdir(parents=True)
        lab.mkdir(parents=True)
        pq.write_table(preds, pred / "part-0.parquet")
        pq.write_table(retried, pred / "part-retry.parquet")
        pq.write_table(labels, lab / "part-0.parquet")
        return retried.num_rows
    log = PredictionLog(root)
    chunk = 1_000_000
    with log.writer("bench", ["control", "challenger"], batch_size=chunk) as w:
        for lo in range(0, preds.num_rows, chunk):
            w.append(preds.slice(lo, chunk))
        w.append(retried)
    log.append_labels(labels)
    (report,) = log.compact()
    log.compact()  # deletes the absorbed appended files: the baselines read the compacted files only
    return report.dropped_predictions


def bare_duckdb(root: Path, user: str = "unit_key") -> Any:
    """The minimal clustered aggregation a correct analysis needs: per-user sums, then per-arm sums. Users are
    grouped by the stored integer ``unit_key``, the same advantage abkit's analysis takes (``unit_id``: the
    string ids)."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    src = f"read_parquet('{root}/predictions/**/*.parquet', hive_partitioning = false)"
    return con.execute(f"""
WITH u AS (SELECT variant, {user}, COUNT(*) AS n, SUM(latency_ms) AS lat, SUM(confidence) AS conf FROM {src} GROUP BY ALL)
SELECT variant, COUNT(*), SUM(n), SUM(n * n), SUM(lat), SUM(lat * lat), SUM(lat * n), SUM(conf), SUM(conf * conf), SUM(conf * n)
FROM u GROUP BY variant""").fetchall()


def naive_duckdb(root: Path) -> Any:
    import duckdb

    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    src = f"read_parquet('{root}/predictions/**/*.parquet', hive_partitioning = false)"
    return con.execute(
        f"SELECT variant, COUNT(*), SUM(latency_ms), SUM(confidence) FROM {src} GROUP BY variant"
    ).fetchall()


def _user_frame(root: Path, copied: bool = True) -> Any:
    """DuckDB per-user aggregates for tea-tasting: with ``copied`` the labels' stored copy of their
    prediction (variant, unit key, predicted label) spares the join, the same advantage abkit's analysis
    takes; without, the plain join on request ids."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    p = f"read_parquet('{root}/predictions/**/*.parquet', hive_partitioning = false)"
    lab = f"read_parquet('{root}/labels/**/*.parquet', hive_partitioning = false)"
    if not copied:
        return con.execute(f"""
SELECT p.variant, p.unit_id, COUNT(*) AS n, SUM(p.latency_ms) AS latency, COUNT(l.label) AS labelled,
       SUM(CASE WHEN l.label = p.predicted_label THEN 1 ELSE 0 END) AS correct
FROM {p} p LEFT JOIN {lab} l USING (request_id) GROUP BY ALL""").df()
    return con.execute(f"""
WITH u AS (SELECT variant, unit_key, COUNT(*) AS n, SUM(latency_ms) AS latency FROM {p} GROUP BY ALL),
l AS (SELECT variant, unit_key, COUNT(*) AS labelled, SUM(CASE WHEN label = predicted_label THEN 1 ELSE 0 END) AS correct
      FROM {lab} GROUP BY ALL)
SELECT u.*, coalesce(l.labelled, 0) AS labelled, coalesce(l.correct, 0) AS correct
FROM u LEFT JOIN l USING (variant, unit_key)""").df()


def tea_tasting_path(root: Path, copied: bool = True) -> Any:
    import tea_tasting as tt

    data = _user_frame(root, copied)
    exp = tt.Experiment(
        accuracy=tt.RatioOfMeans("correct", "labelled"),
        latency=tt.RatioOfMeans("latency", "n"),
        sample_ratio=tt.SampleRatio(),
    )
    return exp.analyze(data, control="control")


def pandas_statsmodels(root: Path) -> Any:
    import numpy as np
    import pandas as pd
    from statsmodels.stats.proportion import proportions_chisquare
    from statsmodels.stats.weightstats import ttest_ind

    p = pd.read_parquet(
        root / "predictions" / "experiment=bench",
        columns=["variant", "unit_id", "request_id", "ts", "predicted_label", "confidence", "latency_ms"],
    )
    lab = pd.read_parquet(root / "labels" / "experiment=bench", columns=["request_id", "label", "labelled_at"])
    p = p.sort_values("ts").drop_duplicates("request_id")
    lab = lab.sort_values("labelled_at").drop_duplicates("request_id")
    p = p.merge(lab[["request_id", "label"]], on="request_id", how="left")
    p["labelled"] = p["label"].notna()
    p["correct"] = p["label"] == p["predicted_label"]
    u = p.groupby(["variant", "unit_id"]).agg(
        n=("request_id", "size"),
        lat=("latency_ms", "sum"),
        conf=("confidence", "sum"),
        lab=("labelled", "sum"),
        k=("correct", "sum"),
    )
    out = {}
    for m, num, den in (("accuracy", "k", "lab"), ("latency", "lat", "n"), ("confidence", "conf", "n")):
        c, t = u.loc["control"], u.loc["challenger"]
        c, t = c[c[den] > 0], t[t[den] > 0]
        out[m] = ttest_ind(t[num] / t[den], c[num] / c[den], usevar="unequal")
    counts = u.groupby(level=0).size()
    out["srm"] = proportions_chisquare(counts.to_numpy(), np.full(2, counts.sum()), value=0.5)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="small sizes; never fails on targets")
    ap.add_argument("--rows", type=int, default=None, help="rows in the log (default 10 M, quick 200 k)")
    args = ap.parse_args(argv)
    rows = args.rows or (200_000 if args.quick else 10_000_000)
    sims = 500 if args.quick else 10_000

    from abkit.analysis import analyze
    from abkit.calibrate import calibrate
    from abkit.experiment import Experiment

    exp = Experiment.from_params(key="bench", start="2024-01-01", duration_days=14, guardrail_latency_p95_ms=5.0)
    with tempfile.TemporaryDirectory() as tmp:
        root, foreign = Path(tmp) / "log", Path(tmp) / "foreign"
        t0 = time.perf_counter()
        retried = make_log(root, rows)
        res: dict[str, Any] = {
            "rows": rows,
            "write_through_log_writer_s": round(time.perf_counter() - t0, 2),
            "retries_dropped_by_compaction": retried,
        }
        naive_duckdb(root)  # warm the page cache
        # the gated figures: best of ROUNDS interleaved rounds (the medians are reported beside them)
        times, outs = _rounds(
            {
                "bare_duckdb": lambda: bare_duckdb(root),
                "analysis": lambda: analyze(root, exp, daily=False),
                "tea_tasting": lambda: tea_tasting_path(root),
            },
            ROUNDS,
        )
        for k, ts in times.items():
            res[f"{k}_s"], res[f"{k}_median_s"] = min(ts), statistics.median(ts)
        out = outs["analysis"]
        res["bare_duckdb_string_ids_s"], _ = _time(lambda: bare_duckdb(root, user="unit_id"))
        res["naive_groupby_duckdb_s"], _ = _time(lambda: naive_duckdb(root))
        res["analysis_with_daily_view_s"], _ = _time(lambda: analyze(root, exp), repeat=1)
        res["tea_tasting_duckdb_part_s"], _ = _time(lambda: _user_frame(root))
        res["tea_tasting_join_feed_s"], _ = _time(lambda: tea_tasting_path(root, copied=False))
        res["pandas_statsmodels_s"], _ = _time(lambda: pandas_statsmodels(root), repeat=1)
        res["decision"] = out.recommendation.decision
        make_log(foreign, rows, foreign=True)
        naive_duckdb(foreign)
        res["analysis_foreign_files_s"], out_f = _time(lambda: analyze(foreign, exp, daily=False), repeat=1)
        res["duplicates_dropped_by_readers"] = out_f.stats.duplicates
    res["aa_sims"] = sims
    res["aa_s"], cal = _time(lambda: calibrate(sims, seed=0, looks=20, with_power=False), repeat=1)
    res["aa_10000_s"] = res["aa_s"] * 10_000 / sims
    res["aa_fpr_fixed"], res["aa_fpr_sequential"] = cal["fpr_fixed"], cal["fpr_sequential"]
    res["ratio_vs_bare_duckdb"] = res["analysis_s"] / res["bare_duckdb_s"]
    res["median_ratio_vs_bare_duckdb"] = res["analysis_median_s"] / res["bare_duckdb_median_s"]
    res["median_ratio_vs_tea_tasting"] = res["analysis_median_s"] / res["tea_tasting_median_s"]
    res["ratio_vs_tea_tasting"] = res["analysis_s"] / res["tea_tasting_s"]
    res["ratio_vs_bare_duckdb_string_ids"] = res["analysis_s"] / res["bare_duckdb_string_ids_s"]
    res["ratio_vs_tea_tasting_join_feed"] = res["analysis_s"] / res["tea_tasting_join_feed_s"]
    res["speedup_vs_pandas_statsmodels"] = res["pandas_statsmodels_s"] / res["analysis_s"]
    checks = {
        "analysis_s": res["analysis_s"] <= TARGETS["analysis_s"],
        "ratio_vs_bare_duckdb": res["ratio_vs_bare_duckdb"] <= TARGETS["ratio_vs_bare_duckdb"],
        "ratio_vs_tea_tasting": res["ratio_vs_tea_tasting"] <= TARGETS["ratio_vs_tea_tasting"],
        "speedup_vs_pandas_statsmodels": res["speedup_vs_pandas_statsmodels"]
        >= TARGETS["speedup_vs_pandas_statsmodels"],
        "aa_10000_s": res["aa_10000_s"] <= TARGETS["aa_10000_s"],
    }
    res = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in res.items()}
    res["targets"] = TARGETS
    res["met"] = checks
    print(json.dumps(res, indent=2))
    return 0 if args.quick or all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
