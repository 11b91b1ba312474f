"""The model registry: versions, aliases, an append-only, hash-chained, crash-safe history."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
from pathlib import Path

import pytest

from abkit.errors import AbkitError
from abkit.registry import ModelRegistry, RegistryError


def _registry(tmp_path: Path) -> ModelRegistry:
    reg = ModelRegistry(tmp_path / "reg", create=True)
    reg.register("v1", {"model": "tfidf_logreg", "trained_on": "2024-05"}, actor="setup", time="2024-06-01T00:00:00")
    reg.register("v2", {"model": "minilm_logreg"}, actor="retrain", time="2024-06-05T00:00:00")
    reg.set_alias("champion", "v1", actor="setup", time="2024-06-01T00:00:00", reasons=["first model"])
    return reg


def test_versions_aliases_and_table(tmp_path: Path) -> None:
    reg = _registry(tmp_path)
    reg.set_alias("challenger", "v2", actor="alice", time="2024-06-05T00:00:00", reasons=["retrained"])
    assert list(reg.versions()) == ["v1", "v2"]
    assert reg.versions()["v1"].metadata == {"model": "tfidf_logreg", "trained_on": "2024-05"}
    assert reg.aliases() == {"champion": "v1", "challenger": "v2"}
    reg.record(
        {"champion": "v2", "challenger": None, "previous_champion": "v1"},
        actor="rollout-policy",
        time="2024-06-09T00:00:00",
        reasons=["shown better"],
        action="promote",
        from_version="v1",
        to_version="v2",
        evidence={"p": 0.001},
    )
    assert reg.aliases() == {"champion": "v2", "previous_champion": "v1"}
    rows = reg.history().to_dicts()
    assert [r["what"] for r in rows] == ["register", "register", "set_alias", "set_alias", "promote"]
    assert rows[-1] | {} == rows[-1] and rows[-1]["actor"] == "rollout-policy"
    assert rows[-1]["from_version"] == "v1" and rows[-1]["to_version"] == "v2" and rows[-1]["status"] == "committed"
    assert rows[-1]["reasons"] == "shown better"
    df = reg.history().to_pandas()
    assert len(df) == 5 and "status" in df.columns
    # a second handle on the same folder sees the same state (it is read from the files)
    assert ModelRegistry(tmp_path / "reg").aliases() == reg.aliases()


def test_bad_input_is_refused_before_anything_moves(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="does not exist"):
        ModelRegistry(tmp_path / "missing")
    (tmp_path / "file").write_text("x")
    with pytest.raises(RegistryError, match="is a file"):
        ModelRegistry(tmp_path / "file")
    reg = _registry(tmp_path)
    n = len(reg.records())
    with pytest.raises(RegistryError, match="'v9', which is not registered"):
        reg.set_alias("champion", "v9")
    with pytest.raises(RegistryError, match="already registered"):
        reg.register("v1")
    with pytest.raises(RegistryError, match="version="):
        reg.register("bad name/with slash")
    with pytest.raises(RegistryError, match="actor="):
        reg.set_alias("champion", "v2", actor="")
    with pytest.raises(RegistryError, match="ISO date-time"):
        reg.set_alias("champion", "v2", time="yesterday")
    with pytest.raises(RegistryError, match="cannot be stored as JSON"):
        reg.record({}, actor="x", evidence={"p": float("nan")})
    assert len(reg.records()) == n and reg.aliases() == {"champion": "v1"}
    assert issubclass(RegistryError, AbkitError)


def test_history_is_append_only_and_tampering_is_detected(tmp_path: Path) -> None:
    reg = _registry(tmp_path)
    before = {p.name: p.read_bytes() for p in (tmp_path / "reg" / "history").iterdir()}
    reg.set_alias("challenger", "v2", actor="bob")
    after = {p.name: p.read_bytes() for p in (tmp_path / "reg" / "history").iterdir()}
    assert all(after[name] == data for name, data in before.items())  # old records untouched
    assert len(after) == len(before) + 2  # intent + commit
    # edit a stored record: the chain of hashes breaks
    first = tmp_path / "reg" / "history" / "000000002.json"
    d = json.loads(first.read_text())
    d["payload"]["metadata"]["model"] = "something else"
    first.write_text(json.dumps(d, sort_keys=True) + "\n")
    with pytest.raises(RegistryError, match="was altered"):
        reg.aliases()
    first.write_bytes(before["000000002.json"])
    assert reg.aliases() == {"champion": "v1", "challenger": "v2"}
    # remove one: the numbering breaks
    (tmp_path / "reg" / "history" / "000000003.json").unlink()
    with pytest.raises(RegistryError, match="removed or renamed"):
        reg.records()


def test_crash_between_intent_and_commit_is_visible_and_replayable(tmp_path: Path) -> None:
    reg = _registry(tmp_path)
    intent = reg.begin(
        {"champion": "v2", "previous_champion": "v1"},
        actor="rollout-policy",
        time="2024-06-09T00:00:00",
        reasons=["shown better"],
        action="promote",
        from_version="v1",
        to_version="v2",
    )
    # the process dies here: a new handle sees the decision, incomplete, and no alias moved
    fresh = ModelRegistry(tmp_path / "reg")
    assert [p.seq for p in fresh.pending()] == [intent.seq]
    assert fresh.aliases() == {"champion": "v1"}
    assert fresh.history().to_dicts()[-1]["status"] == "incomplete"
    fresh.commit(intent.seq)  # replayed
    assert fresh.pending() == [] and fresh.aliases()["champion"] == "v2"
    assert fresh.history().to_dicts()[-1]["status"] == "committed"
    with pytest.raises(RegistryError, match="already committed"):
        fresh.commit(intent.seq)
    other = fresh.begin({"champion": "v1"}, actor="x", reasons=["oops"])
    fresh.abandon(other.seq, "operator cancelled")
    assert fresh.pending() == [] and fresh.aliases()["champion"] == "v2"
    assert fresh.history().to_dicts()[-1]["status"] == "abandoned"


def _crash_writer(path: str) -> None:  # pragma: no cover - runs in a child that is killed
    reg = ModelRegistry(path)
    reg.begin({"champion": "v2"}, actor="rollout-policy", reasons=["shown better"], action="promote")
    os._exit(1)  # dies before the commit, like a SIGKILL


def test_killed_process_leaves_an_incomplete_decision(tmp_path: Path) -> None:
    _registry(tmp_path)
    proc = mp.get_context("fork").Process(target=_crash_writer, args=(str(tmp_path / "reg"),))
    proc.start()
    proc.join(30)
    reg = ModelRegistry(tmp_path / "reg")
    pending = reg.pending()
    assert len(pending) == 1 and pending[0].payload["action"] == "promote"
    assert reg.aliases() == {"champion": "v1"}
    assert not [p for p in (tmp_path / "reg" / "history").iterdir() if p.name.startswith(".tmp")]


def _append_many(path: str, who: str) -> None:  # pragma: no cover - runs in a child
    reg = ModelRegistry(path)
    for i in range(15):
        reg.register(f"{who}-{i}", actor=who)


def test_concurrent_writers_never_overwrite(tmp_path: Path) -> None:
    ModelRegistry(tmp_path / "reg", create=True)
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_append_many, args=(str(tmp_path / "reg"), w)) for w in ("a", "b", "c")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    reg = ModelRegistry(tmp_path / "reg")
    assert len(reg.records()) == 45  # the chain verifies: no record lost, none overwritten
    assert sorted(reg.versions()) == sorted(f"{w}-{i}" for w in "abc" for i in range(15))
