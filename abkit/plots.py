"""Figures for the A/B report (matplotlib, safe under the Agg backend). Each function takes an
``AnalysisResult`` and returns a ``Figure``; nothing is shown or saved here."""

from __future__ import annotations

from typing import Any

import numpy as np

from abkit.scorecard import metric_info, statistic_label

_STYLE = {"ci": "#0969da", "seq": "#8250df", "zero": "#57606a", "good": "#1a7f37", "bad": "#cf222e"}


def _fig(n: int, width: float = 4.2, height: float = 3.2) -> tuple[Any, np.ndarray]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * n, height), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, n))
    return fig, axes


def _val(x: Any) -> float:
    return np.nan if x is None else float(x)


def lift_plot(result: Any, *, relative: bool = True) -> Any:
    """Lift (or difference) of each challenger per metric, with fixed-horizon and always-valid intervals."""
    eff = [e for e in result.effects.to_dicts() if e["statistic"] == "mean"]
    metrics = list(dict.fromkeys(e["metric"] for e in eff))
    fig, axes = _fig(max(len(metrics), 1))
    for ax, m in zip(axes, metrics):
        rows = [e for e in eff if e["metric"] == m]
        y = np.arange(len(rows))
        for k, e in enumerate(rows):
            if relative:
                est, lo, hi = (_val(e[k2]) * 100 for k2 in ("relative", "relative_ci_low", "relative_ci_high"))
            else:
                est, lo, hi = (_val(e[k2]) for k2 in ("estimate", "ci_low", "ci_high"))
            ax.errorbar(
                est,
                k,
                xerr=[[est - lo], [hi - est]],
                fmt="o",
                color=_STYLE["ci"],
                capsize=4,
                label="fixed CI" if k == 0 else None,
            )
            if not relative:
                ax.plot(
                    [_val(e["seq_ci_low"]), _val(e["seq_ci_high"])],
                    [k + 0.15] * 2,
                    color=_STYLE["seq"],
                    lw=2,
                    label="always-valid CI" if k == 0 else None,
                )
        ax.axvline(0, color=_STYLE["zero"], lw=1, ls="--")
        ax.set_yticks(y, [e["variant"] for e in rows])
        ax.set_title(statistic_label(m, "mean"))
        ax.set_xlabel("change vs control (%)" if relative else "difference vs control")
        ax.set_ylim(-0.7, len(rows) - 0.3)
    if metrics:
        axes[0].legend(fontsize=7, loc="best")
    return fig


def sequential_plot(result: Any, metric: str | None = None) -> Any:
    """Cumulative difference per day with its always-valid interval (one panel per challenger)."""
    metric = metric or result.primary_metric
    rows = [r for r in result.sequential.to_dicts() if r["metric"] == metric]
    variants = list(dict.fromkeys(r["variant"] for r in rows)) or ["(no data)"]
    fig, axes = _fig(len(variants), 5.0, 3.2)
    for ax, v in zip(axes, variants):
        rr = [r for r in rows if r["variant"] == v]
        x = np.arange(len(rr))
        est = np.array([_val(r["estimate"]) for r in rr])
        lo = np.array([_val(r["ci_low"]) for r in rr])
        hi = np.array([_val(r["ci_high"]) for r in rr])
        ax.fill_between(x, lo, hi, color=_STYLE["seq"], alpha=0.2, label="always-valid CI")
        ax.plot(x, est, "o-", color=_STYLE["seq"], label="estimate")
        ax.axhline(0, color=_STYLE["zero"], lw=1, ls="--")
        ax.set_xticks(x, [r["day"][5:] for r in rr], rotation=60, fontsize=7)
        ax.set_title(f"{statistic_label(metric, 'mean')}: {v} − control (cumulative)")
        ax.legend(fontsize=7)
    return fig


def chance_to_win_plot(result: Any) -> Any:
    """Bayesian chance that each challenger beats control, per metric with a direction (an informational
    metric such as a model's own confidence has no "better" to win)."""
    eff = [
        e
        for e in result.effects.to_dicts()
        if e["statistic"] == "mean"
        and e.get("chance_to_win") is not None
        and metric_info(e["metric"]).direction != "neutral"
    ]
    fig, axes = _fig(1, 5.5, 0.6 + 0.45 * max(len(eff), 1))
    ax = axes[0]
    labels = [f"{statistic_label(e['metric'], 'mean')} · {e['variant']}" for e in eff]
    vals = [100 * _val(e["chance_to_win"]) for e in eff]
    colours = [_STYLE["good"] if v >= 50 else _STYLE["bad"] for v in vals]
    ax.barh(np.arange(len(eff)), vals, color=colours)
    ax.set_yticks(np.arange(len(eff)), labels, fontsize=8)
    ax.axvline(50, color=_STYLE["zero"], lw=1, ls="--")
    ax.set_xlim(0, 100)
    ax.set_xlabel("chance to beat control (%)")
    return fig


def latency_quantiles_plot(result: Any) -> Any:
    """Latency p50/p95/p99 per variant with clustered intervals."""
    rows = [r for r in result.metrics.to_dicts() if r["name"].startswith("latency_p")]
    names = list(dict.fromkeys(r["name"] for r in rows))
    variants = list(result.variants)
    fig, axes = _fig(1, 5.5, 3.2)
    ax = axes[0]
    width = 0.8 / max(len(variants), 1)
    for i, v in enumerate(variants):
        rr = [next(r for r in rows if r["name"] == n and r["variant"] == v) for n in names]
        est = np.array([_val(r["estimate"]) for r in rr])
        lo = np.array([_val(r["ci_low"]) for r in rr])
        hi = np.array([_val(r["ci_high"]) for r in rr])
        x = np.arange(len(names)) + i * width
        ax.bar(x, est, width, label=v, alpha=0.8)
        ax.errorbar(x, est, yerr=[est - lo, hi - est], fmt="none", color="black", capsize=3)
    ax.set_xticks(np.arange(len(names)) + width * (len(variants) - 1) / 2, [n.replace("latency_", "") for n in names])
    ax.set_ylabel("latency (ms)")
    ax.legend(fontsize=8)
    return fig


def _arm_colours(variants: Any) -> dict[str, str]:
    palette = ("#57606a", "#0969da", "#bf8700", "#8250df", "#1a7f37")
    return {v: palette[i % len(palette)] for i, v in enumerate(variants)}


def traffic_plot(result: Any) -> Any:
    """New users per day per arm (from the cumulative daily counts): the split and SRM at a glance."""
    st = result.stats
    fig, axes = _fig(1, 9.0, 2.8)
    ax = axes[0]
    days = list(st.days)
    colours = _arm_colours(result.variants)
    if days:
        cum = np.asarray(st.daily_units, dtype=float)
        new = np.diff(np.vstack([np.zeros((1, cum.shape[1])), cum]), axis=0)
        x = np.arange(len(days))
        width = 0.8 / max(len(result.variants), 1)
        for i, v in enumerate(result.variants):
            ax.bar(x + (i - (len(result.variants) - 1) / 2) * width, new[:, i], width, label=v, color=colours[v])
        step = max(1, len(days) // 14)
        ax.set_xticks(x[::step], [d[5:] for d in days[::step]], fontsize=8)
        ax.legend(fontsize=8)
    ax.set_ylabel("new users")
    ax.set_title(
        f"Traffic per day and arm — SRM {result.srm.status} (p = {result.srm.p_value:.2f})"
        if np.isfinite(result.srm.p_value)
        else "Traffic per day and arm"
    )
    return fig


def latency_distribution_plot(summary: Any) -> Any:
    """Latency quantile curve per arm (the ECDF): where each arm's requests fall, tail included."""
    fig, axes = _fig(1, 6.0, 3.0)
    ax = axes[0]
    lat = summary.latency
    variants = list(dict.fromkeys(lat["variant"]))
    colours = _arm_colours(variants)
    for v in variants:
        rows = lat[lat["variant"] == v]
        ax.plot(rows["latency_ms"], 100 * rows["prob"], color=colours[v], label=v)
    ax.axhline(95, color=_STYLE["zero"], lw=1, ls=":")
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("requests at or below (%)")
    ax.set_title("Latency distribution per arm")
    if variants:
        ax.legend(fontsize=8, loc="lower right")
    return fig


def reliability_plot(summary: Any) -> Any:
    """Reliability diagram per model: accuracy of labelled predictions against their stated confidence."""
    rel = summary.reliability
    variants = list(dict.fromkeys(rel["variant"])) or ["(no labels yet)"]
    fig, axes = _fig(len(variants), 3.6, 3.4)
    for ax, v in zip(axes, variants):
        rows = rel[rel["variant"] == v]
        ax.plot([0, 1], [0, 1], color=_STYLE["zero"], lw=1, ls="--", label="perfectly calibrated")
        ax.scatter(
            rows["confidence"],
            rows["accuracy"],
            s=np.clip(rows["n"], 8, 200),
            color=_STYLE["ci"],
            label="labelled predictions (size: count)",
        )
        ax.plot(rows["confidence"], rows["accuracy"], color=_STYLE["ci"], lw=1)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("stated confidence")
        ax.set_title(v)
    axes[0].set_ylabel("observed accuracy")
    axes[0].legend(fontsize=7, loc="upper left")
    return fig


def confusion_plot(confusion: Any, variants: Any = ()) -> Any:
    """Confusion matrix per arm (rows: true label, columns: predicted), shares of each true label; takes the
    rows of ``AnalysisResult.confusion_table()`` (variant, label, predicted_label, n) as a DataFrame; panels follow
    ``variants`` (the experiment's order), then any other arm."""
    if len(confusion) == 0:
        fig, axes = _fig(1, 3.6, 1.2)
        axes[0].set_axis_off()
        axes[0].text(0.5, 0.5, "no labelled predictions yet", ha="center", va="center")
        return fig
    present = list(dict.fromkeys(confusion["variant"]))
    variants = [v for v in variants if v in present] + [v for v in present if v not in variants]
    labels = sorted(set(confusion["label"]) | set(confusion["predicted_label"]))
    fig, axes = _fig(len(variants), 3.6, 3.2)
    for ax, v in zip(axes, variants):
        rows = confusion[confusion["variant"] == v]
        m = np.zeros((len(labels), len(labels)))
        for r in rows.itertuples():
            m[labels.index(r.label), labels.index(r.predicted_label)] += r.n
        share = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
        ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
        for i in range(len(labels)):
            for j in range(len(labels)):
                ax.text(
                    j,
                    i,
                    f"{100 * share[i, j]:.0f} %\n({int(m[i, j]):,})",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if share[i, j] > 0.6 else "black",
                )
        ax.set_xticks(range(len(labels)), labels, fontsize=8)
        ax.set_yticks(range(len(labels)), labels, fontsize=8)
        ax.set_xlabel("predicted")
        ax.set_title(v)
    axes[0].set_ylabel("true label")
    return fig
