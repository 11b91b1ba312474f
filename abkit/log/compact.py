"""Compaction: rewrite what writers appended, and foreign Parquet files in the documented schema, into the
fast layout (each request id once, 64-bit keys checked one-to-one, clustered by arm, labels with
their prediction's copy), committed by the experiment's manifest (``abkit.log.layout``).

One run, per experiment, under the experiment's compaction lock (``flock`` on
``predictions/experiment=<key>/.compact.lock``: one compactor at a time; writers take no lock and go on):

1. delete what earlier runs retired: temp files of killed writers (``layout.stale_temp_files``), compacted
   files the manifest does not list (orphans of an interrupted run, or replaced label files) and appended
   files the manifest consumed (only inside the experiment's folders: foreign files elsewhere stay, marked
   consumed);
2. snapshot the appended files (each checked against the documented schema: a bad one stops the run with an
   error naming the file, the column and the expected type; nothing changes);
3. the new rows are the readers' rule applied once (``abkit.engine``: delta rows whose request id no
   compacted row holds, the first copy by ``ts``; labels by ``labelled_at``): the readers' answer is the same
   before and after;
4. write them to new ``.compacted.parquet`` files, one per date partition and arm, with the 64-bit keys, and
   the labels that still lack their prediction's copy rewritten; then check the new keys against every id
   (``collided``);
5. replace the manifest (atomic rename): the commit point. Files appended meanwhile are not in the snapshot
   and stay appended.

Steps 3 and 4 run in an engine (``abkit.engine``), in SQL written once for both: DuckDB in this process
(its partitioned ``COPY``, in parallel; beyond ``memory_limit`` it spills to disk), or Spark
(``abkit.log.compact_spark``) for logs one machine cannot hold. Both give the same rows, keys, files per
date and arm, and manifest.

A run killed at any point leaves readers exact: before the commit the new files are orphans that no reader
reads, after it the consumed files are skipped. A second run finishes the job; a run with nothing new to
do changes nothing (idempotent).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from abkit.engine import ENGINES, FIRST_LABEL, FIRST_PREDICTION, DuckDBEngine, Engine, EngineError
from abkit.log import layout as L
from abkit.log.durable import ensure_dir, fsync_dir, fsync_file
from abkit.log.keys import fnv1a64_arrow
from abkit.log.schema import LogError, check_key
from abkit.progress import Stages
from abkit.sql import sql_string

__all__ = ["CompactReport", "Parts", "compact"]

# What an engine's writer returns: per file written under the folder it was given, (path, day, rows); its
# rows are those of one ``abkit_day`` (days since 1970-01-01) and one ``abkit_arm`` of the query.
Parts = list[tuple[str, int, int]]
Write = Callable[[str, Path], Parts]  # (query with abkit_day and abkit_arm columns, scratch folder) -> Parts
# what the progress bar names, in order, per experiment
_STAGES = ("snapshot", "predictions", "labels", "key checks", "commit")
_TMP = ".abkit-compact-tmp"  # under the log root: DuckDB's spill files, each run's files before they move


@dataclass(frozen=True)
class CompactReport:
    """What one compaction of one experiment did."""

    experiment: str
    predictions: int  # rows added to compacted prediction files
    labels: int  # label rows written to compacted files (new, and older ones given their prediction's copy)
    dropped_predictions: int  # appended prediction rows left out as copies of a counted request
    dropped_labels: int
    consumed: int  # appended files absorbed
    removed: int  # files deleted: retired by earlier runs, orphans, temp files of killed writers
    collided: bool  # two ids share a 64-bit key: engines use the string ids for this experiment


def compact(
    root: str | Path,
    experiment: str | None = None,
    *,
    engine: str = "duckdb",
    spark: Any = None,
    temp_max_age_s: float = 3600.0,
    memory_limit: str | None = None,
    progress: bool = True,
) -> list[CompactReport]:
    """Compact ``experiment`` (default: every experiment of the log) at ``root``; see the module docs.

    ``engine``: ``"duckdb"`` (in this process) or ``"spark"`` (on ``spark``, a ``SparkSession``, or a new local
    one; its driver and executors must see ``root`` at the same path, and its Python workers need abkit).
    ``temp_max_age_s``: hidden temp files older than this are taken to be left by killed writers (on this host,
    those of processes that no longer exist are removed at once). ``memory_limit`` caps DuckDB's memory
    (e.g. ``"2GB"``); beyond it DuckDB spills to ``<root>/.abkit-compact-tmp``. ``progress``: a progress bar
    over each experiment's stages on stderr (``abkit.progress``).
    """
    if engine not in ENGINES:
        raise EngineError(f"compact: engine={engine!r} is unknown; use one of {ENGINES}")
    if engine == "spark" and memory_limit is not None:
        raise LogError(
            f"compact: memory_limit={memory_limit!r} caps DuckDB only; with engine='spark' size the session "
            "instead (spark.driver.memory, spark.executor.memory) and leave memory_limit unset"
        )
    root = Path(root)
    if not (root / "predictions").is_dir() and not (root / "labels").is_dir():
        raise LogError(f"{root} holds no log (no predictions/ or labels/ folder); give the PredictionLog root")
    removed = 0
    for path in L.stale_temp_files(root, temp_max_age_s):
        path.unlink(missing_ok=True)
        removed += 1
    keys = L.experiments(root) if experiment is None else [check_key(experiment)]
    run: Callable[[L.LogSource], contextlib.AbstractContextManager[tuple[Engine, Write]]]
    if engine == "spark":
        from abkit.engine import spark_session
        from abkit.log.compact_spark import on_spark

        run = partial(on_spark, spark if spark is not None else spark_session())
    else:
        run = partial(_on_duckdb, tmp=root / _TMP, memory_limit=memory_limit)
    with Stages(len(keys) * len(_STAGES), desc="abkit log compact", disable=not progress) as bar:
        reports = [_compact_one(root, key, run, bar) for key in keys]
    if reports and removed:
        first = reports[0]
        reports[0] = CompactReport(**{**first.__dict__, "removed": first.removed + removed})
    return reports


@contextlib.contextmanager
def _locked(root: Path, experiment: str) -> Iterator[None]:
    directory = L.experiment_dir(root, "predictions", experiment)
    ensure_dir(directory)
    with open(directory / ".compact.lock", "a+b") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _retire(root: Path, experiment: str, manifest: L.Manifest) -> int:
    """Delete orphans and consumed appended files of the experiment's folders; prune the manifest's list of
    consumed files to those still present. Returns the number of files deleted."""
    removed = 0
    for kind in L.KINDS:
        own = L.experiment_dir(root, kind, experiment)
        listed = set(manifest.compacted[kind])
        for path in L.parquet_files(own):
            if path.name.endswith(L.COMPACTED_SUFFIX) and str(path.relative_to(root)) not in listed:
                path.unlink(missing_ok=True)
                removed += 1
        kept = []
        for entry in manifest.consumed[kind]:
            path = root / entry[0]
            if not path.exists():
                continue
            if own in path.parents and L.file_id(root, path) == tuple(entry):
                path.unlink(missing_ok=True)
                removed += 1
            else:
                kept.append(entry)
        manifest.consumed[kind] = kept
    return removed


def _compact_one(
    root: Path,
    experiment: str,
    run: Callable[[L.LogSource], contextlib.AbstractContextManager[tuple[Engine, Write]]],
    bar: Stages,
) -> CompactReport:
    with _locked(root, experiment):
        bar.stage(experiment, _STAGES[0])
        manifest = L.read_manifest(root, experiment)
        removed = _retire(root, experiment, manifest)
        deltas = {k: L.delta_files(root, k, experiment, manifest) for k in L.KINDS}
        # labels compacted before their prediction get its copy once new predictions come in
        stale = (
            [f for f in manifest.compacted["labels"] if not L.all_copied([str(root / f)])]
            if deltas["predictions"]
            else []
        )
        if not deltas["predictions"] and not deltas["labels"]:
            bar.skip(len(_STAGES) - 1)
            if removed:
                L.write_manifest(root, experiment, manifest)
            return CompactReport(experiment, 0, 0, 0, 0, 0, removed, manifest.collided)
        snapshot: dict[str, list[Any]] = {k: [L.file_id(root, p) for p in deltas[k]] for k in L.KINDS}
        src = L.LogSource(
            experiment,
            {k: tuple(manifest.files(root, k)) for k in L.KINDS},
            {k: tuple(str(p) for p in deltas[k]) for k in L.KINDS},
            unique=False,
        )
        scratch = root / _TMP / experiment  # this run's files before they move into the log
        shutil.rmtree(scratch, ignore_errors=True)  # left-overs of a killed run
        with run(src) as (eng, write):
            report = _rewrite(root, experiment, manifest, eng, write, snapshot, stale, removed, scratch, bar)
        shutil.rmtree(scratch, ignore_errors=True)
        return report


@contextlib.contextmanager
def _on_duckdb(src: L.LogSource, *, tmp: Path, memory_limit: str | None) -> Iterator[tuple[Engine, Write]]:
    """A DuckDB engine over ``src`` with the keys' function ``abkit_fnv``, and its writer (``_copy``); it spills
    to ``tmp``."""
    import duckdb

    config: dict[str, Any] = {"temp_directory": str(tmp)}
    if memory_limit:
        config["memory_limit"] = memory_limit
    con = duckdb.connect(config=config)
    try:
        # duckdb's stub wants its PythonUDFType enum; the string works in every duckdb (the enum moved modules)
        con.create_function(  # type: ignore[call-overload]
            "abkit_fnv", fnv1a64_arrow, ["VARCHAR"], "BIGINT", type="arrow"
        )
        yield DuckDBEngine(src, con=con), partial(_copy, con)
    finally:
        con.close()


def _copy(con: Any, query: str, out: Path) -> Parts:
    """DuckDB's writer: one partitioned ``COPY`` into ``out``, in parallel."""
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = con.execute(
        f"COPY ({query}) TO {sql_string(str(out))} (FORMAT parquet, COMPRESSION snappy, "
        "PARTITION_BY (abkit_day, abkit_arm), RETURN_STATS true)"
    ).fetchall()
    return [(filename, int(keys["abkit_day"]), int(count)) for filename, count, *_, keys, _extra in rows]


_COPIED = "request_id, request_key, variant, unit_key, predicted_label, ts"  # what a label copies (and its day)


def _rewrite(
    root: Path,
    experiment: str,
    manifest: L.Manifest,
    eng: Engine,
    write: Write,
    snapshot: dict[str, list[Any]],
    stale: list[str],
    removed: int,
    scratch: Path,
    bar: Stages,
) -> CompactReport:
    bar.stage(experiment, _STAGES[1])
    d = eng.dialect
    old_p, old_l = manifest.files(root, "predictions"), manifest.files(root, "labels")
    (raw_p, bad_p), (raw_l, bad_l) = _delta_counts(eng)
    pred_cols = ", ".join(L.PREDICTION_SCHEMA.names)
    new_p = _new_rows(eng, "abkit_pred_d", pred_cols, FIRST_PREDICTION, "abkit_pred_c" if old_p else None)
    stored_p = ", ".join(
        f"{d.utc.format(x='ts')} AS ts"
        if c == "ts"
        else "abkit_fnv(unit_id) AS unit_key"
        if c == "unit_key"
        else "abkit_fnv(request_id) AS request_key"
        if c == "request_key"
        else c
        for c in L.STORED_PREDICTION_SCHEMA.names
    )
    written_p, n_p, days = _place(
        write(
            f"SELECT {stored_p}, {d.day} AS abkit_day, {_arm(d, 'variant')} AS abkit_arm FROM ({new_p}) n",
            scratch / "predictions",
        ),
        root,
        "predictions",
        experiment,
    )

    bar.stage(experiment, _STAGES[2])
    lab_cols = ", ".join(L.LABEL_SCHEMA.names)
    new_l = _new_rows(eng, "abkit_lab_d", lab_cols, FIRST_LABEL, "abkit_lab_c" if old_l else None)
    if stale:
        eng.files_view("abkit_stale_l", lab_cols, [str(root / f) for f in stale])
        new_l += f" UNION ALL SELECT {lab_cols} FROM abkit_stale_l"
    eng.files_view("abkit_copied_p", _COPIED, [str(p) for p in written_p] + old_p)
    labels = (
        f"SELECT l.experiment, l.request_id, l.label, {d.utc.format(x='l.labelled_at')} AS labelled_at, "
        "COALESCE(p.request_key, abkit_fnv(l.request_id)) AS request_key, p.variant, p.unit_key, p.predicted_label, "
        f"p.prediction_day, {d.day_of.format(x='l.labelled_at')} AS abkit_day, {_arm(d, 'p.variant')} AS abkit_arm "
        f"FROM ({new_l}) l LEFT JOIN (SELECT request_id, request_key, variant, unit_key, predicted_label, "
        f"{d.day} AS prediction_day FROM abkit_copied_p) p ON p.request_id = l.request_id"
    )
    written_l, n_l, _ = _place(write(labels, scratch / "labels"), root, "labels", experiment)
    for view in ("abkit_repeated_abkit_pred_d", "abkit_repeated_abkit_lab_d"):
        eng.drop(view)
    stale_rows = sum(pq.ParquetFile(root / f).metadata.num_rows for f in stale)
    kept_old_l = [f for f in old_l if f not in {str(root / s) for s in stale}]
    bar.stage(experiment, _STAGES[3])
    collided = manifest.collided or _collides(
        eng, [str(p) for p in written_p], old_p, [str(p) for p in written_l], kept_old_l
    )

    bar.stage(experiment, _STAGES[4])
    manifest.compacted["predictions"] = manifest.compacted["predictions"] + [
        str(p.relative_to(root)) for p in written_p
    ]
    manifest.compacted["labels"] = [f for f in manifest.compacted["labels"] if f not in stale] + [
        str(p.relative_to(root)) for p in written_l
    ]
    for kind in L.KINDS:
        manifest.consumed[kind] = manifest.consumed[kind] + [list(e) for e in snapshot[kind]]
    dropped_l = raw_l - (n_l - stale_rows)
    manifest.dropped = {
        "predictions": manifest.dropped.get("predictions", 0) + raw_p - n_p,
        "labels": manifest.dropped.get("labels", 0) + dropped_l,
    }
    manifest.days = sorted(
        set(manifest.days) | {(dt.date(1970, 1, 1) + dt.timedelta(days=int(d))).isoformat() for d in days}
    )
    manifest.invalid = {
        "predictions": manifest.invalid.get("predictions", 0) + bad_p,
        "labels": manifest.invalid.get("labels", 0) + bad_l,
    }
    manifest.collided = collided
    manifest.generation += 1
    L.write_manifest(root, experiment, manifest)  # the commit point
    return CompactReport(
        experiment, n_p, n_l, raw_p - n_p, dropped_l, sum(map(len, snapshot.values())), removed, collided
    )


def _arm(dialect: Any, column: str) -> str:
    """The partition of an arm's rows: a number, whatever characters the arm's name holds."""
    return dialect.hash.format(x=column)


def _delta_counts(eng: Engine) -> tuple[tuple[int, int], tuple[int, int]]:
    """(usable, unusable) appended rows of predictions and of labels: one scan each."""
    from abkit.log.validate import VALID_LABEL_SQL, VALID_PREDICTION_SQL

    out = []
    for view, valid in (("abkit_pred_dall", VALID_PREDICTION_SQL), ("abkit_lab_dall", VALID_LABEL_SQL)):
        ok, bad = eng.sql(f"SELECT COUNT(*) FILTER (WHERE {valid}), COUNT(*) FILTER (WHERE NOT ({valid})) FROM {view}")[
            0
        ]
        out.append((int(ok), int(bad)))
    return out[0], out[1]


def _new_rows(eng: Engine, view: str, columns: str, order: str, compacted: str | None) -> str:
    """The query of the rows of ``view`` (usable appended rows) that compaction adds: those whose request id no
    ``compacted`` row holds, the first copy by ``order`` (the readers' rule, ``abkit.engine``). Ids stored once
    -- all but retries -- skip the window: the engine's 64-bit hash of the ids, grouped once, names the repeated
    ones (a hash shared by two different ids only sends both through the window, which stays exact)."""
    repeated = f"abkit_repeated_{view}"
    eng.materialize(
        repeated,
        f"SELECT h FROM (SELECT {eng.dialect.hash.format(x='request_id')} AS h FROM {view}) v GROUP BY h "
        "HAVING COUNT(*) > 1",
    )
    on = f"r.h = {eng.dialect.hash.format(x='d.request_id')}"
    fresh = (
        ""
        if compacted is None
        else f" WHERE NOT EXISTS (SELECT 1 FROM {compacted} c WHERE c.request_id = d.request_id)"
    )
    return (
        f"SELECT {columns} FROM {view} d ANTI JOIN {repeated} r ON {on}{fresh} "
        f"UNION ALL SELECT {columns} FROM (SELECT {columns}, ROW_NUMBER() OVER (PARTITION BY request_id "
        f"ORDER BY {order}) AS abkit_rn FROM {view} d SEMI JOIN {repeated} r ON {on}{fresh}) f WHERE abkit_rn = 1"
    )


def _place(parts: Parts, root: Path, kind: L.Kind, experiment: str) -> tuple[list[Path], int, set[int]]:
    """Move the files an engine wrote into the log: fsync each, rename it into its ``date=`` partition under a new
    ``part-<uuid>.compacted.parquet`` name, fsync the folders. Returns the files, their rows and days."""
    written, days, n = [], set(), 0
    for filename, day, count in parts:
        final = L.date_dir(root, kind, experiment, day) / L.part_name(compacted=True)
        ensure_dir(final.parent)
        fsync_file(Path(filename))
        os.rename(filename, final)
        written.append(final)
        days.add(day)
        n += count
    for directory in {p.parent for p in written}:
        fsync_dir(directory)
    return written, n, days


def _collides(eng: Engine, new_p: list[str], old_p: list[str], new_l: list[str], old_l: list[str]) -> bool:
    """Whether an id shares its 64-bit key with another id: among the new requests (each id once), between new
    and compacted requests (never the same ids), among users (one id per key), and for the labels without a
    prediction (the others carry their prediction's key). Exact; only the users' check reads strings."""
    checks = []
    if new_p:
        eng.files_view("abkit_new_p", "request_key, unit_key, unit_id", new_p)
        checks.append("SELECT COUNT(*) - COUNT(DISTINCT request_key) FROM abkit_new_p")
        checks.append(
            "SELECT COUNT(*) FROM (SELECT unit_key FROM abkit_new_p GROUP BY unit_key "
            "HAVING MIN(unit_id) <> MAX(unit_id)) k"
        )
        if old_p:
            eng.files_view("abkit_old_p", "request_key, unit_key, unit_id", old_p)
            checks.append("SELECT COUNT(*) FROM abkit_new_p n SEMI JOIN abkit_old_p o ON n.request_key = o.request_key")
            checks.append(
                "SELECT COUNT(*) FROM (SELECT unit_key, MIN(unit_id) AS a FROM abkit_new_p GROUP BY unit_key) n "
                "JOIN (SELECT unit_key, MIN(unit_id) AS a FROM abkit_old_p GROUP BY unit_key) o "
                "ON n.unit_key = o.unit_key WHERE n.a <> o.a"
            )
    if new_l:
        eng.files_view("abkit_new_l", "request_key, unit_key", new_l)
        checks.append("SELECT COUNT(*) - COUNT(DISTINCT request_key) FROM abkit_new_l")
        if old_l:
            eng.files_view("abkit_old_l", "request_key", old_l)
            checks.append("SELECT COUNT(*) FROM abkit_new_l n SEMI JOIN abkit_old_l o ON n.request_key = o.request_key")
        if new_p or old_p:
            eng.files_view("abkit_all_p", "request_key", new_p + old_p)
            checks.append(
                "SELECT COUNT(*) FROM (SELECT request_key FROM abkit_new_l WHERE unit_key IS NULL) n "
                "SEMI JOIN abkit_all_p p ON n.request_key = p.request_key"
            )
    if not checks:
        return False
    return int(eng.sql("SELECT " + " + ".join(f"({c})" for c in checks))[0][0]) > 0
