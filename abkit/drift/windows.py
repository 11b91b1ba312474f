"""Reading what a monitoring pass needs from a prediction log, and cutting it into windows.

This is the only drift module that touches the log, and it reads it through the public engine interface
(``abkit.engine``, DuckDB by default or Spark): the engine deduplicates the experiment's predictions and
labels (its ``*_once`` views), joins each prediction with its first label and returns only the columns the
detectors read, so a log held by Spark is monitored the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["COLUMNS", "Window", "read_monitoring_frame", "split_windows"]

COLUMNS = (
    "variant",
    "ts",
    "text",
    "predicted_label",
    "confidence",
    "model_name",
    "model_version",
    "label",
    "labelled_at",
    "correct",
)
_QUERY = (
    "SELECT p.variant, p.ts, p.text, p.predicted_label, p.confidence, p.model_name, p.model_version, "
    "l.label, l.labelled_at FROM abkit_pred_once p LEFT JOIN abkit_lab_once l ON p.request_id = l.request_id "
    "ORDER BY p.ts, p.request_id"
)


def read_monitoring_frame(
    log_root: str | Path,
    experiment: str,
    until: str | pd.Timestamp | None = None,
    *,
    engine: str = "duckdb",
    spark: Any = None,
) -> pd.DataFrame:
    """Predictions of ``experiment`` (one per request, in time order) with their first label and ``correct``
    (None while unlabelled), reduced by ``engine``.

    With ``until``, only predictions made before it, and only labels that had arrived by then, are kept
    (what a monitor running at that moment could see).
    """
    from abkit.engine import open_engine
    from abkit.log.layout import log_source

    eng = open_engine(log_source(log_root, experiment), engine, spark=spark)
    try:
        frame = eng.arrow(_QUERY).to_pandas()
    finally:
        eng.close()
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    frame["labelled_at"] = pd.to_datetime(frame["labelled_at"], utc=True)
    if until is not None:
        cut = pd.Timestamp(until)
        cut = cut.tz_localize("UTC") if cut.tzinfo is None else cut.tz_convert("UTC")
        frame = frame[frame["ts"] < cut].copy()
        late = frame["labelled_at"].isna() | (frame["labelled_at"] >= cut)
        frame.loc[late, ["label", "labelled_at"]] = None
    labelled = frame["label"].notna().to_numpy()
    correct = np.full(len(frame), None, dtype=object)
    correct[labelled] = frame["predicted_label"].to_numpy()[labelled] == frame["label"].to_numpy()[labelled]
    frame["correct"] = correct
    return frame.reset_index(drop=True)[list(COLUMNS)]


class Window:
    """A slice of the log: label, time bounds and row positions."""

    def __init__(self, label: str, start: pd.Timestamp, end: pd.Timestamp, rows: np.ndarray) -> None:
        self.label, self.start, self.end, self.rows = label, start, end, rows

    def __repr__(self) -> str:
        return f"Window({self.label!r}, {len(self.rows)} rows)"

    def bounds(self) -> dict[str, Any]:
        return {"window_start": self.start.isoformat(), "window_end": self.end.isoformat()}


def split_windows(
    ts: pd.Series, start: pd.Timestamp, reference_days: float, window_size: int = 0
) -> tuple[Window, list[Window]]:
    """The reference window (the first ``reference_days`` from ``start``) and the windows after it: one per
    calendar day (UTC) when ``window_size`` is 0, else consecutive blocks of ``window_size`` predictions."""
    ts = pd.to_datetime(ts, utc=True)
    ref_end = start + pd.Timedelta(days=reference_days)
    in_ref = np.flatnonzero((ts < ref_end).to_numpy())
    reference = Window("reference", start, ref_end, in_ref)
    after = np.flatnonzero((ts >= ref_end).to_numpy())
    windows: list[Window] = []
    if window_size > 0:
        for i, s in enumerate(range(0, after.size, window_size)):
            rows = after[s : s + window_size]
            windows.append(
                Window(f"#{i + 1}", ts.iloc[rows[0]], ts.iloc[rows[-1]] + pd.Timedelta(microseconds=1), rows)
            )
        return reference, windows
    days = ts.iloc[after].dt.floor("D")
    last = days.max() if len(days) else ref_end.floor("D")
    for day in pd.date_range(ref_end.floor("D"), last, freq="D"):  # a day without traffic is an empty window
        rows = after[(days == day).to_numpy()]
        windows.append(Window(day.strftime("%Y-%m-%d"), day, day + pd.Timedelta(days=1), rows))
    return reference, windows
