"""Text helpers shared by the text detectors: tokens and missing-text checks."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

_TOKEN = re.compile(r"[^\W_]+(?:'[^\W_]+)?", re.UNICODE)


def tokens(text: str) -> list[str]:
    """Lower-cased word tokens (letters and digits; an inner apostrophe kept)."""
    return _TOKEN.findall(text.lower())


def prepare_texts(values: Any) -> tuple[np.ndarray, list[str]]:
    """Texts as an object array; None/NaN entries are reported (an empty string is a valid, empty text)."""
    arr = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, dtype=object).ravel()
    missing = int(sum(not isinstance(v, str) for v in arr))
    return arr, ([f"{missing} of {arr.size} texts are missing (not strings)"] if missing else [])
