"""Stable 64-bit keys of string ids, stored in the log next to the ids so that engines join and group on
integers instead of strings.

The key is FNV-1a 64 over the id's UTF-8 bytes, read as a signed 64-bit integer (Parquet ``INT64``). It is
a fixed, published function: keys written by one version or process match those of any other. Two ids
can share a key; compaction checks every id of an experiment against its key and marks the experiment as
collided once that happens, so engines only rely on keys known to be one-to-one.

>>> [hex(k) for k in fnv1a64(["", "a", "foobar"]).view("uint64")]  # the published FNV-1a 64 test vectors
['0xcbf29ce484222325', '0xaf63dc4c8601ec8c', '0x85944171f73967e8']
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["fnv1a64", "fnv1a64_arrow", "has_repeats"]

_OFFSET = np.uint64(0xCBF29CE484222325)
_PRIME = np.uint64(0x100000001B3)


def fnv1a64(ids: pa.Array | pa.ChunkedArray | Sequence[str]) -> np.ndarray:
    """FNV-1a 64 of each id's UTF-8 bytes as ``int64`` (vectorized: one numpy step per byte position)."""
    arr = ids if isinstance(ids, (pa.Array, pa.ChunkedArray)) else pa.array(ids, pa.string())
    arr = pc.cast(arr, pa.large_string())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if arr.null_count:
        raise ValueError("ids must not be null")
    n = len(arr)
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)[arr.offset : arr.offset + n + 1]
    data = np.frombuffer(arr.buffers()[2], dtype=np.uint8) if arr.buffers()[2] is not None else np.zeros(0, np.uint8)
    lengths = np.diff(offsets)
    order = np.argsort(-lengths, kind="stable")  # longest first: the ids still going are a prefix
    starts, lengths = offsets[:-1][order], lengths[order]
    h = np.full(n, _OFFSET, dtype=np.uint64)
    longest = int(lengths[0]) if n else 0
    going = np.searchsorted(-lengths, -np.arange(1, longest + 1), side="right")  # ids longer than j bytes
    for j in range(longest):
        k = int(going[j])
        h[:k] ^= data[starts[:k] + j]
        h[:k] *= _PRIME
    out = np.empty(n, dtype=np.uint64)
    out[order] = h
    return out.view(np.int64)


def fnv1a64_arrow(ids: pa.Array) -> pa.Array:
    """``fnv1a64`` as an Arrow ``int64`` array: the engines' key function (DuckDB and Spark Arrow UDFs)."""
    return pa.array(fnv1a64(ids))


def has_repeats(keys: Sequence[int] | np.ndarray) -> bool:
    """Whether some key occurs twice (a sort: faster than ``np.unique`` on int64 here)."""
    ordered = np.sort(np.asarray(keys, dtype=np.int64))
    return bool((ordered[1:] == ordered[:-1]).any())
