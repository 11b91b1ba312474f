"""The log's on-disk layout: the one module that knows file names, partitions, the uniqueness mark, globs,
row groups and their statistics, and the columns a label copies from its prediction.

Layout under a root directory::

    <root>/predictions/experiment=<key>/date=<YYYY-MM-DD>/part-<uuid>[.unique].parquet
    <root>/labels/experiment=<key>/date=<YYYY-MM-DD>/part-<uuid>[.unique].parquet
    <root>/quarantine/predictions/experiment=<key>/date=<YYYY-MM-DD>/part-<uuid>.parquet

Every file holds all columns of its stored schema (``STORED_PREDICTION_SCHEMA``, ``STORED_LABEL_SCHEMA``: the
record columns plus 64-bit keys of the ids, ``abkit.log.keys``, and for labels a copy of what they label);
the directory names only help people and pruning. Inside a file the rows are clustered: one Parquet row
group per arm, ordered by user within it, so an engine that analyses one arm skips the others' row groups
(min/max statistics) and finds a user's requests together.

A file is written to a hidden ``.part-<uuid>.parquet.tmp`` name in its folder, fsynced, renamed (atomic on
POSIX) and the folder fsynced: a crash leaves at most a hidden temp file, which no glob here matches
(``part-*.parquet``; Spark skips dot-files too).

The suffix ``.unique.parquet`` marks a file whose request ids occur in no other marked file of its
experiment and whose ids' 64-bit keys are one-to-one with the ids (see ``abkit.log.index``); readers that see
only marked files skip deduplication and join and group on the integer keys.
"""

from __future__ import annotations

import datetime as dt
import glob as globmod
import os
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from abkit.log.durable import ensure_dir, fsync_dir
from abkit.log.schema import LABEL_SCHEMA, PREDICTION_SCHEMA, check_key

__all__ = [
    "FILE_GLOB", "LABEL_COPY", "STORED_LABEL_SCHEMA", "STORED_PREDICTION_SCHEMA", "UNIQUE_SUFFIX", "Kind",
    "LogSource", "all_copied", "all_unique", "experiment_dir", "kind_glob", "log_source", "row_group_stats",
    "write_atomic", "write_partitioned",
]

Kind = Literal["predictions", "labels"]
FILE_GLOB = "part-*.parquet"  # committed files (temp files are hidden: ``.part-*.tmp``)
UNIQUE_SUFFIX = ".unique.parquet"  # a file whose request ids occur in no other marked file of its experiment
US_PER_DAY = 86_400_000_000

# Files also store 64-bit keys of the ids (``abkit.log.keys.fnv1a64``), so engines join and group on integers.
STORED_PREDICTION_SCHEMA = PREDICTION_SCHEMA.append(pa.field("unit_key", pa.int64())).append(
    pa.field("request_key", pa.int64()))
# A label also stores what it labels, copied from its prediction when that is already committed (else null):
# engines then count labels per user without joining the predictions.
LABEL_COPY: list[tuple[str, pa.DataType]] = [
    ("variant", pa.string()), ("unit_key", pa.int64()), ("predicted_label", pa.string()),
    ("prediction_day", pa.int64())]  # prediction_day: days since 1970-01-01 of its ts (UTC)
STORED_LABEL_SCHEMA = pa.schema(list(LABEL_SCHEMA) + [pa.field("request_key", pa.int64())]
                                + [pa.field(n, t) for n, t in LABEL_COPY])


# ---------------------------------------------------------------------------------------------------
# names and globs


def experiment_dir(root: Path, kind: Kind | Literal["quarantine"], experiment: str) -> Path:
    """The folder of one experiment's files of ``kind`` (its date partitions below it)."""
    base = root / "quarantine" / "predictions" if kind == "quarantine" else root / kind
    return base / f"experiment={check_key(experiment)}"


def kind_glob(root: Path, kind: Kind | Literal["quarantine"], experiment: str | None = None) -> str:
    """Glob of the committed files of ``kind`` (of one experiment, or of all), never temp files."""
    if experiment is None:
        base = (root / "quarantine" / "predictions" if kind == "quarantine" else root / kind) / "*"
    else:
        base = experiment_dir(root, kind, experiment)
    return str(base / "*" / FILE_GLOB)


def lock_path(root: Path, experiment: str) -> Path:
    """The file whose ``flock`` serializes the experiment's checking writers (predictions and labels)."""
    return experiment_dir(root, "predictions", experiment) / ".lock"


def all_unique(paths: Iterable[str | Path]) -> bool:
    """Whether every file in ``paths`` was committed with the writer's uniqueness guarantee (and there is one)."""
    names = [str(p) for p in paths]
    return bool(names) and all(n.endswith(UNIQUE_SUFFIX) for n in names)


# ---------------------------------------------------------------------------------------------------
# writing


def clustered(table: pa.Table) -> list[pa.Table]:
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


def write_atomic(table: pa.Table, directory: Path, unique: bool = False) -> Path:
    """Write ``table`` as ``directory/part-<uuid>.parquet`` (``.unique.parquet`` when ``unique``), clustered
    by arm and user (``clustered``): temp file, fsync, rename, fsync directory."""
    ensure_dir(directory)
    name = f"part-{uuid.uuid4().hex}{UNIQUE_SUFFIX if unique else '.parquet'}"
    tmp = directory / f".{name}.tmp"
    final = directory / name
    try:
        with open(tmp, "wb") as f:
            with pq.ParquetWriter(f, table.schema, compression="snappy") as out:
                for group in clustered(table):
                    out.write_table(group)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(directory)
    return final


def day_strings(ts: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, list[str]]:
    """Day index (days since epoch, UTC) per row and the ISO date of each distinct day."""
    micros = pc.cast(ts, pa.int64()).to_numpy(zero_copy_only=False)
    days = np.floor_divide(micros, US_PER_DAY)
    unique = np.unique(days)
    return days, [(dt.date(1970, 1, 1) + dt.timedelta(days=int(d))).isoformat() for d in unique]


def write_partitioned(table: pa.Table, root: Path, kind: Kind | Literal["quarantine"], experiment: str,
                      ts_column: str, unique: bool = False) -> list[Path]:
    """Write ``table`` (rows of one experiment) as one file per ``date=`` partition of ``ts_column``."""
    base = experiment_dir(root, kind, experiment)
    days, names = day_strings(table[ts_column])
    if len(names) == 1:
        return [write_atomic(table, base / f"date={names[0]}", unique)]
    out = []
    for day, name in zip(np.unique(days), names, strict=True):
        part = table.filter(pa.array(days == day))
        out.append(write_atomic(part, base / f"date={name}", unique))
    return out


def quarantine_dir(root: Path, experiment: str, day: dt.date) -> Path:
    """The partition that receives the quarantined predictions of ``experiment`` written on ``day``."""
    return experiment_dir(root, "quarantine", experiment) / f"date={day.isoformat()}"


# ---------------------------------------------------------------------------------------------------
# reading: file statistics and what an engine reads


def row_group_stats(path: str, column: str) -> list[Any]:
    """Per row group of a Parquet file the statistics of ``column`` (None where absent; [None] when the file
    lacks the column)."""
    meta = pq.ParquetFile(path).metadata
    if column not in meta.schema.names:
        return [None]
    col = meta.schema.names.index(column)
    return [meta.row_group(g).column(col).statistics for g in range(meta.num_row_groups)]


def all_copied(label_files: Sequence[str]) -> bool:
    """Whether every label row holds its prediction's copy (``unit_key`` never null), from file statistics."""
    return all(s is not None and s.has_null_count and not s.null_count
               for f in label_files for s in row_group_stats(f, "unit_key"))


def single_values(files: Sequence[str], column: str) -> set[str] | None:
    """The values of ``column`` when every row group of ``files`` holds one value only (its min equals its
    max: e.g. the arm of a clustered file), else None (then a query must tell)."""
    stats = [s for f in files for s in row_group_stats(f, column)]
    if all(s is not None and s.has_min_max and s.min == s.max for s in stats):
        return {str(s.min) for s in stats}
    return None


class LogSource(NamedTuple):
    """What an engine reads for one experiment: the prediction and label folders and, when they hold only
    unique files of that experiment (with 64-bit keys, and the experiment's rows only), its dates."""

    experiment: str
    predictions: Path
    labels: Path
    unique: bool
    days: tuple[str, ...] = ()  # unique: the experiment's date partitions, i.e. the days of its predictions
    copied: bool = False  # unique, and every label carries its prediction's copy: labels need no join

    def pattern(self, kind: Kind) -> str:
        """DuckDB glob of every Parquet file of ``kind`` in the source (recursive)."""
        return str((self.predictions if kind == "predictions" else self.labels) / "**" / "*.parquet")

    def files(self, kind: Kind) -> list[str]:
        """The Parquet files of ``kind`` in the source."""
        return globmod.glob(self.pattern(kind), recursive=True)

    def variants(self) -> set[str] | None:
        """The arms in a unique source of clustered files, from row-group statistics (None: unknown)."""
        if not self.unique:
            return None
        return single_values(globmod.glob(str(self.predictions / "*" / "*.parquet")), "variant")


def has_predictions(root: Path) -> bool:
    """Whether the log at ``root`` holds any prediction file."""
    return bool(globmod.glob(str(root / "predictions" / "**" / "*.parquet"), recursive=True))


def log_source(root: str | Path, experiment: str) -> LogSource:
    """What an engine reads for ``experiment`` of the log at ``root``: the experiment's own folders when every
    file of the log is unique (and it has predictions), else the whole log, to be deduplicated and filtered
    by experiment."""
    root = Path(root)
    check_key(experiment)
    files = [f for kind in ("predictions", "labels")
             for f in globmod.glob(str(root / kind / "**" / "*.parquet"), recursive=True)]
    own = [root / kind / f"experiment={experiment}" for kind in ("predictions", "labels")]
    dated = sorted({Path(f).parent.name for f in globmod.glob(str(own[0] / "date=*" / "*.parquet"))})
    if all_unique(files) and dated:
        labels = globmod.glob(str(own[1] / "*" / "*.parquet"))
        return LogSource(experiment, own[0], own[1], True, tuple(d.removeprefix("date=") for d in dated),
                         all_copied(labels))
    return LogSource(experiment, root / "predictions", root / "labels", False)
