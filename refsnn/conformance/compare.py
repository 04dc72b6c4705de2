"""Array comparisons used by the conformance runner and by
`refsnn.comparisons` (NumPy only).

- `bit_equal`: same bits, except that any NaN equals any NaN (payloads differ
  between libraries and carry no meaning);
- `ulp_distance`: distance in units in the last place, in the array's dtype;
- `relative_error`: the normwise error `max|a - e| / max|e|` used for gradients;
- `first_divergence`: where two time-major arrays `[T, N, *]` first differ.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["bit_equal", "ulp_distance", "max_ulp", "relative_error",
           "first_divergence", "Divergence"]

_INT_OF = {np.dtype(np.float32): np.int32, np.dtype(np.float64): np.int64,
           np.dtype(np.float16): np.int16}


def bit_equal(actual, expected) -> np.ndarray:
    """Elementwise: identical bits (so -0.0 != +0.0), any NaN equal to any NaN."""
    a, e = np.asarray(actual), np.asarray(expected)
    same = (a == e) & (np.signbit(a) == np.signbit(e))
    return same | (np.isnan(a) & np.isnan(e))


def ulp_distance(actual, expected) -> np.ndarray:
    """Elementwise distance in ulps of `expected`'s dtype (0 for two NaNs,
    the dtype's int max for a NaN against a number). Both arrays are cast to
    `expected`'s dtype first, so compare arrays of the same dtype."""
    e = np.asarray(expected)
    a = np.asarray(actual).astype(e.dtype, copy=False)
    itype = _INT_OF[e.dtype]
    big = np.iinfo(itype).max

    def ordered(x):
        # map floats to integers that increase with the value (+0 and -0 both 0)
        bits = x.view(itype).astype(np.int64)
        return np.where(bits < 0, np.int64(np.iinfo(itype).min) - bits, bits)

    oa, oe = ordered(a), ordered(e)
    same_side = (oa >= 0) == (oe >= 0)
    # values on opposite sides of zero: add magnitudes in float64 to avoid wrapping
    across = np.minimum(np.abs(oa).astype(np.float64) + np.abs(oe), 2.0 ** 62)
    dist = np.where(same_side, np.abs(np.where(same_side, oa - oe, 0)),
                    np.where(across >= 2.0 ** 62, big, across.astype(np.int64)))
    nan_a, nan_e = np.isnan(a), np.isnan(e)
    dist = np.where(nan_a & nan_e, 0, dist)
    dist = np.where(nan_a ^ nan_e, big, dist)
    return np.minimum(dist, big)


def max_ulp(actual, expected) -> int:
    """The largest `ulp_distance` (0 for empty arrays)."""
    d = ulp_distance(actual, expected)
    return int(d.max()) if d.size else 0


def relative_error(actual, expected, same_nonfinite: bool = True, axis=None,
                   floor: float = 0.0) -> float:
    """Normwise relative error `max|a - e| / max|e|` over finite entries.

    `axis`: the norm's scale is taken along these axes only (`axis=0` on a
    time-major `[T, N, *]` array scales each neuron's trajectory by its own
    largest value, so one neuron fed 1e30 does not hide the others' errors);
    None: one scale for the whole array. The scale is at least `floor` (for a
    gradient that is zero in exact arithmetic, such as a bias feeding a
    training-mode BatchNorm, only rounding noise is left to compare); a zero
    scale counts absolute errors.

    Non-finite entries must sit at the same positions, otherwise the error is
    `inf`; with `same_nonfinite` they must also be the same (NaN, +inf or
    -inf), without it any non-finite value matches any other (for
    closed-form backwards, where an overflowing recurrence may give inf
    where autograd gives NaN).
    """
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    if a.shape != e.shape:
        return float("inf")
    finite_a, finite_e = np.isfinite(a), np.isfinite(e)
    if not np.array_equal(finite_a, finite_e):
        return float("inf")
    if same_nonfinite and not np.array_equal(a[~finite_a], e[~finite_e], equal_nan=True):
        return float("inf")
    if not finite_e.any():
        return 0.0
    magnitude = np.where(finite_e, np.abs(e), 0.0)
    scale = magnitude.max(axis=axis, keepdims=True) if axis is not None else magnitude.max()
    scale = np.maximum(scale, floor)
    scale = np.where(scale > 0, scale, 1.0)
    diff = np.where(finite_e, np.abs(np.where(finite_a, a, 0.0) - np.where(finite_e, e, 0.0)), 0.0)
    return float((diff / scale).max())


@dataclass
class Divergence:
    """The first element that differs: step `t`, `index` within the step, and
    both values."""
    t: int
    index: tuple
    expected: float
    actual: float


def first_divergence(actual, expected) -> Divergence | None:
    """First (t, index) in time-major `[T, ...]` arrays where the values differ
    (`bit_equal` is False); None when they agree everywhere. Spike trains are
    diagnosed further by `refsnn.comparisons.spike_report`."""
    a, e = np.asarray(actual), np.asarray(expected)
    bad = ~bit_equal(a, e)
    if not bad.any():
        return None
    flat = int(np.argmax(bad.reshape(-1)))
    pos = np.unravel_index(flat, a.shape)
    return Divergence(t=int(pos[0]), index=tuple(int(i) for i in pos[1:]),
                      expected=float(e[pos]), actual=float(a[pos]))
