"""Writing the log: a buffered, validating, deduplicating ``LogWriter`` for predictions, and label appends.

**Durability.** A ``LogWriter`` buffers rows; ``flush()`` writes one file per (experiment, date) partition
(``abkit.log.layout.write_atomic``) and returns when they are durable.

**Duplicates: exactly once at write time.** A request id seen earlier in the same call, in the writer's
session or already on disk for the experiment is dropped (the first record wins) and counted in
``LogWriter.duplicates``. Writers in several processes coordinate through the experiment's lock
(``abkit.log.index.LogIndex.locked``): under it, ``flush()`` reads the ids of files committed since its last
look, drops buffered rows whose id is now on disk, and commits its files marked unique, the writer's
guarantee that no id in the file occurs in any other marked file of the experiment. Labels get the same
treatment (the first label appended for a request wins). A writer with ``check_disk=False`` only knows its
session and leaves its files unmarked; readers then deduplicate.
"""

from __future__ import annotations

import datetime as dt
import glob as globmod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from abkit.log.index import LogIndex, has_repeats
from abkit.log.keys import fnv1a64
from abkit.log.layout import (
    LABEL_COPY, UNIQUE_SUFFIX, kind_glob, quarantine_dir, write_atomic, write_partitioned,
)
from abkit.log.schema import LABEL_SCHEMA, PREDICTION_SCHEMA, LogError, check_key
from abkit.log.validate import Columns, Verdict, as_table, invalid_error, validate_labels, validate_predictions
from abkit.sql import sql_string

if TYPE_CHECKING:
    from abkit.log.reader import PredictionLog

__all__ = ["AppendReport", "LogWriter", "append_labels"]


@dataclass
class AppendReport:
    """What one ``append`` did: rows received, buffered, rejected (by field) and dropped as duplicates."""

    received: int = 0
    accepted: int = 0
    invalid: int = 0
    duplicates: int = 0
    invalid_by_field: dict[str, int] = field(default_factory=dict)
    quarantine_file: Path | None = None


def _first_occurrence(ids: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Mask of rows whose id did not occur earlier in the array."""
    n = len(ids)
    index = pa.table({"id": ids, "row": pa.array(np.arange(n))})
    first = index.group_by("id", use_threads=False).aggregate([("row", "min")])["row_min"]
    keep = np.zeros(n, dtype=bool)
    keep[first.to_numpy()] = True
    return keep


class LogWriter:
    """Buffered, validating, deduplicating writer for one experiment; use as a context manager."""

    def __init__(
        self,
        log: PredictionLog,
        experiment: str,
        variants: Sequence[str],
        *,
        batch_size: int = 50_000,
        on_invalid: Literal["raise", "quarantine"] = "raise",
        check_disk: bool = True,
    ) -> None:
        self.log = log
        self.experiment = check_key(experiment)
        if isinstance(variants, str) or not variants or not all(isinstance(v, str) and v for v in variants):
            raise LogError(
                f"variants {variants!r} must be a non-empty list of variant names, e.g. ['control', 'challenger']."
            )
        self.variants = tuple(variants)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
            raise LogError(f"batch_size {batch_size!r} must be a positive int, e.g. 50_000.")
        if on_invalid not in ("raise", "quarantine"):
            raise LogError(f"on_invalid {on_invalid!r} is not a policy; use 'raise' or 'quarantine'.")
        self.batch_size, self.on_invalid, self.check_disk = batch_size, on_invalid, check_disk
        self._buffer: list[pa.Table] = []
        self._buffered = 0
        # a checking writer shares the log's index of what is on disk; an unchecking one only knows its session
        self._index = log._index(self.experiment) if check_disk else LogIndex(log.root, self.experiment)
        self._synced = not check_disk
        self._pending: dict[int, str] = {}  # request key -> id of the rows appended and not yet committed
        # counters over the writer's life: received = accepted + invalid + duplicates + discarded
        self.received = self.accepted = self.invalid = self.duplicates = self.flushed = self.discarded = 0
        self.files: list[Path] = []
        self.last = AppendReport()

    # -- context manager
    def __enter__(self) -> LogWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        """Flush on a normal exit. A block that exits on an exception commits nothing it had buffered: those
        rows are discarded (counted in ``discarded``); batches already flushed inside the block stay."""
        if exc_type is None:
            self.close()
        else:
            self.discard()

    def discard(self) -> int:
        """Drop the buffered rows without writing them; returns how many were dropped."""
        dropped = self._buffered
        self.discarded += dropped
        self.accepted -= dropped
        self._buffer.clear()
        self._pending.clear()
        self._buffered = 0
        return dropped

    @property
    def buffered(self) -> int:
        """Rows appended but not yet durable."""
        return self._buffered

    def append(self, records: Any) -> int:
        """Validate and buffer records; returns how many were accepted (see ``last`` for the details).

        An empty input (``[]``, an empty DataFrame or table) is accepted and returns 0.
        """
        cols, verdict = validate_predictions(records, self.experiment, self.variants, dt.datetime.now(dt.timezone.utc))
        report = AppendReport(received=cols.n, invalid=int(verdict.bad.sum()), invalid_by_field=verdict.counts)
        if report.invalid and self.on_invalid == "raise":
            self.last = report
            self.received += cols.n
            self.invalid += report.invalid
            raise invalid_error(verdict, "prediction")
        if report.invalid:
            report.quarantine_file = _quarantine(self.log.root, cols, verdict, self.experiment)
        good = as_table(cols, PREDICTION_SCHEMA, ~verdict.bad)
        good = self._drop_duplicates(good, report)
        report.accepted = good.num_rows
        self.received += cols.n
        self.invalid += report.invalid
        self.accepted += report.accepted
        self.last = report
        if good.num_rows:
            self._buffer.append(good)
            self._buffered += good.num_rows
        if self._buffered >= self.batch_size:
            self.flush()
        return report.accepted

    def _drop_duplicates(self, table: pa.Table, report: AppendReport) -> pa.Table:
        if not self._synced:
            self._index.sync()
            self._synced = True
        ids = table["request_id"].to_pylist()
        keys = fnv1a64(ids)
        # distinct keys mean distinct ids; only a repeated key needs the (slower) look at the strings
        keep = _first_occurrence(table["request_id"]) if has_repeats(keys) else np.ones(len(ids), dtype=bool)
        key_list = keys.tolist()
        keep &= ~self._index.committed("predictions", key_list, ids)
        if not self._pending.keys().isdisjoint(key_list):
            keep &= np.fromiter((self._pending.get(k) != x for k, x in zip(key_list, ids, strict=True)),
                                dtype=bool, count=len(ids))
        report.duplicates = int(len(ids) - keep.sum())
        self.duplicates += report.duplicates
        if report.duplicates:
            table = table.filter(pa.array(keep))
            self._pending.update((k, x) for k, x, kept in zip(key_list, ids, keep, strict=True) if kept)
        else:
            self._pending.update(zip(key_list, ids, strict=True))
        return table

    def flush(self) -> None:
        """Write buffered rows, one file per date partition; returns when they are durable.

        With ``check_disk`` the commit holds the experiment's lock: rows whose id another process committed
        since this writer last looked are dropped (counted in ``duplicates``) and the files are written as
        ``.unique.parquet`` (unless two different ids ever shared a 64-bit key, see ``abkit.log.index``).
        """
        if not self._buffer:
            return
        table = pa.concat_tables(self._buffer) if len(self._buffer) > 1 else self._buffer[0]
        if not self.check_disk:
            self._commit(table, unique=False)
            return
        with self._index.locked():
            self._index.sync()
            keys = fnv1a64(table["request_id"])
            taken = self._index.committed("predictions", keys.tolist(), table["request_id"].to_pylist())
            if taken.any():  # accepted at append time, committed meanwhile by another writer
                self.duplicates += int(taken.sum())
                self.accepted -= int(taken.sum())
                table, keys = table.filter(pa.array(~taken)), keys[~taken]
            self._commit(table, unique=True, keys=keys)

    def _commit(self, table: pa.Table, unique: bool, keys: np.ndarray | None = None) -> None:
        ids = table["request_id"].to_pylist()
        keys = fnv1a64(ids) if keys is None else keys
        units = pc.unique(table["unit_id"])
        unit_ids, unit_keys = units.to_pylist(), fnv1a64(units)
        clash = self._index.collides(keys.tolist(), ids, unit_keys.tolist(), unit_ids)
        row_unit_keys = unit_keys[pc.index_in(table["unit_id"], value_set=units).to_numpy()]
        stored = table.append_column("unit_key", pa.array(row_unit_keys)).append_column(
            "request_key", pa.array(keys))
        written = write_partitioned(stored, self.log.root, "predictions", self.experiment, "ts", unique and not clash)
        self.files.extend(written)
        self._index.add("predictions", written, keys.tolist(), ids, unit_keys.tolist(), unit_ids, collides=clash)
        self._pending.clear()
        self._buffer.clear()
        self.flushed += table.num_rows
        self._buffered = 0

    def close(self) -> None:
        """Flush; the writer can still be used afterwards."""
        self.flush()



def append_labels(log: PredictionLog, records: Any) -> int:
    """Validate and durably write label records to ``log`` (see ``PredictionLog.append_labels``)."""
    cols, verdict = validate_labels(records, dt.datetime.now(dt.timezone.utc))
    if verdict.bad.any():
        raise invalid_error(verdict, "label")
    table = as_table(cols, LABEL_SCHEMA)
    table = table.filter(pa.array(_first_occurrence(pc.binary_join_element_wise(
        table["experiment"], table["request_id"], "\x00"))))
    written = 0
    for key in pc.unique(table["experiment"]).to_pylist():
        part = table.filter(pc.equal(table["experiment"], key))
        index = log._index(key)
        with index.locked():
            index.sync()
            ids = part["request_id"].to_pylist()
            keys = fnv1a64(ids)
            taken = index.committed("labels", keys.tolist(), ids)
            if taken.any():
                part, keys = part.filter(pa.array(~taken)), keys[~taken]
                ids = part["request_id"].to_pylist()
            clash = index.collides(keys.tolist(), ids)
            stored = part.append_column("request_key", pa.array(keys))
            for name, column in _predictions_of(log, key, keys).items():
                stored = stored.append_column(name, column)
            files = write_partitioned(stored, log.root, "labels", key, "labelled_at", not clash)
            index.add("labels", files, keys.tolist(), ids, collides=clash)
        written += part.num_rows
    return written


def _predictions_of(log: PredictionLog, experiment: str, keys: np.ndarray) -> dict[str, pa.Array]:
    """For each request key, the committed prediction's ``LABEL_COPY`` columns (null if none yet)."""
    out = {n: pa.nulls(len(keys), t) for n, t in LABEL_COPY}
    files = [f for f in globmod.glob(kind_glob(log.root, "predictions", experiment)) if f.endswith(UNIQUE_SUFFIX)]
    if not files or not len(keys):
        return out
    log.con.register("_abkit_keys", pa.table({"request_key": keys, "row": np.arange(len(keys))}))
    try:
        found = log.con.sql(
            "SELECT k.row, p.variant, p.unit_key, p.predicted_label, epoch_us(p.ts) // 86400000000 AS prediction_day "
            f"FROM _abkit_keys k JOIN read_parquet([{', '.join(sql_string(f) for f in files)}]) p USING (request_key)"
        ).to_arrow_table()
    finally:
        log.con.unregister("_abkit_keys")
    if found.num_rows:
        where = found["row"].to_numpy()
        for n, t in LABEL_COPY:
            values = np.full(len(keys), None, dtype=object)
            values[where] = found[n].to_numpy(zero_copy_only=False)
            out[n] = pa.array(values, t)
    return out


def _quarantine(root: Path, cols: Columns, verdict: Verdict, experiment: str) -> Path:
    """Write the bad rows of a call, with ``record_index`` and ``error`` columns, to the quarantine."""
    bad = as_table(cols, PREDICTION_SCHEMA, verdict.bad)
    bad = bad.append_column("record_index", pa.array(np.flatnonzero(verdict.bad)))
    bad = bad.append_column("error", pa.array(verdict.reason[verdict.bad].tolist(), pa.string()))
    return write_atomic(bad, quarantine_dir(root, experiment, dt.datetime.now(dt.timezone.utc).date()))
