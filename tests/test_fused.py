"""The fused multi-step op (`backend='numpy-fused'`) against the composed path:
forward bit for bit, gradients (input, state carried between calls, PLIF's w)
equal up to rounding; plus the backend interface and the step tracer."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import refsnn as rs
from refsnn import fused, neurons as nrn, surrogate as sg
from refsnn.mathops import NUMPY

from test_neurons import configs, make

FUSED = ("IF", "LIF", "PLIF", "QIF", "EIF")
SURROGATES = (sg.Sigmoid, sg.ATan, sg.PiecewiseQuadratic, sg.Erf, sg.SoftSign,
              sg.PiecewiseExp)


def run(node, x, g_spike, g_v_seq, g_v, calls=2):
    """`calls` consecutive multi-step calls (state carried over); a loss on the
    spikes, the recorded v_seq and the final v. Returns values and grads."""
    xs = [rs.tensor(xi, requires_grad=True) for xi in x[:calls]]
    loss, outputs = 0., []
    for xi in xs:
        spikes = node(xi)
        outputs += [spikes.data, node.v_seq.data]
        loss = loss + (spikes * rs.tensor(g_spike)).sum() + (node.v_seq * rs.tensor(g_v_seq)).sum()
    loss = loss + (node.v * rs.tensor(g_v)).sum()
    loss.backward()
    grads = [xi.grad.data for xi in xs] + [p.grad.data for p in node.parameters()]
    return outputs + [node.v.data], grads


def assert_close_grads(got, ref):
    """Equal up to rounding in the gradient's dtype (PLIF's w stays float32)."""
    for a, b in zip(got, ref):
        assert a.dtype == b.dtype
        rtol = 2e-4 if a.dtype == np.float32 else 1e-10
        scale = max(1.0, float(np.abs(b).max(initial=0.)))
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * scale)


@settings(max_examples=40)
@given(configs(kinds=FUSED, surrogates=SURROGATES))
def test_fused_equals_composed(cfg):
    rng = np.random.default_rng(cfg["seed"])
    shape = (2, cfg["T"]) + cfg["shape"]
    dtype = cfg["dtype"]
    x = (rng.random(shape) * 1.6 - 0.2).astype(dtype)
    g_spike, g_v_seq = (rng.standard_normal(shape[1:]).astype(dtype) for _ in range(2))
    g_v = rng.standard_normal(shape[2:]).astype(dtype)
    ref = make(cfg["kind"], cfg, "m")
    node = make(cfg["kind"], cfg, "m", backend="numpy-fused")
    ref.store_v_seq = node.store_v_seq = True
    ref_values, ref_grads = run(ref, x, g_spike, g_v_seq, g_v)
    values, grads = run(node, x, g_spike, g_v_seq, g_v)
    for a, b in zip(values, ref_values):
        np.testing.assert_array_equal(a, b)
    assert_close_grads(grads, ref_grads)


@pytest.mark.parametrize("use", ["spikes", "v_seq", "v"])
def test_fused_backward_from_one_output_only(use):
    x = (np.random.default_rng(0).random((5, 4, 3)) * 1.5).astype(np.float64)
    grads = []
    for backend in ("numpy", "numpy-fused"):
        node = nrn.LIFNode(tau=3., step_mode="m", backend=backend, store_v_seq=True,
                           surrogate_function=sg.ATan())
        xt = rs.tensor(x, requires_grad=True)
        spikes = node(xt)
        {"spikes": spikes, "v_seq": node.v_seq, "v": node.v}[use].sum().backward()
        grads.append(xt.grad.data)
    np.testing.assert_allclose(grads[1], grads[0], rtol=1e-12, atol=1e-12)


def test_fused_without_grad_records_nothing():
    node = nrn.ParametricLIFNode(step_mode="m", backend="numpy-fused")
    node.w.requires_grad = False
    out = node(rs.rand(3, 2))
    assert not out.requires_grad and not node.v.requires_grad
    with rs.no_grad():
        node.w.requires_grad = True
        node.reset()
        assert not node(rs.rand(3, 2)).requires_grad


def test_fused_rejects_what_it_cannot_run():
    node = nrn.LIFNode(step_mode="m", backend="numpy-fused",
                       surrogate_function=sg.Sigmoid(spiking=False))
    with pytest.raises(NotImplementedError, match="spiking"):
        node(rs.rand(2, 3))
    spec = fused.NeuronSpec("KLIF", 1., 0., False, "Sigmoid", (("alpha", 4.),), "float32")
    assert "not fused" in fused.NUMPY_FUSED.supports(spec)
    with pytest.raises(ValueError, match="unknown fused backend"):
        fused.get_backend("cuda")


def test_backend_forward_contract():
    """forward(spec, x_seq [T, M], v0 [M], k) -> spike/v/h sequences as documented."""
    spec = fused.NeuronSpec("LIF", 1., None, False, "ATan", (("alpha", 2.),), "float32",
                            tau=2., decay_input=True)
    x = np.array([[1.5, 0.25], [1.0, 0.25]], np.float32)     # exact binary fractions
    spikes, v_seq, h_seq = fused.NUMPY_FUSED.forward(spec, x, np.zeros(2, np.float32), None)
    np.testing.assert_array_equal(h_seq, [[0.75, 0.125], [0.875, 0.1875]])
    np.testing.assert_array_equal(spikes, [[0., 0.], [0., 0.]])
    np.testing.assert_array_equal(v_seq, h_seq)
    spikes, v_seq, h_seq = fused.NUMPY_FUSED.forward(spec, x * 3, np.zeros(2, np.float32), None)
    np.testing.assert_array_equal(spikes[0], [1., 0.])
    np.testing.assert_array_equal(v_seq[0], h_seq[0] - spikes[0])   # soft reset


def test_step_program_equals_direct_evaluation():
    """A traced formula (hoisted 0-dim parts, reused temporaries, outputs that
    alias inputs or each other) computes what the formula computes on arrays."""
    def formula(x, v, k, ops):
        a = (1. - k) * 2.                     # 0-dim only: hoisted
        h = v * a + x / 3.
        e = ops.exp(-h) - h * h
        return h, e, v, e, a                   # input, repeated and hoisted outputs
    program = fused._StepProgram(formula, ("x", "v", "k"), uniform={"k"}, n_outputs=5)
    rng = np.random.default_rng(0)
    x, v = rng.random(6).astype(np.float32), rng.random(6).astype(np.float32)
    k = np.asarray(0.3, np.float32)
    expected = formula(x, v, k, NUMPY)
    slots = program.bind({2: k}, (6,), np.float32)
    outs = [np.empty(6, np.float32) for _ in range(5)]
    slots[0], slots[1] = x, v
    slots[3:8] = outs
    program.run(slots)
    for got, want in zip(outs, expected):
        np.testing.assert_array_equal(got, np.broadcast_to(want, (6,)))
