"""Benchmark of the scaled-out log (issue 10): analysis and compaction against a bare DuckDB aggregation of the
same files, label appends into a large log, ingest rate, and writer memory at two log sizes.

Run ``.venv/bin/python benchmarks/bench_log_scale.py [--quick] [--rows N]``; prints one JSON object and exits 1
when a target is missed (never under ``--quick``). Every ratio compares timings taken in the same run:

- ``analysis_vs_bare``: ``abkit.metrics.collect`` (deduplication, labels, every metric, daily view, quantiles)
  on an abkit-written log after compaction, over ``bench_stats.bare_duckdb`` (per-user then per-arm sums) of
  the same files; target <= 1.5;
- ``foreign_compaction_vs_bare`` / ``foreign_analysis_vs_bare``: a log written by plain pyarrow (retries
  included), compacted once, then analysed; targets <= 5 and <= 1.5;
- ``labels_10k_s``: 10 k labels appended to the N-row log; target <= 0.5 s;
- ``ingest_records_per_s``: one ``LogWriter``; target >= 300 k/s;
- ``writer_rss_slope_bytes_per_id``: peak RSS of a writer appending to an empty log and to the N-row log, in
  fresh processes; flat means the writer's memory does not grow with the log (target: < 10 bytes per committed
  id, i.e. noise; the former in-memory index of committed ids took about 150).
The 100 M-row target needs ``--rows 100000000`` and a machine of its own.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_stats import _log_tables, bare_duckdb  # noqa: E402  (the same log and baseline as bench_stats)

VARIANTS = ["control", "challenger"]


def _best(fn: Callable[[], Any], repeat: int = 2) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def _abkit_log(root: Path, preds: pa.Table, retried: pa.Table, labels: pa.Table) -> float:
    """Write through abkit's writers, compact; returns the compaction's seconds."""
    from abkit.log import PredictionLog

    log = PredictionLog(root)
    with log.writer("bench", VARIANTS, batch_size=1_000_000) as w:
        for lo in range(0, preds.num_rows, 1_000_000):
            w.append(preds.slice(lo, 1_000_000))
        w.append(retried)
    log.append_labels(labels)
    t0 = time.perf_counter()
    log.compact()
    took = time.perf_counter() - t0
    log.compact()  # deletes the absorbed appended files, so the bare baseline reads the same files
    return took


def _foreign_log(root: Path, preds: pa.Table, retried: pa.Table, labels: pa.Table) -> None:
    import pyarrow.parquet as pq

    for kind in ("predictions", "labels"):
        (root / kind / "prod").mkdir(parents=True)
    cols = list(reversed(preds.column_names))  # another column order, no keys
    pq.write_table(preds.select(cols), root / "predictions" / "prod" / "part-00000.parquet")
    pq.write_table(retried.select(cols), root / "predictions" / "prod" / "part-00001.parquet")
    pq.write_table(labels, root / "labels" / "prod" / "part-00000.parquet")


WRITER_CHILD = """
import json, sys, numpy as np, pyarrow as pa
from abkit.log import PredictionLog
def peak():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
base = peak()
n = int(sys.argv[2]); i = np.arange(n)
ids = np.strings.add("new-", i.astype(str))
t = pa.table({"variant": np.where(i % 2 == 0, "control", "challenger"), "unit_id": ids, "request_id": ids,
    "ts": pa.array(1_704_067_200_000_000 + i, pa.timestamp("us", tz="UTC")), "text": np.full(n, "text"),
    "predicted_label": np.full(n, "pos"), "confidence": np.full(n, 0.5), "latency_ms": np.full(n, 3.0),
    "model_name": np.full(n, "m"), "model_version": np.full(n, "1")})
with PredictionLog(sys.argv[1]).writer("bench", ["control", "challenger"], batch_size=50_000) as w:
    for lo in range(0, n, 50_000):
        w.append(t.slice(lo, 50_000))
print(json.dumps({"peak_rss_bytes": peak(), "import_rss_bytes": base}))
"""


def _writer_rss(root: Path, n: int) -> int:
    out = subprocess.run(
        [sys.executable, "-c", WRITER_CHILD, str(root), str(n)], capture_output=True, text=True, check=True
    )
    return int(json.loads(out.stdout.strip().splitlines()[-1])["peak_rss_bytes"])


def _ingest(root: Path, preds: pa.Table) -> tuple[float, float]:
    """Records/s of one ``LogWriter`` (validation, keys, clustering, fsync, atomic rename) in 50 k batches, and
    of bare ``pyarrow.parquet.write_table`` of the same batches (no validation, no fsync)."""
    import pyarrow.parquet as pq

    from abkit.log import PredictionLog

    t0 = time.perf_counter()
    with PredictionLog(root).writer("bench", VARIANTS, batch_size=50_000) as w:
        for lo in range(0, preds.num_rows, 50_000):
            w.append(preds.slice(lo, 50_000))
    t_log = time.perf_counter() - t0
    (root / "raw").mkdir()
    t0 = time.perf_counter()
    for lo in range(0, preds.num_rows, 50_000):
        pq.write_table(preds.slice(lo, 50_000), root / "raw" / f"{lo}.parquet")
    return preds.num_rows / t_log, preds.num_rows / (time.perf_counter() - t0)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rows", type=int, default=None)
    args = parser.parse_args()
    rows = args.rows or (300_000 if args.quick else 10_000_000)
    from abkit.log import PredictionLog
    from abkit.metrics import collect

    tmp = Path(tempfile.mkdtemp(prefix="abkit-bench-scale-"))
    out: dict[str, Any] = {"rows": rows}
    try:
        preds, retried, labels = _log_tables(rows, seed=0)
        out["abkit_compaction_s"] = _abkit_log(tmp / "abkit", preds, retried, labels)
        bare, _ = _best(lambda: bare_duckdb(tmp / "abkit"))
        full, stats = _best(lambda: collect(tmp / "abkit", "bench", VARIANTS))
        assert int(stats.predictions.sum()) == rows and stats.duplicates == retried.num_rows
        out.update(bare_s=bare, analysis_s=full, analysis_vs_bare=full / bare)

        _foreign_log(tmp / "foreign", preds, retried, labels)
        bare_f, _ = _best(lambda: bare_duckdb(tmp / "foreign", user="unit_id"))
        before, _ = _best(lambda: collect(tmp / "foreign", "bench", VARIANTS), repeat=1)
        t0 = time.perf_counter()
        PredictionLog(tmp / "foreign").compact()
        compaction = time.perf_counter() - t0
        after, fstats = _best(lambda: collect(tmp / "foreign", "bench", VARIANTS))
        np.testing.assert_array_equal(fstats.stats["accuracy"].m_sum, stats.stats["accuracy"].m_sum)
        out.update(
            foreign_bare_s=bare_f,
            foreign_analysis_before_s=before,
            foreign_compaction_s=compaction,
            foreign_analysis_after_s=after,
            foreign_compaction_vs_bare=compaction / bare_f,
            foreign_analysis_vs_bare=after / bare_f,
        )
        del preds, retried, labels

        log = PredictionLog(tmp / "abkit")
        ids = [f"req-{i}" for i in range(0, rows, max(rows // 10_000, 1))][:10_000]
        batch = pa.table({"experiment": ["bench"] * len(ids), "request_id": ids, "label": ["pos"] * len(ids)})
        out["labels_10k_s"], _ = _best(lambda: log.append_labels(batch), repeat=3)

        ingest_rows = min(rows, 2_000_000)
        fresh, _, _ = _log_tables(ingest_rows, seed=1)
        out["ingest_records_per_s"], out["raw_write_table_records_per_s"] = _ingest(tmp / "ingest", fresh)
        del fresh

        n_new = 200_000
        small = _writer_rss(tmp / "empty", n_new)
        big = _writer_rss(tmp / "abkit", n_new)
        out.update(
            writer_peak_rss_empty_log_mb=small / 2**20,
            writer_peak_rss_large_log_mb=big / 2**20,
            writer_rss_slope_bytes_per_id=(big - small) / rows,
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    targets = {
        "analysis_vs_bare": out["analysis_vs_bare"] <= 1.5,
        "foreign_analysis_vs_bare": out["foreign_analysis_vs_bare"] <= 1.5,
        "foreign_compaction_vs_bare": out["foreign_compaction_vs_bare"] <= 5.0,
        "labels_10k_s": out["labels_10k_s"] <= 0.5,
        "ingest_records_per_s": out["ingest_records_per_s"] >= 3e5,
        "writer_rss_flat": out["writer_rss_slope_bytes_per_id"] < 10.0,
    }
    out["targets_met"] = targets
    print(json.dumps(out, indent=2))
    return 0 if args.quick or all(targets.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
