"""Izhikevich on the fused backends ('numpy-fused', 'opencl'): two states (v and
the adaptation w), both carried across calls and restored by reset_net.

- forward bit for bit, backward equal up to rounding, against the composed
  path ('numpy'), including gradients of graph-carrying initial v and w;
- against SpikingJelly's torch backend running for real (forward bits, and the
  gradients the legacy CuPy kernel gets wrong: it ignores dL/dw and scales
  dL/dv_init by an extra 1/tau);
- the shared reset Jacobian and the adaptation terms against autograd of the
  composed one-step formulas.
"""
import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import refsnn as rs
from refsnn import functional, fused, neurons as nrn, surrogate as sg
from refsnn import neuron_dynamics as nd
from refsnn.mathops import NUMPY

SURROGATES = ("Sigmoid", "ATan", "PiecewiseQuadratic", "Erf")
RESETS = (0.0, -0.2, None)


def opencl_available() -> bool:
    try:
        nrn.IzhikevichNode(step_mode="m", backend="opencl")
    except Exception:  # noqa: BLE001 - no pyopencl or no device
        return False
    return True


BACKENDS = ["numpy-fused", pytest.param("opencl", marks=pytest.mark.skipif(
    not opencl_available(), reason="no pyopencl or no OpenCL device"))]


def make(backend, v_reset, detach_reset, surrogate="ATan", **kw):
    params = dict(tau=3.0, v_c=0.8, a0=1.0, v_rest=-0.1, w_rest=0.05, tau_w=3.0, a=0.3, b=0.2)
    params.update(kw)
    return nrn.IzhikevichNode(v_reset=v_reset, detach_reset=detach_reset,
                              surrogate_function=getattr(sg, surrogate)(), step_mode="m",
                              backend=backend, store_v_seq=True, **params)


def run(node, x, weights, v0=None, w0=None):
    """Calls over x[0], x[1], ... with the state carried over; loss on every
    call's spikes and v_seq and on the final v and w. Initial states `v0`/`w0`
    (arrays) are set as graph-carrying tensors. Returns the forward values and
    the gradients of x (per call), v0 and w0."""
    dtype = x.dtype
    leaves = []
    for name, value in (("v", v0), ("w", w0)):
        if value is not None:
            leaf = rs.tensor(value, requires_grad=True)
            leaves.append(leaf)
            setattr(node, name, leaf * 1.0)        # an initial state with a graph
    xs = [rs.tensor(xi, requires_grad=True) for xi in x]
    g_spike, g_v_seq, g_v, g_w = (rs.tensor(w.astype(dtype)) for w in weights)
    loss, values = 0., []
    for xi in xs:
        spikes = node(xi)
        values += [spikes.data, node.v_seq.data, node.w.data]
        loss = loss + (spikes * g_spike).sum() + (node.v_seq * g_v_seq).sum()
    loss = loss + (node.v * g_v).sum() + (node.w * g_w).sum()
    loss.backward()
    return values + [node.v.data], [t.grad.data for t in xs + leaves]


def draw(seed, dtype, T=5, shape=(3, 4), calls=2):
    rng = np.random.default_rng(seed)
    x = (rng.random((calls, T) + shape) * 1.6 - 0.3).astype(dtype)
    weights = (rng.standard_normal((T,) + shape), rng.standard_normal((T,) + shape),
               rng.standard_normal(shape), rng.standard_normal(shape))
    v0 = rng.normal(0.0, 0.4, shape).astype(dtype)
    w0 = rng.normal(0.0, 0.2, shape).astype(dtype)
    return x, weights, v0, w0


def assert_close_grads(got, ref):
    for a, b in zip(got, ref):
        assert a.dtype == b.dtype and a.shape == b.shape
        rtol = 1e-5 if a.dtype == np.float32 else 1e-12
        scale = max(1.0, float(np.abs(b).max(initial=0.)))
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * scale)


def compare_with_composed(backend, cfg, with_initial_state):
    x, weights, v0, w0 = draw(cfg["seed"], cfg["dtype"])
    init = dict(v0=v0, w0=w0) if with_initial_state else {}
    results = []
    for b in ("numpy", backend):
        node = make(b, cfg["v_reset"], cfg["detach_reset"], cfg["surrogate"], a=cfg["a"],
                    b=cfg["b"])
        results.append(run(node, x, weights, **init))
    (ref_values, ref_grads), (values, grads) = results
    for a, b in zip(values, ref_values):
        assert a.dtype == cfg["dtype"]
        np.testing.assert_array_equal(a, b)
    assert len(grads) == len(ref_grads) == (4 if with_initial_state else 2)
    assert_close_grads(grads, ref_grads)


# ----------------------------------------------------------------------------
# fused == composed
# ----------------------------------------------------------------------------
@settings(max_examples=30)
@given(v_reset=st.sampled_from(RESETS), detach_reset=st.booleans(),
       surrogate=st.sampled_from(SURROGATES), dtype=st.sampled_from([np.float32, np.float64]),
       a=st.sampled_from([0.0, 0.3]), b=st.sampled_from([0.0, 0.2]),
       initial_state=st.booleans(), seed=st.integers(0, 2 ** 16))
def test_numpy_fused_equals_composed(v_reset, detach_reset, surrogate, dtype, a, b,
                                     initial_state, seed):
    cfg = dict(v_reset=v_reset, detach_reset=detach_reset, surrogate=surrogate, dtype=dtype,
               a=a, b=b, seed=seed)
    compare_with_composed("numpy-fused", cfg, initial_state)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("detach_reset", [False, True])
@pytest.mark.parametrize("v_reset", RESETS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_fused_equals_composed_with_graph_carrying_initial_state(backend, v_reset, detach_reset,
                                                                 dtype):
    cfg = dict(v_reset=v_reset, detach_reset=detach_reset, surrogate="Sigmoid", dtype=dtype,
               a=0.3, b=0.2, seed=7)
    compare_with_composed(backend, cfg, with_initial_state=True)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("use", ["spikes", "v_seq", "v", "w"])
def test_backward_from_one_output_only(backend, use):
    """Only one of the outputs reaches the loss (the w path alone included)."""
    x = (np.random.default_rng(1).random((6, 4, 3)) * 1.5).astype(np.float64)
    grads = []
    for b in ("numpy", backend):
        node = make(b, 0.0, False)
        xt = rs.tensor(x, requires_grad=True)
        spikes = node(xt)
        {"spikes": spikes, "v_seq": node.v_seq, "v": node.v, "w": node.w}[use].sum().backward()
        grads.append(xt.grad.data)
    assert np.abs(grads[0]).max() > 0
    np.testing.assert_allclose(grads[1], grads[0], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_reset_net_restores_v_and_w(backend):
    node = make(backend, -0.2, False)
    x = rs.tensor(np.random.default_rng(2).random((4, 2, 5)) * 2.0)
    first = node(x).data
    assert node.w.shape == (2, 5) and node.v.shape == (2, 5)
    functional.reset_net(node)
    assert node.v == -0.2 and node.w == 0.05
    np.testing.assert_array_equal(node(x).data, first)


def test_state_is_carried_across_calls():
    """Two fused calls equal one fused call over the joined sequence."""
    x = (np.random.default_rng(3).random((8, 2, 6)) * 1.8 - 0.2).astype(np.float32)
    whole, parts = make("numpy-fused", 0.0, False), make("numpy-fused", 0.0, False)
    spikes = whole(rs.tensor(x)).data
    joined = np.concatenate([parts(rs.tensor(x[:3])).data, parts(rs.tensor(x[3:])).data])
    np.testing.assert_array_equal(joined, spikes)
    np.testing.assert_array_equal(parts.w.data, whole.w.data)
    np.testing.assert_array_equal(parts.v.data, whole.v.data)


def test_backend_contract_takes_and_returns_w():
    spec = fused.NeuronSpec("Izhikevich", 1.0, 0.0, False, "ATan", (("alpha", 2.0),), "float32",
                            tau=2.0, v_rest=0.0, v_c=0.8, a0=1.0, tau_w=2.0, a=0.5, b=0.25)
    assert spec.states == ("v", "w") and fused.kind_states("LIF") == ("v",)
    x = np.array([[0.5], [3.0]], np.float32)
    with pytest.raises(ValueError, match=r"Izhikevich takes 1 extra state array\(s\) \(w\), got 0"):
        fused.NUMPY_FUSED.forward(spec, x, np.zeros(1, np.float32), None)
    spikes, v_seq, h_seq, w_seq = fused.NUMPY_FUSED.forward(
        spec, x, np.zeros(1, np.float32), None, np.zeros(1, np.float32))
    # step 0 (exact): h = 0 + (0.5 + 1 * 0 * (0 - 0.8) - 0) / 2 = 0.25, no spike,
    # w = 0 + 0.5 * (0.5 * 0.25 - 0) = 0.0625
    assert (h_seq[0, 0], spikes[0, 0], v_seq[0, 0], w_seq[0, 0]) == (0.25, 0.0, 0.25, 0.0625)
    # step 1 in float32, SpikingJelly's order: a spike, hard reset to 0, w jumps by b
    f = np.float32
    quadratic = (f(1.0) * (f(0.25) - f(0.0))) * (f(0.25) - f(0.8))
    h1 = f(0.25) + ((f(3.0) + quadratic) - f(0.0625)) / f(2.0)
    w1 = f(0.0625) + f(0.5) * (f(0.5) * (h1 - f(0.0)) - f(0.0625)) + f(0.25) * f(1.0)
    assert (h_seq[1, 0], spikes[1, 0], v_seq[1, 0], w_seq[1, 0]) == (h1, 1.0, 0.0, w1)


# ----------------------------------------------------------------------------
# against SpikingJelly (torch backend, for real)
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("detach_reset", [False, True])
@pytest.mark.parametrize("v_reset", [0.0, -0.2, None])
@pytest.mark.parametrize("backend", BACKENDS)
def test_fused_matches_spikingjelly(backend, v_reset, detach_reset, dtype):
    """Spikes, v_seq and the final w bit for bit; gradients of x, of the initial
    v and of the initial w (all graph-carrying) against SpikingJelly's autograd,
    with a loss on spikes, v_seq and the final w."""
    torch = pytest.importorskip("torch")
    sj_neuron = pytest.importorskip("spikingjelly.activation_based.neuron")
    from spikingjelly.activation_based import surrogate as sj_sg
    params = dict(tau=3.0, v_c=0.8, a0=1.0, v_threshold=1.0, v_reset=v_reset, v_rest=-0.1,
                  w_rest=0.05, tau_w=3.0, a=0.3, b=0.2, detach_reset=detach_reset)
    rng = np.random.default_rng(11)
    T, shape = 6, (3, 5)
    x = (rng.random((T,) + shape) * 1.6 - 0.3).astype(dtype)
    v0, w0 = rng.normal(0, 0.4, shape).astype(dtype), rng.normal(0, 0.2, shape).astype(dtype)
    g_s, g_v, g_w = (rng.standard_normal(s).astype(dtype)
                     for s in ((T,) + shape, (T,) + shape, shape))

    m = sj_neuron.IzhikevichNode(**params, surrogate_function=sj_sg.ATan(), step_mode="m",
                                 backend="torch", store_v_seq=True)
    tx, tv0, tw0 = (torch.tensor(a, requires_grad=True) for a in (x, v0, w0))
    m.v, m.w = tv0 * 1.0, tw0 * 1.0
    s = m(tx)
    ((s * torch.from_numpy(g_s)).sum() + (m.v_seq * torch.from_numpy(g_v)).sum()
     + (m.w * torch.from_numpy(g_w)).sum()).backward()
    expected = [t.detach().numpy() for t in (s, m.v_seq, m.w)]
    expected_grads = [t.grad.numpy() for t in (tx, tv0, tw0)]

    node = nrn.IzhikevichNode(**params, surrogate_function=sg.ATan(), step_mode="m",
                              backend=backend, store_v_seq=True)
    rx, rv0, rw0 = (rs.tensor(a, requires_grad=True) for a in (x, v0, w0))
    node.v, node.w = rv0 * 1.0, rw0 * 1.0
    out = node(rx)
    ((out * rs.tensor(g_s)).sum() + (node.v_seq * rs.tensor(g_v)).sum()
     + (node.w * rs.tensor(g_w)).sum()).backward()
    for got, want in zip((out.data, node.v_seq.data, node.w.data), expected):
        np.testing.assert_array_equal(got, want)
    assert np.abs(expected_grads[2]).max() > 0       # dL/dw reaches x, v0 and w0
    assert_close_grads([t.grad.data for t in (rx, rv0, rw0)], expected_grads)


# ----------------------------------------------------------------------------
# the local derivatives the backward is built from, against autograd
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["LIF", "Izhikevich"])
@pytest.mark.parametrize("detach_reset", [False, True])
@pytest.mark.parametrize("v_reset", RESETS)
def test_reset_jacobian_is_the_derivative_of_the_composed_reset(kind, v_reset, detach_reset):
    """`fused.reset_jacobian` (used by the NumPy backward and the OpenCL
    generator) equals dv/dh of the composed reset, spike path through the
    surrogate; for Izhikevich the hard reset's `s * v_reset` keeps its gradient
    when detached."""
    spec = fused.NeuronSpec(kind, 1.0, v_reset, detach_reset, "Sigmoid", (("alpha", 4.0),),
                            "float64")
    h = rs.tensor(np.linspace(-1.0, 3.0, 41), requires_grad=True)
    surrogate = sg.Sigmoid()
    spike = surrogate(nd.fire_input(h, 1.0))
    spike_d = spike.detach() if detach_reset else spike
    if kind == "Izhikevich":
        v, _ = nd.izhikevich_reset(h, h * 0.0, spike, spike_d, 1.0, v_reset, 0.2)
    else:
        v = nd.reset(h, spike_d, 1.0, v_reset)
    v.sum().backward()
    over = h.data - 1.0
    psi = sg.Sigmoid.grad_x(over, 1.0, NUMPY, alpha=4.0)
    jac = np.broadcast_to(fused.reset_jacobian(spec, over, h.data, psi), h.shape)
    np.testing.assert_allclose(jac, h.grad.data, rtol=1e-14, atol=1e-15)


def test_adaptation_jacobian_is_the_derivative_of_the_composed_step():
    """(dh/dw, dw'/dh, dw'/dw) of `fused.adaptation_jacobian` against autograd
    of one composed step: charge, adaptation and the spike-triggered jump."""
    spec = fused.NeuronSpec("Izhikevich", 1.0, 0.0, False, "ATan", (("alpha", 2.0),), "float64",
                            tau=3.0, v_rest=-0.1, v_c=0.8, a0=1.0, tau_w=2.5, a=0.3, b=0.2)
    rng = np.random.default_rng(4)
    w = rs.tensor(rng.normal(0, 0.3, 50), requires_grad=True)
    v, x = rng.normal(0, 0.5, 50), rng.normal(0.8, 0.6, 50)
    h = nd.izhikevich_charge(rs.tensor(x), rs.tensor(v), w, 3.0, -0.1, 0.8, 1.0)
    h_leaf = rs.tensor(h.data, requires_grad=True)
    z = nd.izhikevich_adaptation(w, h_leaf, 2.5, 0.3, -0.1)
    spike = sg.ATan()(nd.fire_input(h_leaf, 1.0))
    _, w_next = nd.izhikevich_reset(h_leaf, z, spike, spike, 1.0, 0.0, 0.2)
    psi = sg.ATan.grad_x(h.data - 1.0, 1.0, NUMPY, alpha=2.0)
    dh_dw, dw_dh, dw_dw = fused.adaptation_jacobian(spec, psi)
    h.sum().backward()
    np.testing.assert_allclose(w.grad.data, dh_dw, rtol=1e-15)
    w.grad = None
    w_next.sum().backward()
    np.testing.assert_allclose(h_leaf.grad.data, dw_dh, rtol=1e-14)
    np.testing.assert_allclose(w.grad.data, dw_dw, rtol=1e-15)
    assert fused.adaptation_jacobian(dataclasses.replace(spec, kind="QIF"), psi) is None
