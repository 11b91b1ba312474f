"""The rollout state machine: a pure ``next_step(state, evidence, policy) -> RolloutDecision``.

Phases: ``idle`` (a champion alone) → ``shadow`` (optional: the challenger scores mirrored requests) →
``canary`` (stage k: the challenger serves ``policy.canary_shares[k]`` of traffic) → ``watch`` (promoted; a
holdback of the previous champion is kept) → ``stable``.

Each step reads the gates — minimum sample, SRM, the primary metric not worse (always-valid interval), the
guardrails, open drift alarms — each of which passes, fails or is **inconclusive** (missing data, NaN, too
small a sample: never a pass). Then:

=============  ==============================  ==========================  ===============================
phase          a gate fails                    inconclusive                every gate passes
=============  ==============================  ==========================  ===============================
shadow         abort                           hold; abort at deadline     advance to canary stage 0
canary k       abort                           hold; abort at deadline     advance (k+1) or, last stage,
                                                                           promote once shown better
watch          rollback                        hold; rollback when the     advance to stable after
                                               watch cannot conclude        ``watch_days``
idle, stable   an alarm on the champion: roll     hold                        hold
               back if a previous champion
               exists, else hold (retrain)
=============  ==============================  ==========================  ===============================

``abort`` ends a canary or shadow and returns all traffic to the champion; ``rollback`` restores the previous
champion after a promotion. Every phase has a way back to the safe model.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from abkit.decide import Comparison
from abkit.rollout.policy import GateResult, RolloutError, RolloutPolicy, _finite, _num
from abkit.stats.srm import SRMResult

__all__ = ["ACTIONS", "PHASES", "Evidence", "RolloutDecision", "RolloutState", "next_step", "start"]

Action = Literal["advance", "hold", "promote", "rollback", "abort"]
ACTIONS: tuple[str, ...] = ("advance", "hold", "promote", "rollback", "abort")
PHASES: tuple[str, ...] = ("idle", "shadow", "canary", "watch", "stable")


def _time(value: Any, field: str) -> dt.datetime:
    if isinstance(value, dt.datetime):
        t = value
    elif isinstance(value, str):
        try:
            t = dt.datetime.fromisoformat(value)
        except ValueError:
            raise RolloutError(f"{field}={value!r} is not an ISO date-time; give e.g. '2024-06-03T00:00:00'") from None
    else:
        raise RolloutError(f"{field}={value!r} must be a datetime or an ISO date-time string")
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


@dataclasses.dataclass(frozen=True)
class RolloutState:
    """Where a rollout stands. ``since``: when the current phase (or canary stage) began."""

    phase: str
    champion: str
    since: dt.datetime
    challenger: str | None = None
    previous_champion: str | None = None
    stage: int = 0

    def __post_init__(self) -> None:
        if self.phase not in PHASES:
            raise RolloutError(f"state phase={self.phase!r} is unknown; use one of {PHASES}")
        object.__setattr__(self, "since", _time(self.since, "state.since"))
        if self.phase in ("shadow", "canary") and not self.challenger:
            raise RolloutError(f"a {self.phase} state needs a challenger version")
        if self.phase == "watch" and not self.previous_champion:
            raise RolloutError("a watch state needs the previous champion (the version to roll back to)")
        if isinstance(self.stage, bool) or not isinstance(self.stage, int) or self.stage < 0:
            raise RolloutError(f"state stage={self.stage!r} must be a whole number >= 0")

    def share(self, policy: RolloutPolicy) -> float:
        """The challenger's traffic share (the new champion's, while watching)."""
        if self.phase == "canary":
            return policy.canary_shares[self.stage]
        if self.phase == "watch":
            return 1.0 - policy.watch_share
        return 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "champion": self.champion,
            "challenger": self.challenger,
            "previous_champion": self.previous_champion,
            "stage": self.stage,
            "since": self.since.isoformat(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RolloutState:
        return cls(**dict(d))


@dataclasses.dataclass(frozen=True)
class Evidence:
    """What the gates read at one look: the tested model against its reference.

    In shadow and canary the tested model is the challenger and the reference the champion; while watching,
    the new champion against the previous champion's holdback. ``units``: labelled users (pairs, in shadow)
    per side, keys ``"tested"`` and ``"reference"``. ``comparisons``: tested − reference, always-valid
    intervals in ``seq_ci_low``/``seq_ci_high`` (as from ``abkit.analysis``). ``srm``: None where no split
    exists (shadow). ``alarms``: open drift or estimated-accuracy alarms on the tested model's traffic.
    """

    time: dt.datetime
    units: Mapping[str, float] = dataclasses.field(default_factory=dict)
    comparisons: tuple[Comparison, ...] = ()
    srm: SRMResult | None = None
    alarms: tuple[str, ...] = ()
    champion_alarms: tuple[str, ...] = ()  # alarms on the champion's traffic (read while stable)

    def __post_init__(self) -> None:
        object.__setattr__(self, "time", _time(self.time, "evidence.time"))
        object.__setattr__(self, "comparisons", tuple(self.comparisons))
        object.__setattr__(self, "alarms", tuple(self.alarms))
        object.__setattr__(self, "champion_alarms", tuple(self.champion_alarms))

    def find(self, metric: str, statistic: str = "mean") -> Comparison | None:
        return next((c for c in self.comparisons if c.metric == metric and c.statistic == statistic), None)


@dataclasses.dataclass(frozen=True)
class RolloutDecision:
    """One step's action, the versions it concerns, every gate's result, the reasons and the next state."""

    time: dt.datetime
    action: str
    from_version: str | None
    to_version: str | None
    phase: str  # the phase the step was taken in
    stage: int
    share: float  # traffic share of the tested model during the step
    gate_results: tuple[GateResult, ...]
    reasons: tuple[str, ...]
    state: RolloutState  # the state after the action

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise RolloutError(f"action={self.action!r} is not one of {ACTIONS}")
        if not self.reasons:
            raise RolloutError(f"a {self.action} decision needs at least one reason")

    def alias_moves(self) -> dict[str, str | None]:
        """How the registry's aliases move when this decision is applied."""
        if self.action == "promote":
            return {"champion": self.to_version, "challenger": None, "previous_champion": self.from_version}
        if self.action == "rollback":
            return {"champion": self.to_version, "previous_champion": None, "challenger": None}
        if self.action == "abort":
            return {"challenger": None}
        return {}

    def to_dict(self) -> dict[str, Any]:
        """JSON-able (no NaN): the record a report and the registry keep."""
        return {
            "time": self.time.isoformat(),
            "action": self.action,
            "from_version": self.from_version,
            "to_version": self.to_version,
            "phase": self.phase,
            "stage": self.stage,
            "share": round(self.share, 6),
            "gate_results": [g.to_dict() for g in self.gate_results],
            "reasons": list(self.reasons),
            "state": self.state.to_dict(),
        }


def start(champion: str, challenger: str, time: Any, policy: RolloutPolicy) -> RolloutState:
    """The state that begins testing ``challenger`` against ``champion`` (shadow first, if the policy says so)."""
    if challenger == champion:
        raise RolloutError(f"challenger={challenger!r} is the champion; give a different version")
    return RolloutState("shadow" if policy.shadow else "canary", champion, _time(time, "time"), challenger)


# ---------------------------------------------------------------------------------------------------------
# gates


def _min_sample(ev: Evidence, policy: RolloutPolicy, what: str) -> GateResult:
    n = min((ev.units.get(k, 0.0) for k in ("tested", "reference")), default=0.0)
    n = n if _finite(n) else 0.0
    if n >= policy.min_units:
        return GateResult(
            "min sample", "pass", n, policy.min_units, f"{n:.0f} labelled {what} per side ≥ {policy.min_units}"
        )
    return GateResult(
        "min sample",
        "inconclusive",
        n,
        policy.min_units,
        f"too little data: {n:.0f} labelled {what} per side < {policy.min_units}",
    )


def _srm(ev: Evidence) -> GateResult:
    s = ev.srm
    if s is None:
        return GateResult("srm", "inconclusive", None, None, "no sample-ratio check available")
    if s.status == "mismatch":
        return GateResult("srm", "fail", _num(s.p_value), None, s.reason)
    if s.status != "ok" or not _finite(s.p_value):
        return GateResult("srm", "inconclusive", _num(s.p_value), None, f"sample ratio not checkable: {s.reason}")
    return GateResult("srm", "pass", s.p_value, None, s.reason)


def _interval(ev: Evidence, metric: str, statistic: str) -> tuple[float, float, float, float]:
    c = ev.find(metric, statistic)
    if c is None:
        nan = float("nan")
        return nan, nan, nan, nan
    return c.estimate, c.seq_ci_low, c.seq_ci_high, c.control_mean


def _oriented(lo: float, hi: float, up: bool) -> tuple[float, float]:
    """(worst, best) of an interval of tested − reference, with gain positive."""
    return (lo, hi) if up else (-hi, -lo)


def _primary(ev: Evidence, policy: RolloutPolicy, margin: float, label: str) -> GateResult:
    est, lo, hi, _ = _interval(ev, policy.primary_metric, "mean")
    name = f"primary {policy.primary_metric} {label}"
    if not _finite(est, lo, hi):
        return GateResult(name, "inconclusive", None, -margin, f"{name}: no valid interval (no or too little data)")
    worst, best = _oriented(lo, hi, policy.higher_is_better)
    txt = f"{policy.primary_metric} difference {est:+.4g} (always-valid CI {lo:.4g} to {hi:.4g})"
    if worst >= -margin:
        return GateResult(name, "pass", worst, -margin, f"{txt}: not worse than −{margin:g}")
    if best < -margin:
        return GateResult(name, "fail", best, -margin, f"{txt}: worse by more than {margin:g}")
    return GateResult(name, "inconclusive", worst, -margin, f"{txt}: cannot yet rule out a loss beyond {margin:g}")


def _better(ev: Evidence, metric: str, statistic: str, up: bool, name: str) -> GateResult:
    est, lo, hi, _ = _interval(ev, metric, statistic)
    if not _finite(est, lo, hi):
        return GateResult(name, "inconclusive", None, 0.0, f"{name}: no valid interval (no or too little data)")
    worst, _ = _oriented(lo, hi, up)
    if worst > 0:
        return GateResult(name, "pass", worst, 0.0, f"{name}: shown better (worst case {worst:+.4g} > 0)")
    return GateResult(name, "inconclusive", worst, 0.0, f"{name}: not yet shown better (worst case {worst:+.4g})")


def _guardrails(ev: Evidence, policy: RolloutPolicy) -> list[GateResult]:
    out = []
    for g in policy.guardrails:
        est, lo, hi, ref = _interval(ev, *g.key())
        out.append(g.evaluate(est, lo, hi, reference=ref if _finite(ref) else None))
    return out


def _drift(alarms: Sequence[str], whose: str) -> GateResult:
    if alarms:
        return GateResult(
            "drift", "fail", float(len(alarms)), 0.0, f"open alarm(s) on the {whose}'s traffic: " + "; ".join(alarms)
        )
    return GateResult("drift", "pass", 0.0, 0.0, f"no open drift alarm on the {whose}'s traffic")


# ---------------------------------------------------------------------------------------------------------
# transitions


def _decision(
    state: RolloutState,
    ev: Evidence,
    policy: RolloutPolicy,
    action: str,
    gates: Sequence[GateResult],
    reasons: Sequence[str],
    new: RolloutState,
) -> RolloutDecision:
    frm, to = {
        "promote": (state.champion, state.challenger),
        "rollback": (state.champion, state.previous_champion),
        "abort": (state.challenger, state.champion),
    }.get(
        action,
        (state.champion, state.challenger)
        if state.phase in ("shadow", "canary")
        else (state.previous_champion, state.champion),
    )
    return RolloutDecision(
        ev.time, action, frm, to, state.phase, state.stage, state.share(policy), tuple(gates), tuple(reasons), new
    )


def _failed(gates: Sequence[GateResult]) -> list[str]:
    return [g.reason for g in gates if g.status == "fail"]


def _open(gates: Sequence[GateResult]) -> list[str]:
    return [g.reason for g in gates if g.status == "inconclusive"]


def _elapsed_days(state: RolloutState, ev: Evidence) -> float:
    return (ev.time - state.since).total_seconds() / 86400.0


def next_step(state: RolloutState, evidence: Evidence, policy: RolloutPolicy) -> RolloutDecision:
    """The action for ``state`` given ``evidence``; pure (no I/O, no clock, no randomness)."""
    if not isinstance(state, RolloutState) or not isinstance(evidence, Evidence):
        raise RolloutError("next_step needs a RolloutState and an Evidence")
    if evidence.time < state.since:
        raise RolloutError(
            f"evidence time {evidence.time.isoformat()} is before the state began "
            f"({state.since.isoformat()}); evidence must be newer than the state"
        )
    if state.phase == "canary" and state.stage >= len(policy.canary_shares):
        raise RolloutError(f"state stage={state.stage} but the policy has {len(policy.canary_shares)} canary stages")
    step = _watch if state.phase == "watch" else _testing if state.phase in ("shadow", "canary") else _serving
    return step(state, evidence, policy)


def _testing(state: RolloutState, ev: Evidence, policy: RolloutPolicy) -> RolloutDecision:
    shadow = state.phase == "shadow"
    gates = [_min_sample(ev, policy, "pairs" if shadow else "users")]
    if not shadow:
        gates.append(_srm(ev))
    gates.append(_primary(ev, policy, policy.primary_margin, "(paired)" if shadow else "not worse"))
    gates += _guardrails(ev, policy)
    gates.append(_drift(ev.alarms, "challenger"))
    back = RolloutState("idle", state.champion, ev.time, None, state.previous_champion)
    failed = _failed(gates)
    if failed:
        return _decision(state, ev, policy, "abort", gates, ["a gate failed: " + r for r in failed], back)
    last = not shadow and state.stage == len(policy.canary_shares) - 1
    if last and not _open(gates):
        if policy.promote_when == "better":
            gates.append(
                _better(
                    ev,
                    policy.primary_metric,
                    "mean",
                    policy.higher_is_better,
                    f"promotion: {policy.primary_metric} better",
                )
            )
        else:
            from abkit.rollout.policy import metric_direction

            m, s = policy.cost_metric
            gates.append(_better(ev, m, s, metric_direction(m), f"promotion: {s} {m} cheaper"))
    pending = _open(gates)
    if pending:
        left = policy.stage_deadline_days - _elapsed_days(state, ev)
        if left <= 0:
            return _decision(
                state,
                ev,
                policy,
                "abort",
                gates,
                [f"inconclusive past the stage deadline of {policy.stage_deadline_days:g} days: " + r for r in pending],
                back,
            )
        return _decision(
            state,
            ev,
            policy,
            "hold",
            gates,
            [f"inconclusive, waiting ({left:.1f} days to the deadline): " + r for r in pending],
            state,
        )
    if shadow:
        nxt = RolloutState("canary", state.champion, ev.time, state.challenger, state.previous_champion, 0)
        return _decision(
            state, ev, policy, "advance", gates, [f"shadow gates passed; canary at {policy.canary_shares[0]:.0%}"], nxt
        )
    if last:
        nxt = RolloutState("watch", state.challenger, ev.time, None, state.champion)  # type: ignore[arg-type]
        how = "better" if policy.promote_when == "better" else "non-inferior and cheaper"
        why = f"every gate of the last stage ({state.share(policy):.0%}) passed and the challenger is shown {how}"
        return _decision(state, ev, policy, "promote", gates, [why], nxt)
    nxt = dataclasses.replace(state, since=ev.time, stage=state.stage + 1)
    why = f"every gate passed at {state.share(policy):.0%}; next stage {policy.canary_shares[state.stage + 1]:.0%}"
    return _decision(state, ev, policy, "advance", gates, [why], nxt)


def _watch(state: RolloutState, ev: Evidence, policy: RolloutPolicy) -> RolloutDecision:
    gates = [
        _min_sample(ev, policy, "users"),
        _srm(ev),
        _primary(ev, policy, policy.watch_margin, "no harm after promotion"),
    ]
    gates += _guardrails(ev, policy)
    gates.append(_drift(ev.alarms, "new champion"))
    # After a promotion only shown harm rolls back: "not yet shown non-inferior" is no reason to switch back.
    harm = [g for g in gates if g.status == "fail"]
    back = RolloutState("stable", state.previous_champion, ev.time, None, None)  # type: ignore[arg-type]
    if harm:
        return _decision(state, ev, policy, "rollback", gates, ["after promotion: " + g.reason for g in harm], back)
    elapsed = _elapsed_days(state, ev)
    short = [g.reason for g in gates[:2] if g.status == "inconclusive"]
    if elapsed >= policy.watch_days and not short:
        nxt = RolloutState("stable", state.champion, ev.time, None, state.previous_champion)
        return _decision(
            state, ev, policy, "advance", gates, [f"watched {elapsed:.1f} days without harm; the promotion stands"], nxt
        )
    if short and elapsed >= policy.watch_days + policy.stage_deadline_days:
        return _decision(
            state,
            ev,
            policy,
            "rollback",
            gates,
            ["the promotion could not be confirmed by its deadline: " + r for r in short],
            back,
        )
    return _decision(
        state,
        ev,
        policy,
        "hold",
        gates,
        [f"watching the new champion ({elapsed:.1f} of {policy.watch_days:g} days)"] + short,
        state,
    )


def _serving(state: RolloutState, ev: Evidence, policy: RolloutPolicy) -> RolloutDecision:
    """Idle or stable: one champion serves everything; an alarm on it rolls back if a previous one exists."""
    gate = _drift(ev.champion_alarms, "champion")
    if gate.status == "fail" and state.previous_champion:
        back = RolloutState(state.phase, state.previous_champion, ev.time)
        return _decision(state, ev, policy, "rollback", [gate], [gate.reason], back)
    if gate.status == "fail":
        return _decision(
            state,
            ev,
            policy,
            "hold",
            [gate],
            [gate.reason, "no previous champion to roll back to: retrain a challenger"],
            state,
        )
    return _decision(state, ev, policy, "hold", [gate], ["the champion serves all traffic; no alarm"], state)
