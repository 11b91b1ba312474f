"""Trend plots of a monitoring pass: one panel per signal, the threshold drawn as a band, alarms marked."""

from __future__ import annotations

from typing import Any

from abkit.drift.monitor import MonitoringReport


def trend_plot(report: MonitoringReport, signal: str, ax: Any = None) -> Any:
    """The statistic of ``signal`` per window (one line per arm), the region above its threshold shaded,
    alarms as red crosses and insufficient-data windows as grey ticks."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(9, 2.8))
    labels = list(report.windows)
    pos = {w: i for i, w in enumerate(labels)}
    for variant in dict.fromkeys(r.variant for r in report.checks if r.signal == signal):
        rows = [r for r in report.checks if r.signal == signal and r.variant == variant]
        x = [pos[r.window] for r in rows if r.statistic is not None and r.alarm is not None]
        y = [r.statistic for r in rows if r.statistic is not None and r.alarm is not None]
        line = ax.plot(x, y, marker="o", ms=3, label=variant)[0]
        tx = [pos[r.window] for r in rows if r.threshold is not None and r.threshold != float("inf")]
        ty = [r.threshold for r in rows if r.threshold is not None and r.threshold != float("inf")]
        if tx:
            ax.plot(tx, ty, ls="--", lw=1, color=line.get_color(), alpha=0.8)
            top = max(ty + y) * 1.15 if (ty + y) else 1.0
            ax.fill_between(tx, ty, [top] * len(tx), color=line.get_color(), alpha=0.08, step=None)
        alarms = [(pos[r.window], r.statistic) for r in rows if r.alarm]
        if alarms:
            ax.scatter(*zip(*alarms), marker="x", s=60, color="crimson", zorder=5)
        missing = [pos[r.window] for r in rows if r.alarm is None]
        if missing:
            ax.scatter(missing, [0] * len(missing), marker="|", color="grey", zorder=4)
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=45, ha="right", fontsize=7)
    ax.set_title(
        f"{signal}: statistic per window (dashed: threshold, shaded: alarm zone, x: alarm, |: insufficient data)",
        fontsize=9,
    )
    ax.legend(fontsize=7, loc="upper left")
    return ax


def trend_plots(report: MonitoringReport) -> Any:
    """One panel per monitored signal, stacked."""
    import matplotlib.pyplot as plt

    signals = list(dict.fromkeys(r.signal for r in report.checks))
    fig, axes = plt.subplots(len(signals), 1, figsize=(9, 2.4 * len(signals)), squeeze=False)
    for ax, signal in zip(axes[:, 0], signals):
        trend_plot(report, signal, ax=ax)
    fig.tight_layout()
    return fig


def accuracy_plot(report: MonitoringReport, ax: Any = None) -> Any:
    """Per arm and window: accuracy estimated from calibrated confidence (line), the band the realised accuracy
    of the labelled predictions should fall in if the estimate is right (bar), and the realised accuracy (dot)."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(9, 3))
    labels = list(report.windows)
    pos = {w: i for i, w in enumerate(labels)}
    rows = [r for r in report.checks if r.signal == "estimated_accuracy" and r.alarm is not None]
    for k, variant in enumerate(dict.fromkeys(r.variant for r in rows)):
        mine = [r for r in rows if r.variant == variant]
        x = [pos[r.window] + 0.1 * k for r in mine]
        line = ax.plot(
            x, [r.details["estimated_accuracy"] for r in mine], marker="o", ms=3, label=f"{variant}: estimated"
        )[0]
        labelled = [(xx, r) for xx, r in zip(x, mine) if "realised_accuracy" in r.details]
        if labelled:
            xs = [xx for xx, _ in labelled]
            mid = [r.details["expected_on_labelled"] for _, r in labelled]
            low = [m - r.details["band_low"] for m, (_, r) in zip(mid, labelled)]
            high = [r.details["band_high"] - m for m, (_, r) in zip(mid, labelled)]
            ax.errorbar(xs, mid, yerr=[low, high], fmt="none", ecolor=line.get_color(), alpha=0.5, capsize=3)
            ax.scatter(
                xs,
                [r.details["realised_accuracy"] for _, r in labelled],
                marker="D",
                s=18,
                color=line.get_color(),
                label=f"{variant}: realised (labelled)",
            )
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("accuracy")
    ax.set_title("Estimated accuracy (CBPE) vs realised accuracy as labels arrive; bars: 95% band", fontsize=9)
    ax.legend(fontsize=7, loc="lower left")
    return ax
