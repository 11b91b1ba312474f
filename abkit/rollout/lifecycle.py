"""The closed loop on simulated days: serve, monitor, retrain, ramp a canary, promote, watch, roll back.

Models are *simulated behaviours* (accuracy per traffic domain, a latency level, optional silent
regressions), so a many-day story runs in seconds; every decision still goes through the real path:
requests are assigned with the GrowthBook hash and nested ramp ranges (``abkit.assign.ramp_ranges``),
written to the prediction log, analysed by ``abkit.analysis.analyze`` per phase (each phase is its own
experiment key, checked for SRM against that phase's weights), turned into gates by the pure policy, and
recorded in the registry.

The champion's own traffic is watched by a labelled-accuracy monitor (``abkit.drift.BernoulliCUSUM``, its
false-alarm rate set by the expected run length); an alarm with no previous champion to go back
to asks for a retrain: the next candidate in ``LifecycleConfig.candidates`` is registered and ramped.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from abkit.registry import ModelRegistry
from abkit.rollout.evidence import gather
from abkit.rollout.loop import Rollout
from abkit.rollout.machine import Evidence, RolloutDecision, RolloutState
from abkit.rollout.policy import RolloutError, RolloutPolicy

__all__ = ["LifecycleConfig", "LifecycleResult", "ModelBehaviour", "run_lifecycle"]

_LABELS = ("negative", "positive")


@dataclasses.dataclass(frozen=True)
class ModelBehaviour:
    """A simulated model version: accuracy per domain, median latency, optional silent regression."""

    version: str
    accuracy: Mapping[str, float]  # per traffic domain
    latency_ms: float = 20.0
    regression_day: float | None = None  # from this (absolute) day on, accuracy drops by ``regression_drop``
    regression_drop: float = 0.0
    trained_on: str = ""

    def accuracy_at(self, domain: np.ndarray, day: float) -> np.ndarray:
        acc = np.array([self.accuracy.get(d, min(self.accuracy.values())) for d in domain], dtype=np.float64)
        if self.regression_day is not None and day >= self.regression_day:
            acc = acc - self.regression_drop
        return np.clip(acc, 0.0, 1.0)


@dataclasses.dataclass(frozen=True)
class LifecycleConfig:
    """The simulated world: users, traffic, the domain shift, the models, the monitor."""

    champion: ModelBehaviour
    candidates: tuple[ModelBehaviour, ...] = ()  # registered one after another when a retrain is asked for
    start_with_challenger: bool = False  # begin a rollout of candidates[0] on day 0 (no monitoring story)
    days: int = 25
    n_users: int = 6000
    users_per_day: int = 1500
    requests_per_user: float = 2.0
    label_rate: float = 0.6
    start: str = "2024-06-03"
    domains: tuple[str, str] = ("electronics", "restaurants")
    shift_day: float | None = 6.0  # from this day the second domain takes ``shift_share`` of traffic
    shift_share: float = 0.7
    reference_days: int = 4  # the champion's first days as its monitoring reference
    monitor_ert: float = 1e6  # expected labelled predictions between false alarms of the accuracy monitor
    monitor_shift: float = 0.1  # accuracy drop the monitor is tuned to detect
    key: str = "lifecycle"


@dataclasses.dataclass(frozen=True)
class LifecycleResult:
    """Decisions in order, traffic shares per day and model, and the final aliases."""

    decisions: tuple[RolloutDecision, ...]
    events: tuple[dict[str, Any], ...]  # retrains and rollout starts (not policy decisions)
    traffic: tuple[dict[str, Any], ...]  # one row per (day, version): share of requests served
    aliases: Mapping[str, str]
    registry: ModelRegistry

    def decision_dicts(self) -> list[dict[str, Any]]:
        """The ``decisions`` list of the notebook's JSON (holds are kept: every decision is a record)."""
        return [d.to_dict() for d in self.decisions]

    def actions(self) -> list[str]:
        return [d.action for d in self.decisions]


class _World:
    """Traffic and simulated predictions for one day."""

    def __init__(self, cfg: LifecycleConfig, rng: np.random.Generator) -> None:
        self.cfg, self.rng = cfg, rng
        self.users = np.array([f"user-{i}" for i in range(cfg.n_users)])

    def requests(self, day: int) -> dict[str, np.ndarray]:
        cfg, rng = self.cfg, self.rng
        users = rng.choice(cfg.n_users, size=cfg.users_per_day, replace=False)
        per = rng.poisson(cfg.requests_per_user - 1.0, size=users.size) + 1
        uid = np.repeat(self.users[users], per)
        n = uid.size
        shifted = cfg.shift_day is not None and day >= cfg.shift_day
        domain = np.where(rng.random(n) < (cfg.shift_share if shifted else 0.0), cfg.domains[1], cfg.domains[0])
        secs = np.sort(rng.uniform(0, 86_400, n))
        return {
            "unit_id": uid,
            "domain": domain,
            "secs": secs,
            "label": rng.integers(0, 2, n),
            "labelled": rng.random(n) < cfg.label_rate,
            "u": rng.random(n),
            "lat": rng.standard_normal(n),
            "conf": rng.uniform(0.55, 0.99, n),
        }


def _ts(cfg: LifecycleConfig, day: int, secs: np.ndarray) -> list[dt.datetime]:
    base = dt.datetime.fromisoformat(cfg.start).replace(tzinfo=dt.UTC) + dt.timedelta(days=day)
    return [base + dt.timedelta(seconds=float(s)) for s in secs]


def run_lifecycle(
    cfg: LifecycleConfig, policy: RolloutPolicy, root: str | Path, *, seed: int, replace: bool = False
) -> LifecycleResult:
    """Simulate ``cfg.days`` days; returns every decision and the traffic timeline.

    ``root`` must be empty, or (``replace=True``) a folder of an earlier lifecycle run, which is removed.
    """
    import shutil

    from abkit.log import PredictionLog

    root = Path(root)
    if root.exists() and any(root.iterdir()):
        if not replace or {p.name for p in root.iterdir()} - {"log", "registry"}:
            raise RolloutError(
                f"lifecycle root {str(root)!r} is not empty; give a new folder "
                "(or replace=True for the folder of an earlier lifecycle run)"
            )
        shutil.rmtree(root)
    rng = np.random.default_rng(seed)
    world = _World(cfg, rng)
    log = PredictionLog(root / "log")
    registry = ModelRegistry(root / "registry", create=True)
    models = {cfg.champion.version: cfg.champion}
    t0 = dt.datetime.fromisoformat(cfg.start).replace(tzinfo=dt.UTC)
    registry.register(cfg.champion.version, {"trained_on": cfg.champion.trained_on}, actor="setup", time=t0)
    registry.set_alias("champion", cfg.champion.version, actor="setup", time=t0, reasons=["initial model"])
    rollout = Rollout(policy, registry)
    candidates = list(cfg.candidates)
    decisions: list[RolloutDecision] = []
    events: list[dict[str, Any]] = []
    traffic: list[dict[str, Any]] = []
    phases: dict[tuple[Any, ...], _Phase] = {}
    monitor = _Monitor(cfg)
    max_share = max(policy.canary_shares)

    def begin(day: int, why: str) -> None:
        cand = candidates.pop(0)
        models[cand.version] = cand
        when = t0 + dt.timedelta(days=day)
        registry.register(cand.version, {"trained_on": cand.trained_on}, actor="retrain", time=when, reasons=[why])
        rollout.begin(cand.version, when, (why,))
        events.append({"time": when.isoformat(), "event": "retrain and start", "version": cand.version, "reason": why})

    if cfg.start_with_challenger and candidates:
        begin(0, "a new candidate is ready")
    for day in range(cfg.days):
        state = rollout.state()
        req = world.requests(day)
        arm, served, phase = _route(state, req["unit_id"], policy, cfg, max_share, phases, day)
        correct, latency = _predict(models, served, req, day)
        predicted = np.where(correct, req["label"], 1 - req["label"])
        ts = _ts(cfg, day, req["secs"])
        for version in np.unique(served):
            share = float(np.mean(served == version))
            traffic.append(
                {"day": day, "time": (t0 + dt.timedelta(days=day)).isoformat(), "version": str(version), "share": share}
            )
        monitor.add(state.champion, day, served == state.champion, correct, req["labelled"])
        in_test = arm >= 0
        if phase is not None and in_test.any():
            key = phase.experiment.key
            _write(
                log, key, phase.experiment.variant_names, arm, in_test, req, predicted, latency, ts, served, day, key
            )
        now = t0 + dt.timedelta(days=day + 1)
        if state.phase == "shadow":
            ev = _shadow_step(log, models, state, req, predicted, latency, ts, served, day, cfg, policy, phases, now)
        elif phase is not None:
            watched = monitor.alarms(state.champion, day) if state.phase == "watch" else ()
            ev = gather(log.root, phase.experiment, now, policy, alarms=watched)
        else:
            ev = Evidence(now, champion_alarms=monitor.alarms(state.champion, day))
        decision = rollout.step(ev)
        decisions.append(decision)
        if (
            decision.state.phase in ("idle", "stable")
            and decision.action == "hold"
            and ev.champion_alarms
            and candidates
            and day + 1 < cfg.days
        ):
            begin(day + 1, "the champion's accuracy dropped: retrained on recent labelled data")
        if decision.action == "promote":
            monitor.reset(decision.state.champion, day + 1)
    return LifecycleResult(tuple(decisions), tuple(events), tuple(traffic), registry.aliases(), registry)


class _Phase(NamedTuple):
    experiment: Any  # the phase's Experiment (its own key in the log, ranges and weights)
    start_day: int


def _route(
    state: RolloutState,
    users: np.ndarray,
    policy: RolloutPolicy,
    cfg: LifecycleConfig,
    max_share: float,
    phases: dict[tuple[Any, ...], _Phase],
    day: int,
) -> tuple[np.ndarray, np.ndarray, _Phase | None]:
    """Arm per request (-1 = outside the test), the version serving it, and the phase (None: no split)."""
    from abkit.experiment import Experiment, Variant

    served = np.full(users.size, state.champion, dtype=object)
    if state.phase not in ("canary", "watch"):
        return np.full(users.size, -1), served, None
    ident = (state.phase, state.champion, state.challenger, state.stage, state.since)
    if ident not in phases:
        key = f"{cfg.key}-{len(phases) + 1}-" + (f"canary{state.stage}" if state.phase == "canary" else "watch")
        start = (dt.date.fromisoformat(cfg.start) + dt.timedelta(days=day)).isoformat()
        common: dict[str, Any] = {"seed": cfg.key, "start": start, "duration_days": max(cfg.days - day, 1)}
        if state.phase == "canary":
            exp = Experiment.ramp_phase(
                key, state.champion, str(state.challenger), policy.canary_shares[state.stage], max_share, **common
            )
        else:  # the previous champion keeps a holdback at the bottom of the hash range
            w = policy.watch_share
            exp = Experiment(
                key=key,
                variants=(Variant(str(state.previous_champion), w), Variant(state.champion, 1 - w)),
                bucket_ranges=((0.0, w), (w, 1.0)),
                **common,
            )
        phases[ident] = _Phase(exp, day)
    exp = phases[ident].experiment
    arm = exp.assign(users)
    for i, name in enumerate(exp.variant_names):
        served[arm == i] = name
    return arm, served, phases[ident]


def _predict(
    models: Mapping[str, ModelBehaviour], served: np.ndarray, req: Mapping[str, np.ndarray], day: int
) -> tuple[np.ndarray, np.ndarray]:
    """Simulated correctness and latency of each request from the model that answers it. The same uniform
    draw decides every model's correctness on a request, so two models' errors are positively correlated."""
    correct = np.zeros(served.size, dtype=bool)
    latency = np.zeros(served.size)
    for version in np.unique(served):
        m = served == version
        correct[m] = req["u"][m] < models[version].accuracy_at(req["domain"][m], day)
        latency[m] = models[version].latency_ms * np.exp(0.3 * req["lat"][m])
    return correct, latency


def _shadow_step(
    log: Any,
    models: Mapping[str, ModelBehaviour],
    state: RolloutState,
    req: Mapping[str, np.ndarray],
    predicted: np.ndarray,
    latency: np.ndarray,
    ts: Sequence[dt.datetime],
    served: np.ndarray,
    day: int,
    cfg: LifecycleConfig,
    policy: RolloutPolicy,
    phases: dict[tuple[Any, ...], _Phase],
    now: dt.datetime,
) -> Evidence:
    """Mirror every request to the challenger, log both predictions under the shadow keys, pair them."""
    from abkit.rollout.shadow import paired_evidence, shadow_keys

    ident = ("shadow", state.champion, state.challenger, state.stage, state.since)
    if ident not in phases:
        phases[ident] = _Phase(f"{cfg.key}-{len(phases) + 1}-shadow", day)
    base = phases[ident].experiment  # the shadow phase's key (its two log keys derive from it)
    mirrored = np.full(served.size, state.challenger, dtype=object)
    correct_t, latency_t = _predict(models, mirrored, req, day)
    predicted_t = np.where(correct_t, req["label"], 1 - req["label"])
    ref_key, tested_key = shadow_keys(base)
    everyone = np.ones(served.size, dtype=bool)
    zero = np.zeros(served.size, dtype=int)
    _write(log, ref_key, [state.champion], zero, everyone, req, predicted, latency, ts, served, day, base)
    _write(
        log, tested_key, [str(state.challenger)], zero, everyone, req, predicted_t, latency_t, ts, mirrored, day, base
    )
    return paired_evidence(log.root, base, now, policy)


def _write(
    log: Any,
    key: str,
    names: Sequence[str],
    arm: np.ndarray,
    mask: np.ndarray,
    req: Mapping[str, np.ndarray],
    predicted: np.ndarray,
    latency: np.ndarray,
    ts: Sequence[dt.datetime],
    served: np.ndarray,
    day: int,
    rid: str,
) -> None:
    """Predictions of the requests in ``mask`` under ``key`` (request ids ``<rid>-<day>-<i>``) and their labels."""
    idx = np.flatnonzero(mask)
    rows = [
        {
            "variant": names[arm[i]],
            "unit_id": str(req["unit_id"][i]),
            "request_id": f"{rid}-{day}-{i}",
            "text": req["domain"][i],
            "predicted_label": _LABELS[predicted[i]],
            "confidence": float(req["conf"][i]),
            "latency_ms": float(latency[i]),
            "model_name": "simulated",
            "model_version": str(served[i]),
            "ts": ts[i],
        }
        for i in idx.tolist()
    ]
    with log.writer(key, list(names)) as w:
        w.append(rows)
    labels = [
        {
            "experiment": key,
            "request_id": f"{rid}-{day}-{i}",
            "label": _LABELS[req["label"][i]],
            "labelled_at": ts[i] + dt.timedelta(minutes=5),
        }
        for i in idx.tolist()
        if req["labelled"][i]
    ]
    if labels:
        log.append_labels(labels)


class _Monitor:
    """The champion's labelled accuracy on its own traffic: ``abkit.drift.BernoulliCUSUM`` fitted on the
    champion's first ``reference_days``, fed every later labelled prediction; an alarm stays open until
    another version becomes champion."""

    def __init__(self, cfg: LifecycleConfig) -> None:
        self.cfg = cfg
        self.since: dict[str, int] = {}
        self.reference: dict[str, list[np.ndarray]] = {}
        self.detector: dict[str, Any] = {}
        self.open: dict[str, str] = {}

    def reset(self, version: str, day: int) -> None:
        self.since[version] = day
        self.reference[version] = []
        self.detector.pop(version, None)
        self.open.pop(version, None)

    def add(self, version: str, day: int, mask: np.ndarray, correct: np.ndarray, labelled: np.ndarray) -> None:
        from abkit.drift.cusum import BernoulliCUSUM

        flags = correct[mask & labelled]
        start = self.since.setdefault(version, day)
        if day < start + self.cfg.reference_days:
            self.reference.setdefault(version, []).append(flags)
            return
        if version not in self.detector:
            ref = np.concatenate(self.reference.get(version, [np.zeros(0, bool)]))
            if ref.size < 30:
                return
            self.detector[version] = BernoulliCUSUM(
                ert=self.cfg.monitor_ert, shift=self.cfg.monitor_shift, random_state=0
            ).fit(ref)
        det = self.detector[version]
        for x in flags.tolist():
            if det.update(x).drift_detected and version not in self.open:
                self.open[version] = (
                    f"accuracy of {version} dropped below its reference {det.p0_:.3f} (Bernoulli "
                    f"CUSUM, ERT {self.cfg.monitor_ert:,.0f} labelled predictions, day {day})"
                )

    def alarms(self, version: str, day: int) -> tuple[str, ...]:
        return (self.open[version],) if version in self.open else ()


def story(
    *,
    days: int = 26,
    users_per_day: int = 3000,
    shift_day: float = 6.0,
    regression_day: float = 17.0,
    bad_days: int = 8,
) -> tuple[LifecycleConfig, LifecycleConfig]:
    """The ``40_rollout`` story: (the main loop, the separate bad challenger).

    Main: v1, trained on electronics reviews, serves; from ``shift_day`` restaurant reviews take 70 % of
    traffic and v1's accuracy on them is low; the monitor alarms, v2 (retrained on recent labelled traffic)
    is ramped and promoted; from ``regression_day`` v2 silently loses 20 points and is rolled back.
    Bad: a broken build v3, 6 points worse everywhere, is aborted at its first canary stage.
    """
    v1 = ModelBehaviour("v1", {"electronics": 0.90, "restaurants": 0.72}, 20.0, trained_on="electronics reviews")
    v2 = ModelBehaviour(
        "v2",
        {"electronics": 0.90, "restaurants": 0.88},
        22.0,
        regression_day=regression_day,
        regression_drop=0.20,
        trained_on="recent labelled traffic (both domains)",
    )
    v3 = ModelBehaviour("v3", {"electronics": 0.84, "restaurants": 0.66}, 20.0, trained_on="a broken build")
    main = LifecycleConfig(
        champion=v1,
        candidates=(v2,),
        days=days,
        users_per_day=users_per_day,
        n_users=4 * users_per_day,
        shift_day=shift_day,
        key="lifecycle",
    )
    bad = dataclasses.replace(
        main, candidates=(v3,), start_with_challenger=True, days=bad_days, key="lifecycle-bad", shift_day=None
    )
    return main, bad
