"""Live-like traffic for an experiment: users, arrivals over days, real predictions, late labels, drift.

:func:`simulate` lets users arrive uniformly over the test window and return at their own
heavy-tailed (lognormal) rate until it ends, spreads requests over the hours of a day (a cosine
daily cycle), assigns users with the experiment's hash, lets each variant's real model predict its
requests' texts (each distinct text once, in batches), draws per-request latencies from the model's
measured :class:`~abkit.models.CostProfile`, and delivers the true label for a ``label_rate`` fraction
of requests after an exponential delay. A drift schedule moves the traffic mix over a corpus column
(``domain`` by default) from ``mix_before`` to ``mix_after`` starting on ``drift_day``. Everything is
written through :class:`abkit.log.PredictionLog`; the same seed and models give the same log content.

>>> parse_mix("amazon:3,yelp:1")
(('amazon', 0.75), ('yelp', 0.25))
>>> parse_mix("yelp")
(('yelp', 1.0),)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from abkit.display import SettingsReprMixin
from abkit.errors import AbkitError
from abkit.models import Classifier, CostProfile, check_label_sets, measure_cost_profile
from abkit.progress import progress_bar

_US_PER_DAY = 86_400 * 1_000_000

Mix = tuple[tuple[str, float], ...]


class SimulationError(AbkitError):
    """A simulation setting or input is invalid."""


def parse_mix(spec: str | Mapping[str, float] | None) -> Mix | None:
    """Normalise a traffic mix: ``"a:0.7,b:0.3"``, ``"a"`` (all traffic), a mapping, or None/"" (corpus as is)."""
    if spec is None or (isinstance(spec, str) and not spec.strip()):
        return None
    if isinstance(spec, str):
        items = []
        for part in spec.split(","):
            key, _, raw = part.partition(":")
            try:
                items.append((key.strip(), float(raw) if raw.strip() else 1.0))
            except ValueError:
                raise SimulationError(
                    f"mix {spec!r}: weight {raw!r} of {key!r} is not a number; write e.g. 'amazon:0.7,yelp:0.3'."
                ) from None
    else:
        items = [(str(k), float(v)) for k, v in spec.items()]
    total = sum(w for _, w in items)
    if any(w < 0 for _, w in items) or total <= 0 or any(not k for k, _ in items):
        raise SimulationError(
            f"mix {spec!r} needs named categories with weights >= 0 and a positive sum, e.g. 'amazon:0.7,yelp:0.3'."
        )
    return tuple((k, w / total) for k, w in items)


def parse_latency(spec: str | Mapping[str, Any] | None) -> dict[str, CostProfile] | None:
    """Pinned latency per variant: ``"champion=3/5,challenger=15/20"`` (p50/p95 in ms), a mapping of variant to
    ``(p50, p95)`` or ``CostProfile``, or None/"" (the models' measured profiles)."""
    if spec is None or (isinstance(spec, str) and not spec.strip()):
        return None
    items = [part.partition("=")[::2] for part in spec.split(",")] if isinstance(spec, str) else list(spec.items())
    out: dict[str, CostProfile] = {}
    for name, value in items:
        if isinstance(value, CostProfile):
            out[str(name).strip()] = value
            continue
        try:
            p50, p95 = (float(x) for x in (value.split("/") if isinstance(value, str) else value))
            out[str(name).strip()] = CostProfile.pinned(p50, p95)
        except (TypeError, ValueError, AbkitError):
            raise SimulationError(
                f"latency pin {name}={value!r} is not p50/p95 in ms with 0 < p50 <= p95; "
                "write e.g. 'champion=3/5,challenger=15/20'."
            ) from None
    if not all(out):
        raise SimulationError(f"latency pin {spec!r} names no variant; write e.g. 'champion=3/5,challenger=15/20'.")
    return out


@dataclass(frozen=True)
class SimulationConfig(SettingsReprMixin):
    """Traffic settings. Every field is validated on construction; mixes accept strings or mappings."""

    n_users: int = 2000  # users who arrive during the test
    days: int | None = None  # simulated days; None = the experiment's duration_days
    requests_per_day: float = 0.5  # mean return rate of a user (requests/day after the first; lognormal)
    requests_sigma: float = 1.0  # lognormal sigma of the per-user rate (heavy tail of requests per user)
    max_requests_per_user: int = 1000  # cap on one user's requests
    daily_peak_hour: float = 20.0  # UTC hour of peak traffic
    daily_amplitude: float = 0.6  # 0 = flat day; density ∝ 1 + amplitude·cos(2π(hour − peak)/24)
    label_rate: float = 0.3  # fraction of requests that ever get a true label
    label_delay_days: float = 2.0  # mean label delay (exponential); 0 = immediate
    label_horizon_days: float | None = 0.0  # labels later than test end + this are not (yet) written; None = all
    mix_column: str = "domain"  # corpus column the drift schedule mixes over
    mix_before: Any = None  # mix before drift_day ("a:0.5,b:0.5", mapping, or None = corpus as is)
    mix_after: Any = None  # mix from drift_day (+ ramp) on
    drift_day: int | None = None  # first day (0-based) of the drift; None = no drift
    drift_ramp_days: float = 0.0  # days over which the mix moves linearly to mix_after
    batch_size: int = 256  # texts per model call
    pre_period_days: int = 0  # days before the test when the champion serves every user (CUPED covariate); 0 = none
    user_affinity: float = 0.0  # share of a user's requests drawn from the user's own pool of texts (persistent users)
    user_pool_size: int = 20  # texts in each user's own pool (with user_affinity > 0)
    latency_ms: Any = None  # pinned latency per variant ("champion=3/5,...": p50/p95 ms); None = measured profiles
    progress: bool = True  # show tqdm progress bars

    def __post_init__(self) -> None:
        object.__setattr__(self, "mix_before", parse_mix(self.mix_before))
        object.__setattr__(self, "mix_after", parse_mix(self.mix_after))
        object.__setattr__(self, "latency_ms", parse_latency(self.latency_ms))
        checks = [
            (
                "n_users",
                self.n_users,
                isinstance(self.n_users, (int, np.integer)) and self.n_users >= 1,
                "an integer >= 1",
            ),
            (
                "days",
                self.days,
                self.days is None or (int(self.days) == self.days and self.days >= 1),
                "None or an integer >= 1",
            ),
            ("requests_per_day", self.requests_per_day, self.requests_per_day >= 0, ">= 0"),
            ("requests_sigma", self.requests_sigma, self.requests_sigma >= 0, ">= 0"),
            ("max_requests_per_user", self.max_requests_per_user, self.max_requests_per_user >= 1, ">= 1"),
            ("daily_peak_hour", self.daily_peak_hour, 0 <= self.daily_peak_hour < 24, "in [0, 24)"),
            ("daily_amplitude", self.daily_amplitude, 0 <= self.daily_amplitude <= 1, "in [0, 1]"),
            ("label_rate", self.label_rate, 0 <= self.label_rate <= 1, "in [0, 1]"),
            ("label_delay_days", self.label_delay_days, self.label_delay_days >= 0, ">= 0"),
            (
                "label_horizon_days",
                self.label_horizon_days,
                self.label_horizon_days is None or self.label_horizon_days >= 0,
                "None or >= 0",
            ),
            ("drift_day", self.drift_day, self.drift_day is None or self.drift_day >= 0, "None or >= 0"),
            ("drift_ramp_days", self.drift_ramp_days, self.drift_ramp_days >= 0, ">= 0"),
            ("batch_size", self.batch_size, self.batch_size >= 1, ">= 1"),
            (
                "pre_period_days",
                self.pre_period_days,
                isinstance(self.pre_period_days, (int, np.integer)) and self.pre_period_days >= 0,
                "an integer >= 0",
            ),
            ("user_affinity", self.user_affinity, 0 <= self.user_affinity <= 1, "in [0, 1]"),
            ("user_pool_size", self.user_pool_size, self.user_pool_size >= 1, ">= 1"),
        ]
        for name, value, ok, rule in checks:
            if not ok:
                raise SimulationError(f"SimulationConfig.{name}={value!r} is invalid; it must be {rule}.")
        if self.drift_day is not None and self.mix_after is None:
            raise SimulationError(
                f"SimulationConfig.drift_day={self.drift_day} needs mix_after (the mix "
                "traffic moves to), e.g. mix_after='yelp'."
            )

    @classmethod
    def from_params(cls, **params: Any) -> SimulationConfig:
        """Build from flat notebook scalars: "" / -1 / 0 stand for None in ``mix_*``, ``drift_day``, ``days``."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise SimulationError(f"unknown simulation setting(s) {unknown}; known: {sorted(known)}.")
        if params.get("drift_day") is not None and params["drift_day"] < 0:
            params["drift_day"] = None
        if params.get("days") == 0:
            params["days"] = None
        return cls(**params)


@dataclass(frozen=True)
class SimulationSummary:
    """What was written: totals, and per-variant / per-day / per-mix-category tables.

    ``per_variant.true_accuracy`` is the accuracy on *all* requests against the corpus labels — the
    number an unbiased analysis of the (partially labelled) log should estimate.
    """

    n_users: int
    n_requests: int  # predictions written (users in the experiment only)
    n_excluded_requests: int  # requests of users outside the experiment's coverage
    n_labels: int
    start: str
    days: int
    per_variant: pd.DataFrame
    per_day: pd.DataFrame
    per_mix: pd.DataFrame

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (for ``abkit.report.write_results``)."""
        return {
            "n_users": self.n_users,
            "n_requests": self.n_requests,
            "n_excluded_requests": self.n_excluded_requests,
            "n_labels": self.n_labels,
            "start": self.start,
            "days": self.days,
            "per_variant": self.per_variant.to_dict(orient="records"),
            "per_day": self.per_day.to_dict(orient="records"),
        }


def _check_inputs(
    experiment: Any, models: Mapping[str, Classifier], corpus: pd.DataFrame, config: SimulationConfig
) -> None:
    missing = [v for v in experiment.variant_names if v not in models]
    if missing:
        raise SimulationError(
            f"no model for variant(s) {missing}; pass models={{variant: classifier}} for "
            f"every variant of {list(experiment.variant_names)}."
        )
    labels = check_label_sets({v: models[v] for v in experiment.variant_names})
    strange = sorted(set(config.latency_ms or {}) - set(experiment.variant_names))
    if strange:
        raise SimulationError(
            f"latency pin names variant(s) {strange} that the experiment does not have; "
            f"pin any of {list(experiment.variant_names)}."
        )
    for column in ("text", "label"):
        if column not in corpus.columns:
            raise SimulationError(
                f"corpus lacks column {column!r} (has {list(corpus.columns)}); pass a "
                "DataFrame with text and label, e.g. from abkit.data or abkit.synthetic."
            )
    if len(corpus) == 0:
        raise SimulationError("corpus is empty; pass at least one labelled text to serve as traffic.")
    unknown = sorted(set(corpus["label"].astype(str)) - set(labels))
    if unknown:
        raise SimulationError(
            f"corpus labels {unknown} are not among the models' labels {list(labels)}; "
            "train the models on the same label strings."
        )
    mixes = [m for m in (config.mix_before, config.mix_after) if m]
    if mixes and config.mix_column not in corpus.columns:
        raise SimulationError(f"mix_column={config.mix_column!r} is not a corpus column ({list(corpus.columns)}).")
    for mix in mixes:
        absent = [k for k, w in mix if w > 0 and not (corpus[config.mix_column] == k).any()]
        if absent:
            raise SimulationError(
                f"mix categories {absent} do not occur in corpus column "
                f"{config.mix_column!r}; use some of {sorted(corpus[config.mix_column].unique())}."
            )


def _prepare_root(root: Path, key: str, if_exists: str) -> None:
    parts = [root / kind / f"experiment={key}" for kind in ("predictions", "labels")]
    existing = [p for p in parts if p.exists()]
    if if_exists not in ("error", "replace", "append"):
        raise SimulationError(f"if_exists={if_exists!r} is not one of 'error', 'replace', 'append'.")
    if existing and if_exists == "error":
        raise SimulationError(
            f"log {str(root)!r} already holds experiment {key!r}; pass if_exists='replace' "
            "to start over, 'append' to add to it, or choose another log_root."
        )
    if if_exists == "replace":
        import shutil

        for part in existing:
            shutil.rmtree(part)


def _daily_cycle_seconds(n: int, config: SimulationConfig, rng: np.random.Generator) -> np.ndarray:
    minutes = np.arange(1440)
    density = 1 + config.daily_amplitude * np.cos(2 * np.pi * (minutes / 60 - config.daily_peak_hour) / 24)
    picks = rng.choice(1440, size=n, p=density / density.sum())
    return (picks + rng.random(n)) * 60.0


def _schedule(
    config: SimulationConfig, n_days: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(user index, time in µs since start) of every request, in time order, and each user's return rate.

    A user first arrives at a uniform time in the window (one request), then returns as a Poisson
    process whose rate is the user's own lognormal activity until the test ends.
    """
    arrival = rng.random(config.n_users) * n_days
    sigma = config.requests_sigma
    rate = (
        rng.lognormal(np.log(config.requests_per_day) - sigma**2 / 2, sigma, config.n_users)
        if config.requests_per_day > 0
        else np.zeros(config.n_users)
    )
    extra = np.minimum(rng.poisson(rate * (n_days - arrival)), config.max_requests_per_user - 1)
    counts = 1 + extra
    user = np.repeat(np.arange(config.n_users), counts)
    firsts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    t = arrival[user] + rng.random(len(user)) * (n_days - arrival[user])
    t[firsts] = arrival
    day = np.minimum(np.floor(t).astype(np.int64), n_days - 1)
    seconds = _daily_cycle_seconds(len(user), config, rng)
    t_us = day * _US_PER_DAY + np.floor(seconds * 1e6).astype(np.int64)
    order = np.lexsort((user, t_us))
    return user[order], t_us[order], rate


def _pick_rows(
    corpus: pd.DataFrame, config: SimulationConfig, t_days: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Corpus row served by each request, following the drift schedule."""
    n = len(t_days)
    if config.drift_day is None:
        after = np.zeros(n, dtype=bool)
    else:
        ramp = config.drift_ramp_days
        frac = np.clip((t_days - config.drift_day) / ramp, 0, 1) if ramp > 0 else (t_days >= config.drift_day) * 1.0
        after = rng.random(n) < frac
    rows = np.empty(n, dtype=np.int64)
    for use_after, mix in ((False, config.mix_before), (True, config.mix_after)):
        sel = np.flatnonzero(after == use_after)
        if len(sel) == 0:
            continue
        if mix is None:
            rows[sel] = rng.integers(0, len(corpus), size=len(sel))
            continue
        keys = [k for k, _ in mix]
        cat = rng.choice(len(keys), size=len(sel), p=[w for _, w in mix])
        column = corpus[config.mix_column].to_numpy()
        for c, key in enumerate(keys):
            members = np.flatnonzero(column == key)
            hit = sel[cat == c]
            if len(hit):
                rows[hit] = members[rng.integers(0, len(members), size=len(hit))]
    return rows


def _predict_rows(
    model: Classifier, texts: np.ndarray, rows: np.ndarray, batch_size: int, desc: str, progress: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Predict each distinct corpus row once (in batches) and map the results back to requests."""
    unique, inverse = np.unique(rows, return_inverse=True)
    labels = np.empty(len(unique), dtype=object)
    conf = np.empty(len(unique), dtype=float)
    starts = range(0, len(unique), batch_size)
    for s in progress_bar(starts, desc=desc, disable=not progress, leave=False):
        chunk = unique[s : s + batch_size]
        pred, c = model.predict(list(texts[chunk]))
        labels[s : s + len(chunk)], conf[s : s + len(chunk)] = pred, c
    return labels[inverse], conf[inverse]


def _cost_profile(
    model: Classifier, texts: np.ndarray, rng: np.random.Generator, pinned: CostProfile | None = None
) -> CostProfile:
    """The pinned profile, else the model's stored one, else one measured now (with a warning)."""
    profile = pinned or getattr(model, "cost_profile", None)
    if profile is None:
        import warnings

        warnings.warn(
            f"model {model.name!r} has no stored cost profile; measuring one now (a few seconds). "
            "Train with abkit.models.train_model to store one, or pin latency_ms in the simulation.",
            stacklevel=3,
        )
        profile = measure_cost_profile(model, list(texts[:200]), rng=rng)
    return profile


def simulate(
    experiment: Any,
    models: Mapping[str, Classifier],
    corpus: pd.DataFrame,
    log_root: str | Path,
    *,
    config: SimulationConfig | None = None,
    rng: np.random.Generator | int,
    if_exists: Literal["error", "replace", "append"] = "error",
) -> SimulationSummary:
    """Simulate the experiment's traffic and write predictions and late labels under ``log_root``.

    ``if_exists`` decides what happens when the log already holds this experiment: refuse ("error"),
    delete that experiment's predictions and labels first ("replace"), or add to them ("append").
    """
    from abkit.log import PredictionLog

    config = config or SimulationConfig()
    _check_inputs(experiment, models, corpus, config)
    _prepare_root(Path(log_root), experiment.key, if_exists)
    rng = np.random.default_rng(rng)
    n_days = int(config.days or experiment.duration_days)
    start = pd.Timestamp(experiment.start, tz="UTC")
    prefix = f"{int(rng.integers(16**6)):06x}"
    unit_ids = np.array([f"u-{prefix}-{i:07d}" for i in range(config.n_users)], dtype=object)
    arms = np.asarray(experiment.assign(unit_ids))
    user, t_us, rate = _schedule(config, n_days, rng)
    rows = _pick_rows(corpus, config, t_us / _US_PER_DAY, rng)
    # users' own pools and the pre-period draw from a child generator: without them the log is unchanged
    aux = rng.spawn(1)[0] if (config.user_affinity > 0 or config.pre_period_days > 0) else None
    pools = aux.integers(0, len(corpus), size=(config.n_users, config.user_pool_size)) if aux is not None else None
    if config.user_affinity > 0:
        assert aux is not None and pools is not None  # drawn above whenever user_affinity > 0
        rows = _with_affinity(rows, user, pools, config.user_affinity, aux)
    arm = arms[user]
    inside = arm >= 0
    user, t_us, rows, arm = user[inside], t_us[inside], rows[inside], arm[inside]
    n = len(user)

    texts = corpus["text"].astype(str).to_numpy(dtype=object)
    truth = corpus["label"].astype(str).to_numpy(dtype=object)
    predicted = np.empty(n, dtype=object)
    confidence, latency = np.empty(n), np.empty(n)
    names, versions = np.empty(n, dtype=object), np.empty(n, dtype=object)
    for a, variant in enumerate(experiment.variant_names):
        sel = np.flatnonzero(arm == a)
        model = models[variant]
        predicted[sel], confidence[sel] = _predict_rows(
            model, texts, rows[sel], config.batch_size, f"predict {variant}", config.progress
        )
        pinned = (config.latency_ms or {}).get(variant)
        latency[sel] = _cost_profile(model, texts, rng, pinned).sample(len(sel), rng)
        names[sel], versions[sel] = model.name, model.version

    ts = start + pd.to_timedelta(t_us, unit="us")
    request_id = np.array([f"r-{prefix}-{i:08d}" for i in range(n)], dtype=object)
    variants = np.asarray(experiment.variant_names, dtype=object)
    predictions = pd.DataFrame(
        {
            "experiment": experiment.key,
            "variant": variants[arm],
            "unit_id": unit_ids[user],
            "request_id": request_id,
            "ts": ts,
            "text": texts[rows],
            "predicted_label": predicted,
            "confidence": confidence,
            "latency_ms": latency,
            "model_name": names,
            "model_version": versions,
        }
    )

    labelled = rng.random(n) < config.label_rate
    delay_us = (
        (rng.exponential(config.label_delay_days, size=n) * _US_PER_DAY).astype(np.int64)
        if config.label_delay_days > 0
        else np.zeros(n, dtype=np.int64)
    )
    label_t = t_us + delay_us
    if config.label_horizon_days is not None:
        labelled &= label_t <= (n_days + config.label_horizon_days) * _US_PER_DAY
    labels = (
        pd.DataFrame(
            {
                "experiment": experiment.key,
                "request_id": request_id[labelled],
                "label": truth[rows[labelled]],
                "labelled_at": start + pd.to_timedelta(label_t[labelled], unit="us"),
            }
        )
        .sort_values(["labelled_at", "request_id"], kind="stable")
        .reset_index(drop=True)
    )

    log = PredictionLog(log_root)
    days = t_us // _US_PER_DAY
    with log.writer(experiment.key, list(experiment.variant_names)) as writer:
        for d in progress_bar(np.unique(days), desc="write log", disable=not config.progress, leave=False):
            writer.append(predictions[days == d].reset_index(drop=True))
    if len(labels):
        log.append_labels(labels)
    if config.pre_period_days > 0:
        assert aux is not None and pools is not None  # drawn above whenever pre_period_days > 0
        _write_pre_period(
            experiment,
            models[experiment.variant_names[0]],
            corpus,
            log,
            unit_ids,
            rate,
            pools,
            config,
            start,
            aux,
            if_exists,
        )

    correct = predicted == truth[rows]
    return _summarise(
        predictions,
        labels,
        correct,
        config,
        start,
        n_days,
        excluded=int((~inside).sum()),
        mix=corpus[config.mix_column].to_numpy()[rows] if config.mix_column in corpus else None,
        variant_names=tuple(experiment.variant_names),
    )


def _with_affinity(
    rows: np.ndarray, user: np.ndarray, pools: np.ndarray, affinity: float, rng: np.random.Generator
) -> np.ndarray:
    """Each request, with probability ``affinity``, serves a text from its user's own pool instead (the
    pools ignore the traffic mix): users keep their habits, so their metrics correlate across periods."""
    own = rng.random(len(rows)) < affinity
    pick = pools[user[own], rng.integers(0, pools.shape[1], size=int(own.sum()))]
    out = rows.copy()
    out[own] = pick
    return out


def _write_pre_period(
    experiment: Any,
    champion: Classifier,
    corpus: pd.DataFrame,
    log: Any,
    unit_ids: np.ndarray,
    rate: np.ndarray,
    pools: np.ndarray,
    config: SimulationConfig,
    start: pd.Timestamp,
    rng: np.random.Generator,
    if_exists: str,
) -> None:
    """The pre-period: the champion serves every user for ``pre_period_days`` before the test, at each user's
    own rate (one request at least), logged as experiment ``pre_period_key(key)`` with the control's name."""
    from abkit.cuped import pre_period_key

    key = pre_period_key(experiment.key)
    _prepare_root(Path(log.root), key, if_exists)
    days = config.pre_period_days
    counts = 1 + np.minimum(rng.poisson(rate * days), config.max_requests_per_user - 1)
    user = np.repeat(np.arange(len(unit_ids)), counts)
    t_us = (rng.random(len(user)) * days * _US_PER_DAY).astype(np.int64)
    order = np.lexsort((user, t_us))
    user, t_us = user[order], t_us[order]
    rows = rng.integers(0, len(corpus), size=len(user))
    if config.user_affinity > 0:
        rows = _with_affinity(rows, user, pools, config.user_affinity, rng)
    texts = corpus["text"].astype(str).to_numpy(dtype=object)
    truth = corpus["label"].astype(str).to_numpy(dtype=object)
    predicted, confidence = _predict_rows(
        champion, texts, rows, config.batch_size, "predict pre-period", config.progress
    )
    first = start - pd.Timedelta(days=days)
    control = experiment.variant_names[0]
    request_id = np.array([f"p-{key}-{i:08d}" for i in range(len(user))], dtype=object)
    frame = pd.DataFrame(
        {
            "experiment": key,
            "variant": control,
            "unit_id": unit_ids[user],
            "request_id": request_id,
            "ts": first + pd.to_timedelta(t_us, unit="us"),
            "text": texts[rows],
            "predicted_label": predicted,
            "confidence": confidence,
            "latency_ms": _cost_profile(champion, texts, rng, (config.latency_ms or {}).get(control)).sample(
                len(user), rng
            ),
            "model_name": champion.name,
            "model_version": champion.version,
        }
    )
    labelled = rng.random(len(user)) < config.label_rate
    delay = (
        (rng.exponential(config.label_delay_days, size=len(user)) * _US_PER_DAY).astype(np.int64)
        if config.label_delay_days > 0
        else np.zeros(len(user), dtype=np.int64)
    )
    labelled &= t_us + delay < days * _US_PER_DAY  # a label arrives before the test starts
    with log.writer(key, [control]) as writer:
        writer.append(frame)
    if labelled.any():
        log.append_labels(
            pd.DataFrame(
                {
                    "experiment": key,
                    "request_id": request_id[labelled],
                    "label": truth[rows[labelled]],
                    "labelled_at": first + pd.to_timedelta(t_us[labelled] + delay[labelled], unit="us"),
                }
            )
        )


def _summarise(
    pred: pd.DataFrame,
    labels: pd.DataFrame,
    correct: np.ndarray,
    config: SimulationConfig,
    start: pd.Timestamp,
    n_days: int,
    excluded: int,
    mix: np.ndarray | None,
    variant_names: tuple[str, ...],
) -> SimulationSummary:
    has_label = pred["request_id"].isin(labels["request_id"]).to_numpy()
    frame = pred.assign(correct=correct, labelled=has_label, date=pred["ts"].dt.strftime("%Y-%m-%d"))
    per_variant = (
        frame.groupby("variant")
        .agg(
            users=("unit_id", "nunique"),
            requests=("request_id", "size"),
            labels=("labelled", "sum"),
            true_accuracy=("correct", "mean"),
            mean_confidence=("confidence", "mean"),
            latency_p95_ms=("latency_ms", lambda s: float(np.percentile(s, 95))),
        )
        .reindex(list(variant_names))
        .dropna(subset=["requests"])
        .reset_index()
    )
    per_day = (
        frame.groupby(["date", "variant"], sort=True)
        .agg(requests=("request_id", "size"), labels=("labelled", "sum"))
        .reset_index()
    )
    per_mix = (
        frame.assign(category=mix).groupby(["date", "category"]).size().rename("requests").reset_index()
        if mix is not None
        else pd.DataFrame(columns=["date", "category", "requests"])
    )
    for table in (per_variant, per_day):
        for col in ("users", "requests", "labels"):
            if col in table:
                table[col] = table[col].astype(int)
    return SimulationSummary(
        n_users=config.n_users,
        n_requests=len(pred),
        n_excluded_requests=excluded,
        n_labels=len(labels),
        start=start.strftime("%Y-%m-%d"),
        days=n_days,
        per_variant=per_variant,
        per_day=per_day,
        per_mix=per_mix,
    )
