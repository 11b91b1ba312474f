"""Small per-arm summaries of a prediction log for the report's pictures: latency quantile curves and
reliability (calibration) bins (the confusion counts come with the analysis: ``AnalysisResult.confusion_table``).

Each is one DuckDB ``GROUP BY`` over the log's deduplicated predictions joined to their labels
(``PredictionLog.read_joined``), returning a few rows per arm; the statistics themselves live in
:mod:`abkit.analysis`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LATENCY_PROBS = tuple(round(i / 100, 2) for i in range(1, 100))


@dataclass(frozen=True)
class LogSummary:
    """Per-arm tables (pandas DataFrames) for the report's pictures."""

    latency: Any  # variant, prob, latency_ms: the latency quantile curve (an ECDF turned sideways)
    reliability: Any  # variant, bin, confidence, accuracy, n: labelled predictions binned by confidence


def summarize_log(log_root: str | Path, experiment: str, *, variants: Sequence[str] = (), bins: int = 10) -> LogSummary:
    """The :class:`LogSummary` of ``experiment`` in the log at ``log_root`` (``bins`` confidence bins); rows
    follow the order of ``variants`` (the experiment's arms, control first), others after them."""
    from abkit.log import PredictionLog

    log = PredictionLog(log_root)
    joined = log.read_joined(experiment)
    con = log.con
    con.register("_abkit_s", joined)
    probs = ", ".join(f"{p:g}" for p in LATENCY_PROBS)
    try:
        latency = con.sql(
            f"SELECT variant, unnest([{probs}]) AS prob, unnest(quantile_cont(latency_ms, [{probs}])) AS latency_ms "
            "FROM _abkit_s GROUP BY variant ORDER BY variant, prob"
        ).df()
        reliability = con.sql(
            f"SELECT variant, least(floor(confidence * {int(bins)}), {int(bins) - 1}) AS bin, "
            "avg(confidence) AS confidence, avg(CAST(correct AS DOUBLE)) AS accuracy, count(*) AS n "
            "FROM _abkit_s WHERE label IS NOT NULL GROUP BY ALL ORDER BY variant, bin"
        ).df()
    finally:
        con.unregister("_abkit_s")
    order = {v: i for i, v in enumerate(variants)}
    frames = [
        f.assign(_o=f["variant"].map(lambda v: order.get(v, len(order))))
        .sort_values("_o", kind="stable")
        .drop(columns="_o")
        .reset_index(drop=True)
        for f in (latency, reliability)
    ]
    return LogSummary(*frames)
