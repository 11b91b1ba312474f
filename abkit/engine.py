"""One small interface over the engines that reduce a log: DuckDB (in process) and Spark.

Metrics, drift and rollout compute their statistics *inside* the engine that holds the log and take home only
small results. They do it through this interface:

1. ``source = abkit.log.layout.log_source(root, experiment)`` says what to read: the experiment's compacted
   files and its appended files (``abkit.log.layout.LogSource``; ``source.unique`` when nothing needs
   deduplicating);
2. ``eng = open_engine(source, "duckdb")`` (or ``"spark", spark=session``) registers the log as views:

   - ``abkit_pred_once``: the experiment's predictions, each request id once (the ``PREDICTION_SCHEMA``
     columns, plus ``unit_key``/``request_key`` on a unique source) — **use this one**;
   - ``abkit_lab_once``: the experiment's labels, each request id once (``experiment, request_id, label,
     labelled_at``);
   - ``abkit_pred`` / ``abkit_lab``: every stored row of the experiment (copies included), for reductions
     that deduplicate themselves, like ``abkit.metrics``; on a source that is not unique also the compacted
     (``abkit_pred_c``), appended (``abkit_pred_d``) and counted appended rows (``abkit_pred_new``), and the
     same for labels. Appended rows the analysis cannot use (``abkit.log.validate.VALID_PREDICTION_SQL``: a
     null id, NaN or out-of-range confidence or latency..., which another tool may have written) are skipped
     by every view; ``eng.invalid_rows()`` counts them (and those compaction left out);

3. ``eng.sql(q)`` (rows as tuples), ``eng.arrays(q)`` (one numpy array per column) or ``eng.arrow(q)`` (an
   Arrow table) run a reduction written in the common subset of DuckDB and Spark SQL; ``eng.dialect`` gives
   the few expressions that differ (exact wide integers, day numbers, rounding, hashing);
   ``eng.view``/``eng.materialize``/``eng.drop`` name intermediate results; ``eng.close()`` ends it.

Views are lazy: a query reads only the columns and row groups it needs.

>>> import tempfile, datetime as dt
>>> from abkit.log import PredictionLog
>>> from abkit.log.layout import log_source
>>> root = tempfile.mkdtemp()
>>> with PredictionLog(root).writer("demo", ["control", "challenger"]) as w:
...     _ = w.append([dict(variant="control", unit_id="u1", request_id=f"r{i}", text="t", predicted_label="pos",
...                        confidence=0.5, latency_ms=10.0 * i, model_name="m", model_version="1",
...                        ts=dt.datetime(2024, 3, 1, tzinfo=dt.timezone.utc)) for i in range(3)])
>>> eng = open_engine(log_source(root, "demo"))
>>> eng.sql("SELECT variant, COUNT(*), SUM(latency_ms) FROM abkit_pred_once GROUP BY variant")
[('control', 3, 30.0)]
>>> eng.close()
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa

from abkit.errors import AbkitError
from abkit.log.layout import LogSource, nanosecond_columns, type_groups
from abkit.log.validate import VALID_LABEL_SQL, VALID_PREDICTION_SQL
from abkit.sql import sql_string

__all__ = [
    "DUCKDB",
    "ENGINES",
    "SPARK",
    "Dialect",
    "DuckDBEngine",
    "Engine",
    "EngineError",
    "FIRST_LABEL",
    "FIRST_PREDICTION",
    "SparkEngine",
    "open_engine",
    "spark_session",
]

ENGINES = ("duckdb", "spark")


class EngineError(AbkitError):
    """An unknown engine name."""


class Dialect(NamedTuple):
    """The SQL expressions that differ between the engines."""

    name: str
    wide: str  # exact integer type for squares and cross-products of per-user sums
    user_key: str  # window partition key of a user ``unit`` (a 64-bit hash first makes the partitioning cheap)
    day: str  # day number (days since 1970-01-01 UTC) of the timestamp ``ts``; cheaper than a DATE cast
    whole: str  # ``{x}`` rounded half to even to a BIGINT
    hash: str  # a 64-bit hash of ``{x}`` (grouping and partitioning only: it differs between the engines)
    day_of: str  # ``day`` of the timestamp ``{x}``
    utc: str  # the timestamp ``{x}`` as Parquet stores it adjusted to UTC (microseconds, ``isAdjustedToUTC``)


_DUCKDB_DAY, _SPARK_DAY = "epoch_us({x}) // 86400000000", "unix_micros({x}) div 86400000000"
DUCKDB = Dialect(
    "duckdb",
    "HUGEINT",
    "hash(unit), unit",
    _DUCKDB_DAY.format(x="ts"),
    "CAST({x} AS BIGINT)",
    "hash({x})",
    _DUCKDB_DAY,
    "CAST({x} AS TIMESTAMPTZ)",
)
SPARK = Dialect(
    "spark",
    "DECIMAL(38, 0)",
    "xxhash64(unit), unit",
    _SPARK_DAY.format(x="ts"),
    "CAST(bround({x}, 0) AS BIGINT)",
    "xxhash64({x})",
    _SPARK_DAY,
    "CAST({x} AS TIMESTAMP)",  # an instant; written as micros under abkit.log.compact_spark.SPARK_CONF
)

_PRED_COLS = (
    "experiment, variant, unit_id, request_id, ts, text, predicted_label, confidence, latency_ms, "
    "model_name, model_version"
)
_LAB_COLS = "experiment, request_id, label, labelled_at"
_PRED_KEYS, _LAB_KEYS = ", unit_key, request_key", ", request_key"  # read only from files with keys (unique logs)
_LAB_COPY = ", variant, unit_key, predicted_label, prediction_day"  # a label's copy of its prediction
_TYPES = {
    "experiment": "STRING",
    "variant": "STRING",
    "unit_id": "STRING",
    "request_id": "STRING",
    "ts": "TIMESTAMP",
    "text": "STRING",
    "predicted_label": "STRING",
    "confidence": "DOUBLE",
    "latency_ms": "DOUBLE",
    "model_name": "STRING",
    "model_version": "STRING",
    "label": "STRING",
    "labelled_at": "TIMESTAMP",
    "unit_key": "BIGINT",
    "request_key": "BIGINT",
    "prediction_day": "BIGINT",
}
FIRST_PREDICTION = "ts, variant, unit_id, predicted_label, confidence, latency_ms"  # which copy of a request counts
FIRST_LABEL = "labelled_at, label"  # which copy of a label counts


# nanoseconds since the epoch to a timestamp, rounded to microseconds half away from zero as DuckDB reads them
_NANOS_TO_MICROS = "timestamp_micros(CAST(round(CAST({x} AS DECIMAL(20, 0)) / 1000, 0) AS BIGINT)) AS {x}"


def _typed(columns: str) -> str:
    """The columns cast to the documented types (files from other tools may store e.g. float32 or
    naive timestamps, taken as UTC)."""
    return ", ".join(f"CAST({c} AS {_TYPES[c]}) AS {c}" for c in columns.split(", "))


def _empty(columns: str) -> str:
    """A query of no rows with the typed columns."""
    return "SELECT " + ", ".join(f"CAST(NULL AS {_TYPES[c]}) AS {c}" for c in columns.split(", ")) + " WHERE false"


def _columns(src: LogSource, kind: str) -> str:
    """The columns the raw view of ``kind`` reads from the source's files."""
    if kind == "predictions":
        return _PRED_COLS + (_PRED_KEYS if src.unique else "")
    return _LAB_COLS + (_LAB_KEYS if src.unique else "") + (_LAB_COPY if src.copied else "")


def _first(columns: str, source: str, order: str, compacted: str, experiment: str) -> str:
    """Rows of ``source`` (deltas) whose request id is in no row of ``compacted``, the first copy by ``order``.
    Only ids stored more than once go through the (costly) window; the others pass through an anti-join."""
    own = (
        f"{source} d WHERE experiment = {sql_string(experiment)} AND NOT EXISTS "
        f"(SELECT 1 FROM {compacted} c WHERE c.request_id = d.request_id)"
    )
    dup = (
        f"SELECT request_id FROM {source} WHERE experiment = {sql_string(experiment)} GROUP BY request_id "
        "HAVING COUNT(*) > 1"
    )
    return (
        f"SELECT {columns} FROM {own} AND d.request_id NOT IN ({dup}) UNION ALL "
        f"SELECT {columns} FROM (SELECT {columns}, ROW_NUMBER() OVER (PARTITION BY request_id ORDER BY {order}) "
        f"AS abkit_rn FROM {own} AND d.request_id IN ({dup})) f WHERE abkit_rn = 1"
    )


def _once_sql(src: LogSource) -> dict[str, str]:
    """The exactly-once views: compacted rows as they are, plus each delta row whose request id is in no
    compacted row and that is its first copy among the deltas (``abkit_*_new``; see ``abkit.log.layout``)."""
    pred = _PRED_COLS + (_PRED_KEYS if src.unique else "")
    if src.unique:  # compaction guarantees each id once; the files hold the experiment only
        return {
            "abkit_pred_once": f"SELECT {pred} FROM abkit_pred",
            "abkit_lab_once": f"SELECT {_LAB_COLS} FROM abkit_lab",
        }
    return {
        "abkit_pred_new": _first(pred, "abkit_pred_d", FIRST_PREDICTION, "abkit_pred_c", src.experiment),
        "abkit_lab_new": _first(_LAB_COLS, "abkit_lab_d", FIRST_LABEL, "abkit_lab_c", src.experiment),
        "abkit_pred_once": f"SELECT {pred} FROM abkit_pred_c UNION ALL SELECT {pred} FROM abkit_pred_new",
        "abkit_lab_once": f"SELECT {_LAB_COLS} FROM abkit_lab_c UNION ALL SELECT {_LAB_COLS} FROM abkit_lab_new",
    }


def _layers(src: LogSource) -> dict[str, tuple[str, list[str], str]]:
    """The views each engine builds from files: name -> (columns, files, filter). A unique source is read
    as it is; otherwise compacted (``_c``) and delta (``_d``) rows apart, and ``abkit_pred``/``abkit_lab``
    are both together, typed."""
    if src.unique:
        return {
            "abkit_pred": (_columns(src, "predictions"), src.files("predictions"), ""),
            "abkit_lab": (_columns(src, "labels"), src.files("labels"), ""),
        }
    where = f" WHERE experiment = {sql_string(src.experiment)}"
    return {
        "abkit_pred_c": (_PRED_COLS, list(src.compacted["predictions"]), ""),
        "abkit_pred_dall": (_PRED_COLS, list(src.deltas["predictions"]), where),
        "abkit_lab_c": (_LAB_COLS, list(src.compacted["labels"]), ""),
        "abkit_lab_dall": (_LAB_COLS, list(src.deltas["labels"]), where),
    }


_UNIONS = {
    "abkit_pred": ("abkit_pred_c", "abkit_pred_d", _PRED_COLS),
    "abkit_lab": ("abkit_lab_c", "abkit_lab_d", _LAB_COLS),
}


class Engine(ABC):
    """Runs SQL reductions over a log source; see the module documentation for the registered views."""

    dialect: Dialect
    source: LogSource

    @abstractmethod
    def sql(self, query: str) -> list[tuple[Any, ...]]:
        """The result rows as tuples (for small results)."""

    @abstractmethod
    def arrays(self, query: str) -> dict[str, np.ndarray]:
        """The result as one numpy array per column."""

    @abstractmethod
    def arrow(self, query: str) -> pa.Table:
        """The result as an Arrow table."""

    @abstractmethod
    def view(self, name: str, query: str) -> None:
        """Name ``query`` as a temporary view (evaluated where it is used)."""

    @abstractmethod
    def materialize(self, name: str, query: str) -> None:
        """Compute ``query`` once and keep it under ``name`` (a temp table in DuckDB, a cached view in Spark)."""

    @abstractmethod
    def drop(self, name: str) -> None:
        """Forget a view or table made by ``view``/``materialize`` (no error when absent)."""

    def close(self) -> None:  # noqa: B027 - a deliberate no-op default: a Spark session is shared, nothing to release
        """Release what the engine holds (its DuckDB connection when it opened it; Spark sessions stay)."""

    def invalid_rows(self) -> tuple[int, int]:
        """Prediction and label rows of the experiment that the views skip as unusable, with those compaction
        left out."""
        done = self.source.invalid
        if self.source.unique:
            return done
        preds, labels = self.sql(
            f"SELECT (SELECT COUNT(*) FROM abkit_pred_dall WHERE NOT {VALID_PREDICTION_SQL}), "
            f"(SELECT COUNT(*) FROM abkit_lab_dall WHERE NOT {VALID_LABEL_SQL})"
        )[0]
        return done[0] + int(preds), done[1] + int(labels)

    def files_view(self, name: str, columns: str, files: Sequence[str], where: str = "") -> None:
        """Register ``name`` as ``columns`` (comma-separated names of the documented schema or the stored keys)
        of the Parquet ``files``, cast to the documented types unless the source is unique (then as compaction
        stored them); no files: an empty view of those columns."""
        if files:
            self._files_view(name, columns, list(files), where)
        else:
            self.view(name, _empty(columns))

    @abstractmethod
    def _files_view(self, name: str, columns: str, files: list[str], where: str) -> None:
        """Register ``name`` as the ``columns`` of ``files`` (at least one)."""

    def _register(self) -> None:
        """Register the raw views and the exactly-once views of the source."""
        for name, (columns, files, where) in _layers(self.source).items():
            self.files_view(name, columns, files, where)
        if not self.source.unique:  # appended rows are vouched for by no one: the usable ones only
            self.view("abkit_pred_d", f"SELECT * FROM abkit_pred_dall WHERE {VALID_PREDICTION_SQL}")
            self.view("abkit_lab_d", f"SELECT * FROM abkit_lab_dall WHERE {VALID_LABEL_SQL}")
            for name, (c, d, cols) in _UNIONS.items():
                self.view(name, f"SELECT {cols} FROM {c} UNION ALL SELECT {cols} FROM {d}")
        for name, query in _once_sql(self.source).items():
            self.view(name, query)


class DuckDBEngine(Engine):
    """DuckDB in this process: on ``con`` (a given connection, left open) or a new one with ``config``."""

    dialect = DUCKDB

    def __init__(self, source: LogSource, con: Any = None, config: dict[str, Any] | None = None) -> None:
        import duckdb

        self.source = source
        self._owned = con is None
        self.con = con if con is not None else duckdb.connect(config=config or {})
        self.made: dict[str, str] = {}  # temp views and tables this engine created, by name
        self.con.execute("SET TimeZone = 'UTC'")
        try:
            self.con.execute("SET enable_progress_bar = false")
        except duckdb.Error:  # inside Jupyter DuckDB refuses the setting without ipywidgets; it is only cosmetic
            pass
        self._register()

    def _files_view(self, name: str, columns: str, files: list[str], where: str) -> None:
        names = "[" + ", ".join(sql_string(f) for f in files) + "]"
        cols = columns if self.source.unique else _typed(columns)  # compacted files: already the stored types
        self.view(
            name,
            f"SELECT {cols} FROM read_parquet({names}, hive_partitioning = false, union_by_name = "
            f"{'false' if self.source.unique else 'true'}){where}",
        )

    def sql(self, query: str) -> list[tuple[Any, ...]]:
        return self.con.execute(query).fetchall()

    def arrays(self, query: str) -> dict[str, np.ndarray]:
        return self.con.sql(query).fetchnumpy()

    def arrow(self, query: str) -> pa.Table:
        return self.con.sql(query).to_arrow_table()

    def materialize(self, name: str, query: str) -> None:
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {query}")
        self.made[name] = "TABLE"

    def view(self, name: str, query: str) -> None:
        self.con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS {query}")
        self.made[name] = "VIEW"

    def drop(self, name: str) -> None:
        kind = self.made.pop(name, None)
        if kind is not None:
            self.con.execute(f"DROP {kind} IF EXISTS {name}")

    def close(self) -> None:
        if self._owned:
            self.con.close()


class SparkEngine(Engine):
    """Spark through ``spark`` (a ``SparkSession``; see ``spark_session`` for a local one).

    Files with nanosecond timestamps (pandas' default, which Spark cannot read as timestamps) are read as
    integers, then rounded to microseconds as DuckDB rounds them; for them the engine turns on the session's
    ``spark.sql.legacy.parquet.nanosAsLong`` (which changes nothing else: without it such files fail to read).
    """

    dialect = SPARK

    def __init__(self, source: LogSource, spark: Any) -> None:
        self.source = source
        self.spark = spark
        self._register()

    def _files_view(self, name: str, columns: str, files: list[str], where: str) -> None:
        if self.source.unique:  # compaction's files: one schema
            frame = self.spark.read.option("mergeSchema", "true").parquet(*files).selectExpr(*columns.split(", "))
        else:  # files of other tools may store a column with another type, which Spark cannot merge: read apart
            names = columns.split(", ")
            frames = []
            for group in type_groups(files, names):
                nanos = nanosecond_columns(group[0], names)  # a group shares its types
                if nanos:  # Spark refuses them as timestamps; as integers they read
                    self.spark.conf.set("spark.sql.legacy.parquet.nanosAsLong", "true")
                typed = [_NANOS_TO_MICROS.format(x=c) if c in nanos else _typed(c) for c in names]
                frames.append(self.spark.read.parquet(*group).selectExpr(*typed))
            frame = functools.reduce(lambda a, b: a.unionAll(b), frames)
        frame.createOrReplaceTempView(f"{name}_files")
        self.view(name, f"SELECT * FROM {name}_files{where}")

    def sql(self, query: str) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self.spark.sql(query).collect()]

    def arrays(self, query: str) -> dict[str, np.ndarray]:
        df = self.spark.sql(query)
        rows = df.collect()
        return {n: np.array([r[i] for r in rows]) for i, n in enumerate(df.columns)}

    def arrow(self, query: str) -> pa.Table:
        df = self.spark.sql(query)
        rows = df.collect()
        return pa.table({n: [r[i] for r in rows] for i, n in enumerate(df.columns)})

    def materialize(self, name: str, query: str) -> None:
        self.spark.sql(query).cache().createOrReplaceTempView(name)

    def view(self, name: str, query: str) -> None:
        self.spark.sql(query).createOrReplaceTempView(name)

    def drop(self, name: str) -> None:
        self.spark.catalog.dropTempView(name)


def open_engine(
    source: LogSource,
    engine: str = "duckdb",
    *,
    spark: Any = None,
    con: Any = None,
    config: dict[str, Any] | None = None,
) -> Engine:
    """An engine over ``source``: ``"duckdb"`` (on ``con`` or a new connection with ``config``) or ``"spark"``
    (on ``spark`` or a new local session)."""
    if engine == "duckdb":
        return DuckDBEngine(source, con, config)
    if engine == "spark":
        return SparkEngine(source, spark if spark is not None else spark_session())
    raise EngineError(f"engine={engine!r} is unknown; use one of {ENGINES}")


def spark_session(app_name: str = "abkit", master: str = "local[2]") -> Any:
    """A local Spark session in UTC (needs ``pyspark`` and Java). Its Python workers run this interpreter
    (unless ``PYSPARK_PYTHON`` names another), so that Python UDFs (compaction's keys) find abkit and pyarrow."""
    import os
    import sys

    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

    return (
        SparkSession.builder.master(master)
        .appName(app_name)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .getOrCreate()
    )
