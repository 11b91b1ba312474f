"""The prediction log: round trip, partitions, validation policies, duplicates, labels, crashes, concurrency."""

from __future__ import annotations

import datetime as dt
import glob
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from abkit.log import (
    LABEL_SCHEMA,
    PREDICTION_SCHEMA,
    STORED_PREDICTION_SCHEMA,
    InvalidRecordsError,
    LogError,
    PredictionLog,
)
from abkit.log.keys import fnv1a64
from abkit.log.layout import log_source

VARIANTS = ["control", "challenger"]
T0 = dt.datetime(2024, 3, 1, 12, tzinfo=dt.UTC)


def _records(n: int, start: int = 0, *, t0: dt.datetime = T0, step_s: float = 1.0) -> list[dict]:
    return [
        dict(
            variant=VARIANTS[i % 2],
            unit_id=f"u{i % 7}",
            request_id=f"r{i}",
            ts=t0 + dt.timedelta(seconds=i * step_s),
            text=f"text {i}",
            predicted_label="pos" if i % 3 else "neg",
            confidence=(i % 10) / 10,
            latency_ms=1.0 + i,
            model_name="tfidf",
            model_version="1",
        )
        for i in range(start, start + n)
    ]


def test_round_trip_dicts_dataframe_and_table(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path)
    recs = _records(30)
    with log.writer("exp-1", VARIANTS) as w:
        assert w.append(recs[:10]) == 10
        assert w.append(pd.DataFrame(recs[10:20])) == 10
        assert w.append(pa.Table.from_pylist(recs[20:30])) == 10
        assert w.buffered == 30
    assert w.flushed == 30 and w.buffered == 0
    got = log.read_predictions("exp-1")
    assert got.schema == PREDICTION_SCHEMA
    expected = pa.Table.from_pylist([{"experiment": "exp-1", **r} for r in recs], schema=PREDICTION_SCHEMA)
    assert got.to_pylist() == expected.to_pylist()
    assert log.read_predictions().num_rows == 30
    assert log.read_predictions("other").num_rows == 0


def test_partitions_by_date_and_files_hold_all_columns(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path)
    with log.writer("exp-1", VARIANTS) as w:  # 23:30 plus 48 minutes crosses midnight after 30 records
        w.append(_records(48, t0=dt.datetime(2024, 3, 1, 23, 30, tzinfo=dt.UTC), step_s=60))
    files = sorted(glob.glob(log.predictions_glob("exp-1")))
    assert [Path(f).parent.name for f in files] == ["date=2024-03-01", "date=2024-03-02"]
    assert all(Path(f).parent.parent.name == "experiment=exp-1" and Path(f).name.startswith("part-") for f in files)
    tables = [pq.read_table(f) for f in files]
    assert [t.num_rows for t in tables] == [30, 18]
    assert all(t.schema == STORED_PREDICTION_SCHEMA for t in tables)
    for t in tables:  # the stored keys are the ids' FNV-1a 64
        assert t["request_key"].to_pylist() == fnv1a64(t["request_id"]).tolist()
        assert t["unit_key"].to_pylist() == fnv1a64(t["unit_id"]).tolist()
    assert not list(tmp_path.rglob("*.tmp"))


def test_files_hold_one_row_group_per_arm_ordered_by_user(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path)
    with log.writer("exp-1", VARIANTS) as w:
        w.append(_records(40))
    log.append_labels([dict(experiment="exp-1", request_id=f"r{i}", label="pos", labelled_at=T0) for i in range(40)])
    (appended,) = glob.glob(log.predictions_glob("exp-1"))
    meta = pq.ParquetFile(appended).metadata
    col = meta.schema.names.index("variant")
    stats = [meta.row_group(g).column(col).statistics for g in range(meta.num_row_groups)]
    assert sorted((s.min, s.max) for s in stats) == [("challenger", "challenger"), ("control", "control")]
    for g in range(meta.num_row_groups):  # users in order within an arm
        keys = pq.ParquetFile(appended).read_row_group(g, columns=["unit_key"])["unit_key"].to_numpy()
        assert (np.diff(keys) >= 0).all() and len(keys) == 20
    log.compact()  # compacted files hold one arm each; labels then carry their prediction's arm and user
    for kind in ("predictions", "labels"):
        files = glob.glob(str(tmp_path / kind / "experiment=exp-1" / "*" / "*.compacted.parquet"))
        arms = []
        for f in files:
            meta = pq.ParquetFile(f).metadata
            col = meta.schema.names.index("variant")
            stats = {
                (s.min, s.max) for s in (meta.row_group(g).column(col).statistics for g in range(meta.num_row_groups))
            }
            assert len(stats) == 1 and next(iter(stats))[0] == next(iter(stats))[1], (kind, stats)
            arms.append(next(iter(stats))[0])
            assert meta.num_rows == 20
        assert sorted(arms) == ["challenger", "control"], kind
    # readers still return rows in time order
    assert log.read_predictions("exp-1")["request_id"].to_pylist() == [f"r{i}" for i in range(40)]


def test_auto_flush_at_batch_size(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path)
    w = log.writer("exp-1", VARIANTS, batch_size=10)
    w.append(_records(25))
    assert w.flushed == 25 and len(w.files) == 1
    w.append(_records(5, 25))
    assert w.buffered == 5 and log.read_predictions("exp-1").num_rows == 25
    w.close()
    assert log.read_predictions("exp-1").num_rows == 30


BAD_FIELDS = [
    ("confidence", "high"),
    ("confidence", float("nan")),
    ("confidence", math.inf),
    ("confidence", 1.5),
    ("confidence", True),
    ("variant", "treatment"),
    ("text", ""),
    ("text", None),
    ("latency_ms", -1.0),
    ("latency_ms", float("nan")),
    ("request_id", ""),
    ("unit_id", 17),
    ("experiment", "exp-2"),
    ("ts", "yesterday"),
]


@pytest.mark.parametrize(("field", "value"), BAD_FIELDS)
def test_raise_policy_rejects_the_whole_call(tmp_path: Path, field: str, value: object) -> None:
    log = PredictionLog(tmp_path)
    w = log.writer("exp-1", VARIANTS)
    w.append(_records(3))
    recs = _records(5, 3)
    recs[2][field] = value
    with pytest.raises(InvalidRecordsError, match=rf"record 2: field '{field}'") as info:
        w.append(recs)
    assert info.value.index == 2 and info.value.field == field and info.value.counts == {field: 1}
    assert w.buffered == 3  # nothing of the bad call, earlier rows kept
    w.close()
    assert log.read_predictions("exp-1")["request_id"].to_pylist() == ["r0", "r1", "r2"]


def test_raise_message_counts_the_others(tmp_path: Path) -> None:
    df = pd.DataFrame(_records(6))
    df.loc[[1, 4], "confidence"] = [2.0, -0.5]
    df.loc[3, "text"] = "   "
    with pytest.raises(InvalidRecordsError, match=r"record 1: field 'confidence' is 2.0.*3 invalid.*confidence: 2"):
        PredictionLog(tmp_path).writer("exp-1", VARIANTS).append(df)


def test_missing_column_raises_under_both_policies(tmp_path: Path) -> None:
    recs = [{k: v for k, v in r.items() if k != "latency_ms"} for r in _records(2)]
    for policy in ("raise", "quarantine"):
        with pytest.raises(LogError, match="latency_ms"):
            PredictionLog(tmp_path).writer("exp-1", VARIANTS, on_invalid=policy).append(recs)


def test_quarantine_policy_keeps_good_rows(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path)
    recs = _records(6)
    recs[1]["confidence"] = float("nan")
    recs[4]["variant"] = "treatment"
    with log.writer("exp-1", VARIANTS, on_invalid="quarantine") as w:
        assert w.append(recs) == 4
    assert w.last.invalid == 2 and w.last.invalid_by_field == {"variant": 1, "confidence": 1}
    assert log.read_predictions("exp-1")["request_id"].to_pylist() == ["r0", "r2", "r3", "r5"]
    q = pq.read_table(w.last.quarantine_file)
    assert q["record_index"].to_pylist() == [1, 4]
    assert q["error"].to_pylist()[0].startswith("confidence:") and q["error"].to_pylist()[1].startswith("variant:")
    assert len(glob.glob(log.quarantine_glob("exp-1"))) == 1
    assert [Path(f).relative_to(tmp_path).parts[0] for f in glob.glob(log.predictions_glob())] == ["predictions"]


def test_duplicates_are_dropped_and_reported(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path)
    recs = _records(4)
    with log.writer("exp-1", VARIANTS) as w:
        assert w.append(recs + [recs[0] | {"text": "retry"}]) == 4  # duplicate within the call
        assert w.append(recs[2:]) == 0  # duplicates of buffered rows
        assert w.last.duplicates == 2
    assert w.duplicates == 3
    with log.writer("exp-1", VARIANTS) as w2:  # a new session does not read the disk: r3 is stored twice
        assert w2.append(_records(3, 3)) == 3 and w2.duplicates == 0
    assert log.duplicate_request_ids("exp-1").to_pylist() == [{"request_id": "r3", "copies": 2}]
    for _ in range(2):  # readers count r3 once, before and after compaction
        got = log.read_predictions("exp-1")
        assert got.num_rows == 6 and got["text"].to_pylist()[0] == "text 0"
        log.compact()
    assert log.duplicate_request_ids("exp-1").num_rows == 0


def test_readers_dedupe_what_unaware_writers_stored(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path)
    early, late = _records(2), _records(2, t0=T0 + dt.timedelta(hours=1))
    late[0]["text"] = "later copy"
    for batch in (late, early):  # two writers, e.g. a retried batch on another worker
        with log.writer("exp-1", VARIANTS) as w:
            w.append(batch)
    dups = log.duplicate_request_ids("exp-1")
    assert dups.to_pylist() == [{"request_id": "r0", "copies": 2}, {"request_id": "r1", "copies": 2}]
    got = log.read_predictions("exp-1")
    assert got.num_rows == 2 and got["text"].to_pylist() == ["text 0", "text 1"]  # first by ts
    assert log.read_predictions("exp-1", dedupe=False).num_rows == 4
    (report,) = log.compact()
    assert report.dropped_predictions == 2 and log.read_predictions("exp-1", dedupe=False).num_rows == 2
    assert log.read_predictions("exp-1")["text"].to_pylist() == ["text 0", "text 1"]


def test_labels_validate_and_join(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path)
    with log.writer("exp-1", VARIANTS) as w:
        w.append(_records(6))
    labels = [
        dict(experiment="exp-1", request_id=f"r{i}", label="pos", labelled_at=T0 + dt.timedelta(days=1))
        for i in (0, 1, 2, 3)
    ]
    assert log.append_labels(labels + [labels[0]]) == 4
    assert log.read_labels("exp-1").schema == LABEL_SCHEMA
    joined = log.read_joined("exp-1")
    assert joined["request_id"].to_pylist() == [f"r{i}" for i in range(6)]
    # predicted "neg" for i % 3 == 0, "pos" otherwise; r4 and r5 never got a label
    assert joined["correct"].to_pylist() == [False, True, True, False, None, None]
    with pytest.raises(InvalidRecordsError, match="record 0: field 'label'"):
        log.append_labels([dict(experiment="exp-1", request_id="r9", label="")])
    assert glob.glob(str(tmp_path / "labels" / "experiment=exp-1" / "date=2024-03-02" / "part-*.parquet"))


def test_bad_writer_arguments(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path)
    with pytest.raises(LogError, match="experiment key"):
        log.writer("../escape", VARIANTS)
    with pytest.raises(LogError, match="on_invalid"):
        log.writer("exp-1", VARIANTS, on_invalid="ignore")  # type: ignore[arg-type]
    with pytest.raises(LogError, match="batch_size"):
        log.writer("exp-1", VARIANTS, batch_size=0)


WRITER_SCRIPT = textwrap.dedent(
    """
    import sys, numpy as np, pyarrow as pa
    from abkit.log import PredictionLog
    root, name, n_batches, batch = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    n = batch
    w = PredictionLog(root).writer("exp-1", ["control", "challenger"], batch_size=batch)
    i = np.arange(n)
    total = 0
    for b in range(n_batches):
        ids = np.strings.add(f"{name}-{b}-", i.astype(str))
        w.append(pa.table({
            "variant": np.where(i % 2 == 0, "control", "challenger"), "unit_id": ids, "request_id": ids,
            "ts": pa.array(1_709_294_400_000_000 + i, pa.timestamp("us", tz="UTC")), "text": np.full(n, "some text"),
            "predicted_label": np.full(n, "pos"), "confidence": np.full(n, 0.5), "latency_ms": np.full(n, 3.0),
            "model_name": np.full(n, "m"), "model_version": np.full(n, "1")}))
        total += n  # append reached batch_size, so the batch has been flushed (durable) here
        print(total, flush=True)
    print("duplicates", w.duplicates, flush=True)
    """
)


def _spawn(root: Path, name: str, n_batches: int, batch: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER_SCRIPT, str(root), name, str(n_batches), str(batch)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )


def test_sigkill_mid_burst_loses_no_flushed_record(tmp_path: Path) -> None:
    batch = 2_000
    proc = _spawn(tmp_path, "crash", 10_000, batch)
    acknowledged = 0
    for line in proc.stdout:  # type: ignore[union-attr]
        acknowledged = int(line)
        if acknowledged >= 20 * batch:
            break
    os.kill(proc.pid, signal.SIGKILL)  # the writer is in the middle of its next appends / flushes
    proc.wait()
    proc.stdout.close()  # type: ignore[union-attr]
    log = PredictionLog(tmp_path)
    files = glob.glob(log.predictions_glob())
    assert all(pq.read_table(f).num_rows == batch for f in files)  # every committed file opens, whole batches
    got = log.read_predictions("exp-1", dedupe=False)
    assert got.num_rows >= acknowledged and got.num_rows == len(files) * batch
    assert len(set(got["request_id"].to_pylist())) == got.num_rows
    for tmp in tmp_path.rglob("*.tmp"):  # a half-written temp file may remain; it is never a part file
        assert not tmp.name.startswith("part-")
    log.compact()  # the killed writer's temp files go (its process is gone), the rows stay
    assert not list(tmp_path.rglob("*.tmp"))
    assert log.read_predictions("exp-1").num_rows == got.num_rows


def test_four_concurrent_writers_store_exactly_200k_rows(tmp_path: Path) -> None:
    procs = [_spawn(tmp_path, f"w{k}", 5, 10_000) for k in range(4)]
    for p in procs:
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0 and out.split()[-3] == "50000"
    log = PredictionLog(tmp_path)
    got = log.read_predictions("exp-1", dedupe=False)
    assert got.num_rows == 200_000
    assert len(set(got["request_id"].to_pylist())) == 200_000
    assert log.duplicate_request_ids("exp-1").num_rows == 0
    assert np.unique(got["variant"].to_numpy(zero_copy_only=False)).tolist() == ["challenger", "control"]


def test_writers_without_a_lock_append_overlapping_ids_and_readers_stay_exact(tmp_path: Path) -> None:
    # four processes, no shared lock (as on four machines), log the same 30,000 request ids (a retried stream)
    procs = [_spawn(tmp_path, "shared", 3, 10_000) for _ in range(4)]
    for p in procs:
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0, out
        assert int(out.split()[-1]) == 0  # no writer saw another's rows: nothing read from disk
    log = PredictionLog(tmp_path)
    assert log.read_predictions("exp-1", dedupe=False).num_rows == 4 * 30_000
    expected = {f"shared-{b}-{i}" for b in range(3) for i in range(10_000)}
    for stage in ("appended", "compacted", "compacted again"):
        got = log.read_predictions("exp-1")
        assert got.num_rows == 30_000 and set(got["request_id"].to_pylist()) == expected, stage
        reports = log.compact()
    assert reports[0].predictions == 0  # idempotent: the third run found nothing to do
    assert log.read_predictions("exp-1", dedupe=False).num_rows == 30_000  # the copies are gone from disk
    assert log.duplicate_request_ids("exp-1").num_rows == 0


def test_the_first_label_by_time_wins_across_calls(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path)
    first = dict(experiment="exp-1", request_id="r0", label="pos", labelled_at=T0)
    assert log.append_labels([first]) == 1
    later = first | {"label": "neg", "labelled_at": T0 + dt.timedelta(hours=1)}
    assert log.append_labels([later, first | {"request_id": "r1"}]) == 2
    assert PredictionLog(tmp_path).append_labels([later]) == 1  # another process: stored, not counted
    for _ in range(2):  # before and after compaction
        assert log.read_labels("exp-1").to_pylist() == [first, first | {"request_id": "r1"}]
        log.compact()
    assert log.read_labels("exp-1", dedupe=False).num_rows == 2


def test_least_confident_per_variant_with_labels(tmp_path):
    log = PredictionLog(tmp_path)
    rows = _records(10)
    for i, row in enumerate(rows):
        row["confidence"] = 0.5 + i / 100
    with log.writer("exp", VARIANTS) as w:
        w.append(rows)
    log.append_labels([{"experiment": "exp", "request_id": "r0", "label": "neg"}])
    table = log.least_confident("exp", n=2).to_pylist()
    assert [(r["variant"], r["confidence"]) for r in table] == [
        ("challenger", 0.51),
        ("challenger", 0.53),
        ("control", 0.5),
        ("control", 0.52),
    ]
    assert table[2]["label"] == "neg" and table[3]["label"] is None


@pytest.fixture
def weak_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keys that collide on purpose (the id's length), so compaction's collision check is exercised."""

    def by_length(ids: object) -> np.ndarray:
        values = ids.to_pylist() if hasattr(ids, "to_pylist") else list(ids)  # type: ignore[union-attr]
        return np.array([len(x) for x in values], dtype=np.int64)

    monkeypatch.setattr("abkit.log.compact.fnv1a64_arrow", lambda ids: pa.array(by_length(ids)))


def _collided(root: Path) -> bool:
    return json.loads((root / "predictions" / "experiment=exp-1" / "_manifest.json").read_text())["collided"]


def test_a_key_shared_by_two_ids_is_found_by_compaction(tmp_path: Path, weak_keys: None) -> None:
    log = PredictionLog(tmp_path)
    with log.writer("exp-1", VARIANTS) as w:
        w.append(_records(1))  # r0 alone: its key is still one-to-one
    (report,) = log.compact()
    assert not report.collided and log_source(tmp_path, "exp-1").unique
    with log.writer("exp-1", VARIANTS) as w:
        w.append(_records(3))  # r0 again; r1 and r2 share r0's key
    (report,) = log.compact()
    assert report.collided and report.dropped_predictions == 1 and not log_source(tmp_path, "exp-1").unique
    assert log.append_labels([dict(experiment="exp-1", request_id="r9", label="pos")]) == 1
    log.compact()
    assert _collided(tmp_path)  # stays collided
    assert sorted(log.read_predictions("exp-1")["request_id"].to_pylist()) == ["r0", "r1", "r2"]


def test_a_label_whose_key_names_another_prediction_is_a_collision(tmp_path: Path, weak_keys: None) -> None:
    log = PredictionLog(tmp_path)
    with log.writer("exp-1", VARIANTS) as w:
        w.append(_records(1))  # r0, unit u0
    assert log.append_labels([dict(experiment="exp-1", request_id="r0", label="pos")]) == 1
    log.compact()
    assert not _collided(tmp_path)
    assert log.append_labels([dict(experiment="exp-1", request_id="x5", label="neg")]) == 1  # same length as r0
    log.compact()
    assert _collided(tmp_path)


def test_a_unit_key_shared_by_two_users_is_a_collision(tmp_path: Path, weak_keys: None) -> None:
    log = PredictionLog(tmp_path)
    recs = _records(2)
    recs[0]["request_id"], recs[1]["request_id"] = "a", "bb"  # distinct request keys
    recs[0]["unit_id"], recs[1]["unit_id"] = "u1", "u2"  # one unit key for two users
    with log.writer("exp-1", VARIANTS) as w:
        w.append(recs)
    (report,) = log.compact()
    assert report.collided


def test_compacted_labels_store_a_copy_of_what_they_label(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path)
    early = dict(experiment="exp-1", request_id="r7", label="pos", labelled_at=T0)
    assert log.append_labels([early]) == 1  # its prediction is not logged yet
    with log.writer("exp-1", VARIANTS) as w:
        w.append(_records(3, t0=T0 + dt.timedelta(days=2)))
    log.append_labels([dict(experiment="exp-1", request_id=r, label="neg", labelled_at=T0) for r in ("r0", "r1")])

    def compacted_labels() -> dict[str, dict]:  # the files the manifest lists (a replaced one waits for deletion)
        files = log_source(tmp_path, "exp-1").compacted["labels"]
        return {r["request_id"]: r for f in files for r in pq.read_table(f).to_pylist()}

    log.compact()
    rows = compacted_labels()
    assert rows["r7"]["unit_key"] is None and rows["r7"]["variant"] is None
    day = (T0.date() + dt.timedelta(days=2) - dt.date(1970, 1, 1)).days
    for r, rec in zip(("r0", "r1"), _records(2), strict=True):
        assert (rows[r]["variant"], rows[r]["unit_key"], rows[r]["predicted_label"], rows[r]["prediction_day"]) == (
            rec["variant"],
            fnv1a64([rec["unit_id"]])[0],
            rec["predicted_label"],
            day,
        )
    assert not log_source(tmp_path, "exp-1").copied  # r7's label waits for its prediction
    with log.writer("exp-1", VARIANTS) as w:
        w.append(_records(5, 3, t0=T0 + dt.timedelta(days=2)))  # r3 … r7
    log.compact()  # the label of r7 is rewritten with its copy
    rows = compacted_labels()
    assert rows["r7"]["unit_key"] == fnv1a64(["u0"])[0] and len(rows) == 3
    assert log_source(tmp_path, "exp-1").copied
    assert log.read_labels("exp-1").schema == LABEL_SCHEMA  # readers return the record columns


LABEL_SCRIPT = textwrap.dedent(
    """
    import sys, pyarrow as pa
    from abkit.log import PredictionLog
    ids = [f"shared-0-{i}" for i in range(int(sys.argv[2]))]
    n = PredictionLog(sys.argv[1]).append_labels(pa.table({
        "experiment": ["exp-1"] * len(ids), "request_id": ids, "label": ["pos"] * len(ids)}))
    print(n, flush=True)
    """
)


def test_concurrent_label_appends_count_each_label_once(tmp_path: Path) -> None:
    writer = _spawn(tmp_path, "shared", 1, 5_000)  # the predictions shared-0-0 … shared-0-4999
    assert writer.communicate(timeout=120)[0] and writer.returncode == 0
    procs = [
        subprocess.Popen([sys.executable, "-c", LABEL_SCRIPT, str(tmp_path), "5000"], stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    written = [int(p.communicate(timeout=120)[0]) for p in procs]
    assert written == [5_000] * 3  # no lock: each wrote its call
    log = PredictionLog(tmp_path)
    assert log.read_labels("exp-1", dedupe=False).num_rows == 15_000
    assert log.read_labels("exp-1").num_rows == 5_000
    (report,) = log.compact()
    assert report.labels == 5_000 and report.dropped_labels == 10_000
    files = glob.glob(log.labels_glob("exp-1"))
    assert sum(not f.endswith(".compacted.parquet") for f in files) == 3  # the absorbed files stay until the next run
    assert sum(f.endswith(".compacted.parquet") for f in files) == 2  # one compacted file per arm
    assert log.compact()[0].removed == 4  # 3 label files and the predictions (a reader may still read them)
    files = glob.glob(log.labels_glob("exp-1"))
    assert files and all(f.endswith(".compacted.parquet") for f in files)
    copies = pa.concat_tables([pq.read_table(f, columns=["unit_key"]) for f in files])
    assert copies.num_rows == 5_000 and copies["unit_key"].null_count == 0  # every label found its prediction
