"""A monitoring pass over a run's prediction log: every signal on every window, false alarms controlled.

**False-alarm budget.** ``windows_between_false_alarms`` (default 365: on average at least a year of daily
windows between false alarms) fixes the family-wise false-alarm level of one window over *all* signals,
alpha_window = 1 / windows_between_false_alarms. Each window holds k checks (text signals once, model signals
once per arm, and one accuracy CUSUM per arm); with ``correction="bonferroni"`` each check runs at
alpha_window / k, with ``"bh"`` the window's p-values go through Benjamini–Hochberg at alpha_window (the
CUSUMs keep alpha_window / k). A CUSUM's expected run length is set so that it spends the same share:
ERT = (labelled predictions per window) / (alpha_window / k). Over a horizon of H windows the expected number
of false alarms is then at most H / windows_between_false_alarms.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from abkit.display import SettingsReprMixin
from abkit.drift._base import BatchDetector, DriftError, Outcome
from abkit.drift.cusum import BernoulliCUSUM
from abkit.drift.domain_classifier import DomainClassifierDrift
from abkit.drift.estimated_accuracy import EstimatedAccuracyDrift
from abkit.drift.ks import KSDrift
from abkit.drift.label_distribution import LabelDistributionDrift
from abkit.drift.mmd import MMDDrift
from abkit.drift.oov import OOVDrift
from abkit.drift.psi import PSIDrift
from abkit.drift.result import Alarm, DriftResult, DriftResults
from abkit.drift.text_length import TextLengthDrift
from abkit.drift.wasserstein import WassersteinDrift
from abkit.drift.windows import Window, read_monitoring_frame, split_windows
from abkit.progress import progress_bar

__all__ = ["SIGNALS", "MonitorConfig", "MonitoringReport", "load_alarms", "monitor_frame", "monitor_run"]

TEXT_SIGNALS = ("text_length", "text_oov", "domain_classifier", "embedding_mmd", "label_prior")
MODEL_SIGNALS = ("confidence_ks", "confidence_psi", "confidence_wasserstein", "predicted_label", "estimated_accuracy")
STREAM_SIGNALS = ("accuracy_cusum",)
SIGNALS = TEXT_SIGNALS + MODEL_SIGNALS + STREAM_SIGNALS


@dataclass(frozen=True)
class MonitorConfig(SettingsReprMixin):
    """How a monitoring pass cuts windows, which signals it checks and its false-alarm budget."""

    reference_days: float = 3.0  #: the first days of the log form the reference period
    window_size: int = 0  #: 0: one window per calendar day (UTC); n > 0: blocks of n predictions
    windows_between_false_alarms: float = 365.0  #: mean windows between false alarms, over all signals
    correction: Literal["bonferroni", "bh"] = "bonferroni"  #: how the checks of one window are controlled
    signals: tuple[str, ...] = SIGNALS
    min_window: int = 50  #: fewer predictions (or labels) in a window means insufficient data
    embed_sample: int = 200  #: texts embedded per window for the MMD check (MiniLM; 0 disables it)
    reference_embed_sample: int = 400  #: reference texts embedded
    domain_sample: int = 1000  #: texts per side for the domain classifier
    cusum_shift: float = 0.1  #: accuracy drop the CUSUM is tuned to
    effect_thresholds: dict[str, float] = field(default_factory=dict)  #: per-signal override of the effect floor

    def __post_init__(self) -> None:
        unknown = sorted(set(self.signals) - set(SIGNALS))
        if unknown:
            raise DriftError(f"signals={list(self.signals)!r} names {unknown}; choose from {list(SIGNALS)}.")
        if self.correction not in ("bonferroni", "bh"):
            raise DriftError(f"correction={self.correction!r} must be 'bonferroni' or 'bh'.")
        if not self.windows_between_false_alarms > 1:
            raise DriftError(f"windows_between_false_alarms={self.windows_between_false_alarms!r} must exceed 1.")
        if self.reference_days <= 0:
            raise DriftError(f"reference_days={self.reference_days!r} must be positive.")
        if self.window_size < 0 or self.min_window < 1:
            raise DriftError("window_size must be >= 0 and min_window >= 1.")

    @property
    def alpha_window(self) -> float:
        return 1.0 / self.windows_between_false_alarms


@dataclass(frozen=True)
class MonitoringReport:
    """Every check of a pass, the alarms as records and the budget they were held to."""

    checks: tuple[DriftResult, ...]
    alarms: tuple[Alarm, ...]
    budget: dict[str, Any]
    windows: tuple[str, ...]
    seed: int | None
    config: MonitorConfig

    @property
    def first_alarm(self) -> Alarm | None:
        """The earliest alarm (by window start, then signal order): which signal saw the change first."""
        if not self.alarms:
            return None
        order = {s: i for i, s in enumerate(SIGNALS)}
        return min(self.alarms, key=lambda a: (a.window_start or "", order.get(a.signal, 99), a.variant))

    def first_alarm_by_signal(self) -> dict[str, str]:
        """For each signal that alarmed, the first window it alarmed on."""
        first: dict[str, Alarm] = {}
        for a in self.alarms:
            if a.signal not in first or (a.window_start or "") < (first[a.signal].window_start or ""):
                first[a.signal] = a
        return {s: a.window for s, a in sorted(first.items(), key=lambda kv: kv[1].window_start or "")}

    def alarms_for(self, variant: str) -> tuple[Alarm, ...]:
        """Alarms on ``variant``'s model signals and on the traffic all arms share."""
        return tuple(a for a in self.alarms if a.variant in (variant, "all"))

    @property
    def insufficient(self) -> int:
        return sum(r.alarm is None for r in self.checks)

    def verdict(self) -> str:
        """One plain-language sentence for the top of a report."""
        n_win = len(self.windows)
        budget = (
            f"false-alarm budget: on average one false alarm per "
            f"{self.config.windows_between_false_alarms:g} windows across all signals"
        )
        gaps = f"; {self.insufficient} checks had too little data to decide" if self.insufficient else ""
        if not self.alarms:
            return f"No drift detected: {len(self.checks)} checks over {n_win} windows, none alarmed ({budget}){gaps}."
        first = self.first_alarm
        assert first is not None
        signals = ", ".join(f"{s} (from {w})" for s, w in self.first_alarm_by_signal().items())
        windows = sorted({a.window for a in self.alarms})
        return (
            f"Drift detected in {len(windows)} of {n_win} windows, first on {first.window}, seen first by "
            f"{first.signal} ({first.variant}). Alarming signals: {signals} ({budget}){gaps}."
        )

    def table(self) -> DriftResults:
        return DriftResults(self.checks)

    def summary(self) -> pd.DataFrame:
        """One row per signal and arm: windows checked, alarms, insufficient, first alarm."""
        rows = []
        for (signal, variant), group in _group(self.checks):
            alarmed = [r.window for r in group if r.alarm]
            rows.append(
                {
                    "signal": signal,
                    "variant": variant,
                    "windows": len(group),
                    "alarms": len(alarmed),
                    "insufficient": sum(r.alarm is None for r in group),
                    "first_alarm": alarmed[0] if alarmed else "",
                    "method": group[0].method,
                }
            )
        return pd.DataFrame(rows)

    def alarm_table(self) -> pd.DataFrame:
        cols = ["window", "signal", "variant", "statistic", "threshold", "p_value", "n_current", "reasons"]
        return pd.DataFrame(
            [{**{c: getattr(a, c) for c in cols}, "reasons": "; ".join(a.reasons)} for a in self.alarms], columns=cols
        )

    def to_json(self) -> dict[str, Any]:
        first = self.first_alarm
        return {
            "verdict": self.verdict(),
            "checks": [r.to_dict() for r in self.checks],
            "alarms": [a.to_dict() for a in self.alarms],
            "budget": self.budget,
            "windows": list(self.windows),
            "first_alarm": None if first is None else first.to_dict(),
            "first_alarm_by_signal": self.first_alarm_by_signal(),
            "headline": self.headline(),
        }

    def headline(self) -> str:
        first = self.first_alarm
        return "no drift" if first is None else f"drift from {first.window} ({first.signal})"


def _group(results: Sequence[DriftResult]) -> list[tuple[tuple[str, str], list[DriftResult]]]:
    groups: dict[tuple[str, str], list[DriftResult]] = {}
    for r in results:
        groups.setdefault((r.signal, r.variant), []).append(r)
    return list(groups.items())


def load_alarms(run_dir: str | Path) -> tuple[Alarm, ...]:
    """The alarms that notebook ``30_drift`` recorded in ``<run_dir>/30_drift.json``."""
    path = Path(run_dir) / "30_drift.json"
    if not path.is_file():
        raise DriftError(f"no drift results at {str(path)!r}; run notebooks/30_drift.ipynb for this run first.")
    return tuple(Alarm.from_dict(a) for a in json.loads(path.read_text())["alarms"])


# ------------------------------------------------------------------------------------------ the pass
Encoder = Callable[[Sequence[str]], np.ndarray]


def _default_encoder() -> Encoder:
    from abkit.models import _shared_encoder, minilm_path

    return _shared_encoder(str(minilm_path()), 128, 64).encode


@contextlib.contextmanager
def _one_torch_thread() -> Iterator[None]:
    """Run torch on one intra-op thread: on a shared, busy machine two threads wait on each other (measured 3x
    slower than one under load); on an idle one a single thread costs ~1.5x. Restores the setting after."""
    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class _Embeddings:
    """Embeds each distinct text once (MiniLM is the slow part of a pass)."""

    def __init__(self, encoder: Encoder) -> None:
        self.encoder, self.cache = encoder, {}  # type: ignore[var-annotated]

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        todo = sorted({t for t in texts if t not in self.cache})
        if todo:
            with _one_torch_thread():
                vectors = self.encoder(todo)
            for t, e in zip(todo, vectors):
                self.cache[t] = e
        return np.array([self.cache[t] for t in texts]) if len(texts) else np.empty((0, 0), np.float32)


def _detectors(config: MonitorConfig, alpha: float, seed: int | None, n_perm: int) -> dict[str, BatchDetector]:
    """One fresh detector per batch signal, configured for a pass."""
    floors = config.effect_thresholds

    def kw(signal: str) -> dict[str, Any]:
        return {"alpha": alpha, "min_size": config.min_window, "effect_threshold": floors.get(signal)}

    rs = None if seed is None else int(seed)
    return {
        "text_length": TextLengthDrift(**kw("text_length")),
        "text_oov": OOVDrift(**kw("text_oov"), random_state=rs),
        "domain_classifier": DomainClassifierDrift(
            **kw("domain_classifier"), max_per_side=config.domain_sample, random_state=rs
        ),
        "embedding_mmd": MMDDrift(**kw("embedding_mmd"), n_permutations=n_perm, n_features=128, random_state=rs),
        "label_prior": LabelDistributionDrift(**kw("label_prior")),
        "confidence_ks": KSDrift(**kw("confidence_ks")),
        "confidence_psi": PSIDrift(**kw("confidence_psi")),
        # enough simulated null draws that about 20 lie beyond the per-check threshold
        "confidence_wasserstein": WassersteinDrift(
            **kw("confidence_wasserstein"),
            random_state=rs,
            n_null=int(min(max(20_000, math.ceil(20 / alpha)), 200_000)),
        ),
        "predicted_label": LabelDistributionDrift(**kw("predicted_label")),
        "estimated_accuracy": EstimatedAccuracyDrift(**kw("estimated_accuracy")),
    }


def _inputs(
    frame: pd.DataFrame,
    signal: str,
    rows: np.ndarray,
    embed: _Embeddings | None,
    rng: np.random.Generator,
    config: MonitorConfig,
    reference: bool,
) -> Any:
    """The values one signal reads from some rows of the log."""
    part = frame.iloc[rows]
    labelled = part[part["label"].notna()]
    if signal in ("text_length", "text_oov", "domain_classifier"):
        return part["text"].to_numpy(dtype=object)
    if signal == "embedding_mmd":
        n = config.reference_embed_sample if reference else config.embed_sample
        texts = part["text"].to_numpy(dtype=object)
        if len(texts) > n:
            texts = texts[rng.choice(len(texts), n, replace=False)]
        return embed(list(texts)) if embed is not None else np.empty((0, 0), np.float32)
    if signal == "label_prior":
        return labelled["label"].to_numpy(dtype=object)
    if signal in ("confidence_ks", "confidence_psi", "confidence_wasserstein"):
        return part["confidence"].to_numpy(dtype=float)
    if signal == "predicted_label":
        return part["predicted_label"].to_numpy(dtype=object)
    if signal == "estimated_accuracy":
        correct = part["correct"].map(lambda v: np.nan if v is None or pd.isna(v) else float(v))
        return part["confidence"].to_numpy(dtype=float), correct.to_numpy(dtype=float)
    raise DriftError(f"unknown signal {signal!r}")  # pragma: no cover - guarded by MonitorConfig


def _every(rows: np.ndarray) -> np.ndarray:
    return rows


def _bh_level(p_values: Sequence[float], q: float) -> float:
    """Benjamini–Hochberg: the largest i·q/k with p_(i) <= i·q/k, or q/k when nothing is rejected."""
    k = len(p_values)
    if k == 0:
        return q
    ps = np.sort(np.asarray(p_values))
    passed = np.flatnonzero(ps <= q * np.arange(1, k + 1) / k)
    return float(q * (passed[-1] + 1) / k) if passed.size else q / k


def monitor_frame(
    frame: pd.DataFrame,
    *,
    start: pd.Timestamp,
    variants: Sequence[str],
    config: MonitorConfig | None = None,
    seed: int | None = 0,
    encoder: Encoder | None = None,
) -> MonitoringReport:
    """Monitor a log already read into a frame (columns of ``windows.COLUMNS``) from ``start``."""
    from threadpoolctl import threadpool_limits

    # Every product in a pass is small: one BLAS thread is faster, and does not stall on a busy machine.
    with threadpool_limits(limits=1, user_api="blas"):
        return _monitor_frame(frame, start, variants, config or MonitorConfig(), seed, encoder)


def _monitor_frame(
    frame: pd.DataFrame,
    start: pd.Timestamp,
    variants: Sequence[str],
    config: MonitorConfig,
    seed: int | None,
    encoder: Encoder | None,
) -> MonitoringReport:
    rng = np.random.default_rng(seed)
    reference, windows = split_windows(frame["ts"], start, config.reference_days, config.window_size)
    text_signals = [s for s in TEXT_SIGNALS if s in config.signals]
    model_signals = [s for s in MODEL_SIGNALS if s in config.signals]
    streams = "accuracy_cusum" in config.signals
    k = len(text_signals) + len(variants) * (len(model_signals) + int(streams))
    alpha_check = config.alpha_window / max(k, 1)
    n_perm = int(min(max(math.ceil(2.0 / alpha_check), 199), 50_000))
    embed = None
    if "embedding_mmd" in text_signals and config.embed_sample > 0:
        try:
            embed = _Embeddings(encoder or _default_encoder())
        except Exception as exc:  # noqa: BLE001 - MMD becomes "insufficient data" with the reason
            embed_error = f"no sentence encoder ({type(exc).__name__}: {exc})"
    variant_arr = frame["variant"].to_numpy(dtype=object)

    # (signal, variant) -> fitted detector and the rows it reads
    def of_variant(v: str) -> Callable[[np.ndarray], np.ndarray]:
        return lambda rows: rows[variant_arr[rows] == v]

    plans: list[tuple[str, str, Callable[[np.ndarray], np.ndarray]]] = [(s, "all", _every) for s in text_signals]
    plans += [(s, v, of_variant(v)) for v in variants for s in model_signals]
    fitted: list[tuple[str, str, BatchDetector | None, Callable[[np.ndarray], np.ndarray]]] = []
    for signal, variant, select in plans:
        if signal == "embedding_mmd" and embed is None:
            fitted.append((signal, variant, None, select))
            continue
        detector = _detectors(config, alpha_check, seed, n_perm)[signal]
        detector.fit(_inputs(frame, signal, select(reference.rows), embed, rng, config, True))
        fitted.append((signal, variant, detector, select))

    checks: list[DriftResult] = []
    for w in progress_bar(windows, desc="abkit drift", unit="window"):
        outcomes: list[tuple[str, Outcome]] = []
        for signal, variant, det, select in fitted:
            if det is None:
                out = Outcome(
                    signal,
                    MMDDrift.method,
                    0,
                    len(w.rows),
                    insufficient=(
                        f"embedding_mmd: {embed_error if config.embed_sample else 'disabled (embed_sample = 0)'}",
                    ),
                )
            else:
                out = det.test(_inputs(frame, signal, select(w.rows), embed, rng, config, False))
            outcomes.append((variant, dataclasses.replace(out, signal=signal)))
        level = alpha_check
        if config.correction == "bh":
            level = _bh_level(
                [o.p_value for _, o in outcomes if o.decidable and o.p_value is not None], config.alpha_window
            )
        checks.extend(o.decide(level).with_context(variant=v, window=w.label, **w.bounds()) for v, o in outcomes)
    if streams:
        for v in variants:
            checks.extend(_cusum_checks(frame, reference, windows, v, variant_arr, config, alpha_check, seed))

    alarms = tuple(_alarm(r, frame, windows, config, seed, reference) for r in checks if r.alarm)
    budget = {
        "windows_between_false_alarms": config.windows_between_false_alarms,
        "alpha_window": config.alpha_window,
        "checks_per_window": k,
        "alpha_per_check": alpha_check,
        "correction": config.correction,
        "n_windows": len(windows),
        "expected_false_alarms_over_horizon": len(windows) * config.alpha_window,
        "mmd_permutations": n_perm,
        "statement": (
            f"at most {len(windows) * config.alpha_window:.3g} false alarms expected over these "
            f"{len(windows)} windows across all {k} checks per window ({config.correction}; "
            f"one per {config.windows_between_false_alarms:g} windows on average)"
        ),
    }
    return MonitoringReport(tuple(checks), alarms, budget, tuple(w.label for w in windows), seed, config)


def _cusum_checks(
    frame: pd.DataFrame,
    reference: Window,
    windows: Sequence[Window],
    variant: str,
    variant_arr: np.ndarray,
    config: MonitorConfig,
    alpha_check: float,
    seed: int | None,
) -> list[DriftResult]:
    """Accuracy over time for one arm: a CUSUM over its labelled predictions, in prediction order."""
    correct = frame["correct"].to_numpy(dtype=object)

    def labelled(rows: np.ndarray) -> np.ndarray:
        rows = rows[variant_arr[rows] == variant]
        keep = np.array([c is not None and not pd.isna(c) for c in correct[rows]], dtype=bool)
        return np.asarray(correct[rows][keep], dtype=float)

    ref = labelled(reference.rows)
    per_window = ref.size / max(len(_days_or_blocks(reference, config)), 1)
    ert = max(per_window / alpha_check, 2.0)
    base: dict[str, Any] = {
        "signal": "accuracy_cusum",
        "p_value": None,
        "effect_threshold": 0.0,
        "alpha": alpha_check,
        "n_reference": int(ref.size),
        "variant": variant,
        "method": (
            f"Bernoulli CUSUM on labelled correctness (accuracy drop {config.cusum_shift:g}); "
            f"ERT {ert:,.0f} labelled predictions"
        ),
    }
    results = []
    if ref.size < 30 or ref.mean() in (0.0, 1.0):
        why = (
            f"reference: {ref.size} labelled predictions; the CUSUM needs at least 30"
            if ref.size < 30
            else f"reference: every labelled prediction is {'right' if ref.mean() else 'wrong'} (one class)"
        )
        return [
            DriftResult(
                statistic=None,
                effect_size=None,
                threshold=None,
                n_current=0,
                alarm=None,
                status="insufficient data",
                reasons=(why,),
                window=w.label,
                **w.bounds(),
                **base,
            )
            for w in windows
        ]
    det = BernoulliCUSUM(ert=ert, shift=config.cusum_shift, random_state=seed).fit(ref)
    for w in windows:
        obs = labelled(w.rows)
        if obs.size == 0:
            results.append(
                DriftResult(
                    statistic=det.statistic_,
                    effect_size=None,
                    threshold=det.threshold,
                    n_current=0,
                    alarm=None,
                    status="insufficient data",
                    reasons=("current: no labelled predictions in this window (yet)",),
                    window=w.label,
                    **w.bounds(),
                    **base,
                )
            )
            continue
        peak, fired = 0.0, False
        for x in obs:
            det.update(bool(x))
            peak = max(peak, det.statistic_)
            fired = fired or det.drift_detected
        acc = float(obs.mean())
        reason = (
            f"accuracy_cusum: statistic reached {peak:.3g} >= h = {det.threshold:.3g} (window accuracy "
            f"{acc:.3f} vs reference {det.p0_:.3f})"
            if fired
            else f"accuracy_cusum: peak {peak:.3g} < h = {det.threshold:.3g} (window accuracy {acc:.3f})"
        )
        results.append(
            DriftResult(
                statistic=peak,
                effect_size=det.p0_ - acc,
                threshold=det.threshold,
                n_current=int(obs.size),
                alarm=fired,
                reasons=(reason,),
                details={"window_accuracy": acc, "reference_accuracy": det.p0_, "ert": ert},
                window=w.label,
                **w.bounds(),
                **base,
            )
        )
    return results


def _days_or_blocks(reference: Window, config: MonitorConfig) -> list[int]:
    """How many windows the reference period spans (for the labelled-predictions-per-window rate)."""
    if config.window_size > 0:
        return list(range(max(1, round(len(reference.rows) / config.window_size))))
    return list(range(max(1, math.ceil(config.reference_days))))


def _alarm(
    result: DriftResult,
    frame: pd.DataFrame,
    windows: Sequence[Window],
    config: MonitorConfig,
    seed: int | None,
    reference: Window,
) -> Alarm:
    window = next(w for w in windows if w.label == result.window)
    part = frame.iloc[window.rows]
    if result.variant != "all":
        part = part[part["variant"] == result.variant]
    name = version = None
    if len(part) and result.variant != "all":
        name, version = str(part["model_name"].mode().iloc[0]), str(part["model_version"].mode().iloc[0])
    inputs = {
        "reference_start": reference.start.isoformat(),
        "reference_end": reference.end.isoformat(),
        "window_rule": "calendar day (UTC)" if config.window_size == 0 else f"{config.window_size} predictions",
        "method": result.method,
        "effect_threshold": result.effect_threshold,
        "details": result.details,
    }
    return Alarm.from_result(
        result, correction=config.correction, seed=seed, model_name=name, model_version=version, inputs=inputs
    )


def monitor_run(
    run_dir: str | Path,
    config: MonitorConfig | None = None,
    *,
    seed: int | None = 0,
    until: str | None = None,
    encoder: Encoder | None = None,
    engine: str = "duckdb",
    spark: Any = None,
) -> MonitoringReport:
    """Monitor the run in ``run_dir`` (its ``experiment.json`` and ``log/``, read through ``engine``):
    reference = the first ``reference_days`` from the experiment's start, then every window after it."""
    from abkit.experiment import Experiment

    run = Path(run_dir)
    experiment = Experiment.load(run / "experiment.json")
    frame = read_monitoring_frame(run / "log", experiment.key, until, engine=engine, spark=spark)
    start = pd.Timestamp(experiment.start, tz="UTC") if experiment.start else frame["ts"].min().floor("D")
    return monitor_frame(
        frame, start=start, variants=list(experiment.variant_names), config=config, seed=seed, encoder=encoder
    )
