"""Run one function in refsnn and in PyTorch on the same inputs; compare values and gradients.

Every op test goes through `compare_with_torch` (the idea of early tinygrad's
`helper_test_op`). The computation is written once as `fn(lib, *tensors)`
against the API both libraries share: methods (`a * b`, `a.sum(1)`, `a.exp()`)
and the module-level functions reached through `lib`, which is `refsnn` or
`torch` (`lib.where`, `lib.stack`, `lib.maximum`).

Tolerances (relative to the largest magnitude of the PyTorch result):
float64 1e-10, float32 1e-5; `exact=True` demands identical bits.
"""
from __future__ import annotations

import numpy as np
import pytest

import refsnn as rs

RTOL = {np.dtype(np.float64): 1e-10, np.dtype(np.float32): 1e-5}


def compare_with_torch(fn, arrays, requires_grad=None, rtol=None, exact: bool = False,
                       seed: int = 0):
    """Run `fn(refsnn, *tensors)` and `fn(torch, *tensors)` on tensors made from
    the same `arrays`; assert equal dtypes and shapes, close values, and close
    gradients of every input that requires grad.

    arrays: np.ndarrays (their dtype is used as is) or Python scalars / other
      arguments, passed through unchanged to both functions.
    requires_grad: one flag per array (default: every floating array).
    The backward pass seeds each floating output with the same random
    upstream gradient in both libraries (`out.backward(w)`; several outputs
    go through `sum((out_k * w_k).sum())`).
    Returns the refsnn outputs (a tuple).
    """
    torch = pytest.importorskip("torch")
    is_array = [isinstance(a, np.ndarray) for a in arrays]
    if requires_grad is None:
        requires_grad = [ok and a.dtype.kind == "f" for ok, a in zip(is_array, arrays)]
    rs_in = [rs.tensor(a, requires_grad=bool(g)) if ok else a
             for a, ok, g in zip(arrays, is_array, requires_grad)]
    th_in = [torch.tensor(a, requires_grad=bool(g)) if ok else a
             for a, ok, g in zip(arrays, is_array, requires_grad)]

    rs_out, th_out = _as_tuple(fn(rs, *rs_in)), _as_tuple(fn(torch, *th_in))
    assert len(rs_out) == len(th_out), f"{len(rs_out)} outputs vs torch's {len(th_out)}"
    for k, (r, t) in enumerate(zip(rs_out, th_out)):
        _assert_matches(f"output {k}", r.data, t.detach().numpy(), rtol, exact)

    rng = np.random.default_rng(seed)
    pairs = [(r, t) for r, t in zip(rs_out, th_out) if t.requires_grad]
    assert [r.requires_grad for r in rs_out] == [t.requires_grad for t in th_out], \
        "requires_grad of the outputs differs from torch"
    if not pairs:
        return rs_out
    weights = [rng.standard_normal(t.shape).astype(t.detach().numpy().dtype) for _, t in pairs]
    if len(pairs) == 1:
        pairs[0][0].backward(weights[0])
        pairs[0][1].backward(torch.from_numpy(weights[0]))
    else:
        sum(((r * rs.tensor(w)).sum() for (r, _), w in zip(pairs, weights))).backward()
        sum(((t * torch.from_numpy(w)).sum() for (_, t), w in zip(pairs, weights))).backward()
    for i, (r, t) in enumerate(zip(rs_in, th_in)):
        if not isinstance(r, rs.Tensor) or not r.requires_grad:
            continue
        assert (r.grad is None) == (t.grad is None), \
            f"input {i}: grad is {r.grad!r}, torch's is {t.grad!r}"
        if r.grad is not None:
            _assert_matches(f"grad of input {i}", r.grad.data, t.grad.numpy(), rtol, exact)
    return rs_out


def _as_tuple(out):
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


def _assert_matches(what: str, actual: np.ndarray, expected: np.ndarray, rtol, exact: bool):
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype}, torch's {expected.dtype}"
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape}, torch's {expected.shape}"
    if exact or expected.dtype.kind not in "fc":
        np.testing.assert_array_equal(actual, expected, err_msg=what)
        return
    rtol = RTOL[expected.dtype] if rtol is None else rtol
    finite = np.isfinite(expected)
    scale = float(np.abs(expected[finite]).max()) if finite.any() else 0.0
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale,
                               equal_nan=True, err_msg=what)
