"""Statistical defaults in one ``ContextVar``: alpha, alternative, SRM alpha, sequential tuning, prior and
the minimum evidence for a verdict.

>>> from abkit.stats.config import config_context, get_config
>>> get_config("alpha")
0.05
>>> with config_context(alpha=0.1):
...     get_config("alpha")
0.1
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from abkit.errors import AbkitError

_DEFAULTS: dict[str, Any] = {
    "alpha": 0.05,  # two-sided type-I error of tests and 1 - confidence of intervals
    "alternative": "two-sided",  # "two-sided" | "greater" | "less" (treatment vs control)
    "srm_alpha": 0.001,  # sample-ratio-mismatch threshold
    "sequential_tuning": 5000.0,  # N in the GrowthBook/Eppo confidence sequence
    "prior_mean": 0.0,  # Gaussian prior of the (relative) effect; None variance = flat prior
    "prior_var": None,
    "relative_ci": "delta",  # "delta" | "log"
    "min_units": 100,  # fewer randomization units (users) per arm ⇒ no verdict yet ("continue")
    "min_labelled_units": 30,  # fewer units carrying the tested metric per arm (labelled users) ⇒ "continue"
}
_CONFIG: ContextVar[dict[str, Any]] = ContextVar("abkit_stats_config", default=_DEFAULTS)

ALTERNATIVES = ("two-sided", "greater", "less")


class UnknownOptionError(AbkitError):
    """A config key or option value that abkit does not know."""


def get_config(key: str | None = None) -> Any:
    """Return one default (``key``) or a copy of all defaults."""
    cfg = _CONFIG.get()
    if key is None:
        return dict(cfg)
    if key not in cfg:
        raise UnknownOptionError(f"config key {key!r} is unknown; use one of {sorted(cfg)}")
    return cfg[key]


def resolve(key: str, value: Any) -> Any:
    """``value`` unless it is None, else the configured default for ``key``."""
    return get_config(key) if value is None else value


def check_alternative(alternative: str | None) -> str:
    """Resolve and validate an alternative hypothesis name."""
    alt = resolve("alternative", alternative)
    if alt not in ALTERNATIVES:
        raise UnknownOptionError(f"alternative={alt!r} is unknown; use one of {ALTERNATIVES}")
    return alt


def check_alpha(alpha: float | None, key: str = "alpha") -> float:
    """Resolve and validate a significance level in (0, 1)."""
    a = float(resolve(key, alpha))
    if not 0.0 < a < 1.0:
        raise AbkitError(f"{key}={a!r} must lie strictly between 0 and 1, e.g. 0.05")
    return a


@contextlib.contextmanager
def config_context(**options: Any) -> Iterator[None]:
    """Temporarily override defaults; the previous values come back on exit."""
    cfg = _CONFIG.get()
    unknown = sorted(set(options) - set(cfg))
    if unknown:
        raise UnknownOptionError(f"config keys {unknown} are unknown; use any of {sorted(cfg)}")
    token = _CONFIG.set({**cfg, **options})
    try:
        yield
    finally:
        _CONFIG.reset(token)


def set_config(**options: Any) -> None:
    """Change defaults for the current context (prefer ``config_context``)."""
    cfg = _CONFIG.get()
    unknown = sorted(set(options) - set(cfg))
    if unknown:
        raise UnknownOptionError(f"config keys {unknown} are unknown; use any of {sorted(cfg)}")
    _CONFIG.set({**cfg, **options})
