"""What one experiment's committed log files hold, kept in memory and read from disk incrementally.

The index is the writers' basis for storing each request exactly once and for marking files
``.unique.parquet``. It maps every committed request key (``abkit.log.keys.fnv1a64``) to its request id, over
predictions and labels together, remembers which keys are predictions and which are labels, and maps every
unit key to its unit id. Once two different ids share a key, ``collided`` stays true and no further file is
marked unique: readers then fall back to deduplicating, joining and grouping on the strings (a writer's
own duplicate check, which compares the ids behind equal keys, may then let a repeated id through; the
readers' deduplication removes it).

The index lives in memory, about 150 bytes per committed request id (2 GB for 13 M predictions and labels),
and each process builds it once, from disk, for the experiments it writes.

Writers in several processes coordinate through ``locked()``, an exclusive ``flock`` on
``<root>/predictions/experiment=<key>/.lock`` held while they read what others committed (``sync``),
check their rows and commit them.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob as globmod
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from abkit.log.durable import ensure_dir
from abkit.log.keys import fnv1a64
from abkit.log.layout import FILE_GLOB, Kind, experiment_dir, lock_path


def has_repeats(keys: Sequence[int] | np.ndarray) -> bool:
    """Whether some key occurs twice (a sort: faster than ``np.unique`` on int64 here)."""
    ordered = np.sort(np.asarray(keys, dtype=np.int64))
    return bool((ordered[1:] == ordered[:-1]).any())


def _clash(known: dict[int, str], known_ids: set[str], keys: Sequence[int], ids: Sequence[str]) -> bool:
    """Whether some key stands for two different ids, among ``known`` (one-to-one so far, its ids in
    ``known_ids``) and the new, distinct ``ids``. An id already known keeps its key, so only the ids not
    seen before need their key looked up."""
    if has_repeats(keys):
        return True
    new = set(ids) - known_ids
    if len(new) == len(ids):
        return not known.keys().isdisjoint(keys)
    key_of = dict(zip(ids, keys, strict=True))
    return not known.keys().isdisjoint([key_of[x] for x in new])


class LogIndex:
    """Committed request and unit ids of one experiment, by their 64-bit keys."""

    def __init__(self, root: Path, experiment: str) -> None:
        self.experiment = experiment
        self.lock = lock_path(root, experiment)
        self.dirs: dict[Kind, Path] = {kind: experiment_dir(root, kind, experiment) for kind in ("predictions", "labels")}
        self.files: set[str] = set()
        self.requests: dict[int, str] = {}  # request key -> request id
        self.request_ids: set[str] = set()
        self.kinds: dict[Kind, set[int]] = {"predictions": set(), "labels": set()}
        self.units: dict[int, str] = {}  # unit key -> unit id
        self.unit_ids: set[str] = set()
        self.collided = False

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the experiment's exclusive lock (predictions and labels share it)."""
        ensure_dir(self.lock.parent)
        with open(self.lock, "a+b") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    def sync(self) -> None:
        """Read the files committed (by any process) since the last call."""
        for kind, directory in self.dirs.items():
            for path in sorted(set(globmod.glob(str(directory / "*" / FILE_GLOB))) - self.files):
                cols = ["experiment", "request_id"] + (["unit_id"] if kind == "predictions" else [])
                t = pq.read_table(path, columns=cols)
                t = t.filter(pc.equal(t["experiment"], self.experiment))
                ids = pc.unique(t["request_id"])
                units = pc.unique(t["unit_id"]) if kind == "predictions" else pa.array([], pa.string())
                self.add(kind, [path], fnv1a64(ids).tolist(), ids.to_pylist(), fnv1a64(units).tolist(), units.to_pylist())

    def committed(self, kind: Kind, keys: Sequence[int], ids: Sequence[str]) -> np.ndarray:
        """Mask of the rows whose request id is already committed as ``kind``."""
        known = self.kinds[kind]
        if known.isdisjoint(keys):
            return np.zeros(len(keys), dtype=bool)
        return np.fromiter((k in known and self.requests[k] == x for k, x in zip(keys, ids, strict=True)),
                           dtype=bool, count=len(keys))

    def collides(self, keys: Sequence[int], ids: Sequence[str], unit_keys: Sequence[int] = (),
                 unit_ids: Sequence[str] = ()) -> bool:
        """Whether committing these distinct request ids and distinct unit ids (with their keys) would make
        a key stand for two ids, or that has happened already."""
        return (self.collided or _clash(self.requests, self.request_ids, keys, ids)
                or _clash(self.units, self.unit_ids, unit_keys, unit_ids))

    def add(self, kind: Kind, paths: Sequence[str | Path], keys: Sequence[int], ids: Sequence[str],
            unit_keys: Sequence[int] = (), unit_ids: Sequence[str] = (), collides: bool | None = None) -> None:
        """Record committed ``paths`` holding these distinct request ids (and, for predictions, distinct
        unit ids), with their keys; ``collides`` is ``collides()`` of the same rows when already known."""
        if collides if collides is not None else self.collides(keys, ids, unit_keys, unit_ids):
            self.collided = True
        self.requests.update(zip(keys, ids, strict=True))
        self.request_ids.update(ids)
        self.kinds[kind].update(keys)
        self.units.update(zip(unit_keys, unit_ids, strict=True))
        self.unit_ids.update(unit_ids)
        self.files.update(str(p) for p in paths)
