"""The prediction log: an append-only, partitioned Parquet dataset that is the source of truth of a test.

Layout under a root directory::

    <root>/predictions/experiment=<key>/date=<YYYY-MM-DD>/part-<uuid>.parquet
    <root>/labels/experiment=<key>/date=<YYYY-MM-DD>/part-<uuid>.parquet
    <root>/quarantine/predictions/experiment=<key>/date=<YYYY-MM-DD>/part-<uuid>.parquet

Every file holds all columns of its schema (``STORED_PREDICTION_SCHEMA``, ``STORED_LABEL_SCHEMA``: the
record columns plus 64-bit keys of the ids, ``abkit.keys``); the directory names only help people and
pruning. Readers return the record columns (``PREDICTION_SCHEMA``, ``LABEL_SCHEMA``), in time order.
Inside a file the rows are clustered: one Parquet row group per arm, ordered by user within it, so an
engine that analyses one arm skips the others' row groups and finds a user's requests together.

**Durability.** A ``LogWriter`` buffers rows; ``flush()`` writes one file per (experiment, date)
partition to a hidden ``.part-<uuid>.parquet.tmp`` name in the target directory, fsyncs it, renames it to
``part-<uuid>.parquet`` (atomic on POSIX) and fsyncs the directory. A crash leaves at most a hidden
temp file, which no reader globs (``part-*.parquet``; Spark skips dot-files). Writers in several
processes never clash because every file name carries a fresh uuid.

**Validation policy.** Records are checked column-wise at ``append``: types, null/empty strings,
unknown variant, a different experiment, NaN/inf/out-of-range confidence, NaN/inf/negative latency.
With ``on_invalid="raise"`` (default) a call with any bad record raises ``InvalidRecordsError`` naming the
first bad record index, field and value, plus the counts of the others, and buffers *nothing* from that
call (earlier calls are untouched). With ``on_invalid="quarantine"`` the bad rows are written at once,
with an ``error`` column, under ``<root>/quarantine/`` and the good rows are buffered; ``LogWriter.last``
reports what happened. A missing required column is a structural error and raises under both policies.
``experiment`` (default: the writer's) and ``ts`` (default: now, UTC) may be omitted or null.

**Duplicates: exactly once at write time.** A request id seen earlier in the same call, in the writer's
session or already on disk for the experiment is dropped (the first record wins) and counted in
``LogWriter.duplicates``. Writers in several processes coordinate through an exclusive lock on
``<root>/predictions/experiment=<key>/.lock``: under it, ``flush()`` reads the ids of files committed since
its last look, drops buffered rows whose id is now on disk, and commits its files with the suffix
``.unique.parquet``, the writer's guarantee that no id in the file occurs in any other committed file of
the experiment. Labels get the same treatment (the first label appended for a request wins).

The suffix also vouches for the files' 64-bit keys (``abkit.logindex``): no two different ids of the
experiment share a request key or a unit key, so engines may join and group on the integers.

Readers trust that guarantee: when every file they read carries the suffix, they skip deduplication,
which is the costly part of reading a large log. A file without it (written with ``check_disk=False`` or
by another tool) makes readers deduplicate everything: each (experiment, request_id) counts once, the
first by ``ts`` (labels: first by ``labelled_at``). ``PredictionLog.duplicate_request_ids`` lists the ids
stored more than once. The lock is a POSIX advisory ``flock``: it coordinates processes on one machine
(or a file system that honours ``flock``).

>>> import tempfile, datetime as dt
>>> log = PredictionLog(tempfile.mkdtemp())
>>> rec = dict(variant="control", unit_id="u1", request_id="r1", text="great film",
...            predicted_label="pos", confidence=0.9, latency_ms=12.5, model_name="tfidf",
...            model_version="1", ts=dt.datetime(2024, 3, 1, 12, tzinfo=dt.timezone.utc))
>>> with log.writer("demo", ["control", "challenger"]) as w:
...     w.append([rec, rec | {"request_id": "r2", "variant": "challenger"}, rec])
2
>>> w.duplicates, log.read_predictions("demo").num_rows
(1, 2)
"""

from __future__ import annotations

import datetime as dt
import glob as globmod
import os
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from abkit.errors import AbkitError
from abkit.experiment import _KEY_RE
from abkit.keys import fnv1a64
from abkit.durable import ensure_dir, fsync_dir
from abkit.logindex import FILE_GLOB, LogIndex, has_repeats

__all__ = [
    "LABEL_SCHEMA",
    "PREDICTION_SCHEMA",
    "STORED_LABEL_SCHEMA",
    "STORED_PREDICTION_SCHEMA",
    "AppendReport",
    "InvalidRecordsError",
    "LogError",
    "LogWriter",
    "PredictionLog",
]

UTC_US = pa.timestamp("us", tz="UTC")
PREDICTION_SCHEMA = pa.schema(
    [
        ("experiment", pa.string()),
        ("variant", pa.string()),
        ("unit_id", pa.string()),
        ("request_id", pa.string()),
        ("ts", UTC_US),
        ("text", pa.string()),
        ("predicted_label", pa.string()),
        ("confidence", pa.float64()),
        ("latency_ms", pa.float64()),
        ("model_name", pa.string()),
        ("model_version", pa.string()),
    ]
)
LABEL_SCHEMA = pa.schema(
    [
        ("experiment", pa.string()),
        ("request_id", pa.string()),
        ("label", pa.string()),
        ("labelled_at", UTC_US),
    ]
)
# Files also store 64-bit keys of the ids (``abkit.keys.fnv1a64``), so engines join and group on integers.
STORED_PREDICTION_SCHEMA = PREDICTION_SCHEMA.append(pa.field("unit_key", pa.int64())).append(
    pa.field("request_key", pa.int64()))
# A label also stores what it labels, copied from its prediction when that is already committed (else null):
# engines then count labels per user without joining the predictions.
_PREDICTION_COPY = [("variant", pa.string()), ("unit_key", pa.int64()), ("predicted_label", pa.string()),
                    ("prediction_day", pa.int64())]  # prediction_day: days since 1970-01-01 of its ts (UTC)
STORED_LABEL_SCHEMA = pa.schema(list(LABEL_SCHEMA) + [pa.field("request_key", pa.int64())]
                                + [pa.field(n, t) for n, t in _PREDICTION_COPY])
_US_PER_DAY = 86_400_000_000
UNIQUE_SUFFIX = ".unique.parquet"  # a file whose request ids occur in no other committed file of its experiment


class LogError(AbkitError):
    """Bad input to the prediction log (structure, experiment key, records)."""


class InvalidRecordsError(LogError):
    """Some records of an ``append`` call failed validation; nothing from the call was buffered.

    ``index``/``field``/``value`` describe the first bad record; ``counts`` maps field -> bad records.
    """

    def __init__(self, message: str, *, index: int, field: str, value: Any, counts: dict[str, int]) -> None:
        super().__init__(message)
        self.index, self.field, self.value, self.counts = index, field, value, counts


@dataclass
class AppendReport:
    """What one ``append`` did: rows received, buffered, rejected (by field) and dropped as duplicates."""

    received: int = 0
    accepted: int = 0
    invalid: int = 0
    duplicates: int = 0
    invalid_by_field: dict[str, int] = field(default_factory=dict)
    quarantine_file: Path | None = None


# ---------------------------------------------------------------------------------------------------
# file plumbing


def _clustered(table: pa.Table) -> list[pa.Table]:
    """The rows as one row group per arm, ordered by user within it (a file with keys; else as they are).

    Engines that analyse one arm at a time then skip the other arms' row groups (Parquet min/max
    statistics), and a user's requests sit together, which makes grouping by user cheaper. Row order in a
    file carries no meaning: readers order by time.
    """
    if "unit_key" not in table.column_names or table.num_rows < 2:
        return [table]
    arms = pc.dictionary_encode(table["variant"]).combine_chunks()
    users = pc.fill_null(table["unit_key"], 0).to_numpy()
    order = np.lexsort((users, pc.fill_null(arms.indices, -1).to_numpy()))
    table = table.take(order)
    ends = pc.run_end_encode(table["variant"].combine_chunks()).run_ends.to_numpy()
    return [table.slice(lo, hi - lo) for lo, hi in zip(np.r_[0, ends[:-1]], ends)]


def _write_atomic(table: pa.Table, directory: Path, unique: bool = False) -> Path:
    """Write ``table`` as ``directory/part-<uuid>.parquet`` (``.unique.parquet`` when ``unique``), clustered
    by arm and user (``_clustered``): temp file, fsync, rename, fsync directory."""
    ensure_dir(directory)
    name = f"part-{uuid.uuid4().hex}{UNIQUE_SUFFIX if unique else '.parquet'}"
    tmp = directory / f".{name}.tmp"
    final = directory / name
    try:
        with open(tmp, "wb") as f:
            with pq.ParquetWriter(f, table.schema, compression="snappy") as out:
                for group in _clustered(table):
                    out.write_table(group)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(directory)
    return final


def _day_strings(ts: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, list[str]]:
    """Day index (days since epoch, UTC) per row and the ISO date of each distinct day."""
    micros = pc.cast(ts, pa.int64()).to_numpy(zero_copy_only=False)
    days = np.floor_divide(micros, _US_PER_DAY)
    unique = np.unique(days)
    return days, [(dt.date(1970, 1, 1) + dt.timedelta(days=int(d))).isoformat() for d in unique]


def _write_partitioned(table: pa.Table, base: Path, experiment: str, ts_column: str, unique: bool = False) -> list[Path]:
    days, names = _day_strings(table[ts_column])
    if len(names) == 1:
        return [_write_atomic(table, base / f"experiment={experiment}" / f"date={names[0]}", unique)]
    out = []
    for day, name in zip(np.unique(days), names, strict=True):
        part = table.filter(pa.array(days == day))
        out.append(_write_atomic(part, base / f"experiment={experiment}" / f"date={name}", unique))
    return out


def sql_string(text: str) -> str:
    """``text`` as an SQL string literal (DuckDB and Spark)."""
    return "'" + text.replace("'", "''") + "'"


def all_unique(paths: Iterable[str | Path]) -> bool:
    """Whether every file in ``paths`` was committed with the writer's uniqueness guarantee (and there is one)."""
    names = [str(p) for p in paths]
    return bool(names) and all(n.endswith(UNIQUE_SUFFIX) for n in names)


def _check_key(experiment: Any) -> str:
    if not isinstance(experiment, str) or not _KEY_RE.match(experiment):
        raise LogError(
            f"experiment key {experiment!r} is not valid; use 1-128 letters, digits, '.', '_' or '-' "
            "(it names a log directory), the same key as the Experiment."
        )
    return experiment


# ---------------------------------------------------------------------------------------------------
# turning input into typed columns


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def _is_timestamp(v: Any) -> bool:
    return isinstance(v, (dt.datetime, np.datetime64))


_PY_CHECK = {pa.string(): lambda v: isinstance(v, str), pa.float64(): _is_number, UTC_US: _is_timestamp}


def _typed_from_python(values: list[Any], target: pa.DataType) -> tuple[pa.Array, np.ndarray]:
    """Build a typed array from Python values; returns it and a mask of values of the wrong type."""
    ok = _PY_CHECK[target]
    try:
        arr = pa.array(values, type=target, from_pandas=True)
        if target == pa.float64() and any(isinstance(v, (bool, np.bool_)) for v in values):
            raise pa.ArrowTypeError("bool in a float column")
        return arr, np.zeros(len(values), dtype=bool)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
        bad = np.fromiter((v is not None and not ok(v) for v in values), dtype=bool, count=len(values))
        cleaned = [None if b else v for v, b in zip(values, bad, strict=True)]
        return pa.array(cleaned, type=target, from_pandas=True), bad


def _typed_from_arrow(arr: pa.Array | pa.ChunkedArray, target: pa.DataType) -> pa.ChunkedArray | None:
    """Cast an Arrow column to ``target`` when its type is acceptable, else None (wrong type)."""
    t = arr.type
    if pa.types.is_dictionary(t):
        arr = pc.cast(arr, t.value_type)
        t = arr.type
    if target == pa.string():
        acceptable = pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)
    elif target == pa.float64():
        acceptable = pa.types.is_integer(t) or pa.types.is_floating(t)
    else:
        acceptable = pa.types.is_timestamp(t)  # naive timestamps are taken to be UTC
    if pa.types.is_null(t):
        return pa.chunked_array([pa.nulls(len(arr), target)])
    if not acceptable:
        return None
    out = pc.cast(arr, target, safe=False)
    return out if isinstance(out, pa.ChunkedArray) else pa.chunked_array([out])


@dataclass
class _Columns:
    """Typed columns of one call plus, per column, a mask of rows whose value had the wrong type."""

    n: int
    columns: dict[str, pa.ChunkedArray]
    wrong_type: dict[str, np.ndarray]
    originals: dict[str, Any]  # column -> indexable original values, to quote in errors


def _to_columns(records: Any, schema: pa.Schema, defaults: Mapping[str, Any]) -> _Columns:
    """Normalise dict / list of dicts / DataFrame / Arrow input to the schema's columns."""
    if isinstance(records, Mapping):
        records = [records]
    if isinstance(records, pa.RecordBatch):
        records = pa.Table.from_batches([records])
    raw: dict[str, Any] = {}
    if isinstance(records, pa.Table):
        n = records.num_rows
        raw = {name: records[name] for name in records.column_names}
    elif hasattr(records, "columns") and hasattr(records, "dtypes"):  # pandas DataFrame
        n = len(records)
        for name in records.columns:
            try:
                raw[str(name)] = pa.chunked_array([pa.array(records[name], from_pandas=True)])
            except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError):
                raw[str(name)] = records[name].tolist()
    elif isinstance(records, Iterable) and not isinstance(records, (str, bytes)):
        records = list(records)
        n = len(records)
        for i, r in enumerate(records):
            if not isinstance(r, Mapping):
                raise LogError(
                    f"record {i} is {type(r).__name__}, not a mapping; give dicts, a DataFrame or a pa.Table."
                )
        names = dict.fromkeys(k for r in records[:1] for k in r)
        for r in records:
            if r.keys() != names.keys():
                names.update(dict.fromkeys(r))
        raw = {name: [r.get(name) for r in records] for name in names}
    else:
        raise LogError(f"records of type {type(records).__name__} are not supported; give a dict, a list of dicts, "
                       "a pandas DataFrame or a pyarrow Table.")
    missing = [f.name for f in schema if f.name not in raw and f.name not in defaults]
    if missing:
        raise LogError(f"records lack required column(s) {missing}; every record needs {schema.names} "
                       f"(optional: {sorted(defaults)}).")
    columns, wrong, originals = {}, {}, {}
    for f in schema:
        if f.name not in raw:
            columns[f.name] = pa.chunked_array([pa.array([defaults[f.name]] * n, type=f.type)])
            wrong[f.name] = np.zeros(n, dtype=bool)
            originals[f.name] = columns[f.name]
            continue
        value = raw[f.name]
        originals[f.name] = value
        if isinstance(value, list):
            arr, bad = _typed_from_python(value, f.type)
            columns[f.name], wrong[f.name] = pa.chunked_array([arr]), bad
        else:
            cast = _typed_from_arrow(value, f.type)
            if cast is None:
                columns[f.name] = pa.chunked_array([pa.nulls(n, f.type)])
                wrong[f.name] = np.ones(n, dtype=bool)
            else:
                columns[f.name], wrong[f.name] = cast, np.zeros(n, dtype=bool)
        if f.name in defaults and columns[f.name].null_count:  # optional column: null means "default"
            columns[f.name] = pc.fill_null(columns[f.name], pa.scalar(defaults[f.name], f.type))
    return _Columns(n, columns, wrong, originals)


def _quote(originals: Any, i: int) -> Any:
    v = originals[i]
    return v.as_py() if hasattr(v, "as_py") else v


# ---------------------------------------------------------------------------------------------------
# vectorized checks


def _mask(arr: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Boolean Arrow result -> numpy, nulls counted as True (= bad)."""
    return pc.fill_null(arr, True).to_numpy(zero_copy_only=False).astype(bool, copy=False)


def _bad_string(col: pa.ChunkedArray) -> np.ndarray:
    return _mask(pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(col)), 0))


def _bad_number(col: pa.ChunkedArray, lo: float, hi: float) -> np.ndarray:
    values = col.to_numpy(zero_copy_only=False)  # nulls -> NaN
    with np.errstate(invalid="ignore"):
        return ~((values >= lo) & (values <= hi))


_STRING_FIX = "give a non-empty string."


def _prediction_checks(cols: _Columns, experiment: str, variants: Sequence[str]) -> list[tuple[str, np.ndarray, str]]:
    c = cols.columns
    return [
        ("experiment", _mask(pc.not_equal(c["experiment"], experiment)),
         f"this writer logs experiment {experiment!r}; open another writer for other experiments."),
        ("variant", _mask(pc.invert(pc.is_in(c["variant"], value_set=pa.array(list(variants))))),
         f"variant must be one of {list(variants)}."),
        ("unit_id", _bad_string(c["unit_id"]), _STRING_FIX),
        ("request_id", _bad_string(c["request_id"]), _STRING_FIX),
        ("ts", _mask(pc.is_null(c["ts"])), "give a timestamp (timezone-aware, or naive UTC)."),
        ("text", _bad_string(c["text"]), "the input text must be a non-empty string."),
        ("predicted_label", _bad_string(c["predicted_label"]), _STRING_FIX),
        ("confidence", _bad_number(c["confidence"], 0.0, 1.0), "confidence must be a finite number in [0, 1]."),
        ("latency_ms", _bad_number(c["latency_ms"], 0.0, np.inf), "latency_ms must be a finite number >= 0."),
        ("model_name", _bad_string(c["model_name"]), _STRING_FIX),
        ("model_version", _mask(pc.is_null(c["model_version"])), "give the model version as a string."),
    ]


def _label_checks(cols: _Columns) -> list[tuple[str, np.ndarray, str]]:
    c = cols.columns
    key_ok = pc.match_substring_regex(c["experiment"], _KEY_RE.pattern)
    return [
        ("experiment", _mask(pc.invert(key_ok)), "give the experiment key the predictions were logged under."),
        ("request_id", _bad_string(c["request_id"]), _STRING_FIX),
        ("label", _bad_string(c["label"]), "the true label must be a non-empty string."),
        ("labelled_at", _mask(pc.is_null(c["labelled_at"])), "give a timestamp (timezone-aware, or naive UTC)."),
    ]


@dataclass
class _Verdict:
    bad: np.ndarray  # row is invalid
    reason: np.ndarray  # object array of "field: fix" for bad rows, None for good ones
    counts: dict[str, int]
    first: tuple[int, str, Any, str] | None  # index, field, value, fix


def _judge(cols: _Columns, checks: list[tuple[str, np.ndarray, str]]) -> _Verdict:
    bad = np.zeros(cols.n, dtype=bool)
    reason = np.full(cols.n, None, dtype=object)
    counts: dict[str, int] = {}
    first: tuple[int, str, Any, str] | None = None
    for name, failed, fix in checks:
        wrong = cols.wrong_type[name]
        failed = failed | wrong
        new = failed & ~bad
        if new.any():
            counts[name] = int(new.sum())
            reason[new] = [
                f"{name}: wrong type; {fix}" if w else f"{name}: {fix}" for w in wrong[new]
            ]
            i = int(np.argmax(new))
            if first is None or i < first[0]:
                first = (i, name, _quote(cols.originals[name], i), ("wrong type; " if wrong[i] else "") + fix)
            bad |= new
    return _Verdict(bad, reason, counts, first)


def _error_message(verdict: _Verdict, what: str) -> str:
    i, name, value, fix = verdict.first  # type: ignore[misc]
    total = int(verdict.bad.sum())
    by_field = ", ".join(f"{k}: {v}" for k, v in verdict.counts.items())
    return (f"{what} record {i}: field {name!r} is {value!r}; {fix} "
            f"({total} invalid record(s) in this call — {by_field}; nothing from this call was written; "
            "fix them or open the writer with on_invalid='quarantine').")


def _table(cols: _Columns, schema: pa.Schema, keep: np.ndarray | None = None) -> pa.Table:
    table = pa.Table.from_arrays([cols.columns[f.name] for f in schema], schema=schema)
    return table if keep is None or keep.all() else table.filter(pa.array(keep))


def _first_occurrence(ids: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Mask of rows whose id did not occur earlier in the array."""
    n = len(ids)
    index = pa.table({"id": ids, "row": pa.array(np.arange(n))})
    first = index.group_by("id", use_threads=False).aggregate([("row", "min")])["row_min"]
    keep = np.zeros(n, dtype=bool)
    keep[first.to_numpy()] = True
    return keep


# ---------------------------------------------------------------------------------------------------
# public API


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
        self.experiment = _check_key(experiment)
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
        self.received = self.accepted = self.invalid = self.duplicates = self.flushed = 0
        self.files: list[Path] = []
        self.last = AppendReport()

    # -- context manager
    def __enter__(self) -> LogWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def buffered(self) -> int:
        """Rows appended but not yet durable."""
        return self._buffered

    def append(self, records: Any) -> int:
        """Validate and buffer records; returns how many were accepted (see ``last`` for the details)."""
        now = dt.datetime.now(dt.timezone.utc)
        cols = _to_columns(records, PREDICTION_SCHEMA, {"experiment": self.experiment, "ts": now})
        verdict = _judge(cols, _prediction_checks(cols, self.experiment, self.variants))
        report = AppendReport(received=cols.n, invalid=int(verdict.bad.sum()), invalid_by_field=verdict.counts)
        if report.invalid and self.on_invalid == "raise":
            self.last = report
            self.received += cols.n
            self.invalid += report.invalid
            raise InvalidRecordsError(
                _error_message(verdict, "prediction"), index=verdict.first[0], field=verdict.first[1],
                value=verdict.first[2], counts=verdict.counts,
            )
        if report.invalid:
            report.quarantine_file = self.log._quarantine(cols, verdict, self.experiment)
        good = _table(cols, PREDICTION_SCHEMA, ~verdict.bad)
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
        ``.unique.parquet`` (unless two different ids ever shared a 64-bit key, see ``abkit.logindex``).
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
            if taken.any():
                self.duplicates += int(taken.sum())
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
        written = _write_partitioned(stored, self.log.root / "predictions", self.experiment, "ts", unique and not clash)
        self.files.extend(written)
        self._index.add("predictions", written, keys.tolist(), ids, unit_keys.tolist(), unit_ids, collides=clash)
        self._pending.clear()
        self._buffer.clear()
        self.flushed += table.num_rows
        self._buffered = 0

    def close(self) -> None:
        """Flush; the writer can still be used afterwards."""
        self.flush()


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

    def append_labels(self, records: Any) -> int:
        """Validate and durably write label records (raises ``InvalidRecordsError`` on any bad one).

        ``labelled_at`` defaults to now. The first label appended for a request wins: a request id repeated
        within the call, or labelled by an earlier call (in any process), is not written again.
        Returns the number of label rows written.
        """
        now = dt.datetime.now(dt.timezone.utc)
        cols = _to_columns(records, LABEL_SCHEMA, {"labelled_at": now})
        verdict = _judge(cols, _label_checks(cols))
        if verdict.bad.any():
            raise InvalidRecordsError(
                _error_message(verdict, "label"), index=verdict.first[0], field=verdict.first[1],
                value=verdict.first[2], counts=verdict.counts,
            )
        table = _table(cols, LABEL_SCHEMA)
        table = table.filter(pa.array(_first_occurrence(pc.binary_join_element_wise(
            table["experiment"], table["request_id"], "\x00"))))
        written = 0
        for key in pc.unique(table["experiment"]).to_pylist():
            part = table.filter(pc.equal(table["experiment"], key))
            index = self._index(key)
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
                for name, column in self._predictions_of(key, keys).items():
                    stored = stored.append_column(name, column)
                files = _write_partitioned(stored, self.root / "labels", key, "labelled_at", not clash)
                index.add("labels", files, keys.tolist(), ids, collides=clash)
            written += part.num_rows
        return written

    def _predictions_of(self, experiment: str, keys: np.ndarray) -> dict[str, pa.Array]:
        """For each request key, the committed prediction's ``_PREDICTION_COPY`` columns (null if none yet)."""
        out = {n: pa.nulls(len(keys), t) for n, t in _PREDICTION_COPY}
        files = [f for f in globmod.glob(self.predictions_glob(experiment)) if f.endswith(UNIQUE_SUFFIX)]
        if not files or not len(keys):
            return out
        self.con.register("_abkit_keys", pa.table({"request_key": keys, "row": np.arange(len(keys))}))
        try:
            found = self.con.sql(
                "SELECT k.row, p.variant, p.unit_key, p.predicted_label, epoch_us(p.ts) // 86400000000 AS prediction_day "
                f"FROM _abkit_keys k JOIN read_parquet([{', '.join(sql_string(f) for f in files)}]) p USING (request_key)"
            ).to_arrow_table()
        finally:
            self.con.unregister("_abkit_keys")
        if found.num_rows:
            where = found["row"].to_numpy()
            for n, t in _PREDICTION_COPY:
                values = np.full(len(keys), None, dtype=object)
                values[where] = found[n].to_numpy(zero_copy_only=False)
                out[n] = pa.array(values, t)
        return out

    def _index(self, experiment: str) -> LogIndex:
        """This object's index of what ``experiment``'s committed files hold (shared by its writers)."""
        if experiment not in self._indexes:
            self._indexes[experiment] = LogIndex(self.root, experiment)
        return self._indexes[experiment]

    def _quarantine(self, cols: _Columns, verdict: _Verdict, experiment: str) -> Path:
        bad = _table(cols, PREDICTION_SCHEMA, verdict.bad)
        bad = bad.append_column("record_index", pa.array(np.flatnonzero(verdict.bad)))
        bad = bad.append_column("error", pa.array(verdict.reason[verdict.bad].tolist(), pa.string()))
        today = dt.datetime.now(dt.timezone.utc).date().isoformat()
        directory = self.root / "quarantine" / "predictions" / f"experiment={experiment}" / f"date={today}"
        return _write_atomic(bad, directory)

    # -- reading
    def predictions_glob(self, experiment: str | None = None) -> str:
        """Glob of committed prediction files (never temp files)."""
        part = "*" if experiment is None else f"experiment={_check_key(experiment)}"
        return str(self.root / "predictions" / part / "*" / FILE_GLOB)

    def labels_glob(self, experiment: str | None = None) -> str:
        """Glob of committed label files."""
        part = "*" if experiment is None else f"experiment={_check_key(experiment)}"
        return str(self.root / "labels" / part / "*" / FILE_GLOB)

    def quarantine_glob(self, experiment: str | None = None) -> str:
        """Glob of quarantined prediction files (with ``record_index`` and ``error`` columns)."""
        part = "*" if experiment is None else f"experiment={_check_key(experiment)}"
        return str(self.root / "quarantine" / "predictions" / part / "*" / FILE_GLOB)

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
        where = "" if experiment is None else f"WHERE experiment = '{_check_key(experiment)}'"
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
