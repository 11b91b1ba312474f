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
from typing import Any


def format_value(value: Any, digits: int = 4) -> str:
    """A cell as text: floats with ``digits`` significant digits, None/NaN as an em dash."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
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
            "<tr>" + "".join(f"<td>{html.escape(format_value(r.get(c), digits))}</td>" for c in cols) + "</tr>"
            for r in rows)
        return f'<table class="abkit-table" style="white-space: nowrap"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'

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
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_setting_text(v)}" for k, v in value.items() if v is not None)
    if isinstance(value, (list, tuple)):
        return ("; " if any(isinstance(v, dict) for v in value) else ", ").join(_setting_text(v) for v in value)
    return format_value(value)
