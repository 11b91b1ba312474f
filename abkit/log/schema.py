"""The record schemas of the log (what writers accept and readers return) and its error type.

The columns files store in addition (64-bit keys, a label's copy of its prediction) belong to the on-disk
layout, ``abkit.log.layout``.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from abkit.errors import AbkitError
from abkit.names import is_name

__all__ = ["LABEL_SCHEMA", "PREDICTION_SCHEMA", "UTC_US", "LogError", "check_key"]

UTC_US = pa.timestamp("us", tz="UTC")
PREDICTION_SCHEMA = pa.schema(
    [
        ("experiment", pa.string()),
        ("variant", pa.string()),
        ("unit_id", pa.string()),
        ("request_id", pa.string()),
        ("ts", UTC_US),
        ("text", pa.string()),
        ("predicted_label", pa.string()),
        ("confidence", pa.float64()),
        ("latency_ms", pa.float64()),
        ("model_name", pa.string()),
        ("model_version", pa.string()),
    ]
)
LABEL_SCHEMA = pa.schema(
    [
        ("experiment", pa.string()),
        ("request_id", pa.string()),
        ("label", pa.string()),
        ("labelled_at", UTC_US),
    ]
)


class LogError(AbkitError):
    """Bad input to the prediction log (structure, experiment key, records, files)."""


def check_key(experiment: Any) -> str:
    """``experiment`` when it is a valid experiment key (it names a log folder), else a ``LogError``."""
    if not is_name(experiment):
        raise LogError(
            f"experiment key {experiment!r} is not valid; use 1-128 letters, digits, '.', '_' or '-' starting with "
            "a letter or digit, nothing else (it names a log directory), the same key as the Experiment."
        )
    return experiment
