"""The log's on-disk layout: the one module that knows file names, partitions, marks, the manifest, globs,
row groups and their statistics, and the columns a label copies from its prediction.

Layout under a root directory::

    <root>/predictions/experiment=<key>/date=<YYYY-MM-DD>/part-<uuid>.parquet            appended (a delta)
    <root>/predictions/experiment=<key>/date=<YYYY-MM-DD>/part-<uuid>.compacted.parquet  compacted
    <root>/predictions/experiment=<key>/_manifest.json                                  what is compacted
    <root>/labels/experiment=<key>/date=<YYYY-MM-DD>/part-<uuid>[.compacted].parquet
    <root>/quarantine/predictions/experiment=<key>/date=<YYYY-MM-DD>/part-<uuid>.parquet

**Appended files (deltas).** Writers need no lock: each flush writes new files with a fresh uuid (hidden
temp name ``.part-<uuid>.parquet.<host>.<pid>.tmp``, fsync, atomic rename, fsync of the folder), so writers on
any number of machines append to one experiment. A delta may repeat request ids of other files. Any other
Parquet file under ``predictions/`` (or ``labels/``) in the documented schema counts as a delta too: inside an
``experiment=<key>`` folder it must hold only that experiment's rows; elsewhere (a foreign log dropped in,
e.g. Spark's ``part-00000-….snappy.parquet``) its ``experiment`` column says. Hidden files and those starting
with ``_`` are ignored, as Spark and DuckDB do.

**Compacted files and the manifest.** Compaction (``abkit.log.compact``) rewrites deltas into compacted files:
each request id once over all of the experiment's compacted files, the ids' 64-bit keys one-to-one (unless
``collided``), clustered (one file per date partition and arm), labels with their prediction's copy. The
manifest, replaced atomically, is the commit point: it lists the compacted files and the deltas they absorbed
(``consumed``, by path, size and modification time). A compacted file that the manifest does not list is an
orphan of an interrupted compaction and is ignored; a consumed delta is skipped by readers and deleted by a
later compaction.

**Exactly once for readers.** A reader takes the manifest's compacted files as they are, and deduplicates
only the deltas: a delta row counts when its request id is in no compacted file and it is the first copy
among the deltas (by ``ts``, then the values; labels by ``labelled_at``, then the label). Compaction applies
the same rule, so every reader gives the same answer before and after it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from abkit.log.durable import ensure_dir, fsync_dir
from abkit.log.schema import LABEL_SCHEMA, PREDICTION_SCHEMA, LogError, check_key

__all__ = [
    "COMPACTED_SUFFIX",
    "FILE_GLOB",
    "LABEL_COPY",
    "STORED_LABEL_SCHEMA",
    "STORED_PREDICTION_SCHEMA",
    "Kind",
    "LogFileError",
    "LogSource",
    "Manifest",
    "all_copied",
    "experiment_dir",
    "kind_glob",
    "log_source",
    "part_name",
    "read_manifest",
    "row_group_stats",
    "write_atomic",
    "write_manifest",
    "write_partitioned",
]

Kind = Literal["predictions", "labels"]
KINDS: tuple[Kind, Kind] = ("predictions", "labels")
FILE_GLOB = "part-*.parquet"  # files written by abkit (temp files are hidden: ``.part-*.tmp``)
COMPACTED_SUFFIX = ".compacted.parquet"  # valid only while the experiment's manifest lists it
MANIFEST = "_manifest.json"
US_PER_DAY = 86_400_000_000

# Files also store 64-bit keys of the ids (``abkit.log.keys.fnv1a64``), so engines join and group on integers.
STORED_PREDICTION_SCHEMA = PREDICTION_SCHEMA.append(pa.field("unit_key", pa.int64())).append(
    pa.field("request_key", pa.int64())
)
# A compacted label also stores what it labels, copied from its prediction when that is compacted (else null):
# engines then count labels per user without joining the predictions.
LABEL_COPY: list[tuple[str, pa.DataType]] = [
    ("variant", pa.string()),
    ("unit_key", pa.int64()),
    ("predicted_label", pa.string()),
    ("prediction_day", pa.int64()),
]  # prediction_day: days since 1970-01-01 of its ts (UTC)
STORED_LABEL_SCHEMA = pa.schema(
    list(LABEL_SCHEMA) + [pa.field("request_key", pa.int64())] + [pa.field(n, t) for n, t in LABEL_COPY]
)
RECORD_SCHEMAS: dict[Kind, pa.Schema] = {"predictions": PREDICTION_SCHEMA, "labels": LABEL_SCHEMA}


class LogFileError(LogError):
    """A Parquet file of the log lacks a column of the documented schema or holds it with the wrong type."""


# ---------------------------------------------------------------------------------------------------
# names and globs


def experiment_dir(root: Path, kind: Kind | Literal["quarantine"], experiment: str) -> Path:
    """The folder of one experiment's files of ``kind`` (its date partitions below it)."""
    base = root / "quarantine" / "predictions" if kind == "quarantine" else root / kind
    return base / f"experiment={check_key(experiment)}"


def kind_glob(root: Path, kind: Kind | Literal["quarantine"], experiment: str | None = None) -> str:
    """Glob of the files abkit wrote for ``kind`` (of one experiment, or of all), never temp files. It lists
    files, not what is valid: readers use ``log_source``."""
    if experiment is None:
        base = (root / "quarantine" / "predictions" if kind == "quarantine" else root / kind) / "*"
    else:
        base = experiment_dir(root, kind, experiment)
    return str(base / "*" / FILE_GLOB)


def _visible(path: Path, base: Path) -> bool:
    return not any(part.startswith((".", "_")) for part in path.relative_to(base).parts)


def parquet_files(base: Path) -> Iterator[Path]:
    """Every visible Parquet file below ``base`` (hidden and ``_`` names skipped, as Spark does)."""
    if not base.is_dir():
        return
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "_")))
        for name in sorted(filenames):
            if name.endswith(".parquet") and not name.startswith((".", "_")):
                yield Path(dirpath) / name


def experiments(root: Path) -> list[str]:
    """The experiments in the log: those with a folder, and those named in the ``experiment`` column of files
    outside any experiment's folder (foreign files)."""
    keys = set()
    for kind in KINDS:
        base = root / kind
        for path in parquet_files(base):
            folder = next((p for p in path.relative_to(base).parts[:-1] if p.startswith("experiment=")), None)
            if folder is not None:
                keys.add(folder.removeprefix("experiment="))
            else:
                try:
                    column = pq.read_table(path, columns=["experiment"])["experiment"]
                except (KeyError, pa.ArrowException) as exc:
                    raise LogFileError(f"{path}: no readable 'experiment' column ({exc}); expected a string") from exc
                keys.update(str(k) for k in pc.unique(column).to_pylist() if k is not None)
    return sorted(keys)


def temp_name(name: str) -> str:
    """The hidden temp name of file ``name`` while it is written: it names the host and process, so that a
    temp file of a writer that died can be told from one being written (``stale_temp_files``)."""
    return f".{name}.{socket.gethostname().replace('.', '_')}.{os.getpid()}.tmp"


def stale_temp_files(root: Path, max_age_s: float, now: float | None = None) -> list[Path]:
    """Temp files left by killed writers: on this host, of a process that no longer exists; on any host,
    older than ``max_age_s`` seconds."""
    now = dt.datetime.now().timestamp() if now is None else now
    host = socket.gethostname().replace(".", "_")
    out = []
    for kind in ("predictions", "labels", "quarantine"):
        base = root / kind
        if not base.is_dir():
            continue
        for path in base.rglob(".*.tmp"):
            parts = path.name.rsplit(".", 3)  # .<name>.<host>.<pid>.tmp
            dead = len(parts) == 4 and parts[1] == host and parts[2].isdigit() and not _alive(int(parts[2]))
            try:
                old = now - path.stat().st_mtime > max_age_s
            except FileNotFoundError:  # its writer just renamed it
                continue
            if dead or old:
                out.append(path)
    return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ---------------------------------------------------------------------------------------------------
# writing


def clustered(table: pa.Table) -> list[pa.Table]:
    """The rows as one row group per arm, ordered by user within it (a file with keys; else as they are).

    Engines that analyse one arm at a time then skip the other arms' row groups (Parquet min/max
    statistics), and a user's requests sit together, which makes grouping by user cheaper. Row order in a
    file carries no meaning: readers order by time.
    """
    if "unit_key" not in table.column_names or "variant" not in table.column_names or table.num_rows < 2:
        return [table]
    arms = pc.dictionary_encode(table["variant"]).combine_chunks()
    users = pc.fill_null(table["unit_key"], 0).to_numpy()
    order = np.lexsort((users, pc.fill_null(arms.indices, -1).to_numpy()))
    table = table.take(order)
    ends = pc.run_end_encode(table["variant"].combine_chunks()).run_ends.to_numpy()
    return [table.slice(lo, hi - lo) for lo, hi in zip(np.r_[0, ends[:-1]], ends)]


def part_name(compacted: bool = False) -> str:
    """A new file name of the log: ``part-<uuid>.parquet``, or ``.compacted.parquet`` (valid once a manifest
    lists it)."""
    return f"part-{uuid.uuid4().hex}{COMPACTED_SUFFIX if compacted else '.parquet'}"


def write_atomic(
    table: pa.Table | Iterable[pa.Table], directory: Path, compacted: bool = False, schema: pa.Schema | None = None
) -> Path:
    """Write ``table`` (or row groups one by one, with ``schema``) as ``directory/part_name(compacted)``, a
    table clustered by arm and user (``clustered``): temp file, fsync, rename, fsync directory."""
    ensure_dir(directory)
    name = part_name(compacted)
    tmp = directory / temp_name(name)
    final = directory / name
    groups = clustered(table) if isinstance(table, pa.Table) else table
    try:
        with open(tmp, "wb") as f:
            with pq.ParquetWriter(
                f, table.schema if isinstance(table, pa.Table) else schema, compression="snappy"
            ) as out:
                for group in groups:
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


def date_dir(root: Path, kind: Kind, experiment: str, day: int | str) -> Path:
    """The ``date=`` partition of a day (a day number since 1970-01-01, or an ISO date)."""
    iso = day if isinstance(day, str) else (dt.date(1970, 1, 1) + dt.timedelta(days=int(day))).isoformat()
    return experiment_dir(root, kind, experiment) / f"date={iso}"


def write_partitioned(table: pa.Table, root: Path, kind: Kind, experiment: str, ts_column: str) -> list[Path]:
    """Write ``table`` (rows of one experiment) as one appended file per ``date=`` partition of ``ts_column``."""
    days, names = day_strings(table[ts_column])
    if len(names) == 1:
        return [write_atomic(table, date_dir(root, kind, experiment, names[0]))]
    out = []
    for day, name in zip(np.unique(days), names, strict=True):
        out.append(write_atomic(table.filter(pa.array(days == day)), date_dir(root, kind, experiment, name)))
    return out


def quarantine_dir(root: Path, experiment: str, day: dt.date) -> Path:
    """The partition that receives the quarantined predictions of ``experiment`` written on ``day``."""
    return experiment_dir(root, "quarantine", experiment) / f"date={day.isoformat()}"


# ---------------------------------------------------------------------------------------------------
# the manifest


@dataclass
class Manifest:
    """What is compacted for one experiment (paths relative to the log root)."""

    compacted: dict[str, list[str]] = field(default_factory=lambda: {k: [] for k in KINDS})
    consumed: dict[str, list[list[Any]]] = field(
        default_factory=lambda: {k: [] for k in KINDS}
    )  # [path, size, mtime_ns]
    dropped: dict[str, int] = field(default_factory=lambda: {k: 0 for k in KINDS})  # duplicate rows compaction removed
    invalid: dict[str, int] = field(default_factory=lambda: {k: 0 for k in KINDS})  # unusable rows it left out
    days: list[str] = field(default_factory=list)  # ISO dates of the compacted predictions
    collided: bool = False  # two ids of the experiment share a 64-bit key: engines must use the strings
    generation: int = 0

    def files(self, root: Path, kind: Kind) -> list[str]:
        """Absolute paths of the compacted files of ``kind``."""
        return [str(root / p) for p in self.compacted[kind]]

    def consumed_set(self, kind: Kind) -> set[tuple[str, int, int]]:
        return {(p, int(size), int(mtime)) for p, size, mtime in self.consumed[kind]}


def manifest_path(root: Path, experiment: str) -> Path:
    """Where the experiment's manifest lives."""
    return experiment_dir(root, "predictions", experiment) / MANIFEST


def read_manifest(root: Path, experiment: str) -> Manifest:
    """The experiment's manifest (an empty one before its first compaction)."""
    path = manifest_path(root, experiment)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return Manifest()
    except (OSError, ValueError) as exc:
        raise LogError(
            f"{path}: the manifest cannot be read ({exc}); restore it or delete it and compact again "
            "(the compacted files are then orphans and the deltas are read again)"
        ) from exc
    return Manifest(**data)


def write_manifest(root: Path, experiment: str, manifest: Manifest) -> None:
    """Replace the experiment's manifest atomically (temp, fsync, rename, fsync folder): the commit point."""
    path = manifest_path(root, experiment)
    ensure_dir(path.parent)
    tmp = path.parent / temp_name(MANIFEST)
    with open(tmp, "w") as f:
        json.dump(manifest.__dict__, f)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)
    fsync_dir(path.parent)


def file_id(root: Path, path: Path) -> tuple[str, int, int]:
    """(path relative to root, size, modification time in ns): how the manifest recognises a consumed file."""
    st = path.stat()
    return str(path.relative_to(root)), st.st_size, st.st_mtime_ns


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


def type_groups(files: Sequence[str], columns: Sequence[str]) -> list[list[str]]:
    """``files`` grouped by how they store ``columns`` (Parquet physical and logical types, from the footers),
    in order of first appearance: an engine that cannot merge two types of one column (Spark: float and double,
    naive and UTC timestamps) reads each group apart. Compacted files all hold the stored schema: one group,
    whose footers are not read (a large log has many)."""
    wanted = set(columns)
    groups: dict[tuple[tuple[str, str, str], ...], list[str]] = {}
    for f in files:
        if f.endswith(COMPACTED_SUFFIX):
            key: tuple[tuple[str, str, str], ...] = (("", "compacted", ""),)
        else:
            schema = pq.read_metadata(f).schema
            stored = (schema.column(i) for i in range(len(schema)))
            key = tuple(sorted((c.path, c.physical_type, c.logical_type.to_json()) for c in stored if c.path in wanted))
        groups.setdefault(key, []).append(f)
    return list(groups.values())


def nanosecond_columns(path: str, columns: Sequence[str]) -> set[str]:
    """Which of ``columns`` the Parquet file ``path`` stores as nanosecond timestamps (``INT64``, unit
    nanoseconds: how pyarrow writes pandas' timestamps), from its footer."""
    schema = pq.read_metadata(path).schema
    stored = (schema.column(i) for i in range(len(schema)))
    return {
        c.path
        for c in stored
        if c.path in columns
        and c.logical_type.type == "TIMESTAMP"
        and '"timeUnit":"nanoseconds"' in c.logical_type.to_json()
    }


def all_copied(label_files: Sequence[str]) -> bool:
    """Whether every label row holds its prediction's copy (``unit_key`` never null), from file statistics."""
    return all(
        s is not None and s.has_null_count and not s.null_count
        for f in label_files
        for s in row_group_stats(f, "unit_key")
    )


def single_values(files: Sequence[str], column: str) -> set[str] | None:
    """The values of ``column`` when every row group of ``files`` holds one value only (its min equals its
    max: e.g. the arm of a clustered file), else None (then a query must tell)."""
    stats = [s for f in files for s in row_group_stats(f, column)]
    if all(s is not None and s.has_min_max and s.min == s.max for s in stats):
        return {str(s.min) for s in stats}
    return None


def _family(t: pa.DataType) -> str:
    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "string"
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "number"
    if pa.types.is_timestamp(t):
        return "timestamp"
    if pa.types.is_null(t):
        return "null"
    return str(t)


_EXPECTED = {"string": "a string", "number": "a number (float or integer)", "timestamp": "a timestamp"}


def check_file(path: Path, kind: Kind) -> None:
    """Raise ``LogFileError`` naming the file, the column and the expected type when a file lacks a column of
    the documented schema or holds it with another type (read from the footer only)."""
    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowException) as exc:
        raise LogFileError(f"{path}: not a readable Parquet file ({exc}); move it out of the log") from exc
    for f in RECORD_SCHEMAS[kind]:
        want = _family(f.type)
        if f.name not in schema.names:
            raise LogFileError(
                f"{path}: column {f.name!r} is missing; expected {_EXPECTED[want]} ({f.type}). "
                f"Every {kind} file needs {RECORD_SCHEMAS[kind].names}; fix or move the file."
            )
        got = _family(schema.field(f.name).type)
        if got not in (want, "null"):
            raise LogFileError(
                f"{path}: column {f.name!r} has type {schema.field(f.name).type}; expected "
                f"{_EXPECTED[want]} ({f.type}). Rewrite the column or move the file out of the log."
            )


def delta_files(
    root: Path, kind: Kind, experiment: str, manifest: Manifest, on_bad_file: Literal["raise", "skip"] = "raise"
) -> list[Path]:
    """The experiment's appended (not yet compacted) files of ``kind``: in its folder, or in no experiment's
    folder; not compacted, not consumed by its manifest; each checked against the documented schema."""
    base = root / kind
    consumed = manifest.consumed_set(kind)
    out = []
    for path in parquet_files(base):
        parts = path.relative_to(base).parts
        folder = next((p for p in parts[:-1] if p.startswith("experiment=")), None)
        if folder is not None and folder != f"experiment={experiment}":
            continue
        if path.name.endswith(COMPACTED_SUFFIX):
            continue  # listed in the manifest, or an orphan of an interrupted compaction
        try:
            if file_id(root, path) in consumed:
                continue
            check_file(path, kind)
        except FileNotFoundError:  # deleted by a compaction meanwhile: consumed
            continue
        except LogFileError:
            if on_bad_file == "raise":
                raise
            continue
        out.append(path)
    return out


@dataclass(frozen=True)
class LogSource:
    """What an engine reads for one experiment: its compacted files (each request id once) and its appended
    files (deltas, deduplicated by readers), by kind.

    ``unique``: no delta, and the compacted files' 64-bit keys are one-to-one: engines may skip deduplication
    and join and group on the integer keys. ``copied``: unique, and every label carries its prediction's copy.
    """

    experiment: str
    compacted: dict[str, tuple[str, ...]]
    deltas: dict[str, tuple[str, ...]]
    unique: bool
    days: tuple[str, ...] = ()  # unique: the days of its predictions
    copied: bool = False
    dropped: int = 0  # prediction rows compaction removed as repeated request ids
    invalid: tuple[int, int] = (0, 0)  # prediction and label rows compaction left out as unusable

    def files(self, kind: Kind) -> list[str]:
        """Every file of ``kind`` the source reads."""
        return [*self.compacted[kind], *self.deltas[kind]]

    def variants(self) -> set[str] | None:
        """The arms of a unique source, from row-group statistics of its clustered files (None: unknown)."""
        return single_values(self.compacted["predictions"], "variant") if self.unique else None


def has_predictions(root: Path) -> bool:
    """Whether the log at ``root`` holds any prediction file."""
    return next(parquet_files(root / "predictions"), None) is not None


def log_source(root: str | Path, experiment: str, on_bad_file: Literal["raise", "skip"] = "raise") -> LogSource:
    """What an engine reads for ``experiment`` of the log at ``root``: the manifest's compacted files and the
    deltas (``on_bad_file="skip"`` leaves out files that fail the schema check instead of raising)."""
    root = Path(root)
    check_key(experiment)
    manifest = read_manifest(root, experiment)
    compacted: dict[str, tuple[str, ...]] = {k: tuple(manifest.files(root, k)) for k in KINDS}
    deltas: dict[str, tuple[str, ...]] = {
        k: tuple(str(p) for p in delta_files(root, k, experiment, manifest, on_bad_file)) for k in KINDS
    }
    unique = (
        bool(compacted["predictions"]) and not manifest.collided and not deltas["predictions"] and not deltas["labels"]
    )
    copied = unique and all_copied(compacted["labels"])
    return LogSource(
        experiment,
        compacted,
        deltas,
        unique,
        tuple(manifest.days) if unique else (),
        copied,
        manifest.dropped.get("predictions", 0),
        (manifest.invalid.get("predictions", 0), manifest.invalid.get("labels", 0)),
    )
