"""Model versions, the ``champion``/``challenger`` aliases and an append-only history of every move.

A registry is a folder (under a run folder, or any path the user gives)::

    <path>/history/000000001.json, 000000002.json, ...

Every fact is one history record, and the current state (which versions exist, which version each alias
points at) is what replaying the records gives: there is no second file that could disagree with them.

- ``register`` records a model version with its metadata;
- an **operation** (an alias move, or a rollout decision that moves aliases) is written in two steps: an
  ``intent`` record holding everything about it (who/what, when, why, the evidence, the alias moves), then a
  ``commit`` record. Aliases move only when the commit is written. An intent without a commit is
  *incomplete*: ``pending()`` lists it, the history table shows it, and ``commit(seq)`` replays it or
  ``abandon(seq, reason)`` closes it. A crash between a decision and its record therefore leaves the
  decision either not written at all (nothing moved; a pure policy recomputes the same decision from the same
  evidence) or visibly incomplete, never silently lost.

**Durability and append-only.** A record is written to a hidden temp file, fsynced, then *linked* to its
sequence number (``os.link`` fails if the name exists, so a record is never overwritten, and two writers
racing for one number both succeed, one at the next number) and the folder is fsynced. (Checks that read
the history, such as "this version is new", are not atomic with the append: two writers registering one
name at the same instant both succeed, and the first record counts.) Each record carries
the SHA-256 of the previous record's bytes, so an edited, removed or reordered record is detected on reading.

>>> import tempfile
>>> reg = ModelRegistry(tempfile.mkdtemp(), create=True)
>>> _ = reg.register("v1", {"model": "tfidf_logreg"}, actor="setup")
>>> _ = reg.register("v2", {"model": "minilm_logreg"}, actor="retrain")
>>> _ = reg.set_alias("champion", "v1", actor="setup", reasons=["first model"])
>>> _ = reg.set_alias("challenger", "v2", actor="retrain", reasons=["trained on the last 7 days"])
>>> reg.aliases()
{'champion': 'v1', 'challenger': 'v2'}
>>> [r["status"] for r in reg.history().to_dicts()]
['done', 'done', 'committed', 'committed']
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from abkit.display import ResultTable
from abkit.errors import AbkitError
from abkit.log.durable import ensure_dir, fsync_dir

__all__ = ["ALIASES", "HistoryRecord", "HistoryTable", "ModelRegistry", "ModelVersion", "RegistryError"]

#: Aliases with a meaning in the rollout loop; others may be set by hand.
ALIASES = ("champion", "challenger", "previous_champion")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")
_RECORD_RE = re.compile(r"^(\d{9})\.json$")
_KINDS = ("register", "intent", "commit", "abandon")


class RegistryError(AbkitError):
    """A bad registry path, version or alias, or a history that was altered or is unreadable."""


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")


def _time_text(time: Any) -> str:
    if time is None:
        return _now()
    if isinstance(time, dt.datetime):
        return time.isoformat()
    if isinstance(time, str):
        try:
            dt.datetime.fromisoformat(time)
        except ValueError:
            raise RegistryError(f"time={time!r} is not an ISO date-time; give e.g. '2024-06-03T12:00:00'") from None
        return time
    raise RegistryError(f"time={time!r} must be an ISO date-time string or a datetime")


def _check_name(what: str, value: Any) -> str:
    if not isinstance(value, str) or not _NAME_RE.match(value):
        raise RegistryError(
            f"{what}={value!r} is not a valid name; use 1-128 letters, digits, '.', '_', '+' or '-' "
            "starting with a letter or digit"
        )
    return value


@dataclass(frozen=True)
class ModelVersion:
    """One registered model version and its metadata (path, training data, metrics, ...)."""

    version: str
    metadata: Mapping[str, Any]
    registered_at: str  # the time given at registration (simulated or real)
    actor: str


@dataclass(frozen=True)
class HistoryRecord:
    """One record of the history, as stored."""

    seq: int
    kind: str  # "register" | "intent" | "commit" | "abandon"
    time: str  # when it happened (the caller's clock: simulated or real), ISO
    recorded_at: str  # wall-clock time of writing, UTC ISO
    actor: str  # who or what acted (a person, "rollout-policy", ...)
    payload: Mapping[str, Any] = field(default_factory=dict)
    ref: int | None = None  # for commit/abandon: the intent's seq


class HistoryTable(ResultTable):
    """The history as a table: one row per registration and per operation, with its status."""


class ModelRegistry:
    """A registry folder; see the module docstring. ``create=True`` makes a missing folder."""

    def __init__(self, path: str | Path, *, create: bool = False) -> None:
        self.path = Path(path)
        if not self.path.exists():
            if not create:
                raise RegistryError(
                    f"registry path {str(self.path)!r} does not exist; give an existing registry folder, "
                    "or create one with ModelRegistry(path, create=True)"
                )
            ensure_dir(self._dir)
        elif not self.path.is_dir():
            raise RegistryError(f"registry path {str(self.path)!r} is a file, not a folder; give a folder")
        elif not self._dir.is_dir():
            if not create and any(self.path.iterdir()):
                raise RegistryError(
                    f"registry path {str(self.path)!r} holds files but no history/ folder: not a registry; "
                    "give a registry folder, or an empty one with create=True"
                )
            ensure_dir(self._dir)

    def __repr__(self) -> str:
        return f"ModelRegistry({str(self.path)!r})"

    @property
    def _dir(self) -> Path:
        return self.path / "history"

    # -- reading -----------------------------------------------------------------------------------------

    def records(self) -> list[HistoryRecord]:
        """Every record in order; raises ``RegistryError`` if the chain of hashes or numbers is broken."""
        out: list[HistoryRecord] = []
        prev = ""
        names = sorted(n for n in os.listdir(self._dir) if _RECORD_RE.match(n))
        for i, name in enumerate(names, start=1):
            raw = (self._dir / name).read_bytes()
            try:
                d = json.loads(raw)
            except ValueError as exc:
                raise RegistryError(f"history record {name} in {str(self._dir)!r} is not valid JSON") from exc
            if int(_RECORD_RE.match(name).group(1)) != i or d.get("seq") != i:  # type: ignore[union-attr]
                raise RegistryError(
                    f"history record {name}: expected record number {i}; a record was removed or renamed"
                )
            if d.get("prev") != prev:
                raise RegistryError(f"history record {name} does not follow record {i - 1}: the history was altered")
            prev = hashlib.sha256(raw).hexdigest()
            out.append(
                HistoryRecord(
                    d["seq"], d["kind"], d["time"], d["recorded_at"], d["actor"], d.get("payload", {}), d.get("ref")
                )
            )
        return out

    def versions(self) -> dict[str, ModelVersion]:
        """Registered versions by name, in registration order (a name registered twice by racing writers: the first)."""
        out: dict[str, ModelVersion] = {}
        for r in self.records():
            if r.kind == "register":
                v = r.payload["version"]
                out.setdefault(v, ModelVersion(v, r.payload.get("metadata", {}), r.time, r.actor))
        return out

    def aliases(self) -> dict[str, str]:
        """Alias → version after every committed operation (an alias moved to None is dropped)."""
        return _replay(self.records())[0]

    def alias(self, name: str) -> str | None:
        """The version an alias points at, or None."""
        return self.aliases().get(name)

    def pending(self) -> list[HistoryRecord]:
        """Intents that were written but neither committed nor abandoned (e.g. after a crash)."""
        return _replay(self.records())[1]

    def history(self) -> HistoryTable:
        """One row per registration and per operation, with its status (committed, abandoned, incomplete)."""
        recs = self.records()
        closed = {r.ref: r for r in recs if r.kind in ("commit", "abandon")}
        rows = []
        for r in recs:
            if r.kind == "register":
                rows.append(
                    {
                        "seq": r.seq,
                        "time": r.time,
                        "actor": r.actor,
                        "what": "register",
                        "from_version": None,
                        "to_version": r.payload["version"],
                        "moves": "",
                        "reasons": "; ".join(r.payload.get("reasons", ())),
                        "status": "done",
                    }
                )
            elif r.kind == "intent":
                end = closed.get(r.seq)
                status = "incomplete" if end is None else ("committed" if end.kind == "commit" else "abandoned")
                p = r.payload
                rows.append(
                    {
                        "seq": r.seq,
                        "time": r.time,
                        "actor": r.actor,
                        "what": p.get("action", "set_alias"),
                        "from_version": p.get("from_version"),
                        "to_version": p.get("to_version"),
                        "moves": ", ".join(
                            f"{a}→{'(cleared)' if v is None else v}" for a, v in p.get("moves", {}).items()
                        ),
                        "reasons": "; ".join(p.get("reasons", ())),
                        "status": status,
                    }
                )
        return HistoryTable(rows)

    # -- writing -----------------------------------------------------------------------------------------

    def register(
        self,
        version: str,
        metadata: Mapping[str, Any] | None = None,
        *,
        actor: str = "user",
        time: Any = None,
        reasons: Iterable[str] = (),
    ) -> HistoryRecord:
        """Register a new model version; a version name is registered once."""
        _check_name("version", version)
        if version in self.versions():
            raise RegistryError(f"version {version!r} is already registered; give each model version a new name")
        meta = _jsonable(dict(metadata or {}), "metadata")
        return self._append("register", actor, time, {"version": version, "metadata": meta, "reasons": list(reasons)})

    def begin(
        self,
        moves: Mapping[str, str | None],
        *,
        actor: str,
        time: Any = None,
        reasons: Iterable[str] = (),
        **details: Any,
    ) -> HistoryRecord:
        """Write the intent of an operation that moves ``moves`` (alias → version, or None to clear).

        ``details`` (action, from_version, to_version, gate_results, evidence, ...) are stored with it.
        Every version must be registered: an alias never points at a missing version.
        """
        known = self.versions()
        checked: dict[str, str | None] = {}
        for alias_name, version in moves.items():
            _check_name("alias", alias_name)
            if version is not None and version not in known:
                raise RegistryError(
                    f"alias {alias_name!r} would point at version {version!r}, which is not registered; "
                    f"register it first (known versions: {sorted(known)})"
                )
            checked[alias_name] = version
        payload = _jsonable({**details, "moves": checked, "reasons": [str(r) for r in reasons]}, "details")
        return self._append("intent", actor, time, payload)

    def commit(self, seq: int, *, actor: str | None = None, time: Any = None) -> HistoryRecord:
        """Complete intent ``seq`` (also how an incomplete intent is replayed after a crash)."""
        intent = self._open_intent(seq)
        return self._append("commit", actor or intent.actor, time or intent.time, {}, ref=seq)

    def abandon(self, seq: int, reason: str, *, actor: str = "user", time: Any = None) -> HistoryRecord:
        """Close intent ``seq`` without applying it, saying why."""
        self._open_intent(seq)
        return self._append("abandon", actor, time, {"reasons": [reason]}, ref=seq)

    def record(
        self,
        moves: Mapping[str, str | None],
        *,
        actor: str,
        time: Any = None,
        reasons: Iterable[str] = (),
        **details: Any,
    ) -> HistoryRecord:
        """Intent and commit in one call; returns the intent."""
        intent = self.begin(moves, actor=actor, time=time, reasons=reasons, **details)
        self.commit(intent.seq)
        return intent

    def set_alias(
        self, alias: str, version: str | None, *, actor: str = "user", time: Any = None, reasons: Iterable[str] = ()
    ) -> HistoryRecord:
        """Point ``alias`` at ``version`` (None clears it), recorded with who and why."""
        return self.record(
            {alias: version}, actor=actor, time=time, reasons=reasons, action="set_alias", to_version=version
        )

    def _open_intent(self, seq: int) -> HistoryRecord:
        recs = self.records()
        intent = next((r for r in recs if r.seq == seq and r.kind == "intent"), None)
        if intent is None:
            raise RegistryError(f"seq={seq!r} is not an intent record of this registry; see pending()")
        if any(r.ref == seq for r in recs):
            raise RegistryError(f"intent {seq} is already committed or abandoned; an operation completes once")
        return intent

    def _append(
        self, kind: str, actor: str, time: Any, payload: Mapping[str, Any], ref: int | None = None
    ) -> HistoryRecord:
        if not isinstance(actor, str) or not actor:
            raise RegistryError(f"actor={actor!r} must say who or what acted, e.g. 'rollout-policy' or a user name")
        when = _time_text(time)
        tmp = self._dir / f".tmp-{uuid.uuid4().hex}.json"
        try:
            while True:
                recs = self.records()
                seq = len(recs) + 1
                prev = hashlib.sha256((self._dir / f"{len(recs):09d}.json").read_bytes()).hexdigest() if recs else ""
                rec = HistoryRecord(seq, kind, when, _now(), actor, dict(payload), ref)
                body = {
                    "seq": seq,
                    "kind": kind,
                    "time": when,
                    "recorded_at": rec.recorded_at,
                    "actor": actor,
                    "payload": rec.payload,
                    "ref": ref,
                    "prev": prev,
                }
                with open(tmp, "wb") as f:
                    f.write(json.dumps(body, sort_keys=True, allow_nan=False).encode("utf-8") + b"\n")
                    f.flush()
                    os.fsync(f.fileno())
                try:
                    os.link(tmp, self._dir / f"{seq:09d}.json")  # never replaces an existing record
                except FileExistsError:
                    continue  # another writer took this number: re-read and take the next one
                fsync_dir(self._dir)
                return rec
        finally:
            tmp.unlink(missing_ok=True)


def _replay(recs: Sequence[HistoryRecord]) -> tuple[dict[str, str], list[HistoryRecord]]:
    intents = {r.seq: r for r in recs if r.kind == "intent"}
    aliases: dict[str, str] = {}
    closed = set()
    for r in recs:
        if r.kind in ("commit", "abandon"):
            closed.add(r.ref)
        if r.kind == "commit" and r.ref in intents:
            for alias_name, version in intents[r.ref].payload.get("moves", {}).items():
                if version is None:
                    aliases.pop(alias_name, None)
                else:
                    aliases[alias_name] = version
    return aliases, [r for s, r in intents.items() if s not in closed]


def _jsonable(value: Mapping[str, Any], what: str) -> dict[str, Any]:
    try:
        return json.loads(json.dumps(value, allow_nan=False, default=_default))
    except (TypeError, ValueError) as exc:
        raise RegistryError(
            f"{what} cannot be stored as JSON ({exc}); give strings, finite numbers, lists and dicts"
        ) from exc


def _default(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if hasattr(value, "_asdict"):
        return value._asdict()
    if hasattr(value, "to_dict"):
        return value.to_dict()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
