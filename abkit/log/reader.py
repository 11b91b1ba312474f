"""Reading the log: ``PredictionLog``, the entry point (writers, label appends, compaction, DuckDB readers).

Readers return the record columns (``PREDICTION_SCHEMA``, ``LABEL_SCHEMA``), in time order, each request once
(unless ``dedupe=False``): compacted rows as they are, appended rows deduplicated against them and among
themselves (the first by ``ts``; labels: by ``labelled_at``), see ``abkit.log.layout``. They read through
``abkit.engine``, the same views the analysis uses. ``PredictionLog.duplicate_request_ids`` lists the ids
stored more than once and not yet compacted away.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa

from abkit.log.layout import Kind, experiments, kind_glob, log_source
from abkit.log.schema import LABEL_SCHEMA, PREDICTION_SCHEMA, check_key
from abkit.log.writer import LogWriter, append_labels

__all__ = ["PredictionLog"]


class PredictionLog:
    """A prediction log rooted at a directory: writers, label appends and DuckDB readers."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._con: Any = None

    def __repr__(self) -> str:
        return f"PredictionLog({str(self.root)!r})"

    # -- writing
    def writer(
        self,
        experiment: str,
        variants: Sequence[str],
        *,
        batch_size: int = 50_000,
        on_invalid: Literal["raise", "quarantine"] = "raise",
    ) -> LogWriter:
        """A buffered writer for one experiment (no lock: writers in any process or machine may append)."""
        return LogWriter(self, experiment, variants, batch_size=batch_size, on_invalid=on_invalid)

    def append_labels(self, records: Any) -> int:
        """Validate and durably write label records (raises ``InvalidRecordsError`` on any bad one).

        ``labelled_at`` defaults to now. The first label appended for a request wins: a request id repeated
        within the call is written once; across calls the first by ``labelled_at`` counts (readers and
        compaction drop the others). Returns the number of label rows written.
        """
        return append_labels(self, records)

    def compact(
        self, experiment: str | None = None, *, engine: str = "duckdb", spark: Any = None, **options: Any
    ) -> list[Any]:
        """Compact ``experiment`` (default: every experiment) on ``engine`` (``"duckdb"``, or ``"spark"`` on
        ``spark``, a ``SparkSession``, for logs one machine cannot hold): see ``abkit.log.compact.compact``."""
        from abkit.log.compact import compact

        return compact(self.root, experiment, engine=engine, spark=spark, **options)

    # -- reading
    def predictions_glob(self, experiment: str | None = None) -> str:
        """Glob of committed prediction files (never temp files)."""
        return kind_glob(self.root, "predictions", experiment)

    def labels_glob(self, experiment: str | None = None) -> str:
        """Glob of committed label files."""
        return kind_glob(self.root, "labels", experiment)

    def quarantine_glob(self, experiment: str | None = None) -> str:
        """Glob of quarantined prediction files (with ``record_index`` and ``error`` columns)."""
        return kind_glob(self.root, "quarantine", experiment)

    @property
    def con(self) -> Any:
        """The in-memory DuckDB connection used by the readers (UTC session time zone)."""
        if self._con is None:
            import duckdb

            self._con = duckdb.connect()
            self._con.execute("SET TimeZone = 'UTC'")
        return self._con

    def experiments(self) -> list[str]:
        """The experiments in the log."""
        return experiments(self.root)

    def _read(self, kind: Kind, experiment: str | None, dedupe: bool) -> pa.Table:
        from abkit.engine import DuckDBEngine

        schema, order = (PREDICTION_SCHEMA, "ts") if kind == "predictions" else (LABEL_SCHEMA, "labelled_at")
        view = ("abkit_pred" if kind == "predictions" else "abkit_lab") + ("_once" if dedupe else "")
        tables = []
        for key in self.experiments() if experiment is None else [check_key(experiment)]:
            src = log_source(self.root, key)
            if src.files(kind):
                eng = DuckDBEngine(src, con=self.con)
                tables.append(
                    eng.arrow(f"SELECT {', '.join(schema.names)} FROM {view} ORDER BY {order}, request_id").cast(schema)
                )
        return pa.concat_tables(tables) if tables else schema.empty_table()

    def read_predictions(self, experiment: str | None = None, *, dedupe: bool = True) -> pa.Table:
        """All committed predictions (one per request id unless ``dedupe=False``), ordered by time."""
        return self._read("predictions", experiment, dedupe)

    def read_labels(self, experiment: str | None = None, *, dedupe: bool = True) -> pa.Table:
        """All committed labels (one per request id unless ``dedupe=False``)."""
        return self._read("labels", experiment, dedupe)

    def read_joined(self, experiment: str) -> pa.Table:
        """Deduplicated predictions with their label (null if none yet) and ``correct`` (null if unlabelled)."""
        preds = self.read_predictions(experiment)
        labels = self.read_labels(experiment).select(["request_id", "label", "labelled_at"])
        con = self.con
        con.register("_abkit_p", preds)
        con.register("_abkit_l", labels)
        try:
            q = (
                "SELECT p.*, l.label, l.labelled_at, (p.predicted_label = l.label) AS correct "
                "FROM _abkit_p p LEFT JOIN _abkit_l l USING (request_id) ORDER BY p.ts, p.request_id"
            )
            return con.sql(q).to_arrow_table()
        finally:
            con.unregister("_abkit_p")
            con.unregister("_abkit_l")

    def least_confident(self, experiment: str, n: int = 5) -> pa.Table:
        """The ``n`` lowest-confidence predictions of each variant, with their label when known.

        A report shows them so a reader sees what the models hesitate on (texts are user data: render
        them escaped, as pandas does).
        """
        joined = self.read_joined(experiment)
        self.con.register("_abkit_j", joined)
        try:
            q = (
                "SELECT variant, text, predicted_label, confidence, label FROM _abkit_j "
                "QUALIFY row_number() OVER (PARTITION BY variant ORDER BY confidence, request_id) <= "
                f"{int(n)} ORDER BY variant, confidence, request_id"
            )
            return self.con.sql(q).to_arrow_table()
        finally:
            self.con.unregister("_abkit_j")

    def duplicate_request_ids(self, experiment: str) -> pa.Table:
        """Request ids stored more than once for ``experiment`` (and not compacted away): ``request_id``,
        ``copies``."""
        from abkit.engine import DuckDBEngine

        src = log_source(self.root, experiment)
        if not src.files("predictions"):
            return pa.table({"request_id": pa.array([], pa.string()), "copies": pa.array([], pa.int64())})
        q = (
            "SELECT request_id, CAST(count(*) AS BIGINT) AS copies FROM abkit_pred "
            "GROUP BY request_id HAVING count(*) > 1 ORDER BY request_id"
        )
        return DuckDBEngine(src, con=self.con).arrow(q)
