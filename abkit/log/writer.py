"""Writing the log: a buffered, validating ``LogWriter`` for predictions, and label appends.

**No lock, bounded memory.** Writers never coordinate: each flush writes new files (``abkit.log.layout``:
one per date partition, a fresh uuid, atomic rename, fsync), so any number of processes on any number of
machines may append to one experiment. A writer remembers only the rows it has not flushed yet, whatever the
log's size, and reads nothing from disk.

**Duplicates.** A request id repeated within the writer's buffer (the same call, or calls not yet flushed) is
dropped, the first record winning, and counted in ``LogWriter.duplicates``. Copies in other files (a retried
batch on another worker) are left to the readers, who count each request once at all times, and to
compaction (``abkit.log.compact``), which removes them, by the same rule: the first by ``ts``.
``append_labels`` likewise writes the call's first label per request; the first label by ``labelled_at`` wins.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from abkit.log.keys import fnv1a64, has_repeats
from abkit.log.layout import quarantine_dir, write_atomic, write_partitioned
from abkit.log.schema import LABEL_SCHEMA, PREDICTION_SCHEMA, LogError, check_key
from abkit.log.validate import Columns, Verdict, as_table, invalid_error, validate_labels, validate_predictions

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
    """Buffered, validating writer for one experiment; use as a context manager."""

    def __init__(
        self,
        log: PredictionLog,
        experiment: str,
        variants: Sequence[str],
        *,
        batch_size: int = 50_000,
        on_invalid: Literal["raise", "quarantine"] = "raise",
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
        self.batch_size, self.on_invalid = batch_size, on_invalid
        self._buffer: list[pa.Table] = []
        self._buffered = 0
        self._pending: dict[int, str] = {}  # request key -> id of the buffered rows (cleared at each flush)
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
        cols, verdict = validate_predictions(records, self.experiment, self.variants, dt.datetime.now(dt.UTC))
        report = AppendReport(received=cols.n, invalid=int(verdict.bad.sum()), invalid_by_field=verdict.counts)
        if report.invalid and self.on_invalid == "raise":
            self.last = report
            self.received += cols.n
            self.invalid += report.invalid
            raise invalid_error(verdict, "prediction")
        if report.invalid:
            report.quarantine_file = _quarantine(self.log.root, cols, verdict, self.experiment)
        good = self._drop_duplicates(as_table(cols, PREDICTION_SCHEMA, ~verdict.bad), report)
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
        """``table`` with its 64-bit request keys, without the rows whose id is already in the buffer."""
        keys = fnv1a64(table["request_id"])
        # distinct keys mean distinct ids; only a repeated key needs the (slower) look at the strings
        keep = _first_occurrence(table["request_id"]) if has_repeats(keys) else np.ones(len(keys), dtype=bool)
        key_list = keys.tolist()
        if not self._pending.keys().isdisjoint(key_list):
            ids = table["request_id"].to_pylist()
            keep &= np.fromiter(
                (self._pending.get(k) != x for k, x in zip(key_list, ids, strict=True)), dtype=bool, count=len(ids)
            )
        report.duplicates = int(len(keep) - keep.sum())
        self.duplicates += report.duplicates
        table = table.append_column("request_key", pa.array(keys))
        if report.duplicates:
            table = table.filter(pa.array(keep))
        self._pending.update(
            zip(table["request_key"].to_numpy().tolist(), table["request_id"].to_pylist(), strict=True)
        )
        return table

    def flush(self) -> None:
        """Write buffered rows, one file per date partition; returns when they are durable."""
        if not self._buffer:
            return
        table = pa.concat_tables(self._buffer) if len(self._buffer) > 1 else self._buffer[0]
        units = pc.unique(table["unit_id"])
        unit_keys = fnv1a64(units)[pc.index_in(table["unit_id"], value_set=units).to_numpy()]
        keys = table["request_key"]
        stored = (
            table.drop_columns(["request_key"])
            .append_column("unit_key", pa.array(unit_keys))
            .append_column("request_key", keys)
        )
        self.files.extend(write_partitioned(stored, self.log.root, "predictions", self.experiment, "ts"))
        self._pending.clear()
        self._buffer.clear()
        self.flushed += table.num_rows
        self._buffered = 0

    def close(self) -> None:
        """Flush; the writer can still be used afterwards."""
        self.flush()


def append_labels(log: PredictionLog, records: Any) -> int:
    """Validate and durably write label records to ``log`` (see ``PredictionLog.append_labels``): one file
    per (experiment, date), the call's first label per request; the cost depends on the call only."""
    cols, verdict = validate_labels(records, dt.datetime.now(dt.UTC))
    if verdict.bad.any():
        raise invalid_error(verdict, "label")
    table = as_table(cols, LABEL_SCHEMA)
    table = table.filter(
        pa.array(_first_occurrence(pc.binary_join_element_wise(table["experiment"], table["request_id"], "\x00")))
    )
    for key in pc.unique(table["experiment"]).to_pylist():
        part = table.filter(pc.equal(table["experiment"], key))
        stored = part.append_column("request_key", pa.array(fnv1a64(part["request_id"])))
        write_partitioned(stored, log.root, "labels", key, "labelled_at")
    return table.num_rows


def _quarantine(root: Path, cols: Columns, verdict: Verdict, experiment: str) -> Path:
    """Write the bad rows of a call, with ``record_index`` and ``error`` columns, to the quarantine."""
    bad = as_table(cols, PREDICTION_SCHEMA, verdict.bad)
    bad = bad.append_column("record_index", pa.array(np.flatnonzero(verdict.bad)))
    bad = bad.append_column("error", pa.array(verdict.reason[verdict.bad].tolist(), pa.string()))
    return write_atomic(bad, quarantine_dir(root, experiment, dt.datetime.now(dt.UTC).date()))
