"""The closed loop on simulated days: serve, monitor, retrain, ramp a canary, promote, watch, roll back.

Models come from a *source* (``abkit.rollout.sources``): by default real TF-IDF + logistic-regression
classifiers run on request texts of a labelled corpus (the offline synthetic corpus, or UCI sentences), a
retrain fitting the next version on the labelled requests the prediction log holds from recent days; or
simulated behaviours (accuracy per domain, latency), which run many seeded lifecycles in seconds. Every
decision goes through the real path either way: requests are assigned with the GrowthBook hash and nested
ramp ranges (``abkit.assign.ramp_ranges``), written to the prediction log (requests inside a test under the
phase's key, the others under ``<key>-serving``), analysed by ``abkit.analysis.analyze`` per phase (each phase
is its own experiment key, checked for SRM against that phase's weights), turned into gates by the pure
policy, and recorded in the registry.

Every version's own traffic is watched by a ``VersionMonitor`` (``abkit.rollout.watch``: a labelled-accuracy
CUSUM and a daily confidence KS test against the version's validation predictions, or its first
``reference_days`` when it has none or they hold fewer than ``min_reference_texts`` distinct texts). The
champion's alarms, with no previous champion to go back to, ask for a retrain: the next candidate in
``LifecycleConfig.candidates`` is trained, registered and ramped. The challenger's alarms during its canary
stages, and the new champion's during the watch, feed the machine's drift gate (``gather(..., alarms=...)``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from abkit.registry import ModelRegistry
from abkit.rollout.evidence import alarm_texts, gather
from abkit.rollout.loop import Rollout
from abkit.rollout.machine import Evidence, RolloutDecision, RolloutState
from abkit.rollout.policy import RolloutError, RolloutPolicy
from abkit.rollout.sources import ModelBehaviour, Recipe, make_source
from abkit.rollout.watch import VersionMonitor

__all__ = ["LifecycleConfig", "LifecycleResult", "ModelBehaviour", "Recipe", "run_lifecycle", "story"]


@dataclasses.dataclass(frozen=True)
class LifecycleConfig:
    """The simulated world: users, traffic, the domain shift, the models, the monitors."""

    champion: ModelBehaviour | Recipe  # a Recipe: real classifiers on corpus texts; a ModelBehaviour: simulated
    candidates: tuple[ModelBehaviour | Recipe, ...] = ()  # trained one after another when a retrain is asked for
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
    reference_days: int = 4  # a version without validation predictions: its first days as monitoring reference
    min_reference_texts: int = 200  # fewer distinct validation texts: the version's own first days instead
    monitor_ert: float = 1e6  # expected labelled predictions between false alarms of a version's accuracy CUSUM
    monitor_shift: float = 0.1  # accuracy drop the CUSUM is tuned to detect
    monitor_tolerance: float = 0.03  # gap between reference and live accuracy the CUSUM accepts as in control
    drift_alpha: float = 1 / 730  # per-day false-alarm level of a version's confidence KS check
    dataset: str = "synthetic"  # real classifiers: "synthetic" (offline corpus) or "uci" (ABKIT_DATA_DIR)
    corpus_rows: int = 6000  # synthetic sentences generated per domain
    data_dir: str | None = None  # UCI folder (default: ABKIT_DATA_DIR or ../shared/data)
    key: str = "lifecycle"


@dataclasses.dataclass(frozen=True)
class LifecycleResult:
    """Decisions in order, traffic shares per day and model, and the final aliases."""

    decisions: tuple[RolloutDecision, ...]
    events: tuple[dict[str, Any], ...]  # retrains and rollout starts (not policy decisions)
    traffic: tuple[dict[str, Any], ...]  # one row per (day, version): share of requests served
    aliases: Mapping[str, str]
    registry: ModelRegistry
    monitors: Mapping[str, VersionMonitor] = dataclasses.field(default_factory=dict)

    def decision_dicts(self) -> list[dict[str, Any]]:
        """The ``decisions`` list of the notebook's JSON (holds are kept: every decision is a record)."""
        return [d.to_dict() for d in self.decisions]

    def actions(self) -> list[str]:
        return [d.action for d in self.decisions]


class _World:
    """Traffic for one day: users, arrival times, domains, labelled flags and the draws a simulated source uses."""

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
    source = make_source(cfg, rng)
    log = PredictionLog(root / "log")
    registry = ModelRegistry(root / "registry", create=True)
    t0 = dt.datetime.fromisoformat(cfg.start).replace(tzinfo=dt.UTC)
    monitors: dict[str, VersionMonitor] = {}

    def register(spec: ModelBehaviour | Recipe, day: int, actor: str, why: str) -> None:
        when = t0 + dt.timedelta(days=day)
        meta = source.add(spec, day, when, log)
        registry.register(spec.version, meta, actor=actor, time=when, reasons=[why])
        monitors[spec.version] = VersionMonitor(
            spec.version,
            ert=cfg.monitor_ert,
            shift=cfg.monitor_shift,
            tolerance=cfg.monitor_tolerance,
            alpha=cfg.drift_alpha,
            confidences=source.confidences,
            reference_days=cfg.reference_days,
            seed=seed,
        )
        ref = source.reference(spec.version)
        if ref is not None and ref[2] >= cfg.min_reference_texts:
            monitors[spec.version].fit(*ref)

    register(cfg.champion, 0, "setup", "initial model")
    registry.set_alias("champion", cfg.champion.version, actor="setup", time=t0, reasons=["initial model"])
    rollout = Rollout(policy, registry)
    candidates = list(cfg.candidates)
    decisions: list[RolloutDecision] = []
    events: list[dict[str, Any]] = []
    traffic: list[dict[str, Any]] = []
    phases: dict[tuple[Any, ...], _Phase] = {}
    max_share = max(policy.canary_shares)
    serving_key = f"{cfg.key}-serving"

    def begin(day: int, why: str) -> None:
        cand = candidates.pop(0)
        when = t0 + dt.timedelta(days=day)
        register(cand, day, "retrain", why)
        rollout.begin(cand.version, when, (why,))
        events.append({"time": when.isoformat(), "event": "retrain and start", "version": cand.version, "reason": why})

    if cfg.start_with_challenger and candidates:
        begin(0, "a new candidate is ready")
    for day in range(cfg.days):
        state = rollout.state()
        req = world.requests(day)
        source.draw(req, rng)
        arm, served, phase = _route(state, req["unit_id"], policy, cfg, max_share, phases, day)
        predicted, confidence, latency = _answer(source, served, req, day)
        correct = predicted == req["truth"]
        ts = _ts(cfg, day, req["secs"])
        window = (t0 + dt.timedelta(days=day)).date().isoformat()
        for version in np.unique(served):
            mine = served == version
            traffic.append(
                {
                    "day": day,
                    "time": (t0 + dt.timedelta(days=day)).isoformat(),
                    "version": str(version),
                    "share": float(np.mean(mine)),
                }
            )
            monitors[str(version)].add(day, window, correct[mine & req["labelled"]], confidence[mine])
        in_test = arm >= 0
        answers = (served, predicted, confidence, latency)
        if phase is not None and in_test.any():
            _write(log, phase.experiment.key, phase.experiment.variant_names, in_test, req, answers, ts, day, cfg)
        if state.phase != "shadow" and not in_test.all():  # in shadow, its champion key logs every request
            _write(log, serving_key, list(source.models), ~in_test, req, answers, ts, day, cfg)
        now = t0 + dt.timedelta(days=day + 1)
        if state.phase == "shadow":
            ev = _shadow_step(log, source, monitors, state, req, answers, ts, day, window, cfg, policy, phases, now)
        elif phase is not None:
            tested = state.challenger if state.phase == "canary" else state.champion
            ev = gather(log.root, phase.experiment, now, policy, alarms=monitors[str(tested)].alarms)
        else:
            ev = Evidence(now, champion_alarms=alarm_texts(monitors[state.champion].alarms))
        decision = rollout.step(ev)
        decisions.append(decision)
        if (
            decision.state.phase in ("idle", "stable")
            and decision.action == "hold"
            and ev.champion_alarms
            and candidates
            and day + 1 < cfg.days
        ):
            begin(day + 1, "the champion's traffic drifted: retrained on recent labelled data")
    return LifecycleResult(tuple(decisions), tuple(events), tuple(traffic), registry.aliases(), registry, monitors)


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


def _answer(source: Any, served: np.ndarray, req: Mapping[str, np.ndarray], day: int) -> tuple[np.ndarray, ...]:
    """Predicted label, confidence and latency of each request from the version that answers it."""
    predicted = np.empty(served.size, dtype=object)
    confidence = np.zeros(served.size)
    latency = np.zeros(served.size)
    for version in np.unique(served):
        m = served == version
        predicted[m], confidence[m] = source.predict(str(version), req, m, day)
        latency[m] = source.latency(str(version), req["lat"][m])
    return predicted, confidence, latency


def _shadow_step(
    log: Any,
    source: Any,
    monitors: Mapping[str, VersionMonitor],
    state: RolloutState,
    req: Mapping[str, np.ndarray],
    answers: tuple[np.ndarray, ...],
    ts: Sequence[dt.datetime],
    day: int,
    window: str,
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
    challenger = str(state.challenger)
    mirrored = np.full(req["unit_id"].size, challenger, dtype=object)
    shadow = (mirrored, *_answer(source, mirrored, req, day))
    correct = shadow[1] == req["truth"]
    monitors[challenger].add(day, window, correct[req["labelled"]], shadow[2])
    ref_key, tested_key = shadow_keys(base)
    everyone = np.ones(mirrored.size, dtype=bool)
    _write(log, ref_key, [state.champion], everyone, req, answers, ts, day, cfg)
    _write(log, tested_key, [challenger], everyone, req, shadow, ts, day, cfg)
    return paired_evidence(log.root, base, now, policy, alarms=alarm_texts(monitors[challenger].alarms))


def _write(
    log: Any,
    key: str,
    names: Sequence[str],
    mask: np.ndarray,
    req: Mapping[str, np.ndarray],
    answers: tuple[np.ndarray, ...],
    ts: Sequence[dt.datetime],
    day: int,
    cfg: LifecycleConfig,
) -> None:
    """The requests in ``mask`` under ``key`` (variant: the version that answered; request ids
    ``<cfg.key>-<day>-<i>``, the same under every key a request is logged in) and their labels."""
    import pyarrow as pa

    served, predicted, confidence, latency = answers
    idx = np.flatnonzero(mask)
    rid = np.array([f"{cfg.key}-{day}-{i}" for i in idx.tolist()], dtype=object)
    when = pa.array([ts[i] for i in idx.tolist()], pa.timestamp("us", tz="UTC"))
    rows = pa.table(
        {
            "variant": pa.array(served[idx].astype(str)),
            "unit_id": pa.array(req["unit_id"][idx].astype(str)),
            "request_id": pa.array(rid.astype(str)),
            "ts": when,
            "text": pa.array(req["text"][idx].astype(str)),
            "predicted_label": pa.array(predicted[idx].astype(str)),
            "confidence": pa.array(confidence[idx]),
            "latency_ms": pa.array(latency[idx]),
            "model_name": pa.array(
                np.full(idx.size, "tfidf_logreg" if isinstance(cfg.champion, Recipe) else "simulated")
            ),
            "model_version": pa.array(served[idx].astype(str)),
        }
    )
    with log.writer(key, list(names)) as w:
        w.append(rows)
    lab = req["labelled"][idx]
    if lab.any():
        log.append_labels(
            pa.table(
                {
                    "experiment": pa.array(np.full(int(lab.sum()), key)),
                    "request_id": pa.array(rid[lab].astype(str)),
                    "label": pa.array(req["truth"][idx][lab].astype(str)),
                    "labelled_at": pa.array(
                        [ts[i] + dt.timedelta(minutes=5) for i in idx[lab].tolist()], pa.timestamp("us", tz="UTC")
                    ),
                }
            )
        )


STORY_MODELS = ("classifiers", "simulated")
STORY_DOMAINS = {"synthetic": ("electronics", "restaurants"), "uci": ("amazon", "imdb")}


def story(
    *,
    days: int = 26,
    users_per_day: int = 3000,
    shift_day: float = 6.0,
    regression_day: float = 17.0,
    bad_days: int = 8,
    models: str = "classifiers",
    dataset: str = "synthetic",
) -> tuple[LifecycleConfig, LifecycleConfig]:
    """The ``40_rollout`` story: (the main loop, the separate bad challenger).

    Main: v1 serves; from ``shift_day`` the second domain (restaurant reviews; UCI: IMDb) takes 70 % of
    traffic, where v1 is weaker; its monitor alarms, v2 is retrained on recent labelled traffic, ramped and
    promoted; from ``regression_day`` v2 degrades and is rolled back to v1. Bad: v3 is aborted at its first
    canary stage.

    ``models="classifiers"`` (default): TF-IDF + logistic regression on corpus texts (``dataset``:
    "synthetic" or "uci"). v1 is trained on the first domain's offline training set; v2 on the labelled
    requests the log holds from the 3 days before the alarm (traffic after it draws texts v2 never saw);
    from ``regression_day`` a faulty preprocessing release percent-encodes the requests v2 serves; v3 is a
    broken training job: 100 texts of the offline set with a quarter of the labels flipped.
    ``models="simulated"``: behaviours with the same plot (v2 silently loses 20 points, v3 is 6 points worse).
    """
    if models not in STORY_MODELS:
        raise RolloutError(f"lifecycle models={models!r} is unknown; use one of {STORY_MODELS}")
    if dataset not in STORY_DOMAINS:
        raise RolloutError(f"lifecycle dataset={dataset!r} is unknown; use one of {tuple(STORY_DOMAINS)}")
    v1: ModelBehaviour | Recipe
    v2: ModelBehaviour | Recipe
    v3: ModelBehaviour | Recipe
    if models == "simulated":
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
    else:
        v1 = Recipe("v1", data="training", latency_ms=20.0, trained_on="the first model")
        v2 = Recipe(
            "v2",
            data="log",
            recent_days=3,
            latency_ms=22.0,
            broken_from_day=regression_day,
            trained_on="retrained after the drift alarm",
        )
        v3 = Recipe(
            "v3", data="training", max_rows=100, label_noise=0.25, latency_ms=20.0, trained_on="a broken training job"
        )
    main = LifecycleConfig(
        champion=v1,
        candidates=(v2,),
        days=days,
        users_per_day=users_per_day,
        n_users=4 * users_per_day,
        shift_day=shift_day,
        domains=STORY_DOMAINS[dataset] if models == "classifiers" else STORY_DOMAINS["synthetic"],
        dataset=dataset,
        key="lifecycle",
    )
    bad = dataclasses.replace(
        main, candidates=(v3,), start_with_challenger=True, days=bad_days, key="lifecycle-bad", shift_day=None
    )
    return main, bad
