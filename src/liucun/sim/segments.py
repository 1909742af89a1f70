"""Vectorised operations on *segments*: consecutive runs of an array given by their lengths.

Sessions are segments of events, pages are segments of a session, a user's sessions of one day
are a segment of the day's sessions. `counts[i]` is the length of segment `i`; segments are laid
out back to back in order, and zero-length segments are allowed unless a function says not.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]


def exclusive_cumsum(values: npt.NDArray[np.integer]) -> IntArray:
    """`out[i] = sum(values[:i])`: where segment `i` starts when `values` are lengths."""
    out = np.zeros(len(values), dtype=np.int64)
    np.cumsum(values[:-1], out=out[1:])
    return out


def segment_ids(counts: npt.NDArray[np.integer]) -> IntArray:
    """For each element, the index of the segment it belongs to."""
    return np.repeat(np.arange(len(counts), dtype=np.int64), counts)


def segment_rank(counts: npt.NDArray[np.integer]) -> IntArray:
    """For each element, its position inside its segment (0, 1, 2, ...)."""
    total = int(np.sum(counts))
    return np.arange(total, dtype=np.int64) - np.repeat(exclusive_cumsum(counts), counts)


def segment_positions(starts: IntArray, counts: npt.NDArray[np.integer]) -> IntArray:
    """All positions `starts[i], starts[i]+1, ..., starts[i]+counts[i]-1`, segment by segment."""
    total = int(np.sum(counts))
    shift = np.repeat(starts - exclusive_cumsum(counts), counts)
    return np.arange(total, dtype=np.int64) + shift


def segment_sums(values: IntArray, counts: npt.NDArray[np.integer]) -> IntArray:
    """The sum of `values` over each segment (0 for an empty segment)."""
    inclusive = np.concatenate(([0], np.cumsum(values, dtype=np.int64)))
    ends = np.cumsum(counts, dtype=np.int64)
    return inclusive[ends] - inclusive[ends - counts]


def segment_exclusive_cumsum(values: IntArray, counts: npt.NDArray[np.integer]) -> IntArray:
    """For each element, the sum of the elements before it in its own segment."""
    running = exclusive_cumsum(values)
    return running - np.repeat(running[exclusive_cumsum(counts)[counts > 0]], counts[counts > 0])
