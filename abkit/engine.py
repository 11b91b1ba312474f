"""One small interface over the engines that reduce a log: DuckDB (in process) and Spark.

Metrics, drift and rollout compute their statistics *inside* the engine that holds the log and take home only
small results. They do it through this interface:

1. ``source = abkit.log.layout.log_source(root, experiment)`` says what to read (the folders, and whether
   every file is unique so that no deduplication is needed, see ``abkit.log.layout.LogSource``);
2. ``eng = open_engine(source, "duckdb")`` (or ``"spark", spark=session``) registers the log as views:

   - ``abkit_pred_once``: the experiment's predictions, each request id once (``PREDICTION_SCHEMA``
     columns, plus ``unit_key``/``request_key`` on a unique source) — **use this one**;
   - ``abkit_lab_once``: the experiment's labels, each request id once (``experiment, request_id, label,
     labelled_at``);
   - ``abkit_pred`` / ``abkit_lab``: the raw rows of the source's files (every experiment unless the source
     is unique, duplicates possible): for reductions that deduplicate themselves, like ``abkit.metrics``.
     Every view skips rows the analysis cannot use (``abkit.log.validate.VALID_PREDICTION_SQL``: a null id,
     NaN or out-of-range confidence or latency...) that another tool wrote into files abkit's writers do not
     vouch for; ``eng.invalid_rows()`` counts them;

3. ``eng.sql(q)`` (rows as tuples), ``eng.arrays(q)`` (one numpy array per column) or ``eng.arrow(q)`` (an
   Arrow table) run a reduction written in the common subset of DuckDB and Spark SQL; ``eng.dialect`` gives
   the few expressions that differ (exact wide integers, day numbers, rounding, hashing);
   ``eng.view``/``eng.materialize``/``eng.drop`` name intermediate results; ``eng.close()`` ends it.

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

from abc import ABC, abstractmethod
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa

from abkit.errors import AbkitError
from abkit.log.layout import LogSource
from abkit.log.validate import VALID_LABEL_SQL, VALID_PREDICTION_SQL
from abkit.sql import sql_string

__all__ = ["DUCKDB", "ENGINES", "SPARK", "Dialect", "DuckDBEngine", "Engine", "EngineError", "SparkEngine",
           "open_engine", "spark_session"]

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


DUCKDB = Dialect("duckdb", "HUGEINT", "hash(unit), unit", "epoch_us(ts) // 86400000000", "CAST({x} AS BIGINT)")
SPARK = Dialect("spark", "DECIMAL(38, 0)", "xxhash64(unit), unit", "unix_micros(ts) div 86400000000",
                "CAST(bround({x}, 0) AS BIGINT)")

_PRED_COLS = "experiment, variant, unit_id, request_id, ts, predicted_label, confidence, latency_ms, model_name, " \
             "model_version, text"  # engines read only the columns a query uses; drift reads text and versions
_LAB_COLS = "experiment, request_id, label, labelled_at"
_PRED_KEYS, _LAB_KEYS = ", unit_key, request_key", ", request_key"  # read only from files with keys (unique logs)
_LAB_COPY = ", variant, unit_key, predicted_label, prediction_day"  # a label's copy of its prediction
_NO_LABELS = ("SELECT CAST(NULL AS STRING) AS experiment, CAST(NULL AS STRING) AS request_id, "
              "CAST(NULL AS STRING) AS label, CAST(NULL AS TIMESTAMP) AS labelled_at, "
              "CAST(NULL AS BIGINT) AS request_key, CAST(NULL AS STRING) AS variant, "
              "CAST(NULL AS BIGINT) AS unit_key, CAST(NULL AS STRING) AS predicted_label, "
              "CAST(NULL AS BIGINT) AS prediction_day WHERE false")  # the label view of a log without labels


def _columns(src: LogSource, kind: str) -> str:
    """The columns the raw view of ``kind`` reads from the source's files."""
    if kind == "predictions":
        return _PRED_COLS + (_PRED_KEYS if src.unique else "")
    return _LAB_COLS + (_LAB_KEYS if src.unique else "") + (_LAB_COPY if src.copied else "")


def _checked(src: LogSource, kind: str) -> str:
    """The raw view of ``kind`` over its unfiltered files view: rows the analysis cannot use are skipped unless
    every file comes from abkit's validating writers (a unique source)."""
    files = "abkit_pred_files" if kind == "predictions" else "abkit_lab_files"
    valid = VALID_PREDICTION_SQL if kind == "predictions" else VALID_LABEL_SQL
    return f"SELECT * FROM {files}" + ("" if src.unique else f" WHERE {valid}")


def _invalid_sql(src: LogSource) -> str:
    k = sql_string(src.experiment)
    return (f"SELECT (SELECT COUNT(*) FROM abkit_pred_files WHERE experiment = {k} AND NOT {VALID_PREDICTION_SQL}),"
            f" (SELECT COUNT(*) FROM abkit_lab_files WHERE experiment = {k} AND NOT {VALID_LABEL_SQL})")


def _once_sql(src: LogSource) -> tuple[str, str]:
    """The exactly-once views: each request id once, the first by time (ties broken by the values)."""
    pred = _PRED_COLS + (_PRED_KEYS if src.unique else "")
    if src.unique:  # the writers guarantee each id once, and the source holds the experiment only
        return f"SELECT {pred} FROM abkit_pred", f"SELECT {_LAB_COLS} FROM abkit_lab"
    k = sql_string(src.experiment)
    preds = (f"SELECT {pred} FROM (SELECT {pred}, ROW_NUMBER() OVER (PARTITION BY request_id ORDER BY ts, variant, "
             f"unit_id, predicted_label, confidence, latency_ms) AS abkit_rn FROM abkit_pred WHERE experiment = {k}) "
             "p WHERE abkit_rn = 1")
    labels = (f"SELECT {_LAB_COLS} FROM (SELECT {_LAB_COLS}, ROW_NUMBER() OVER (PARTITION BY request_id "
              f"ORDER BY labelled_at, label) AS abkit_rn FROM abkit_lab WHERE experiment = {k}) l WHERE abkit_rn = 1")
    return preds, labels


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

    def close(self) -> None:
        """Release what the engine holds (its DuckDB connection when it opened it; Spark sessions stay)."""

    def invalid_rows(self) -> tuple[int, int]:
        """Prediction and label rows of the experiment that the views skip (0, 0 for a unique source)."""
        if self.source.unique:
            return 0, 0
        preds, labels = self.sql(_invalid_sql(self.source))[0]
        return int(preds), int(labels)

    def _register_once(self) -> None:
        self.view("abkit_pred", _checked(self.source, "predictions"))
        self.view("abkit_lab", _checked(self.source, "labels"))
        preds, labels = _once_sql(self.source)
        self.view("abkit_pred_once", preds)
        self.view("abkit_lab_once", labels)


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
        self.con.execute(
            f"CREATE OR REPLACE TEMP VIEW abkit_pred_files AS SELECT {_columns(source, 'predictions')} "
            f"FROM read_parquet({sql_string(source.pattern('predictions'))}, hive_partitioning = false)"
        )
        if source.files("labels"):
            q = (f"SELECT {_columns(source, 'labels')} "
                 f"FROM read_parquet({sql_string(source.pattern('labels'))}, hive_partitioning = false)")
        else:
            q = _NO_LABELS
        self.con.execute(f"CREATE OR REPLACE TEMP VIEW abkit_lab_files AS {q}")
        self._register_once()

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
    """Spark through ``spark`` (a ``SparkSession``; see ``spark_session`` for a local one)."""

    dialect = SPARK

    def __init__(self, source: LogSource, spark: Any) -> None:
        self.source = source
        self.spark = spark
        pred = spark.read.option("recursiveFileLookup", "true").parquet(str(source.predictions))
        pred.selectExpr(*_columns(source, "predictions").split(", ")).createOrReplaceTempView("abkit_pred_files")
        if source.files("labels"):
            lab = spark.read.option("recursiveFileLookup", "true").parquet(str(source.labels))
            lab.selectExpr(*_columns(source, "labels").split(", ")).createOrReplaceTempView("abkit_lab_files")
        else:
            spark.sql(_NO_LABELS).createOrReplaceTempView("abkit_lab_files")
        self._register_once()

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


def open_engine(source: LogSource, engine: str = "duckdb", *, spark: Any = None, con: Any = None,
                config: dict[str, Any] | None = None) -> Engine:
    """An engine over ``source``: ``"duckdb"`` (on ``con`` or a new connection with ``config``) or ``"spark"``
    (on ``spark`` or a new local session)."""
    if engine == "duckdb":
        return DuckDBEngine(source, con, config)
    if engine == "spark":
        return SparkEngine(source, spark if spark is not None else spark_session())
    raise EngineError(f"engine={engine!r} is unknown; use one of {ENGINES}")


def spark_session(app_name: str = "abkit", master: str = "local[2]") -> Any:
    """A local Spark session in UTC (needs ``pyspark`` and Java)."""
    from pyspark.sql import SparkSession

    return (SparkSession.builder.master(master).appName(app_name)
            .config("spark.sql.session.timeZone", "UTC").config("spark.ui.enabled", "false")
            .config("spark.sql.shuffle.partitions", "4").getOrCreate())
