"""Comparisons for testing a spiking implementation against a reference.

- `spike_report` / `assert_spikes_equal`: where two spike trains `[T, N, *]`
  first diverge, how many spikes differ, the membrane margin `h - v_threshold`
  at each neuron's first flip, and whether that flip is rounding-level (the
  potential sat within a few ulps of the threshold, so a last-bit difference in
  `h` decides it), exactly at the threshold (`>` versus `>=`), or a real
  mismatch. Later flips of the same neuron are counted as its cascade: once a
  neuron has fired differently its state differs, so they say nothing new.
- `grad_tolerance` / `assert_grads_close`: gradients compared normwise, with a
  relative tolerance that grows with the number of time steps (BPTT chains one
  rounding per step) and with the fan-in (terms summed into one element).

Builds on `refsnn.conformance.compare` (bit equality, first divergence,
normwise relative error), which the conformance runner shares. NumPy only.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .conformance.compare import bit_equal, first_divergence, relative_error

__all__ = ["FirstFlip", "SpikeReport", "spike_report", "assert_spikes_equal",
           "grad_tolerance", "assert_grads_close"]

#: how a neuron's first flip is classified (see `SpikeReport`)
ROUNDING, AT_THRESHOLD, SAME_POTENTIAL, REAL, UNKNOWN = (
    "rounding", "at_threshold", "same_potential", "real", "unknown")


@dataclass
class FirstFlip:
    """The first differing spike: step `t`, `index` within the step `(n, *)`,
    the two spike values, the reference margin `h - v_threshold` there (None
    when no potential was given) and its classification."""
    t: int
    index: tuple
    expected: float
    actual: float
    margin: float | None
    kind: str

    def describe(self, v_threshold: float, rounding_ulps: int) -> str:
        where = f"first flip at t={self.t}, index={self.index}: expected {self.expected:g}, " \
                f"actual {self.actual:g}"
        if self.margin is None:
            return where + "; margin unknown (pass h_seq, the potential after charge and " \
                           "before reset, to see it)"
        text = f"{where}; h - v_threshold = {self.margin:.9g}"
        return text + {
            AT_THRESHOLD: f" (h equals v_threshold={v_threshold:g} exactly: the reference fires "
                          f"on h - v_threshold >= 0; an implementation comparing with `>` "
                          f"does not)",
            SAME_POTENTIAL: " (both sides have this same potential but decide differently: "
                            "the firing rule differs)",
            ROUNDING: f" (rounding-level: within {rounding_ulps} ulp of the threshold)",
            REAL: " (real mismatch: far from the threshold)",
            UNKNOWN: "",
        }[self.kind]


@dataclass
class SpikeReport:
    """Differences between two spike trains.

    differing: spikes that differ; total: spikes compared; neurons: neurons
    (indices other than t) with at least one flip. Each such neuron's first
    flip is counted in `first_flip_kinds` (kind -> count): 'rounding' (reference
    margin within `rounding_ulps` ulp of the threshold), 'at_threshold' (margin
    exactly 0), 'same_potential' (the implementation's own potential equals the
    reference's there), 'real', or 'unknown' (no potential given there).
    `cascaded`: later flips in neurons whose first flip is rounding-level.
    """
    shape: tuple
    differing: int
    total: int
    neurons: int
    first: FirstFlip
    first_flip_kinds: dict
    cascaded: int
    v_threshold: float
    rounding_ulps: int

    @property
    def explained_by_rounding(self) -> bool:
        """True when every flipping neuron starts with a rounding-level flip."""
        return self.first_flip_kinds.get(ROUNDING, 0) == self.neurons

    def __str__(self) -> str:
        kinds = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in self.first_flip_kinds.items()
                          if n)
        return "\n".join([
            f"{self.differing} of {self.total} spikes differ, in {self.neurons} neuron(s); "
            f"shape {self.shape}",
            self.first.describe(self.v_threshold, self.rounding_ulps),
            f"first flip per neuron: {kinds}" + (
                f"; {self.cascaded} later flip(s) cascade from the rounding-level ones "
                f"(same neurons)" if self.first_flip_kinds.get(ROUNDING) else ""),
        ])


def _as_float(name: str, a, shape=None) -> np.ndarray:
    """`a` as a float64 array with -0.0 turned into +0.0 (spikes are events,
    not signed values); checks the shape against `shape`."""
    arr = np.asarray(a)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected a numeric or bool array, got dtype {arr.dtype}")
    if shape is not None and arr.shape != tuple(shape):
        raise AssertionError(f"{name}: shape {arr.shape} differs from the spikes' shape "
                             f"{tuple(shape)}")
    return arr.astype(np.float64) + 0.0


def _margins(h, v_threshold: float) -> np.ndarray:
    """`h - v_threshold` in h's own dtype (what the reference's heaviside sees)."""
    h = np.asarray(h)
    if h.dtype.kind != "f":
        h = h.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        return h - h.dtype.type(v_threshold)


def spike_report(actual, expected, *, h_seq=None, v_seq=None, actual_h_seq=None,
                 v_threshold: float = 1.0, rounding_ulps: int = 8) -> SpikeReport | None:
    """Compare spike trains `actual`, `expected`: [T, N, *] (0/1, any numeric
    or bool dtype); None when they are equal.

    h_seq: [T, N, *] the reference's potential after charge, before reset
      (SpikingJelly's `h_seq`); gives the margin `h - v_threshold` at every flip.
    v_seq: [T, N, *] the reference's potential after reset; used where h_seq is
      not given: it equals h where the reference did not fire.
    actual_h_seq: the implementation's own h; with it, a flip where both
      potentials are equal is reported as a different firing rule, and one
      where they differ near the threshold as rounding (without it, a
      reference margin of exactly 0 is reported as 'at_threshold').
    rounding_ulps: a flip is rounding-level when |h - v_threshold| is at most
      this many ulps of max(|h|, |v_threshold|) in h's dtype.
    """
    a, e = _as_float("actual", actual), _as_float("expected", expected)
    if a.shape != e.shape:
        raise AssertionError(f"spikes: actual shape {a.shape} differs from expected {e.shape}")
    if a.ndim < 1:
        raise ValueError("spikes: expected time-major arrays [T, N, *], got a 0-d array")
    first = first_divergence(a, e)
    if first is None:
        return None
    T = a.shape[0]
    differ = ~bit_equal(a, e).reshape(T, -1)                    # [T, M]
    flipped = np.flatnonzero(differ.any(axis=0))                # neuron columns
    t_first = differ[:, flipped].argmax(axis=0)                 # first flip per neuron

    margin = np.full(flipped.shape, np.nan)
    known = np.zeros(flipped.shape, dtype=bool)
    spacing = np.zeros(flipped.shape)
    if h_seq is not None or v_seq is not None:
        source = h_seq if h_seq is not None else v_seq
        ref_h = np.asarray(source)
        _as_float("h_seq" if h_seq is not None else "v_seq", ref_h, a.shape)
        flat_h = ref_h.reshape(T, -1)
        h_at = flat_h[t_first, flipped]
        known = np.ones(flipped.shape, dtype=bool)
        if h_seq is None:  # post-reset v equals h only where the reference did not fire
            known = e.reshape(T, -1)[t_first, flipped] == 0
        margin = _margins(h_at, v_threshold).astype(np.float64)
        dtype = h_at.dtype if h_at.dtype.kind == "f" else np.dtype(np.float64)
        with np.errstate(invalid="ignore"):
            scale = np.maximum(np.abs(h_at.astype(dtype)), dtype.type(abs(v_threshold)))
            spacing = np.spacing(scale).astype(np.float64)
    same = np.zeros(flipped.shape, dtype=bool)
    if actual_h_seq is not None and (h_seq is not None or v_seq is not None):
        act_h = np.asarray(actual_h_seq)
        _as_float("actual_h_seq", act_h, a.shape)
        same = bit_equal(act_h.reshape(T, -1)[t_first, flipped], h_at)

    with np.errstate(invalid="ignore"):
        near = np.abs(margin) <= rounding_ulps * spacing
    # without the implementation's own potential, a margin of exactly 0 points
    # at the firing rule; with it, equal potentials do, and unequal ones that
    # sit near the threshold are rounding
    exact_hit = (margin == 0) & (actual_h_seq is None)
    kinds = np.where(~known, UNKNOWN,
                     np.where(same, SAME_POTENTIAL,
                              np.where(exact_hit, AT_THRESHOLD,
                                       np.where(near, ROUNDING, REAL))))
    counts = {k: int(np.sum(kinds == k)) for k in (ROUNDING, AT_THRESHOLD, SAME_POTENTIAL,
                                                   REAL, UNKNOWN)}
    per_neuron = differ[:, flipped].sum(axis=0)
    cascaded = int(np.sum((per_neuron - 1)[kinds == ROUNDING]))

    # the overall first flip (lowest t, then lowest index) is one of the neurons' first flips
    col = int(np.ravel_multi_index(first.index, a.shape[1:])) if a.ndim > 1 else 0
    j = int(np.flatnonzero(flipped == col)[0])
    flip = FirstFlip(t=first.t, index=first.index, expected=first.expected,
                     actual=first.actual, margin=float(margin[j]) if known[j] else None,
                     kind=str(kinds[j]))
    return SpikeReport(shape=a.shape, differing=int(differ.sum()), total=a.size,
                       neurons=int(flipped.size), first=flip, first_flip_kinds=counts,
                       cascaded=cascaded, v_threshold=v_threshold,
                       rounding_ulps=rounding_ulps)


def assert_spikes_equal(actual, expected, *, h_seq=None, v_seq=None, actual_h_seq=None,
                        v_threshold: float = 1.0, rounding_ulps: int = 8,
                        allow_rounding_flips: bool = False, name: str = "spikes") -> None:
    """Assert two spike trains `[T, N, *]` are equal; on failure the message is
    the `spike_report` (first diverging (t, index), number of differing spikes,
    margin to threshold, rounding-level or real, cascades).

    allow_rounding_flips: pass when every flipping neuron's first flip is
      rounding-level (its later flips are then its cascade), for
      implementations that are not bit-exact (fused multiply-add, fast math).
      Needs `h_seq` (or `v_seq`), otherwise margins are unknown and it fails.
    See `spike_report` for the other arguments.
    """
    report = spike_report(actual, expected, h_seq=h_seq, v_seq=v_seq,
                          actual_h_seq=actual_h_seq, v_threshold=v_threshold,
                          rounding_ulps=rounding_ulps)
    if report is None or (allow_rounding_flips and report.explained_by_rounding):
        return
    raise AssertionError(f"{name}: {report}")


def grad_tolerance(dtype, steps: int = 1, fan_in: int = 1, ulps: float = 16.0) -> float:
    """Relative (normwise) tolerance for a gradient computed in `dtype` through
    `steps` time steps, each element summing `fan_in` terms:
    `ulps * eps(dtype) * (steps + fan_in)`, a linear bound on the rounding
    that BPTT (one rounding chain per step) and a sum accumulate."""
    if steps < 1 or fan_in < 1:
        raise ValueError(f"grad_tolerance: steps and fan_in must be >= 1, got steps={steps}, "
                         f"fan_in={fan_in}")
    return float(ulps * np.finfo(np.dtype(dtype)).eps * (steps + fan_in))


def assert_grads_close(actual, expected, *, steps: int = 1, fan_in: int = 1,
                       rtol: float | None = None, atol: float = 0.0, ulps: float = 16.0,
                       dtype=None, name: str = "gradient") -> None:
    """Assert `actual` is close to `expected` (any equal shapes), normwise:
    `max|actual - expected| <= atol + rtol * max|expected|` over finite
    entries, non-finite entries (NaN, +-inf) equal and at the same positions.

    rtol: defaults to `grad_tolerance(dtype, steps, fan_in, ulps)`, with
      `dtype` defaulting to expected's (float64 for non-float arrays).
    The message names the worst element, both values, how many elements are
    over the tolerance, the normwise error and how the tolerance was derived.
    """
    a, e = np.asarray(actual), np.asarray(expected)
    if a.shape != e.shape:
        raise AssertionError(f"{name}: actual shape {a.shape} differs from expected {e.shape}")
    dtype = np.dtype(dtype if dtype is not None else
                     (e.dtype if e.dtype.kind == "f" else np.float64))
    derived = rtol is None
    if derived:
        rtol = grad_tolerance(dtype, steps, fan_in, ulps)
    a64, e64 = a.astype(np.float64), e.astype(np.float64)
    fin_a, fin_e = np.isfinite(a64), np.isfinite(e64)
    scale = float(np.abs(e64[fin_e]).max()) if fin_e.any() else 0.0
    limit = atol + rtol * scale
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.where(fin_a & fin_e, np.abs(a64 - e64), 0.0)
    nonfinite_bad = (fin_a != fin_e) | (~fin_e & ~bit_equal(a64, e64))
    bad = nonfinite_bad | (diff > limit)
    if not bad.any():
        return
    worst = np.unravel_index(int(np.argmax(np.where(nonfinite_bad, np.inf, diff))), e.shape)
    error = relative_error(a64, e64)
    how = (f"rtol={rtol:.3g} = {ulps:g} ulp x eps({dtype.name}) x (steps={steps} + "
           f"fan_in={fan_in})" if derived else f"rtol={rtol:.3g}")
    raise AssertionError(
        f"{name}: {int(bad.sum())} of {e.size} element(s) off; normwise error "
        f"{error:.3g} (max|diff| / max|expected|, expected scale {scale:.6g}); "
        f"worst at {tuple(int(i) for i in worst)}: actual {float(a64[worst]):.9g}, "
        f"expected {float(e64[worst]):.9g}; {how}, atol={atol:g}")
