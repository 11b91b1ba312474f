"""Deterministic traffic assignment, bit-exact with GrowthBook's SDK hashing.

A unit (user) id is hashed with the experiment seed to a number in [0, 1); bucket ranges built from the
variant weights and the coverage map that number to a variant. Everything is a pure function of
(seed, unit id, ranges): no RNG and no state, so a user sees the same variant on every request, in
every process, and in GrowthBook's SDKs (``packages/sdk-js/src/util.ts``: ``hash``, ``getBucketRanges``,
``chooseVariation``, ``inNamespace``, ``isFilteredOut``).

Strings are hashed as JavaScript sees them: FNV-1a 32 over UTF-16 code units, so an emoji (outside the
Basic Multilingual Plane) contributes its two surrogates.

The scalar functions (``hash``, ``assign_one``) and the vectorized ones (``hash_many``, ``assign_many``)
give identical answers; the vectorized ones run FNV column-wise over a matrix of code units with
``uint32`` numpy arithmetic, in cache-sized chunks spread over threads.

>>> hash("seed", "a"), hash("", "a", version=1), hash("abc", "def", version=99)
(0.0505, 0.22, None)
>>> ranges = bucket_ranges(2, coverage=1.0, weights=[0.1, 0.9])
>>> ranges
[(0.0, 0.1), (0.1, 1.0)]
>>> [hash("checkout-test", uid) for uid in ("user-8", "user-9", "user-10")]
[0.2086, 0.505, 0.0767]
>>> [assign_one(uid, seed="checkout-test", ranges=ranges) for uid in ("user-8", "user-9", "user-10")]
[1, 1, 0]
>>> assign_many(["user-8", "user-9", "user-10"], seed="checkout-test", ranges=ranges).tolist()
[1, 1, 0]
"""

from __future__ import annotations

import array
import functools
import os
import sys
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

import numpy as np

from abkit.errors import AbkitError

__all__ = [
    "FNV_OFFSET",
    "FNV_PRIME",
    "Filter",
    "assign_many",
    "assign_one",
    "bucket_ranges",
    "choose_many",
    "choose_variation",
    "fnv1a32",
    "hash",
    "hash_many",
    "in_namespace",
    "in_namespace_many",
    "is_filtered_out",
    "is_filtered_out_many",
    "ramp_ranges",
]

FNV_OFFSET = 0x811C9DC5
FNV_PRIME = 0x01000193
_MASK32 = 0xFFFFFFFF
_P = np.uint32(FNV_PRIME)
_CHUNK = 32_768  # rows per kernel call: keeps the working set in L2
_PARALLEL_MIN = 200_000  # below this many ids threads cost more than they save

Range = tuple[float, float]
Namespace = tuple[str, float, float]


class AssignError(AbkitError):
    """Bad input to an assignment function (ids, ranges, namespace, hash version)."""


class Filter(NamedTuple):
    """A GrowthBook filter: a unit passes when ``hash(seed, id, hash_version)`` falls in one of ``ranges``.

    A holdout of 5 % is ``Filter("holdout-2024", ((0.05, 1.0),))``: the 5 % of units whose hash lies in
    [0, 0.05) are filtered out of every experiment that carries this filter.
    """

    seed: str
    ranges: tuple[Range, ...]
    hash_version: int = 2


# ---------------------------------------------------------------------------------------------------
# scalar reference implementation


def _utf16_units(text: str) -> Iterable[int]:
    if text.isascii():
        return text.encode("ascii")
    units = array.array("H", text.encode("utf-16-le", "surrogatepass"))
    if sys.byteorder == "big":  # pragma: no cover - no big-endian CI
        units.byteswap()
    return units


def fnv1a32(text: str) -> int:
    """FNV-1a 32-bit over the UTF-16 code units of ``text`` (JavaScript ``charCodeAt`` order).

    >>> fnv1a32(""), fnv1a32("a")
    (2166136261, 3826002220)
    """
    h = FNV_OFFSET
    for unit in _utf16_units(text):
        h = ((h ^ unit) * FNV_PRIME) & _MASK32
    return h


def _check_str(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise AssignError(
            f"{field} must be a str, got {value!r} ({type(value).__name__}); convert ids to strings first."
        )
    return value


def hash(seed: str, value: str, version: int = 2) -> float | None:  # noqa: A001 - GrowthBook's name
    """GrowthBook's ``hash``: a number in [0, 1) for ``value`` under ``seed``, or None for unknown versions.

    Version 2: ``fnv(str(fnv(seed + value))) % 10000 / 10000``; version 1 (biased, value first):
    ``fnv(value + seed) % 1000 / 1000``.

    >>> hash("seed", "b"), hash("ef", "d", 1)
    (0.2696, 0.652)
    """
    _check_str(seed, "seed")
    _check_str(value, "value")
    if version == 2:
        return (fnv1a32(str(fnv1a32(seed + value))) % 10000) / 10000
    if version == 1:
        return (fnv1a32(value + seed) % 1000) / 1000
    return None


def bucket_ranges(n_variants: int, coverage: float = 1.0, weights: Sequence[float] | None = None) -> list[Range]:
    """GrowthBook's ``getBucketRanges``: one ``(start, end)`` per variant.

    Coverage is clamped to [0, 1]; weights of the wrong length or summing outside [0.99, 1.01] are
    replaced by equal weights (the SDK's lenient rule — ``abkit.experiment.Experiment`` refuses such
    weights before they get here). Starts do not depend on coverage, so ramping coverage up never moves an
    included unit to another variant.

    >>> bucket_ranges(3)
    [(0.0, 0.3333333333333333), (0.3333333333333333, 0.6666666666666666), (0.6666666666666666, 1.0)]
    >>> bucket_ranges(2, coverage=0.5, weights=[0.1, 0.9])
    [(0.0, 0.05), (0.1, 0.55)]
    """
    if n_variants <= 0:
        return []
    coverage = min(max(float(coverage), 0.0), 1.0)
    equal = [1.0 / n_variants] * n_variants
    if weights is None or len(weights) != n_variants:
        weights = equal
    else:
        total = sum(float(w) for w in weights)  # left-to-right, as the SDK's reduce
        if total < 0.99 or total > 1.01:
            weights = equal
    ranges: list[Range] = []
    cumulative = 0.0
    for w in weights:
        start = cumulative
        cumulative += float(w)
        ranges.append((start, start + coverage * float(w)))
    return ranges


def ramp_ranges(share: float, max_share: float) -> list[Range]:
    """Nested ``[control, challenger]`` ranges for a canary stage that gives the challenger ``share``.

    The challenger holds ``[0, share)`` and the measured control an equal slice, as far as room allows,
    starting at ``max_share`` (the largest share of the ramp): ``[max_share, max_share + min(share,
    1 - max_share))``. Both ranges only grow as ``share`` grows, so raising the
    share moves no user who already saw a variant; users outside both keep the champion outside the test.
    With several stages the within-test weights change (10/10, 25/25, 25/50 ... of traffic), and each
    stage's sample ratio is checked against its own weights.

    >>> ramp_ranges(0.1, 0.5), ramp_ranges(0.5, 0.5)
    ([(0.5, 0.6), (0.0, 0.1)], [(0.5, 1.0), (0.0, 0.5)])
    >>> ramp_ranges(0.25, 0.75), ramp_ranges(0.75, 0.75)
    ([(0.75, 1.0), (0.0, 0.25)], [(0.75, 1.0), (0.0, 0.75)])
    """
    share, max_share = float(share), float(max_share)
    if not 0.0 < share <= max_share < 1.0:
        raise AssignError(
            f"ramp share={share!r} and max_share={max_share!r} need 0 < share <= max_share < 1 "
            "(a share of 1 leaves no control: that step is the switch itself)"
        )
    return [(max_share, max_share + min(share, 1.0 - max_share)), (0.0, share)]


def choose_variation(n: float | None, ranges: Sequence[Range]) -> int:
    """Index of the first range with ``start <= n < end``, or -1 (GrowthBook's ``chooseVariation``).

    >>> choose_variation(0.3, [(0.0, 0.25), (0.5, 0.75)]), choose_variation(0.6, [(0.0, 0.25), (0.5, 0.75)])
    (-1, 1)
    """
    if n is None:
        return -1
    for i, (start, end) in enumerate(ranges):
        if start <= n < end:
            return i
    return -1


def _check_namespace(namespace: Namespace) -> Namespace:
    try:
        ns_id, lo, hi = namespace
    except (TypeError, ValueError):
        raise AssignError(
            f"namespace must be a (id, start, end) triple, got {namespace!r}; e.g. ('checkout', 0.0, 0.5)."
        ) from None
    _check_str(ns_id, "namespace id")
    return ns_id, float(lo), float(hi)


def in_namespace(value: str, namespace: Namespace) -> bool:
    """GrowthBook's ``inNamespace``: ``lo <= hash("__" + id, value, 1) < hi``.

    Experiments whose namespace ranges do not overlap never share a unit.

    >>> in_namespace("user-1", ("checkout", 0.0, 0.5)), in_namespace("user-1", ("checkout", 0.5, 1.0))
    (False, True)
    """
    ns_id, lo, hi = _check_namespace(namespace)
    n = hash("__" + ns_id, value, 1)
    return n is not None and lo <= n < hi


def is_filtered_out(value: str, filters: Sequence[Filter]) -> bool:
    """GrowthBook's ``isFilteredOut``: True when, for any filter, the unit's hash is in none of its ranges."""
    for f in filters:
        n = hash(f.seed, value, f.hash_version)
        if n is None or not any(lo <= n < hi for lo, hi in f.ranges):
            return True
    return False


def assign_one(
    unit_id: str,
    *,
    seed: str,
    ranges: Sequence[Range],
    hash_version: int = 2,
    namespace: Namespace | None = None,
    filters: Sequence[Filter] = (),
) -> int:
    """Variant index of one unit, or -1 when it is outside the namespace, filtered out or not covered."""
    _check_str(unit_id, "unit_id")
    if namespace is not None and not in_namespace(unit_id, namespace):
        return -1
    if filters and is_filtered_out(unit_id, filters):
        return -1
    return choose_variation(hash(seed, unit_id, hash_version), ranges)


# ---------------------------------------------------------------------------------------------------
# vectorized implementation


class _Codes:
    """UTF-16 code units of N ids, served as (rows, width) matrices chunk by chunk.

    ``lengths`` is None when every id has ``width`` code units. Entries at or beyond a row's length are
    arbitrary: the kernel masks them by length.
    """

    def __init__(self, n: int, width: int, lengths: np.ndarray | None) -> None:
        self.n, self.width, self.lengths = n, width, lengths

    def rows(self, lo: int, hi: int) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def lens(self, lo: int, hi: int) -> np.ndarray | None:
        return None if self.lengths is None else self.lengths[lo:hi]


class _MatrixCodes(_Codes):
    def __init__(self, matrix: np.ndarray, lengths: np.ndarray | None) -> None:
        if lengths is not None and lengths.size and int(lengths.min()) == matrix.shape[1]:
            lengths = None
        super().__init__(matrix.shape[0], matrix.shape[1], lengths)
        self.matrix = matrix

    def rows(self, lo: int, hi: int) -> np.ndarray:
        return self.matrix[lo:hi]


class _FlatCodes(_Codes):
    """Ids of unequal length laid end to end in one buffer; rows are gathered per chunk."""

    def __init__(self, flat: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> None:
        width = max(int(lengths.max()) if lengths.size else 0, 1)
        super().__init__(starts.size, width, lengths)
        padded = np.concatenate([flat, np.zeros(width, flat.dtype)])
        # one "record" of `width` code units starting at every position: a row gather is one memcpy
        self._windows = np.ndarray(
            shape=(flat.size + 1,),
            dtype=np.dtype((np.void, width * flat.itemsize)),
            buffer=padded,
            strides=(flat.itemsize,),
        )
        self._dtype = flat.dtype
        self.starts = starts

    def rows(self, lo: int, hi: int) -> np.ndarray:
        return self._windows[self.starts[lo:hi]].view(self._dtype).reshape(hi - lo, self.width)


def _utf16_from_codepoints(cp: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Expand code points above U+FFFF into surrogate pairs, row by row (vectorized)."""
    n, width = cp.shape
    valid = np.arange(width) < lengths[:, None]
    astral = (cp > 0xFFFF) & valid
    shift: np.ndarray = np.cumsum(astral, axis=1) - astral
    out = np.zeros((n, 2 * width), dtype=np.uint32)
    rows, cols = np.nonzero(valid)
    pos = cols + shift[rows, cols]
    c = cp[rows, cols]
    is_astral = astral[rows, cols]
    off = c[is_astral] - 0x10000
    c = c.copy()
    c[is_astral] = 0xD800 + (off >> 10)
    out[rows, pos] = c
    out[rows[is_astral], pos[is_astral] + 1] = 0xDC00 + (off & 0x3FF)
    return out, lengths + astral.sum(axis=1)


def _codes_from_unicode_array(values: np.ndarray) -> _Codes:
    values = np.ascontiguousarray(values.ravel())
    n = values.size
    width = values.dtype.itemsize // 4
    if width == 0 or n == 0:
        return _MatrixCodes(np.zeros((n, 0), np.uint32), None)
    matrix = values.view(np.uint32).reshape(n, width)
    # numpy strips trailing NULs, so a non-zero last column means every row has the full width
    lengths = None if matrix[:, -1].all() else np.strings.str_len(values).astype(np.int64)
    if matrix.max() <= 0xFFFF:
        return _MatrixCodes(matrix, lengths)
    if lengths is None:
        lengths = np.full(n, width, dtype=np.int64)
    astral_rows = np.flatnonzero((matrix > 0xFFFF).any(axis=1))
    expanded, new_lengths = _utf16_from_codepoints(matrix[astral_rows], lengths[astral_rows])
    widened = np.zeros((n, 2 * width), np.uint32)
    widened[:, :width] = matrix
    widened[astral_rows] = expanded
    lengths = lengths.copy()
    lengths[astral_rows] = new_lengths
    return _MatrixCodes(widened[:, : int(lengths.max())], lengths)


def _first_non_str(values: Sequence[Any]) -> tuple[int, Any]:
    for i, v in enumerate(values):
        if not isinstance(v, str):
            return i, v
    return -1, None  # pragma: no cover - only called after a failed join


def _codes_one_by_one(values: Sequence[str]) -> _Codes:
    """Exact route for ids that contain NUL: encode each id separately."""
    encoded = [v.encode("utf-16-le", "surrogatepass") for v in values]
    lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded)) // 2
    starts = np.zeros(len(encoded), dtype=np.intp)
    np.cumsum(lengths[:-1], out=starts[1:])
    return _FlatCodes(np.frombuffer(b"".join(encoded), dtype="<u2"), starts, lengths)


def _codes_from_sequence(values: Sequence[Any]) -> _Codes:
    """Join the ids with NUL separators and read code units straight from the encoded buffer.

    ASCII-only input stays one byte per code unit; otherwise the buffer is UTF-16-LE (surrogates kept).
    """
    n = len(values)
    try:
        joined = "\x00".join(values) + "\x00"
    except TypeError:
        i, bad = _first_non_str(values)
        raise AssignError(
            f"unit id at index {i} is {bad!r} ({type(bad).__name__}); every unit id must be a str — "
            "convert ids with .astype(str) and drop missing ones first."
        ) from None
    if joined.isascii():
        flat = np.frombuffer(joined.encode("ascii"), dtype=np.uint8)
    else:
        flat = np.frombuffer(joined.encode("utf-16-le", "surrogatepass"), dtype="<u2")
    is_sep = flat == 0
    if np.count_nonzero(is_sep) != n:  # some id contains NUL itself
        return _codes_one_by_one(values)
    if n and flat.size % n == 0:
        rows = flat.reshape(n, flat.size // n)
        if not rows[:, -1].any():  # every separator in the last column: all ids have one length
            return _MatrixCodes(rows[:, :-1], None)
    ends = np.flatnonzero(is_sep)
    starts = np.empty(n, dtype=np.intp)
    starts[:1] = 0
    starts[1:] = ends[:-1] + 1
    return _FlatCodes(flat, starts, ends - starts)


def _as_codes(values: Any) -> _Codes:
    if isinstance(values, str):
        raise AssignError(
            f"unit_ids must be a sequence of str, got the single str {values!r}; wrap it in a list or use "
            "the scalar function."
        )
    if isinstance(values, np.ndarray) and values.dtype.kind == "U":
        return _codes_from_unicode_array(values)
    if hasattr(values, "to_numpy") and not isinstance(values, np.ndarray):  # pandas / pyarrow
        try:
            values = values.to_numpy(zero_copy_only=False)
        except TypeError:
            values = values.to_numpy()
        if values.dtype.kind == "U":
            return _codes_from_unicode_array(values)
    if isinstance(values, np.ndarray):
        values = values.ravel()
    elif not isinstance(values, Sequence):
        values = list(values)
    return _codes_from_sequence(values)


def _fnv_columns(h: np.ndarray, rows: np.ndarray, lens: np.ndarray | None) -> None:
    """Continue FNV-1a in place over the columns of ``rows``, each row only up to its length."""
    width = rows.shape[1]
    full = width if lens is None else min(int(lens.min()), width)
    tmp = np.empty_like(h)
    for j in range(full):
        np.bitwise_xor(h, rows[:, j], out=h, casting="unsafe")
        np.multiply(h, _P, out=h)
    if lens is None:  # every row runs the full width
        return
    for j in range(full, width):
        np.bitwise_xor(h, rows[:, j], out=tmp, casting="unsafe")
        np.multiply(tmp, _P, out=tmp)
        np.copyto(h, tmp, where=lens > j)


def _fnv_str_columns(h: np.ndarray, text: str) -> None:
    for unit in _utf16_units(text):
        np.bitwise_xor(h, np.uint32(unit), out=h)
        np.multiply(h, _P, out=h)


def _fnv_state(text: str) -> np.uint32:
    return np.uint32(fnv1a32(text))


@functools.cache
def _decimal_tables() -> tuple[np.ndarray, np.ndarray]:
    """Tables for FNV over the decimal string of a uint32 ``h = hi * 100000 + lo``.

    ``prefix[hi]`` is the FNV state after ``str(hi)``; ``digits[lo]`` packs the five zero-padded ASCII
    digits of ``lo`` into the low bytes of a little-endian uint64.
    """
    hi = np.arange(_MAX_HI + 1)
    codes = _codes_from_unicode_array(hi.astype("U5"))
    prefix = np.full(hi.size, FNV_OFFSET, dtype=np.uint32)
    _fnv_columns(prefix, codes.rows(0, hi.size), codes.lens(0, hi.size))
    lo = np.arange(100_000)
    digit_bytes = np.zeros((lo.size, 8), dtype=np.uint8)
    for k in range(5):
        digit_bytes[:, k] = 48 + (lo // 10 ** (4 - k)) % 10
    return prefix, digit_bytes.view("<u8").ravel()


_MAX_HI = _MASK32 // 100_000


def _fnv_of_decimal(h: np.ndarray) -> np.ndarray:
    """``fnv1a32(str(h))`` for every element of a uint32 array."""
    prefix, digits = _decimal_tables()
    hi = h // np.uint32(100_000)
    lo = h - hi * np.uint32(100_000)
    g = np.take(prefix, hi)
    packed = np.take(digits, lo).view(np.uint8).reshape(h.size, 8)
    for k in range(5):
        np.bitwise_xor(g, packed[:, k], out=g, casting="unsafe")
        np.multiply(g, _P, out=g)
    short = np.flatnonzero(hi == 0)  # h < 100000: no zero padding (about 2 ids in 100,000)
    for i in short:
        g[i] = fnv1a32(str(int(h[i])))
    return g


def _hash_chunk(codes: _Codes, lo: int, hi: int, seed: str, version: int, out: np.ndarray) -> None:
    rows, lens = codes.rows(lo, hi), codes.lens(lo, hi)
    if version == 2:
        h = np.full(hi - lo, _fnv_state(seed), dtype=np.uint32)
        _fnv_columns(h, rows, lens)
        g = _fnv_of_decimal(h)
        np.divide(g % np.uint32(10_000), 10_000.0, out=out[lo:hi])
    else:
        h = np.full(hi - lo, FNV_OFFSET, dtype=np.uint32)
        _fnv_columns(h, rows, lens)
        _fnv_str_columns(h, seed)
        np.divide(h % np.uint32(1_000), 1_000.0, out=out[lo:hi])


def _default_threads() -> int:
    try:
        return max(1, min(len(os.sched_getaffinity(0)), 8))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, min(os.cpu_count() or 1, 8))


def _hash_codes(codes: _Codes, seed: str, version: int, threads: int | None) -> np.ndarray:
    out = np.empty(codes.n, dtype=np.float64)
    if version not in (1, 2):
        out.fill(np.nan)
        return out
    bounds = [(lo, min(lo + _CHUNK, codes.n)) for lo in range(0, codes.n, _CHUNK)]
    threads = _default_threads() if threads is None else max(1, int(threads))
    if threads == 1 or codes.n < _PARALLEL_MIN:
        for lo, hi in bounds:
            _hash_chunk(codes, lo, hi, seed, version, out)
    else:
        _decimal_tables()  # build once before the threads race for it
        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(lambda b: _hash_chunk(codes, b[0], b[1], seed, version, out), bounds))
    return out


def hash_many(seed: str, values: Any, version: int = 2, *, threads: int | None = None) -> np.ndarray:
    """Vectorized ``hash``: float64 array, NaN where the scalar returns None (unsupported version).

    ``values`` may be a numpy ``str`` array, a list/tuple of str, a pandas Series or a pyarrow array.
    A numpy ``str`` array is the fastest input; note that numpy drops trailing NUL characters of its
    strings. ``threads`` defaults to the CPUs this process may use.

    >>> hash_many("seed", ["a", "b"]).tolist(), hash_many("abc", ["def"], version=99).tolist()
    ([0.0505, 0.2696], [nan])
    """
    _check_str(seed, "seed")
    return _hash_codes(_as_codes(values), seed, version, threads)


def choose_many(n: np.ndarray, ranges: Sequence[Range]) -> np.ndarray:
    """Vectorized ``choose_variation``: int64 variant index per hash, -1 outside every range (or NaN)."""
    n = np.asarray(n, dtype=np.float64)
    out = np.full(n.shape, -1, dtype=np.int64)
    for i, (start, end) in reversed(list(enumerate(ranges))):  # reversed: the first match wins
        out[(n >= start) & (n < end)] = i
    return out


def in_namespace_many(values: Any, namespace: Namespace, *, threads: int | None = None) -> np.ndarray:
    """Vectorized ``in_namespace``: boolean array."""
    ns_id, lo, hi = _check_namespace(namespace)
    n = hash_many("__" + ns_id, values, 1, threads=threads)
    return (n >= lo) & (n < hi)


def is_filtered_out_many(values: Any, filters: Sequence[Filter], *, threads: int | None = None) -> np.ndarray:
    """Vectorized ``is_filtered_out``: boolean array, True where some filter excludes the unit."""
    codes = values if isinstance(values, _Codes) else _as_codes(values)
    out = np.zeros(codes.n, dtype=bool)
    for f in filters:
        n = _hash_codes(codes, _check_str(f.seed, "filter seed"), f.hash_version, threads)
        passed = np.zeros(codes.n, dtype=bool)
        for lo, hi in f.ranges:
            passed |= (n >= lo) & (n < hi)
        out |= ~passed
    return out


def assign_many(
    unit_ids: Any,
    *,
    seed: str,
    ranges: Sequence[Range],
    hash_version: int = 2,
    namespace: Namespace | None = None,
    filters: Sequence[Filter] = (),
    threads: int | None = None,
) -> np.ndarray:
    """Vectorized ``assign_one``: int64 variant index per unit id, -1 = not in the experiment."""
    _check_str(seed, "seed")
    codes = _as_codes(unit_ids)
    out = choose_many(_hash_codes(codes, seed, hash_version, threads), ranges)
    if namespace is not None:
        ns_id, lo, hi = _check_namespace(namespace)
        n = _hash_codes(codes, "__" + ns_id, 1, threads)
        out[~((n >= lo) & (n < hi))] = -1
    if filters:
        out[is_filtered_out_many(codes, filters, threads=threads)] = -1
    return out
