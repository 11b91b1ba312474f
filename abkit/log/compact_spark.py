"""Compaction on Spark (``abkit.log.compact.compact(..., engine="spark")``), for logs one machine cannot hold.

The rule, its SQL, the moves into the log and the manifest's commit are those of ``abkit.log.compact``; this
module gives them a Spark engine over the log (``abkit.engine.SparkEngine``) with two things DuckDB has built in:

- the keys' function ``abkit_fnv``: an Arrow UDF, ``abkit.log.keys.fnv1a64_arrow``, so the keys are
  bit-identical to DuckDB's (Spark's Python workers need abkit and pyarrow: ``PYSPARK_PYTHON``);
- a writer: the rows repartitioned by date partition and arm and written with ``partitionBy`` into a scratch
  folder under the log root, so each (date, arm) is one file of one arm (readers take the arms from row-group
  statistics), timestamps as UTC-adjusted microseconds (``TIMESTAMP_MICROS``, not Spark's INT96 default).

The driver then moves the files into the log with POSIX renames: the driver and every executor must see the log
root at the same path (one machine, or a shared file system mounted alike everywhere). Reading, deduplicating
and joining run on the whole cluster; the last stage writes each (date, arm) in one task (Spark's sort before a
partitioned write spills, so its memory stays bounded), so that stage's parallelism is the number of dates
times arms.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from abkit.engine import Engine, SparkEngine
from abkit.log import layout as L
from abkit.log.compact import Parts, Write
from abkit.log.keys import fnv1a64_arrow
from abkit.log.schema import LogError

__all__ = ["SPARK_CONF", "on_spark"]

# Session settings a compaction runs under (restored afterwards): timestamps written as Parquet INT64
# microseconds adjusted to UTC, as ``layout.STORED_PREDICTION_SCHEMA`` wants; day numbers, and naive timestamps
# of foreign files, in UTC (as DuckDB takes them).
SPARK_CONF = {
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.session.timeZone": "UTC",
}


@contextlib.contextmanager
def on_spark(spark: Any, src: L.LogSource) -> Iterator[tuple[Engine, Write]]:
    """A Spark engine over ``src`` with the keys' function ``abkit_fnv``, and its writer, under ``SPARK_CONF``."""
    saved = {key: spark.conf.get(key, None) for key in SPARK_CONF}
    for key, value in SPARK_CONF.items():
        spark.conf.set(key, value)
    try:
        _register_keys(spark)
        yield SparkEngine(src, spark), lambda query, out: _write(spark, query, out)
    finally:
        for key, value in saved.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)


def _register_keys(spark: Any) -> None:
    """Register ``abkit_fnv`` and run it once, so that workers without abkit fail here with the fix."""
    from pyspark.sql.functions import arrow_udf

    # a scalar Arrow UDF by its type hints (pa.Array -> pa.Array), which pyspark's stub overloads do not list
    spark.udf.register("abkit_fnv", arrow_udf(fnv1a64_arrow, "bigint"))  # type: ignore[call-overload]
    try:
        spark.sql("SELECT abkit_fnv('abkit')").collect()
    except Exception as exc:  # py4j and pyspark raise several types; the cause stays chained
        lines = str(exc).strip().splitlines()
        cause = next((line for line in lines if re.match(r"\w+(Error|Exception): ", line)), lines[0] if lines else "")
        raise LogError(
            f"compaction on Spark: the Python workers cannot compute the ids' keys with abkit ({cause}); set "
            "PYSPARK_PYTHON to a Python with abkit and pyarrow installed before the session starts"
        ) from exc


def _write(spark: Any, query: str, out: Path) -> Parts:
    """Spark's writer: the rows of ``query``, one task per date partition and arm, written with ``partitionBy``
    into ``out`` (one file per date and arm, each of one arm); returns the files with their day and rows."""
    (
        spark.sql(query)
        .repartition("abkit_day", "abkit_arm")
        .write.mode("overwrite")
        .option("compression", "snappy")
        .partitionBy("abkit_day", "abkit_arm")
        .parquet(str(out))
    )
    parts = []
    for path in sorted(out.glob("abkit_day=*/abkit_arm=*/*.parquet")):
        if path.name.startswith((".", "_")):
            continue
        day = int(path.parent.parent.name.removeprefix("abkit_day="))
        parts.append((str(path), day, pq.ParquetFile(path).metadata.num_rows))
    return parts
