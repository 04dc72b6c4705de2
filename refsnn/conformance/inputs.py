"""Input sequences for conformance cases (NumPy only, exactly representable).

Every array is drawn in the case's dtype, so SpikingJelly and refsnn receive the
same bits. `special_values` lists the edge cases that decide bit-exactness:
values exactly at threshold, signed zeros, subnormals, large magnitudes, NaN.
"""
from __future__ import annotations

import numpy as np

__all__ = ["special_values", "uniform", "with_specials", "neuron_input"]


def special_values(dtype, v_threshold: float = 1.0) -> np.ndarray:
    """Edge-case inputs in `dtype`: threshold, ±0, ±smallest subnormal, the
    largest subnormal, ±1e30, and NaN."""
    dtype = np.dtype(dtype)
    tiny = np.finfo(dtype).smallest_subnormal
    largest_sub = np.nextafter(np.finfo(dtype).smallest_normal, dtype.type(0))
    return np.array([v_threshold, 0.0, -0.0, tiny, -tiny, largest_sub, 1e30, -1e30,
                     np.nan], dtype=dtype)


def uniform(rng: np.random.Generator, shape, dtype, low: float, high: float) -> np.ndarray:
    """Uniform values in [low, high) rounded to `dtype`."""
    return rng.uniform(low, high, size=shape).astype(dtype)


def with_specials(x: np.ndarray, specials: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Copy of time-major `x: [T, N, *]` where the last `len(specials)` neurons
    of batch row 0 each receive one special value at a random step. The other
    neurons keep ordinary values, so one NaN does not hide everything else."""
    x = x.copy()
    flat = x.reshape(x.shape[0], x.shape[1], -1)
    width = flat.shape[2]
    for k, value in enumerate(specials[:width]):
        t = int(rng.integers(0, x.shape[0]))
        flat[t, 0, width - 1 - k] = value
    return flat.reshape(x.shape)


def neuron_input(seed: int, shape, dtype, low: float, high: float,
                 specials: bool, v_threshold: float = 1.0) -> np.ndarray:
    """The input sequence `x_seq: shape = [T, N, *]` of one neuron case."""
    rng = np.random.default_rng(seed)
    x = uniform(rng, shape, dtype, low, high)
    if specials:
        x = with_specials(x, special_values(dtype, v_threshold), rng)
    return x
