"""The experiment definition: variants, weights, coverage, namespace, schedule, metrics; validated on construction.

An ``Experiment`` is a frozen value. It is built from keyword arguments, a dict (``from_dict``), a JSON
file (``load``), a params YAML (``from_yaml``) or flat notebook scalars (``from_params``), and it assigns
units with the GrowthBook-compatible hash of ``abkit.assign``.

Weights must be positive and sum to 1 within ``WEIGHT_TOLERANCE`` (1e-6, so six-decimal weights such as
0.333333/0.333333/0.333334 pass). GrowthBook's SDK silently falls back to equal weights when the sum is
outside [0.99, 1.01]; abkit refuses such weights instead, so a typo never becomes a 50/50 test.

>>> exp = Experiment.from_params(key="sentiment-v2", split="10/90", start="2024-03-01")
>>> exp.variant_names, exp.weights.tolist(), exp.control
(('control', 'challenger'), [0.1, 0.9], 'control')
>>> exp.assign(["user-8", "user-9", "user-10"]).tolist()
[1, 1, 0]
>>> exp.assign_one("user-3")
'control'
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import math
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from abkit import assign as _assign
from abkit.assign import Filter
from abkit.display import SettingsReprMixin
from abkit.errors import AbkitError
from abkit.metrics import registry as _metrics
from abkit.names import is_name

__all__ = [
    "STATISTICS",
    "WEIGHT_TOLERANCE",
    "Experiment",
    "ExperimentError",
    "Guardrail",
    "Variant",
    "parse_split",
]

STATISTICS = ("mean", "p50", "p95", "p99")
WEIGHT_TOLERANCE = 1e-6
_NAME_FIX = (
    "give 1-128 letters, digits, '.', '_' or '-' starting with a letter or digit, nothing else (no "
    "'..', spaces, newlines or path separators: it names a folder), e.g. {example!r}."
)


class ExperimentError(AbkitError):
    """An experiment definition is invalid; the message names the field, the value and the fix."""

    field: str = ""  # the experiment field at fault, e.g. "split" or "variants[].weight"


def _fail(field_name: str, value: Any, fix: str) -> ExperimentError:
    error = ExperimentError(f"experiment field {field_name!r} is {value!r}; {fix}")
    error.field = field_name
    return error


def _check_number(field_name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise _fail(field_name, value, "give a number.")
    value = float(value)
    if not math.isfinite(value):
        raise _fail(field_name, value, "give a finite number.")
    return value


@dataclass(frozen=True)
class Variant:
    """One arm: its name, its share of covered traffic and (optionally) the model it serves."""

    name: str
    weight: float
    model: str | None = None

    def __post_init__(self) -> None:
        if not is_name(self.name):
            raise _fail("variants[].name", self.name, _NAME_FIX.format(example="challenger"))
        weight = _check_number(f"variants[{self.name}].weight", self.weight)
        if weight <= 0:
            raise _fail(f"variants[{self.name}].weight", self.weight, "weights must be > 0 (drop the variant instead).")
        object.__setattr__(self, "weight", weight)
        if self.model is not None and (not isinstance(self.model, str) or not self.model):
            raise _fail(f"variants[{self.name}].model", self.model, "give a model reference string or None.")


@dataclass(frozen=True)
class Guardrail:
    """A metric the challenger must not make worse by more than ``margin`` (absolute, metric units).

    The direction comes from the metric registry: ``higher_is_better`` may be left out (None) and is filled
    in from it; a value that contradicts the registry is an error (no default can invert a guardrail).
    """

    metric: str
    statistic: str = "mean"
    margin: float = 0.0
    higher_is_better: bool | None = None

    def __post_init__(self) -> None:
        if self.metric not in _metrics.METRICS:
            raise _fail("guardrails[].metric", self.metric, f"choose one of {_metrics.names()}.")
        if self.statistic not in STATISTICS:
            raise _fail("guardrails[].statistic", self.statistic, f"choose one of {list(STATISTICS)}.")
        margin = _check_number("guardrails[].margin", self.margin)
        if margin < 0:
            raise _fail("guardrails[].margin", self.margin, "a non-inferiority margin is >= 0.")
        object.__setattr__(self, "margin", margin)
        known = _metrics.METRICS[self.metric].higher_is_better  # the registry: the one source of directions
        if self.higher_is_better is None:
            object.__setattr__(self, "higher_is_better", known)
        elif not isinstance(self.higher_is_better, (bool, np.bool_)):
            raise _fail("guardrails[].higher_is_better", self.higher_is_better, "give true or false, or leave it out.")
        elif bool(self.higher_is_better) != known:
            raise _fail(
                "guardrails[].higher_is_better",
                self.higher_is_better,
                f"metric {self.metric!r} has higher_is_better={known} in the metric registry; leave it out.",
            )
        object.__setattr__(self, "higher_is_better", bool(self.higher_is_better))


def _as_tuple(value: Any, field_name: str) -> tuple[Any, ...]:
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
        raise _fail(field_name, value, "give a list.")
    return tuple(value)


def _check_start(value: Any) -> str:
    if value is None:  # a test defined now starts today
        return dt.datetime.now(dt.UTC).date().isoformat()
    if isinstance(value, dt.datetime):
        raise _fail("start", value, "give a date 'YYYY-MM-DD', not a datetime.")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        try:
            dt.date.fromisoformat(value)
            return value
        except ValueError:
            pass
    raise _fail("start", value, "give an ISO date 'YYYY-MM-DD', e.g. '2024-03-01'.")


@dataclass(frozen=True)
class Experiment(SettingsReprMixin):
    """An A/B(/n) test definition; see the module docstring. ``seed=None`` hashes with ``key``."""

    key: str
    variants: tuple[Variant, ...]
    seed: str | None = None
    hash_version: int = 2
    coverage: float = 1.0
    namespace: tuple[str, float, float] | None = None
    start: str | None = None  # ISO date of the first day; None means today (UTC), resolved on construction
    duration_days: int = 14
    primary_metric: str = "accuracy"
    guardrails: tuple[Guardrail, ...] = ()
    filters: tuple[Filter, ...] = field(default=())
    bucket_ranges: tuple[tuple[float, float], ...] | None = None  # explicit ranges (a ramp phase), else from weights

    def __post_init__(self) -> None:
        if not is_name(self.key):
            raise _fail("key", self.key, _NAME_FIX.format(example="sentiment-v2"))
        variants = tuple(
            v if isinstance(v, Variant) else Variant(**v) if isinstance(v, Mapping) else v
            for v in _as_tuple(self.variants, "variants")
        )
        if any(not isinstance(v, Variant) for v in variants):
            raise _fail("variants", self.variants, "give Variant objects or {name, weight, model} mappings.")
        if len(variants) < 2:
            raise _fail("variants", [v.name for v in variants], "an experiment needs at least 2 variants.")
        names = [v.name for v in variants]
        if len(set(names)) != len(names):
            raise _fail("variants", names, "variant names must be unique.")
        total = math.fsum(v.weight for v in variants)
        if abs(total - 1.0) > WEIGHT_TOLERANCE:
            raise _fail(
                "variants[].weight",
                [v.weight for v in variants],
                f"weights sum to {total!r}; they must sum to 1 (within {WEIGHT_TOLERANCE:g}), "
                "e.g. split '10/90' -> 0.1, 0.9.",
            )
        object.__setattr__(self, "variants", variants)
        if self.seed is not None and (not isinstance(self.seed, str) or not self.seed):
            raise _fail("seed", self.seed, "give a non-empty string, or None to hash with the key.")
        if self.hash_version not in (1, 2) or isinstance(self.hash_version, bool):
            raise _fail("hash_version", self.hash_version, "use 2 (unbiased, the default) or 1 (legacy).")
        coverage = _check_number("coverage", self.coverage)
        if not 0.0 <= coverage <= 1.0:
            raise _fail("coverage", self.coverage, "give the included share of traffic in [0, 1].")
        object.__setattr__(self, "coverage", coverage)
        object.__setattr__(self, "namespace", self._checked_namespace())
        object.__setattr__(self, "start", _check_start(self.start))
        if isinstance(self.duration_days, bool) or not isinstance(self.duration_days, (int, np.integer)):
            raise _fail("duration_days", self.duration_days, "give a whole number of days > 0.")
        if self.duration_days <= 0:
            raise _fail("duration_days", self.duration_days, "give a whole number of days > 0.")
        object.__setattr__(self, "duration_days", int(self.duration_days))
        if self.primary_metric not in _metrics.METRICS:
            raise _fail("primary_metric", self.primary_metric, f"choose one of {_metrics.names()}.")
        guardrails = tuple(
            g if isinstance(g, Guardrail) else Guardrail(**g) if isinstance(g, Mapping) else g
            for g in _as_tuple(self.guardrails, "guardrails")
        )
        if any(not isinstance(g, Guardrail) for g in guardrails):
            raise _fail("guardrails", self.guardrails, "give Guardrail objects or mappings.")
        object.__setattr__(self, "guardrails", guardrails)
        object.__setattr__(self, "filters", self._checked_filters())
        object.__setattr__(self, "bucket_ranges", self._checked_bucket_ranges())

    def _checked_bucket_ranges(self) -> tuple[tuple[float, float], ...] | None:
        """Explicit ranges: one per variant, disjoint, inside [0, 1], and the weights their normalised lengths
        (so the sample-ratio check tests what the ranges assign)."""
        if self.bucket_ranges is None:
            return None
        try:
            ranges = tuple(
                (_check_number("bucket_ranges", lo), _check_number("bucket_ranges", hi))
                for lo, hi in self.bucket_ranges
            )
        except (TypeError, ValueError) as exc:
            raise _fail("bucket_ranges", self.bucket_ranges, "give one [start, end] pair per variant.") from exc
        if len(ranges) != len(self.variants) or any(not 0.0 <= lo < hi <= 1.0 for lo, hi in ranges):
            raise _fail(
                "bucket_ranges",
                self.bucket_ranges,
                f"give {len(self.variants)} pairs [start, end] with 0 <= start < end <= 1, one per variant.",
            )
        ordered = sorted(ranges)
        if any(b[0] < a[1] for a, b in itertools.pairwise(ordered)):
            raise _fail("bucket_ranges", self.bucket_ranges, "ranges must not overlap.")
        total = math.fsum(hi - lo for lo, hi in ranges)
        if any(abs((hi - lo) / total - v.weight) > 1e-4 for (lo, hi), v in zip(ranges, self.variants)):
            raise _fail(
                "variants[].weight",
                [v.weight for v in self.variants],
                f"with explicit bucket_ranges the weights are the ranges' shares: "
                f"{[round((hi - lo) / total, 6) for lo, hi in ranges]}.",
            )
        return ranges

    def _checked_namespace(self) -> tuple[str, float, float] | None:
        if self.namespace is None:
            return None
        ns = self.namespace
        if isinstance(ns, (str, bytes)) or not isinstance(ns, Sequence) or len(ns) != 3:
            raise _fail("namespace", ns, "give [id, start, end], e.g. ['checkout', 0.0, 0.5].")
        ns_id, lo, hi = ns
        if not isinstance(ns_id, str) or not ns_id:
            raise _fail("namespace[0]", ns_id, "give the namespace id as a non-empty string.")
        lo, hi = _check_number("namespace[1]", lo), _check_number("namespace[2]", hi)
        if not 0.0 <= lo < hi <= 1.0:
            raise _fail("namespace", ns, "need 0 <= start < end <= 1.")
        return ns_id, lo, hi

    def _checked_filters(self) -> tuple[Filter, ...]:
        out = []
        for f in _as_tuple(self.filters, "filters"):
            if isinstance(f, Mapping):
                seed: Any = f.get("seed")  # unchecked user input, validated below
                f = Filter(seed, f.get("ranges", ()), f.get("hash_version", 2))
            elif not isinstance(f, Filter):
                f = Filter(*f)
            if not isinstance(f.seed, str) or not f.seed:
                raise _fail("filters[].seed", f.seed, "give a non-empty seed string.")
            if f.hash_version not in (1, 2):
                raise _fail("filters[].hash_version", f.hash_version, "use 1 or 2.")
            ranges = tuple(
                (_check_number("filters[].ranges", lo), _check_number("filters[].ranges", hi)) for lo, hi in f.ranges
            )
            if not ranges or any(not 0.0 <= lo < hi <= 1.0 for lo, hi in ranges):
                raise _fail("filters[].ranges", f.ranges, "give [[start, end], ...] with 0 <= start < end <= 1.")
            out.append(Filter(f.seed, ranges, int(f.hash_version)))
        return tuple(out)

    # -- derived values --------------------------------------------------------------------------------

    @property
    def control(self) -> str:
        """Name of the control (first) variant."""
        return self.variants[0].name

    @property
    def variant_names(self) -> tuple[str, ...]:
        """Variant names in declaration order (index = value returned by ``assign``)."""
        return tuple(v.name for v in self.variants)

    @property
    def weights(self) -> np.ndarray:
        """Variant weights as a float64 array."""
        return np.array([v.weight for v in self.variants], dtype=np.float64)

    @property
    def hash_seed(self) -> str:
        """The string hashed with each unit id: ``seed``, or ``key`` when no seed is set."""
        return self.seed if self.seed is not None else self.key

    @property
    def ranges(self) -> list[tuple[float, float]]:
        """GrowthBook bucket ranges for the weights and coverage (or the explicit ``bucket_ranges``)."""
        if self.bucket_ranges is not None:
            return list(self.bucket_ranges)
        return _assign.bucket_ranges(len(self.variants), self.coverage, [v.weight for v in self.variants])

    @classmethod
    def ramp_phase(
        cls, key: str, control: str, challenger: str, share: float, max_share: float, **fields: Any
    ) -> Experiment:
        """One phase of a canary ramp: the challenger on ``share`` of traffic, the control on an equal slice
        where room allows (``abkit.assign.ramp_ranges``: ranges only grow from phase to phase, so no user who
        saw a variant moves); the weights are the phase's own, and SRM is checked against them.

        >>> e = Experiment.ramp_phase("canary-1", "v1", "v2", 0.25, 0.5, seed="model-rollout")
        >>> e.ranges, e.weights.tolist()
        ([(0.5, 0.75), (0.0, 0.25)], [0.5, 0.5])
        """
        ranges = _assign.ramp_ranges(share, max_share)
        total = math.fsum(hi - lo for lo, hi in ranges)
        w0 = round((ranges[0][1] - ranges[0][0]) / total, 9)
        variants = (Variant(control, w0), Variant(challenger, 1.0 - w0))
        return cls(key=key, variants=variants, bucket_ranges=tuple(ranges), **fields)

    @property
    def end(self) -> str:
        """ISO date of the planned last day (start + duration_days - 1)."""
        assert self.start is not None  # resolved to a date on construction
        return (dt.date.fromisoformat(self.start) + dt.timedelta(days=self.duration_days - 1)).isoformat()

    def with_coverage(self, coverage: float) -> Experiment:
        """A copy with another coverage (ramping up never moves an included unit to another variant)."""
        return replace(self, coverage=coverage)

    # -- assignment --------------------------------------------------------------------------------------

    def assign(self, unit_ids: Any, *, threads: int | None = None) -> np.ndarray:
        """Variant index per unit id (int64), -1 = not in the experiment; vectorized."""
        return _assign.assign_many(
            unit_ids,
            seed=self.hash_seed,
            ranges=self.ranges,
            hash_version=self.hash_version,
            namespace=self.namespace,
            filters=self.filters,
            threads=threads,
        )

    def assign_one(self, unit_id: str) -> str | None:
        """Variant name of one unit, or None when it is not in the experiment."""
        i = _assign.assign_one(
            unit_id,
            seed=self.hash_seed,
            ranges=self.ranges,
            hash_version=self.hash_version,
            namespace=self.namespace,
            filters=self.filters,
        )
        return None if i < 0 else self.variants[i].name

    # -- (de)serialisation -------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict; ``from_dict(to_dict())`` gives an equal experiment."""
        return {
            "key": self.key,
            "variants": [{"name": v.name, "weight": v.weight, "model": v.model} for v in self.variants],
            "seed": self.seed,
            "hash_version": self.hash_version,
            "coverage": self.coverage,
            "namespace": list(self.namespace) if self.namespace else None,
            "start": self.start,
            "duration_days": self.duration_days,
            "primary_metric": self.primary_metric,
            "guardrails": [
                {
                    "metric": g.metric,
                    "statistic": g.statistic,
                    "margin": g.margin,
                    "higher_is_better": g.higher_is_better,
                }
                for g in self.guardrails
            ],
            "filters": [
                {"seed": f.seed, "ranges": [list(r) for r in f.ranges], "hash_version": f.hash_version}
                for f in self.filters
            ],
        } | ({} if self.bucket_ranges is None else {"bucket_ranges": [list(r) for r in self.bucket_ranges]})

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Experiment:
        """Build from a mapping: ``to_dict`` output, or a params block with ``split``/``variant_names``."""
        if not isinstance(d, Mapping):
            raise _fail("<experiment>", d, "give a mapping of experiment fields.")
        d = dict(d)
        if "variants" not in d and ("split" in d or "variant_names" in d):
            return cls.from_params(**d)
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise _fail("<experiment>", unknown, f"unknown field(s); valid fields are {sorted(known)}.")
        if d.get("namespace") is not None:
            d["namespace"] = tuple(d["namespace"])
        if d.get("bucket_ranges") is not None:
            d["bucket_ranges"] = tuple(tuple(r) for r in d["bucket_ranges"])
        return cls(**d)

    def save(self, path: str | Path) -> Path:
        """Write the experiment as JSON (atomically: temp file, then rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Experiment:
        """Read an experiment written by ``save``."""
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))

    @classmethod
    def from_yaml(cls, path: str | Path) -> Experiment:
        """Read a YAML file holding an ``experiment:`` mapping, or the experiment fields at top level."""
        import yaml

        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        if isinstance(data, Mapping) and isinstance(data.get("experiment"), Mapping):
            data = data["experiment"]
        return cls.from_dict(data)

    @classmethod
    def from_params(
        cls,
        *,
        key: str,
        split: str = "50/50",
        variant_names: str = "control,challenger",
        coverage: float = 1.0,
        seed: str | None = None,
        start: str | None = None,
        duration_days: int = 14,
        primary_metric: str = "accuracy",
        guardrail_latency_p95_ms: float | None = None,
        models: str | None = None,
        hash_version: int = 2,
    ) -> Experiment:
        """Build from flat notebook scalars: ``split="10/90"`` gives weights 0.1/0.9.

        ``variant_names`` and ``models`` are comma-separated, one per split part. A
        ``guardrail_latency_p95_ms`` adds a guardrail: the challenger's p95 latency may exceed the
        control's by at most that many milliseconds. ``start`` (ISO date) defaults to today, UTC.
        """
        names = [n.strip() for n in str(variant_names).split(",")]
        weights = parse_split(split)
        if len(names) != len(weights):
            raise _fail(
                "variant_names",
                variant_names,
                f"split {split!r} has {len(weights)} parts; give {len(weights)} comma-separated names.",
            )
        model_refs: list[str | None] = [None] * len(names)
        if models:
            model_refs = [m.strip() or None for m in str(models).split(",")]
            if len(model_refs) != len(names):
                raise _fail("models", models, f"give {len(names)} comma-separated model references.")
        guardrails: tuple[Guardrail, ...] = ()
        if guardrail_latency_p95_ms is not None:
            guardrails = (Guardrail("latency_ms", "p95", guardrail_latency_p95_ms, higher_is_better=False),)
        return cls(
            key=key,
            variants=tuple(Variant(n, w, m) for n, w, m in zip(names, weights, model_refs, strict=True)),
            seed=seed,
            hash_version=hash_version,
            coverage=coverage,
            start=start,
            duration_days=duration_days,
            primary_metric=primary_metric,
            guardrails=guardrails,
        )


def parse_split(split: str) -> list[float]:
    """Percentages "10/90" (or fractions "0.1/0.9") to weights summing to 1.

    >>> parse_split("10/90"), parse_split("34/33/33")
    ([0.1, 0.9], [0.34, 0.33, 0.33])
    """
    parts = str(split).replace(" ", "").split("/")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise _fail("split", split, "write percentages separated by '/', e.g. '10/90' or '34/33/33'.") from None
    if len(values) < 2 or any(not math.isfinite(v) or v <= 0 for v in values):
        raise _fail("split", split, "give at least two positive parts, e.g. '50/50'.")
    total = math.fsum(values)
    if abs(total - 100.0) <= 100 * WEIGHT_TOLERANCE:
        return [v / 100.0 for v in values]
    if abs(total - 1.0) <= WEIGHT_TOLERANCE:
        return values
    raise _fail("split", split, f"parts sum to {total:g}; percentages must sum to 100, e.g. '10/90'.")
