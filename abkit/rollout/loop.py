"""Apply rollout decisions and record them in the registry, crash-safely.

``Rollout.step(evidence)`` computes the pure decision, writes its **intent** to the registry (the whole
decision: gate results, reasons, evidence summary, the alias moves), runs the caller's ``apply`` hook (for
example, switch the serving weights), then writes the **commit**. The aliases move only with the commit.

After a crash, ``Rollout.open`` finds an intent without its commit: ``recover()`` replays it (``apply`` is
called again, so it must be idempotent, then the commit is written) and the rollout continues from the
state that decision leads to. A crash before the intent leaves nothing written and nothing moved; the
pure policy gives the same decision again from the same evidence.

The rollout's state is read back from the history: the ``state`` stored with the last committed decision
(or a ``start`` record).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

from abkit.registry import HistoryRecord, ModelRegistry
from abkit.rollout.machine import (
    Evidence,
    RolloutDecision,
    RolloutState,
    next_step,
    start,
)
from abkit.rollout.policy import RolloutError, RolloutPolicy

__all__ = ["ACTOR", "Rollout"]

ACTOR = "rollout-policy"
Apply = Callable[[Mapping[str, Any]], None]


def _evidence_summary(ev: Evidence) -> dict[str, Any]:
    """The numbers behind a decision, JSON-able (NaN as None)."""
    from abkit.rollout.policy import _num

    out: dict[str, Any] = {
        "units": {k: _num(v) for k, v in ev.units.items()},
        "alarms": list(ev.alarms),
        "champion_alarms": list(ev.champion_alarms),
        "comparisons": [],
    }
    if ev.srm is not None:
        out["srm"] = {"p_value": _num(ev.srm.p_value), "status": ev.srm.status, "observed": list(ev.srm.observed)}
    for c in ev.comparisons:
        out["comparisons"].append(
            {
                "metric": c.metric,
                "statistic": c.statistic,
                "estimate": _num(c.estimate),
                "seq_ci_low": _num(c.seq_ci_low),
                "seq_ci_high": _num(c.seq_ci_high),
                "seq_p_value": _num(c.seq_p_value),
                "units": _num(c.units),
            }
        )
    return out


class Rollout:
    """A policy bound to a registry: start a challenger, step on evidence, recover after a crash."""

    def __init__(self, policy: RolloutPolicy, registry: ModelRegistry, *, apply: Apply | None = None) -> None:
        if not isinstance(policy, RolloutPolicy):
            raise RolloutError(f"policy={policy!r} must be a RolloutPolicy (RolloutPolicy.from_dict(params))")
        self.policy, self.registry, self.apply = policy, registry, apply or (lambda record: None)

    def state(self) -> RolloutState:
        """The current state, from the last committed decision in the history."""
        recs = self.registry.records()
        committed = {r.ref for r in recs if r.kind == "commit"}
        for r in reversed(recs):
            if r.kind == "intent" and r.seq in committed and "state" in r.payload:
                return RolloutState.from_dict(r.payload["state"])
        champion = self.registry.alias("champion")
        if champion is None:
            raise RolloutError(
                f"{self.registry!r} has no champion; set one with registry.set_alias('champion', version)"
            )
        since = next((r.time for r in recs if r.kind == "intent"), None) or recs[-1].time
        return RolloutState(
            "idle", champion, dt.datetime.fromisoformat(since), None, self.registry.alias("previous_champion")
        )

    def begin(self, challenger: str, time: Any, reasons: tuple[str, ...] = ()) -> RolloutState:
        """Start testing ``challenger`` (a registered version) against the current champion."""
        current = self.state()
        if current.phase in ("shadow", "canary", "watch"):
            raise RolloutError(f"a rollout is already in phase {current.phase!r}; finish it before starting another")
        new = start(current.champion, challenger, time, self.policy)
        new = RolloutState(new.phase, new.champion, new.since, new.challenger, current.previous_champion)
        why = tuple(reasons) or (f"start testing {challenger} against {current.champion}",)
        self._write(
            {"challenger": challenger},
            time,
            why,
            {
                "action": "start",
                "from_version": current.champion,
                "to_version": challenger,
                "state": new.to_dict(),
                "policy": self.policy.to_dict(),
            },
        )
        return new

    def step(self, evidence: Evidence) -> RolloutDecision:
        """Decide on ``evidence``, record the intent, apply, commit; returns the decision."""
        if self.registry.pending():
            raise RolloutError("the registry holds an incomplete decision; call recover() before the next step")
        decision = next_step(self.state(), evidence, self.policy)
        d = decision.to_dict()
        self._write(
            decision.alias_moves(),
            d["time"],
            decision.reasons,
            {
                k: d[k]
                for k in ("action", "from_version", "to_version", "phase", "stage", "share", "gate_results", "state")
            }
            | {"evidence": _evidence_summary(evidence)},
        )
        return decision

    def recover(self) -> list[HistoryRecord]:
        """Replay every incomplete intent (apply again, then commit); returns the replayed intents."""
        done = []
        for intent in self.registry.pending():
            self.apply(intent.payload)
            self.registry.commit(intent.seq, actor=ACTOR)
            done.append(intent)
        return done

    def _write(self, moves: Mapping[str, str | None], time: Any, reasons: Any, details: Mapping[str, Any]) -> None:
        intent = self.registry.begin(moves, actor=ACTOR, time=time, reasons=reasons, **details)
        self.apply(intent.payload)
        self.registry.commit(intent.seq, actor=ACTOR)
