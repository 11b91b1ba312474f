"""Gate evidence from the analysis of a log: the one adapter between ``abkit.analysis`` and the rollout.

Every number a gate reads comes from ``analyze`` (per-arm sufficient statistics reduced by the engine,
always-valid intervals, the SRM check against the phase's own weights), so improvements to the analysis
flow into the rollout's gates. Drift alarms come in as records (``abkit.drift.Alarm`` or anything with
``signal``, ``variant``, ``window`` and ``reasons``) or as sentences.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from abkit.rollout.machine import Evidence
from abkit.rollout.policy import RolloutError, RolloutPolicy

__all__ = ["alarm_texts", "evidence_from_analysis", "gather"]


def alarm_texts(alarms: Iterable[Any], variant: str | None = None) -> tuple[str, ...]:
    """Sentences for the open alarms on ``variant``'s traffic (records of another arm are skipped; text
    signals shared by every arm, ``variant == "all"``, count for each)."""
    out = []
    for a in alarms:
        if isinstance(a, str):
            out.append(a)
            continue
        v = getattr(a, "variant", None)
        if variant is not None and v not in (variant, "all", None):
            continue
        why = "; ".join(getattr(a, "reasons", ()) or ())
        out.append(
            f"{getattr(a, 'signal', 'alarm')} on {v or 'all'} ({getattr(a, 'window', '?')})"
            + (f": {why}" if why else "")
        )
    return tuple(out)


def evidence_from_analysis(
    result: Any, time: Any, *, alarms: Iterable[Any] = (), champion_alarms: Iterable[Any] = ()
) -> Evidence:
    """Evidence from an ``AnalysisResult`` whose first variant is the reference and second the tested model.

    ``units``: users carrying the primary metric per arm (labelled users for accuracy: the gate's minimum
    sample); comparisons are tested − reference with their always-valid intervals; SRM is the analysis'
    check against the phase's weights.
    """
    variants = tuple(result.variants)
    if len(variants) != 2:
        raise RolloutError(f"a rollout phase compares two arms, the analysis has {list(variants)}")
    tested = variants[1]
    carrying = result.stats.stats[result.primary_metric].n  # users with a non-zero denominator, per arm
    return Evidence(
        time,
        {"reference": float(carrying[0]), "tested": float(carrying[1])},
        tuple(c for c in result.comparisons if c.variant == tested),
        result.srm,
        alarm_texts(alarms, tested),
        alarm_texts(champion_alarms),
    )


def gather(
    log_root: str | Path,
    experiment: Any,
    time: Any,
    policy: RolloutPolicy,
    *,
    alarms: Iterable[Any] = (),
    champion_alarms: Iterable[Any] = (),
    **analyze_kwargs: Any,
) -> Evidence:
    """Analyze the phase's log (``daily=False``: the gates need only the totals) and build its evidence."""
    from abkit.analysis import analyze

    analyze_kwargs.setdefault("daily", False)
    result = analyze(log_root, experiment, alpha=policy.alpha, **analyze_kwargs)
    return evidence_from_analysis(result, time, alarms=alarms, champion_alarms=champion_alarms)
