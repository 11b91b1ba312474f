"""Compaction: rewrite what writers appended, and foreign Parquet files in the documented schema, into the
fast layout (each request id once, 64-bit keys checked one-to-one, clustered by arm and user, labels with
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
4. write them to new ``.compacted.parquet`` files (one per date partition, one row group per arm or less,
   users in order), with the labels that still lack their prediction's copy rewritten;
5. replace the manifest (atomic rename): the commit point. Files appended meanwhile are not in the snapshot
   and stay appended.

A run killed at any point leaves readers exact: before the commit the new files are orphans that no reader
reads, after it the consumed files are skipped. A second run finishes the job; a run with nothing new to
do changes nothing (idempotent).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from abkit.log import layout as L
from abkit.log.durable import ensure_dir
from abkit.log.keys import fnv1a64
from abkit.log.schema import LogError, check_key
from abkit.sql import sql_string

__all__ = ["CompactReport", "compact"]

_DAY = f"epoch_us(ts) // {L.US_PER_DAY}"


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
    root: str | Path, experiment: str | None = None, *, temp_max_age_s: float = 3600.0, memory_limit: str | None = None
) -> list[CompactReport]:
    """Compact ``experiment`` (default: every experiment of the log) at ``root``; see the module docs.

    ``temp_max_age_s``: hidden temp files older than this are taken to be left by killed writers (on this host,
    those of processes that no longer exist are removed at once). ``memory_limit`` caps DuckDB's memory
    (e.g. ``"2GB"``); beyond it DuckDB spills to ``<root>/.abkit-compact-tmp``.
    """
    root = Path(root)
    if not (root / "predictions").is_dir() and not (root / "labels").is_dir():
        raise LogError(f"{root} holds no log (no predictions/ or labels/ folder); give the PredictionLog root")
    removed = 0
    for path in L.stale_temp_files(root, temp_max_age_s):
        path.unlink(missing_ok=True)
        removed += 1
    keys = L.experiments(root) if experiment is None else [check_key(experiment)]
    reports = [_compact_one(root, key, memory_limit) for key in keys]
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


def _compact_one(root: Path, experiment: str, memory_limit: str | None) -> CompactReport:
    import duckdb

    from abkit.engine import DuckDBEngine

    with _locked(root, experiment):
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
        tmp = root / ".abkit-compact-tmp"
        config: dict[str, Any] = {"temp_directory": str(tmp)}
        if memory_limit:
            config["memory_limit"] = memory_limit
        con = duckdb.connect(config=config)
        try:
            # duckdb's stub wants its PythonUDFType enum; the string works in every duckdb (the enum moved modules)
            con.create_function(  # type: ignore[call-overload]
                "abkit_fnv", lambda ids: pa.array(fnv1a64(ids)), ["VARCHAR"], "BIGINT", type="arrow"
            )
            eng = DuckDBEngine(src, con=con)
            return _rewrite(root, experiment, manifest, eng, snapshot, stale, removed)
        finally:
            con.close()


def _rewrite(
    root: Path,
    experiment: str,
    manifest: L.Manifest,
    eng: Any,
    snapshot: dict[str, list[Any]],
    stale: list[str],
    removed: int,
) -> CompactReport:
    con = eng.con
    con.execute("CREATE TEMP TABLE pn AS SELECT * FROM abkit_pred_new")
    con.execute(f"""CREATE TEMP TABLE np AS SELECT pn.*, u.unit_key, abkit_fnv(pn.request_id) AS request_key, {_DAY} AS day
        FROM pn JOIN (SELECT unit_id, abkit_fnv(unit_id) AS unit_key FROM (SELECT DISTINCT unit_id FROM pn) d) u
        USING (unit_id)""")  # a user's key once, not once per request
    con.execute("DROP TABLE pn")
    old_p = _files(
        manifest.files(root, "predictions"),
        f"request_id, request_key, unit_id, unit_key, variant, predicted_label, {_DAY} AS day",
        "ts",
    )
    stale_rows = _files([str(root / f) for f in stale], "experiment, request_id, label, labelled_at", "labelled_at")
    con.execute(f"""CREATE TEMP TABLE nl AS
        SELECT l.experiment, l.request_id, l.label, l.labelled_at, abkit_fnv(l.request_id) AS request_key,
               p.variant, p.unit_key, p.predicted_label, p.day AS prediction_day
        FROM (SELECT experiment, request_id, label, labelled_at FROM abkit_lab_new UNION ALL {stale_rows}) l
        LEFT JOIN (SELECT request_id, variant, unit_key, predicted_label, day FROM np
                   UNION ALL SELECT request_id, variant, unit_key, predicted_label, day FROM ({old_p}) o) p
        USING (request_id)""")
    old_l = _files(manifest.files(root, "labels"), "request_id, request_key", "labelled_at")
    collided = manifest.collided or _collides(con, old_p, old_l)
    n_p, n_l = _count(con, "np"), _count(con, "nl")
    raw_p, raw_l = _count(con, "abkit_pred_d"), _count(con, "abkit_lab_d")  # the usable appended rows
    bad_p, bad_l = eng.invalid_rows()  # the unusable ones, left out
    written_p = _write(con, root, "predictions", experiment, "np", "day", L.STORED_PREDICTION_SCHEMA)
    written_l = _write(
        con, root, "labels", experiment, "nl", f"epoch_us(labelled_at) // {L.US_PER_DAY}", L.STORED_LABEL_SCHEMA
    )
    days = {d for (d,) in con.execute("SELECT DISTINCT day FROM np").fetchall()}
    rel = [str(p.relative_to(root)) for p in written_p]
    manifest.compacted["predictions"] = manifest.compacted["predictions"] + rel
    manifest.compacted["labels"] = [f for f in manifest.compacted["labels"] if f not in stale] + [
        str(p.relative_to(root)) for p in written_l
    ]
    for kind in L.KINDS:
        manifest.consumed[kind] = manifest.consumed[kind] + [list(e) for e in snapshot[kind]]
    dropped_l = raw_l - (n_l - _stale_count(con, stale_rows))
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


def _files(files: list[str], columns: str, ts: str) -> str:
    """A query of ``columns`` over ``files`` (no files: no rows)."""
    if not files:
        return (
            f"SELECT {columns} FROM (SELECT NULL::VARCHAR AS request_id, NULL::BIGINT AS request_key, "
            f"NULL::VARCHAR AS unit_id, NULL::BIGINT AS unit_key, NULL::VARCHAR AS variant, NULL::VARCHAR AS "
            f"predicted_label, NULL::TIMESTAMPTZ AS {ts}, NULL::VARCHAR AS experiment, NULL::VARCHAR AS label) "
            "WHERE false"
        )
    return f"SELECT {columns} FROM read_parquet([{', '.join(sql_string(f) for f in files)}])"


def _by_arm(table: pa.Table) -> list[pa.Table]:
    """Rows already ordered by arm and user as one row group per arm (``layout.clustered`` without its sort)."""
    if table.num_rows < 2:
        return [table]
    ends = pc.run_end_encode(pc.fill_null(table["variant"], "").combine_chunks()).run_ends.to_numpy()
    return [table.slice(lo, hi - lo) for lo, hi in zip([0, *ends[:-1]], ends)]


def _count(con: Any, table: str) -> int:
    return int(con.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def _stale_count(con: Any, query: str) -> int:
    return int(con.execute(f"SELECT COUNT(*) FROM ({query}) s").fetchone()[0])


def _collides(con: Any, old_p: str, old_l: str) -> bool:
    """Whether a new id shares its 64-bit key with another id (new or compacted), for requests and users."""
    q = f"""
    WITH fresh AS (SELECT request_key AS k, request_id AS id FROM np UNION SELECT request_key, request_id FROM nl),
    known AS (SELECT k, id FROM fresh UNION ALL SELECT request_key, request_id FROM ({old_p}) p
              UNION ALL SELECT request_key, request_id FROM ({old_l}) l),
    users AS (SELECT DISTINCT unit_key AS k, unit_id AS id FROM np),
    known_users AS (SELECT k, id FROM users UNION ALL SELECT unit_key, unit_id FROM ({old_p}) o)
    SELECT (SELECT COUNT(*) FROM fresh f JOIN known a USING (k) WHERE a.id <> f.id)
         + (SELECT COUNT(*) FROM users u JOIN known_users a USING (k) WHERE a.id <> u.id)"""
    return int(con.execute(q).fetchone()[0]) > 0


def _write(con: Any, root: Path, kind: L.Kind, experiment: str, table: str, day: str, schema: pa.Schema) -> list[Path]:
    """Write ``table`` as one compacted file per day, ordered by arm and user, a row group per arm or less."""
    out = []
    cols = ", ".join(schema.names)
    for (d,) in con.execute(f"SELECT DISTINCT {day} AS d FROM {table} ORDER BY d").fetchall():
        reader = con.sql(
            f"SELECT {cols} FROM {table} WHERE {day} = {int(d)} ORDER BY variant NULLS LAST, unit_key, request_key"
        ).to_arrow_reader(1_000_000)
        groups = (group for batch in reader for group in _by_arm(pa.Table.from_batches([batch]).cast(schema)))
        out.append(L.write_atomic(groups, L.date_dir(root, kind, experiment, int(d)), compacted=True, schema=schema))
    return out
