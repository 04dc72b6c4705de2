"""The user-facing test toolkit: checks that refsnn (or your own `Function`s,
kernels and implementations) compute what they claim.

- `gradcheck`: autograd gradients against float64 central differences (here);
- `assert_spikes_equal`, `spike_report`, `assert_grads_close`,
  `grad_tolerance`: spike and gradient comparisons (`refsnn.comparisons`);
- `export_bundle`, `read_bundle`, `check_bundle`, `reference_impl`,
  `reference_outputs`, `assert_outputs_match`: golden bundles
  (`refsnn.golden`).
"""
from __future__ import annotations

import numpy as np

from .autograd import Tensor, no_grad
from .comparisons import assert_grads_close, assert_spikes_equal, grad_tolerance, spike_report
from .golden import (assert_outputs_match, check_bundle, export_bundle, read_bundle,
                     reference_impl, reference_outputs)

__all__ = ["gradcheck", "assert_spikes_equal", "spike_report", "assert_grads_close",
           "grad_tolerance", "export_bundle", "read_bundle", "check_bundle", "reference_impl",
           "reference_outputs", "assert_outputs_match"]


# ----------------------------------------------------------------------------
# float64 gradient check
# ----------------------------------------------------------------------------
def gradcheck(fn, inputs, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
              fast_mode: bool = False, seed: int = 0) -> bool:
    """Check the autograd gradients of `fn` against float64 central differences.

    fn: called as `fn(*inputs)`, returns a float64 Tensor of any shape. A
      non-scalar output is reduced to a scalar with a fixed random projection
      `sum(out * w)`, so every output element counts.
    inputs: a Tensor or a sequence of arguments; the Tensors with
      `requires_grad=True` are checked (they must be float64; other arguments
      pass through unchanged). The inputs' own `.grad` is left untouched.
    fast_mode: instead of one difference per element, compare one directional
      derivative per input along a random direction (a JVP against the VJP):
      two evaluations per input, for large inputs.

    An element passes when |analytic - numeric| <= atol + rtol * |numeric|.
    Raises AssertionError naming the input index and the worst element (both
    values) on failure; returns True on success.
    """
    inputs = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
    for i, x in enumerate(inputs):
        if isinstance(x, Tensor) and x.dtype.kind in "fc" and x.dtype != np.float64:
            raise TypeError(f"gradcheck: input {i} has dtype {x.dtype}; finite differences "
                            f"need float64 inputs (use .double())")
    checked = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input requires grad; pass Tensors created "
                         "with requires_grad=True")
    rng = np.random.default_rng(seed)

    # analytic: one backward of the projected output through fresh leaves
    leaves = list(inputs)
    for i in checked:
        leaves[i] = Tensor(inputs[i].data.copy(), requires_grad=True)
    out = fn(*leaves)
    if not isinstance(out, Tensor) or out.dtype != np.float64:
        raise TypeError("gradcheck: fn must return a float64 Tensor, got "
                        f"{getattr(out, 'dtype', type(out).__name__)}")
    weights = rng.standard_normal(out.shape) if out.ndim else np.ones(())
    if out.requires_grad:
        out.backward(weights)
    analytic = {i: (np.zeros(inputs[i].shape) if leaves[i].grad is None
                    else leaves[i].grad.data) for i in checked}

    def projected(i: int, x: np.ndarray) -> float:
        """sum(fn(...) * weights) with input i replaced by `x`, no graph."""
        args = list(inputs)
        args[i] = Tensor(x)
        with no_grad():
            return float(np.sum(fn(*args).data * weights))

    for i in checked:
        x = inputs[i].data.copy()
        if fast_mode:
            direction = rng.standard_normal(x.shape)
            numeric = (projected(i, x + eps * direction)
                       - projected(i, x - eps * direction)) / (2 * eps)
            along = float(np.sum(analytic[i] * direction))
            if not abs(along - numeric) <= atol + rtol * abs(numeric):
                raise AssertionError(
                    f"gradcheck: input {i} (shape {x.shape}): directional derivative along "
                    f"a random direction (seed={seed}) mismatch: analytic {along:.10g}, "
                    f"numeric {numeric:.10g} (atol={atol:g}, rtol={rtol:g})")
            continue
        numeric = np.empty(x.shape)
        flat = x.reshape(-1)  # a view: x is a fresh contiguous copy
        for j in range(flat.size):
            original = flat[j]
            flat[j] = original + eps
            plus = projected(i, x)
            flat[j] = original - eps
            minus = projected(i, x)
            flat[j] = original
            numeric.flat[j] = (plus - minus) / (2 * eps)
        _assert_close(i, analytic[i], numeric, atol, rtol)
    return True


def _assert_close(i: int, analytic: np.ndarray, numeric: np.ndarray,
                  atol: float, rtol: float) -> None:
    excess = np.abs(analytic - numeric) - (atol + rtol * np.abs(numeric))
    bad = ~(excess <= 0)  # NaN counts as a failure
    if not bad.any():
        return
    worst = np.unravel_index(np.argmax(np.where(np.isnan(excess), np.inf, excess)),
                             excess.shape)
    raise AssertionError(
        f"gradcheck: input {i} (shape {analytic.shape}): gradient mismatch in "
        f"{int(bad.sum())} of {bad.size} element(s) (atol={atol:g}, rtol={rtol:g}); "
        f"worst at element {tuple(int(k) for k in worst)}: analytic "
        f"{float(analytic[worst]):.10g}, numeric {float(numeric[worst]):.10g}")
