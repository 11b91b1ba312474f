"""One display mixin for result collections: ``to_dicts`` in, pandas/HTML/notebook rendering out.

>>> class T(DictsReprMixin):
...     def to_dicts(self):
...         return [{"name": "<b>x</b>", "value": 1.5}]
>>> "&lt;b&gt;x&lt;/b&gt;" in T().to_html()
True
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from abkit import format as F


def format_value(value: Any, digits: int = 4, column: str = "") -> str:
    """A cell as text for people: p-values (a ``column`` named ``p_…`` or ``…p_value``) as ``< 0.001``,
    other floats with ``digits`` significant digits and thousands separators (never ``1e-05``),
    None/NaN as an em dash."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, (float, np.floating)):
        if column.startswith("p_") or column.endswith("p_value"):
            return F.p_value(value)
        return F.number(value, digits)
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return F.count(value)
    return str(value)


class DictsReprMixin:
    """Derive ``to_pandas``, ``to_html`` and ``_repr_html_`` from an abstract ``to_dicts()``."""

    def to_dicts(self) -> list[dict[str, Any]]:  # pragma: no cover - abstract
        raise NotImplementedError

    def to_pandas(self) -> Any:
        """A pandas DataFrame, one row per dict."""
        import pandas as pd

        return pd.DataFrame.from_records(self.to_dicts())

    def to_html(self, digits: int = 4) -> str:
        """An HTML table; every cell and header is escaped."""
        rows = self.to_dicts()
        cols: list[str] = []
        for r in rows:
            cols.extend(k for k in r if k not in cols)
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(format_value(r.get(c), digits, c))}</td>" for c in cols) + "</tr>"
            for r in rows
        )
        return (
            f'<div style="overflow-x:auto;max-width:100%"><table class="abkit-table"><thead><tr>{head}</tr>'
            f"</thead><tbody>{body}</tbody></table></div>"
        )

    def _repr_html_(self) -> str:
        return self.to_html()


class SettingsReprMixin(DictsReprMixin):
    """Show a configuration object (a dataclass, or anything with ``to_dict``) as a setting/value table.

    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class C(SettingsReprMixin):
    ...     n: int = 3
    ...     names: tuple = ("a", "b")
    >>> C().to_dicts()
    [{'setting': 'n', 'value': '3'}, {'setting': 'names', 'value': 'a, b'}]
    """

    def to_dicts(self) -> list[dict[str, Any]]:
        import dataclasses

        fields = self.to_dict() if hasattr(self, "to_dict") else dataclasses.asdict(self)  # type: ignore[call-overload]
        return [{"setting": k, "value": _setting_text(v)} for k, v in fields.items()]


def _setting_text(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_setting_text(v)}" for k, v in value.items() if v is not None)
    if isinstance(value, (list, tuple)):
        return ("; " if any(isinstance(v, dict) for v in value) else ", ").join(_setting_text(v) for v in value)
    return format_value(value)


def details(title: str, content: Any, *, open_: bool = False) -> Any:
    """A collapsed block (``<details>``) holding ``content`` (anything with ``_repr_html_`` or ``to_html``, or
    HTML text); the notebook shows it closed so the full tables stay one click away."""
    from IPython.display import HTML

    if hasattr(content, "savefig"):  # a matplotlib Figure: embed it as a PNG
        import base64
        import io

        buf = io.BytesIO()
        content.savefig(buf, format="png", dpi=80)
        inner = (
            f'<img style="max-width:100%" alt="{html.escape(title)}" '
            f'src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'
        )
    elif hasattr(content, "_repr_html_"):
        inner = content._repr_html_()
    elif hasattr(content, "to_html"):
        inner = content.to_html()
    else:
        inner = str(content)
    return HTML(f"<details{' open' if open_ else ''}><summary><b>{html.escape(title)}</b></summary>{inner}</details>")


_CALIBRATION_ROWS = (
    ("fpr_fixed", "False-positive rate, one look at the end (fixed horizon)", "≈ α"),
    ("fpr_sequential", "False-positive rate, always-valid, read at every look", "≤ α"),
    ("fpr_naive_peeking", "False-positive rate, fixed-horizon test read at every look (what not to do)", "above α"),
    ("coverage", "Interval coverage when there is an effect", "≈ 1 − α"),
    ("coverage_aa", "Interval coverage when there is none (A/A)", "≈ 1 − α"),
    ("power", "Power: share of simulated real effects detected", "higher is better"),
)


def calibration_table(calibration: dict[str, Any]) -> Any:
    """The simulated calibration (``abkit.calibrate.calibrate``) in plain words, one row per check with its
    Monte-Carlo standard error; a note instead of a table when it was skipped."""
    from IPython.display import HTML

    if not calibration:
        return HTML("<p>Calibration skipped: the parameter <code>calibration_sims</code> is 0.</p>")
    rows = []
    for key, label, expect in _CALIBRATION_ROWS:
        if key not in calibration:
            continue
        se = calibration.get(f"{key}_mc_se")
        pm = f" ± {F.percent(se)}" if se is not None else ""
        rows.append(
            f'<tr><td style="text-align:left">{html.escape(label)}</td>'
            f"<td>{F.percent(calibration[key])}{pm}</td>"
            f"<td>{html.escape(expect)}</td></tr>"
        )
    alpha = calibration.get("alpha")
    setup = (
        f"{F.count(calibration.get('n_sims'))} simulated experiments of "
        f"{F.count(calibration.get('users_per_sim'))}"
        f" users each, {calibration.get('looks')} looks, α = {alpha}, effect for power: "
        f"{F.number(calibration.get('effect'))} ({html.escape(str(calibration.get('effect_metric', '')))})"
    )
    head = "<tr><th style='text-align:left'>check</th><th>simulated</th><th>expected</th></tr>"
    return HTML(f"<table>{head}{''.join(rows)}</table><p><small>{html.escape(setup)}</small></p>")


def models_table(
    models: dict[str, Any], evaluation: dict[str, dict[str, Any]], costs: dict[str, dict[str, Any]]
) -> Any:
    """Each arm's model, held-out accuracy, mean confidence, calibration error and serving latency, for people."""
    from IPython.display import HTML

    e = html.escape
    head = (
        "<tr><th style='text-align:left'>arm</th><th style='text-align:left'>model</th><th>held-out texts</th>"
        "<th>accuracy</th><th>mean confidence</th><th>calibration error (ECE)</th><th>p50 latency</th>"
        "<th>p95 latency</th></tr>"
    )
    rows = []
    for v, m in models.items():
        ev, cost = evaluation.get(v, {}), costs.get(v) or {}
        rows.append(
            f"<tr><td style='text-align:left'>{e(v)}</td><td style='text-align:left'>{e(m.name)} "
            f"<small>{e(m.version)}</small></td><td>{F.count(ev.get('n'))}</td>"
            f"<td>{F.percent(ev.get('accuracy'))}</td><td>{F.percent(ev.get('mean_confidence'))}</td>"
            f"<td>{F.percent(ev.get('ece'))}</td><td>{F.ms(cost.get('p50_ms'), reason='not measured')}</td>"
            f"<td>{F.ms(cost.get('p95_ms'), reason='not measured')}</td></tr>"
        )
    return HTML(f"<table>{head}{''.join(rows)}</table>")


class ResultTable(DictsReprMixin):
    """A list of result rows (dicts) with pandas/HTML rendering."""

    def __init__(self, rows: Sequence[Mapping[str, Any]]) -> None:
        self._rows = [dict(r) for r in rows]

    def to_dicts(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self._rows]

    def __len__(self) -> int:
        return len(self._rows)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self._rows)} rows)"
