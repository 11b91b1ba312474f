"""Reading the log: ``PredictionLog``, the entry point (writers, label appends, DuckDB readers).

Readers return the record columns (``PREDICTION_SCHEMA``, ``LABEL_SCHEMA``), in time order. When every file
they read carries the writers' uniqueness mark (``abkit.log.layout``) they skip deduplication, the costly
part of reading a large log. Otherwise each (experiment, request_id) counts once, the first by ``ts``
(labels: first by ``labelled_at``). ``PredictionLog.duplicate_request_ids`` lists the ids stored more than
once.
"""

from __future__ import annotations

import glob as globmod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa

from abkit.log.index import LogIndex
from abkit.log.layout import all_unique, kind_glob
from abkit.log.schema import LABEL_SCHEMA, PREDICTION_SCHEMA, check_key
from abkit.log.writer import LogWriter, append_labels
from abkit.sql import sql_string

__all__ = ["PredictionLog"]


class PredictionLog:
    """A prediction log rooted at a directory: writers, label appends and DuckDB readers."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._con: Any = None
        self._indexes: dict[str, LogIndex] = {}  # experiment -> what its committed files hold

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
        check_disk: bool = True,
    ) -> LogWriter:
        """A buffered writer for one experiment. ``check_disk`` (default): drop request ids already stored, by
        any process, and mark the files ``.unique.parquet``; without it the writer only knows its session."""
        return LogWriter(self, experiment, variants, batch_size=batch_size, on_invalid=on_invalid,
                         check_disk=check_disk)

    def _index(self, experiment: str) -> LogIndex:
        """This object's index of what ``experiment``'s committed files hold (shared by its writers)."""
        if experiment not in self._indexes:
            self._indexes[experiment] = LogIndex(self.root, experiment)
        return self._indexes[experiment]

    def append_labels(self, records: Any) -> int:
        """Validate and durably write label records (raises ``InvalidRecordsError`` on any bad one).

        ``labelled_at`` defaults to now. The first label appended for a request wins: a request id repeated
        within the call, or labelled by an earlier call (in any process), is not written again.
        Returns the number of label rows written.
        """
        return append_labels(self, records)

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

    def _has_files(self, glob: str) -> bool:
        return next(globmod.iglob(glob), None) is not None

    def _source(self, glob: str) -> str:
        return f"read_parquet({sql_string(glob)}, hive_partitioning = false, filename = true)"

    def _read(self, glob: str, schema: pa.Schema, experiment: str | None, order: str, dedupe: bool) -> pa.Table:
        if not self._has_files(glob):
            return schema.empty_table()
        where = "" if experiment is None else f"WHERE experiment = '{check_key(experiment)}'"
        dedupe = dedupe and not all_unique(globmod.iglob(glob))
        qualify = (f"QUALIFY row_number() OVER (PARTITION BY experiment, request_id ORDER BY {order}, filename) = 1"
                   if dedupe else "")
        cols = ", ".join(schema.names)
        q = f"SELECT {cols} FROM {self._source(glob)} {where} {qualify} ORDER BY experiment, {order}, request_id"
        return self.con.sql(q).to_arrow_table().cast(schema)

    def read_predictions(self, experiment: str | None = None, *, dedupe: bool = True) -> pa.Table:
        """All committed predictions (one per request id unless ``dedupe=False``), ordered by time."""
        return self._read(self.predictions_glob(experiment), PREDICTION_SCHEMA, experiment, "ts", dedupe)

    def read_labels(self, experiment: str | None = None, *, dedupe: bool = True) -> pa.Table:
        """All committed labels (one per request id unless ``dedupe=False``)."""
        return self._read(self.labels_glob(experiment), LABEL_SCHEMA, experiment, "labelled_at", dedupe)

    def read_joined(self, experiment: str) -> pa.Table:
        """Deduplicated predictions with their label (null if none yet) and ``correct`` (null if unlabelled)."""
        preds = self.read_predictions(experiment)
        labels = self.read_labels(experiment).select(["request_id", "label", "labelled_at"])
        con = self.con
        con.register("_abkit_p", preds)
        con.register("_abkit_l", labels)
        try:
            q = ("SELECT p.*, l.label, l.labelled_at, (p.predicted_label = l.label) AS correct "
                 "FROM _abkit_p p LEFT JOIN _abkit_l l USING (request_id) ORDER BY p.ts, p.request_id")
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
            q = ("SELECT variant, text, predicted_label, confidence, label FROM _abkit_j "
                 "QUALIFY row_number() OVER (PARTITION BY variant ORDER BY confidence, request_id) <= "
                 f"{int(n)} ORDER BY variant, confidence, request_id")
            return self.con.sql(q).to_arrow_table()
        finally:
            self.con.unregister("_abkit_j")

    def duplicate_request_ids(self, experiment: str) -> pa.Table:
        """Request ids stored more than once for ``experiment``: columns ``request_id``, ``copies``."""
        glob = self.predictions_glob(experiment)
        if not self._has_files(glob):
            return pa.table({"request_id": pa.array([], pa.string()), "copies": pa.array([], pa.int64())})
        q = (f"SELECT request_id, CAST(count(*) AS BIGINT) AS copies FROM {self._source(glob)} "
             f"WHERE experiment = '{experiment}' GROUP BY request_id HAVING count(*) > 1 ORDER BY request_id")
        return self.con.sql(q).to_arrow_table()
