"""The numpy-fused backend's reuse of [T, M] result buffers (`fused._empty`, a `refsnn.result_pool.ResultPool`)
and its chunking over neurons: results still held are never overwritten, and
chunked runs equal one-chunk runs."""
import numpy as np
import pytest

from refsnn import fused
from refsnn.result_pool import ALIGN


def lif_spec(surrogate="Sigmoid", params=(("alpha", 4.0),), v_reset=0.0, detach=False):
    return fused.NeuronSpec(kind="LIF", v_threshold=1.0, v_reset=v_reset, detach_reset=detach,
                            surrogate=surrogate, surrogate_params=params, dtype="float32",
                            decay_input=True, tau=2.0)


def test_held_results_are_not_reused():
    rng = np.random.default_rng(0)
    spec, b = lif_spec(), fused.NUMPY_FUSED
    x1, x2 = (rng.random((4, 50), dtype=np.float32) * 2 for _ in range(2))
    v0 = np.zeros(50, np.float32)
    first = b.forward(spec, x1, v0, None)
    copies = [a.copy() for a in first]
    view = first[2][1]                  # a view keeps its base alive
    del first
    second = b.forward(spec, x2, v0, None)
    assert all(a.ctypes.data % ALIGN == 0 for a in second)   # fresh, cache-line aligned
    assert not any(np.shares_memory(view, a) for a in second)
    np.testing.assert_array_equal(view, copies[2][1])


def test_freed_results_are_reused():
    spec, b = lif_spec(), fused.NUMPY_FUSED
    x, v0 = np.ones((3, 40), np.float32), np.zeros(40, np.float32)
    ids = {id(a) for a in b.forward(spec, x, v0, None)}   # all freed at once
    assert ids == {id(a) for a in b.forward(spec, x, v0, None)}


@pytest.mark.parametrize("surrogate,params,v_reset,detach", [
    ("Sigmoid", (("alpha", 4.0),), 0.0, False), ("ATan", (("alpha", 2.0),), None, False),
    ("Sigmoid", (("alpha", 3),), -0.5, True), ("PiecewiseQuadratic", (("alpha", 1.0),), 0.0, False)])
def test_chunked_equals_one_chunk(monkeypatch, surrogate, params, v_reset, detach):
    rng = np.random.default_rng(1)
    spec, b = lif_spec(surrogate, params, v_reset, detach), fused.NUMPY_FUSED
    T, M = 5, 301
    x = (rng.random((T, M), dtype=np.float32) * 1.5).astype(np.float32)
    v0 = rng.random(M, dtype=np.float32)
    gs, gv = (rng.standard_normal((T, M)).astype(np.float32) for _ in range(2))
    results = []
    for chunk in (64, 10**9):
        monkeypatch.setattr(fused, "CHUNK", chunk)
        out = [a.copy() for a in b.forward(spec, x, v0, None)]
        grads = [a.copy() for a in b.backward(spec, fused.Saved(h_seq=out[2]), gs, gv)[:2]]
        results.append(out + grads)
    for a, e in zip(*results):
        np.testing.assert_array_equal(a, e)
