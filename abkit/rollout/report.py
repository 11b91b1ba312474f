"""What notebook ``40_rollout`` shows: a verdict banner, a timeline of traffic shares with the decisions
marked, the decision table and the results JSON."""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Mapping, Sequence
from typing import Any

from abkit.display import ResultTable, format_value
from abkit.rollout.lifecycle import LifecycleResult

__all__ = ["Verdict", "decision_table", "policy_table", "results_json", "timeline_plot", "verdict", "versions_table"]

_COLOURS = {"advance": "#0969da", "promote": "#1a7f37", "rollback": "#cf222e", "abort": "#bc4c00", "start": "#8250df"}


def _key_moments(result: LifecycleResult) -> list[dict[str, Any]]:
    out = [
        {
            "time": e["time"],
            "action": "start",
            "label": "start",
            "to_version": e["version"],
            "from_version": None,
            "reason": e["reason"],
            "share": 0.0,
        }
        for e in result.events
    ]
    for d in result.decisions:
        if d.action != "hold":
            label = "confirm" if d.action == "advance" and d.phase == "watch" else d.action
            out.append(
                {
                    "time": d.time.isoformat(),
                    "action": d.action,
                    "label": label,
                    "from_version": d.from_version,
                    "to_version": d.to_version,
                    "reason": d.reasons[0],
                    "share": d.share,
                }
            )
    return sorted(out, key=lambda r: r["time"])


class Verdict:
    """The one-minute summary: what happened to each challenger, as sentences, rendered as a banner."""

    def __init__(self, lines: Sequence[str]) -> None:
        self.lines = tuple(lines)

    def __str__(self) -> str:
        return "\n".join(self.lines)

    def _repr_html_(self) -> str:
        colour = "#0969da"
        items = "".join(f"<li>{html.escape(x)}</li>" for x in self.lines[1:])
        return (
            f'<div style="border-left:6px solid {colour};padding:8px 12px"><b>{html.escape(self.lines[0])}</b>'
            f"<ul>{items}</ul></div>"
        )


def verdict(runs: Mapping[str, LifecycleResult]) -> Verdict:
    """Sentences per run: each rollout's outcome and the champion at the end."""
    lines, heads = [], []
    for name, r in runs.items():
        moves = []
        for m in _key_moments(r):
            if m["action"] == "promote":
                moves.append(f"{m['to_version']} promoted")
            elif m["action"] == "rollback":
                moves.append(f"rolled back to {m['to_version']}")
            elif m["action"] == "abort":
                moves.append(f"{m['from_version']} aborted at {m['share']:.0%}")
        heads.append(f"{name}: {', then '.join(moves) or 'no switch'}")
        for m in _key_moments(r):
            day = m["time"][:10]
            if m["action"] == "start":
                lines.append(f"[{name}] {day}: {m['to_version']} registered and put under test — {m['reason']}")
            elif m["action"] in ("promote", "rollback", "abort"):
                what = {"promote": "promoted over", "rollback": "rolled back to", "abort": "aborted; traffic back to"}
                subject = m["to_version"] if m["action"] == "promote" else m["from_version"]
                other = m["from_version"] if m["action"] == "promote" else m["to_version"]
                lines.append(f"[{name}] {day}: {subject} {what[m['action']]} {other} — {m['reason']}")
        lines.append(f"[{name}] champion at the end: {r.aliases.get('champion')}")
    return Verdict(["; ".join(heads), *lines])


def _setting(value: Any) -> str:
    """A policy setting as text for people: lists and records spelled out, no Python reprs."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {_setting(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return (
            "; ".join(_setting(v) for v in value)
            if any(isinstance(v, Mapping) for v in value)
            else " / ".join(_setting(v) for v in value)
        )
    return format_value(value)


def policy_table(policy: Any) -> ResultTable:
    """The rollout policy as a two-column table (setting, value) for the report."""
    return ResultTable([{"setting": k.replace("_", " "), "value": _setting(v)} for k, v in policy.to_dict().items()])


def versions_table(result: LifecycleResult) -> ResultTable:
    """One row per registered version: when and by whom, what it was trained on, its validation accuracy."""
    return ResultTable(
        [
            {
                "version": v.version,
                "registered": v.registered_at[:10],
                "by": v.actor,
                "trained on": v.metadata.get("trained_on") or "—",
                "validation accuracy": v.metadata.get("validation_accuracy"),
            }
            for v in result.registry.versions().values()
        ]
    )


def decision_table(result: LifecycleResult, *, include_holds: bool = False) -> ResultTable:
    """One row per decision that moved traffic (with ``include_holds``, also the holds while a model is under
    test): date, action, versions, phase, the tested model's traffic share, every gate's status, first reason."""
    rows = []
    for d in result.decisions:
        if d.action == "hold" and not (include_holds and d.phase in ("shadow", "canary", "watch")):
            continue
        rows.append(
            {
                "date": d.time.date().isoformat(),
                "action": d.action,
                "from_version": d.from_version,
                "to_version": d.to_version,
                "phase": d.phase + (f" {d.stage}" if d.phase == "canary" else ""),
                "tested share": f"{d.share:.0%}",
                "gates": ", ".join(f"{g.name}: {g.status}" for g in d.gate_results),
                "reason": d.reasons[0],
            }
        )
    return ResultTable(rows)


def timeline_plot(result: LifecycleResult, ax: Any = None, title: str = "") -> Any:
    """Traffic share per model version per day (stacked), with every non-hold decision marked."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(10, 3.2))
    days = sorted({t["day"] for t in result.traffic})
    versions = list(dict.fromkeys(t["version"] for t in result.traffic))
    share = {(t["day"], t["version"]): t["share"] for t in result.traffic}
    xs = [*days, days[-1] + 1]  # each day's shares hold until the next day
    ax.stackplot(
        xs,
        [[share.get((d, v), 0.0) for d in [*days, days[-1]]] for v in versions],
        labels=versions,
        alpha=0.7,
        step="post",
    )
    t0 = dt.datetime.fromisoformat(result.traffic[0]["time"])
    for m in _key_moments(result):
        x = (dt.datetime.fromisoformat(m["time"]) - t0).total_seconds() / 86400.0
        ax.axvline(x, color=_COLOURS[m["action"]], lw=1.5, ls="--")
        ax.text(
            x,
            1.02,
            f"{m['label']} {m['to_version'] if m['action'] != 'abort' else m['from_version']}",
            rotation=30,
            fontsize=8,
            color=_COLOURS[m["action"]],
            ha="left",
            va="bottom",
        )
    ax.set_xlim(days[0], days[-1] + 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("simulated day")
    ax.set_ylabel("share of requests")
    ax.legend(loc="lower left", fontsize=8)
    if title:
        ax.set_title(title, fontsize=10, pad=40)
    return ax


def results_json(runs: Mapping[str, LifecycleResult], policy: Any, verdict_: Verdict) -> dict[str, Any]:
    """The notebook's JSON: ``decisions`` (every decision of every run, with its run), verdict, final aliases."""
    decisions = [{"run": name, **d} for name, r in runs.items() for d in r.decision_dicts()]
    return {
        "decisions": decisions,
        "verdict": list(verdict_.lines),
        "policy": policy.to_dict(),
        "aliases": {name: dict(r.aliases) for name, r in runs.items()},
        "events": [{"run": name, **e} for name, r in runs.items() for e in r.events],
    }
