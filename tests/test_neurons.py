"""Neurons checked without torch: against independent NumPy re-implementations of
SpikingJelly's formulas (bit for bit), against float64 finite differences (a
smooth surrogate makes the whole neuron differentiable), and against each other
(single-step loop == step_mode 'm' == clock_driven MultiStep* class)."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import refsnn as rs
from refsnn import functional, neurons as nrn, surrogate as sg

KINDS = ("IF", "LIF", "PLIF", "QIF", "EIF", "Izhikevich", "KLIF", "General")
MULTISTEP = {"IF": nrn.MultiStepIFNode, "LIF": nrn.MultiStepLIFNode,
             "PLIF": nrn.MultiStepParametricLIFNode, "EIF": nrn.MultiStepEIFNode,
             "General": nrn.MultiStepGeneralNode}
SURROGATES = (sg.Sigmoid, sg.ATan, sg.PiecewiseQuadratic, sg.Erf)


def make(kind, cfg, step_mode="s", backend="numpy", multistep_class=False):
    """A neuron of `kind` with the hyper-parameters of `cfg`; the clock_driven
    MultiStep* class when `multistep_class`."""
    common = dict(v_reset=cfg["v_reset"], detach_reset=cfg["detach_reset"],
                  surrogate_function=cfg["surrogate"])
    mode = {} if multistep_class else dict(step_mode=step_mode)
    tau, decay = cfg["tau"], cfg["decay_input"]
    if multistep_class:
        cls = MULTISTEP[kind]
        extra = {"IF": {}, "LIF": dict(tau=tau, decay_input=decay),
                 "PLIF": dict(init_tau=tau, decay_input=decay), "EIF": dict(tau=tau),
                 "General": dict(a=0.6, b=0.9, c=0.05)}[kind]
        return cls(**extra, **common, backend=backend)
    if kind == "IF":
        return nrn.IFNode(**common, **mode, backend=backend)
    if kind == "LIF":
        return nrn.LIFNode(tau=tau, decay_input=decay, **common, **mode, backend=backend)
    if kind == "PLIF":
        return nrn.ParametricLIFNode(init_tau=tau, decay_input=decay, **common, **mode,
                                     backend=backend)
    if kind == "QIF":
        return nrn.QIFNode(tau=tau, **common, **mode, backend=backend)
    if kind == "EIF":
        return nrn.EIFNode(tau=tau, **common, **mode, backend=backend)
    if kind == "Izhikevich":
        return nrn.IzhikevichNode(tau=tau, a=0.3, b=0.2, v_rest=0., **common, **mode)
    if kind == "KLIF":
        return nrn.KLIFNode(scale_reset=cfg["scale_reset"], tau=tau, decay_input=decay,
                            **common, **mode)
    return nrn.GeneralNode(0.6, 0.9, 0.05, **common, **mode)


@st.composite
def configs(draw, kinds=KINDS, surrogates=SURROGATES):
    kind = draw(st.sampled_from(kinds))
    v_reset = draw(st.sampled_from([0., None, -0.1]))
    return dict(kind=kind, v_reset=v_reset, detach_reset=draw(st.booleans()),
                decay_input=draw(st.booleans()), tau=draw(st.sampled_from([2., 3., 1.7])),
                scale_reset=draw(st.booleans()),
                surrogate=draw(st.sampled_from(surrogates))(),
                dtype=draw(st.sampled_from([np.float32, np.float64])),
                T=draw(st.integers(1, 6)), shape=draw(st.sampled_from([(3,), (2, 3)])),
                seed=draw(st.integers(0, 2 ** 16)))


def draw_inputs(cfg):
    """x_seq [T, *shape] around the threshold, loss weights for spikes and v."""
    rng = np.random.default_rng(cfg["seed"])
    shape = (cfg["T"],) + cfg["shape"]
    x = (rng.random(shape) * 1.6 - 0.2).astype(cfg["dtype"])
    g_spike = rng.standard_normal(shape).astype(cfg["dtype"])
    g_v = rng.standard_normal(shape[1:]).astype(cfg["dtype"])
    return x, g_spike, g_v


def run_loop(node, x, g_spike, g_v):
    """Step mode 's', one call per step; returns spikes, final v, grads."""
    xt = rs.tensor(x, requires_grad=True)
    spikes = rs.stack([node(xt[t]) for t in range(x.shape[0])])
    return _finish(node, xt, spikes, g_spike, g_v)


def run_multi(node, x, g_spike, g_v):
    xt = rs.tensor(x, requires_grad=True)
    return _finish(node, xt, node(xt), g_spike, g_v)


def _finish(node, xt, spikes, g_spike, g_v):
    loss = (spikes * rs.tensor(g_spike)).sum() + (node.v * rs.tensor(g_v)).sum()
    loss.backward()
    params = [p.grad.data for p in node.parameters()]
    return spikes.data, node.v.data, xt.grad.data, params


# ----------------------------------------------------------------------------
# the three composed forms agree bit for bit
# ----------------------------------------------------------------------------
@settings(max_examples=40)
@given(configs())
def test_multistep_equals_singlestep_loop(cfg):
    x, g_spike, g_v = draw_inputs(cfg)
    kind = cfg["kind"]
    ref = run_loop(make(kind, cfg, "s"), x, g_spike, g_v)
    runs = [run_multi(make(kind, cfg, "m"), x, g_spike, g_v)]
    if kind in MULTISTEP:
        runs.append(run_multi(make(kind, cfg, multistep_class=True), x, g_spike, g_v))
    for got in runs:
        for a, b in zip(got[:3], ref[:3]):
            assert a.dtype == b.dtype == cfg["dtype"]
            np.testing.assert_array_equal(a, b)
        for a, b in zip(got[3], ref[3]):
            np.testing.assert_array_equal(a, b)


# ----------------------------------------------------------------------------
# forward values: independent NumPy re-implementation of SpikingJelly's formulas
# ----------------------------------------------------------------------------
def reference_forward(kind, x, v_reset, tau, decay_input, v_th=1.0):
    """SpikingJelly 0.0.0.0.14 torch-backend forward, written out in NumPy
    (reference section 2.3); scalars are rounded to x's dtype as torch does."""
    f = x.dtype.type
    v = np.full(x.shape[1:], 0. if v_reset is None else v_reset, x.dtype)
    w = np.zeros_like(v)
    spikes = []
    for xt in x:
        if kind == "IF":
            h = v + xt
        elif kind == "LIF":
            r0 = v_reset is None or v_reset == 0.
            if decay_input:
                h = v + (xt - v) / f(tau) if r0 else v + (xt - (v - f(v_reset))) / f(tau)
            else:
                h = v * f(1. - 1. / tau) + xt if r0 else (v - (v - f(v_reset)) / f(tau)) + xt
        elif kind == "QIF":   # v_rest=0, v_c=0.8, a0=1
            h = v + (xt + (f(1.) * (v - f(0.))) * (v - f(0.8))) / f(tau)
        elif kind == "Izhikevich":   # a0=1, v_c=0.8, v_rest=0, tau_w=2, a=0.3, b=0.2
            h = v + (((xt + (f(1.) * (v - f(0.))) * (v - f(0.8))) - w) / f(tau))
            w = w + f(1. / 2.) * (f(0.3) * (h - f(0.)) - w)
        s = (h - f(v_th) >= 0).astype(x.dtype)
        v = h - s * f(v_th) if v_reset is None else (f(1.) - s) * h + s * f(v_reset)
        if kind == "Izhikevich":
            w = w + f(0.2) * s
        spikes.append(s)
    return np.stack(spikes), v


@settings(max_examples=40)
@given(configs(kinds=("IF", "LIF", "QIF", "Izhikevich")))
def test_forward_matches_numpy_reimplementation(cfg):
    x, _, _ = draw_inputs(cfg)
    node = make(cfg["kind"], cfg, "m")
    spikes = node(rs.tensor(x)).data
    ref_spikes, ref_v = reference_forward(cfg["kind"], x, cfg["v_reset"], cfg["tau"],
                                          cfg["decay_input"])
    np.testing.assert_array_equal(spikes, ref_spikes)
    np.testing.assert_array_equal(node.v.data, ref_v)


# ----------------------------------------------------------------------------
# gradients: float64 finite differences with a smooth (non-spiking) surrogate
# ----------------------------------------------------------------------------
def _loss_of(kind, cfg, x, g_spike, g_v, w=None):
    node = make(kind, cfg, "m")
    if kind == "PLIF":   # w in float64 too, so that w +- eps is resolved
        node.w.data = np.asarray(node.w.data if w is None else w, np.float64)
    xt = rs.tensor(x, requires_grad=True)
    out = node(xt)
    loss = (out * rs.tensor(g_spike)).sum() + (node.v * rs.tensor(g_v)).sum()
    return loss, xt, node


@settings(max_examples=25)
@given(configs(kinds=("IF", "LIF", "PLIF", "QIF", "EIF", "Izhikevich", "General")))
def test_composed_gradient_matches_finite_differences(cfg):
    cfg = dict(cfg, dtype=np.float64, surrogate=sg.Sigmoid(alpha=2.0, spiking=False),
               detach_reset=False)
    kind = cfg["kind"]
    x, g_spike, g_v = draw_inputs(cfg)
    loss, xt, node = _loss_of(kind, cfg, x, g_spike, g_v)
    loss.backward()
    eps = 1e-6
    numeric = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += eps
        xm[i] -= eps
        numeric[i] = (_loss_of(kind, cfg, xp, g_spike, g_v)[0].item()
                      - _loss_of(kind, cfg, xm, g_spike, g_v)[0].item()) / (2 * eps)
    np.testing.assert_allclose(xt.grad.data, numeric, rtol=1e-5, atol=1e-7)
    if kind == "PLIF":
        w0 = float(node.w.data)
        numeric_w = (_loss_of(kind, cfg, x, g_spike, g_v, w0 + eps)[0].item()
                     - _loss_of(kind, cfg, x, g_spike, g_v, w0 - eps)[0].item()) / (2 * eps)
        np.testing.assert_allclose(float(node.w.grad.data), numeric_w, rtol=1e-5, atol=1e-7)


def test_detach_reset_cuts_the_spike_path_of_the_reset():
    """With a spike-dependent loss only at the last step, the gradient to an
    earlier input flows through the reset; detaching changes it by exactly
    the spike term of the reset Jacobian (checked on one neuron by hand)."""
    x = np.array([[1.2], [0.3]], np.float64)
    grads = {}
    for detach in (False, True):
        node = nrn.IFNode(step_mode="m", detach_reset=detach,
                          surrogate_function=sg.Sigmoid(alpha=4.0))
        xt = rs.tensor(x, requires_grad=True)
        node(xt)
        node.v.sum().backward()
        grads[detach] = xt.grad.data[0, 0]
    # h0 = 1.2 spikes; v0 = (1-s)h0 + s*0; v1 = v0 + 0.3 - s1*... (h1 = 0.3 < 1: no spike)
    sig = 1 / (1 + math.exp(-4.0 * 0.2))
    psi = 4.0 * sig * (1 - sig)
    h1 = 0.3
    s1_psi = 4.0 * (1 / (1 + math.exp(-4.0 * (h1 - 1)))) * (1 - 1 / (1 + math.exp(-4.0 * (h1 - 1))))
    r1 = 1 + (0 - h1) * s1_psi           # dv1/dh1 (no spike at step 1)
    assert grads[True] == pytest.approx((1 - 1) * r1)
    assert grads[False] == pytest.approx((0 + (0 - 1.2) * psi) * r1)


# ----------------------------------------------------------------------------
# memory semantics
# ----------------------------------------------------------------------------
def test_v_starts_as_float_and_reset_restores_it():
    node = nrn.LIFNode(v_reset=-0.2)
    assert node.v == -0.2 and isinstance(node.v, float)
    node(rs.rand(2, 3))
    assert isinstance(node.v, rs.Tensor) and node.v.shape == (2, 3)
    functional.reset_net(node)
    assert node.v == -0.2 and isinstance(node.v, float)
    soft = nrn.IFNode(v_reset=None)
    assert soft.v == 0. and isinstance(soft.v, float)


def test_memories_are_not_state_and_parameters_are():
    assert list(nrn.LIFNode().state_dict()) == []
    assert list(nrn.QIFNode().state_dict()) == []
    plif = nrn.ParametricLIFNode()
    assert list(plif.state_dict()) == ["w"]
    w = plif.state_dict()["w"]
    assert w.shape == () and w.dtype == np.float32 and w == 0 and np.signbit(w)
    assert plif.w.requires_grad
    assert nrn.ParametricLIFNode(init_tau=3.).w.data == np.float32(-math.log(2.))
    assert list(nrn.KLIFNode().state_dict()) == ["k"]
    assert [n for n, _ in nrn.IzhikevichNode().named_memories()] == ["v", "w"]
    assert [n for n, _ in nrn.MultiStepLIFNode().named_memories()] == \
        ["v", "v_threshold", "v_reset", "v_seq"]


def test_clock_driven_thresholds_are_memories_activation_based_are_not():
    cd, ab = nrn.MultiStepIFNode(), nrn.IFNode()
    cd.v_threshold = ab.v_threshold = 0.5
    cd.reset()
    ab.reset()
    assert cd.v_threshold == 1.0 and ab.v_threshold == 0.5


def test_store_v_seq():
    node = nrn.LIFNode(step_mode="m", store_v_seq=True)
    assert node.v_seq is None
    x = rs.rand(4, 2, 3)
    node(x)
    assert node.v_seq.shape == (4, 2, 3)
    np.testing.assert_array_equal(node.v_seq.data[-1], node.v.data)
    node.reset()
    assert node.v_seq is None
    single = nrn.LIFNode(store_v_seq=True)
    single(x[0])
    assert single.v_seq is None
    assert not hasattr(nrn.LIFNode(step_mode="m"), "v_seq")


def test_detach_cuts_the_state_graph():
    node = nrn.LIFNode()
    node(rs.rand(3, requires_grad=True))
    assert node.v.requires_grad
    functional.detach_net(node)
    assert not node.v.requires_grad


def test_eval_mode_if_lif_have_no_graph_and_use_the_eval_charge():
    x = (np.random.default_rng(3).random((5, 4)) * 1.5).astype(np.float32)
    for node in (nrn.IFNode(step_mode="m"), nrn.LIFNode(tau=3., decay_input=False)):
        node.eval()
        y = node(rs.tensor(x, requires_grad=True)) if node.step_mode == "m" else \
            node(rs.tensor(x[0], requires_grad=True))
        assert not y.requires_grad
    # activation_based eval LIF, hard reset, no input decay: v - (v - v_reset)/tau + x
    node = nrn.LIFNode(tau=3., decay_input=False, step_mode="m").eval()
    spikes = node(rs.tensor(x)).data
    v = np.zeros(4, np.float32)
    for t in range(5):
        h = (v - (v - np.float32(0.)) / np.float32(3.)) + x[t]
        s = (h >= np.float32(1.)).astype(np.float32)
        v = np.float32(0.) * s + (np.float32(1.) - s) * h
        np.testing.assert_array_equal(spikes[t], s)
    np.testing.assert_array_equal(node.v.data, v)
    # the clock_driven class and PLIF keep the graph in eval mode
    cd = nrn.MultiStepLIFNode().eval()
    assert cd(rs.tensor(x, requires_grad=True)).requires_grad


def test_reprs_follow_spikingjelly():
    assert repr(nrn.MultiStepIFNode()) == (
        "MultiStepIFNode(\n  v_threshold=1.0, v_reset=0.0, detach_reset=False, backend=numpy\n"
        "  (surrogate_function): Sigmoid(alpha=4.0, spiking=True)\n)")
    assert nrn.LIFNode(step_mode="m").extra_repr() == \
        "v_threshold=1.0, v_reset=0.0, detach_reset=False, step_mode=m, backend=numpy, tau=2.0"
    assert nrn.ParametricLIFNode(init_tau=2.).extra_repr().endswith("tau=2.0")
    assert nrn.MultiStepLIFNode(tau=3.).extra_repr() == \
        "v_threshold=1.0, v_reset=0.0, detach_reset=False, tau=3.0, backend=numpy"


def test_liaf_returns_the_analog_output():
    node = nrn.LIAFNode(lambda z: z * 2.0, True, tau=2.)
    x = rs.tensor(np.array([1.5, 0.5], np.float32))
    y = node(x)
    h = np.array([0.75, 0.25], np.float32)
    np.testing.assert_array_equal(y.data, (h - np.float32(1.)) * np.float32(2.))
    np.testing.assert_array_equal(node.v.data, h)      # no spike: v = h


def test_klif_soft_reset_charges_as_if_v_reset_were_zero():
    x = rs.tensor(np.array([[2.5, 0.4], [1.0, 0.9]], np.float32))
    soft = nrn.KLIFNode(v_reset=None, step_mode="m")
    hard = nrn.KLIFNode(v_reset=0., step_mode="m")
    np.testing.assert_array_equal(soft(x).data, hard(x).data)


# ----------------------------------------------------------------------------
# bad input and bad arguments
# ----------------------------------------------------------------------------
def test_state_shape_change_without_reset_is_an_error():
    node = nrn.IFNode()
    node(rs.rand(1, 3))
    with pytest.raises(ValueError, match="reset_net"):
        node(rs.rand(2, 3))
    node.reset()
    assert node(rs.rand(2, 3)).shape == (2, 3)
    multi = nrn.LIFNode(step_mode="m", backend="numpy-fused")
    multi(rs.rand(2, 4, 3))
    with pytest.raises(ValueError, match="reset_net"):
        multi(rs.rand(2, 5, 3))


@pytest.mark.parametrize("node", [nrn.IFNode(step_mode="m"), nrn.MultiStepLIFNode(),
                                  nrn.LIFNode(step_mode="m", backend="numpy-fused")])
def test_multistep_needs_at_least_two_dims(node):
    with pytest.raises(ValueError, match=r"\[T, N, \*\]"):
        node(rs.rand(4))


def test_step_mode_and_backend_are_validated():
    with pytest.raises(ValueError, match="step_mode"):
        nrn.IFNode(step_mode="x")
    with pytest.raises(NotImplementedError, match=r"supported: \('numpy',\)"):
        nrn.IFNode(backend="numpy-fused")
    node = nrn.LIFNode(step_mode="m", backend="cupy")
    assert node.backend == "numpy-fused"
    with pytest.raises(NotImplementedError, match="supported"):
        nrn.KLIFNode(step_mode="m", backend="numpy-fused")
    with pytest.raises(ValueError, match="step_mode"):
        nrn.MultiStepIFNode().step_mode = "s"


@pytest.mark.parametrize("build, message", [
    (lambda: nrn.LIFNode(tau=2), r"tau must be a float > 1, got 2 \(int\)"),
    (lambda: nrn.LIFNode(tau=0.5), "tau must be a float > 1"),
    (lambda: nrn.IFNode(v_threshold=1), "v_threshold must be a float"),
    (lambda: nrn.IFNode(v_reset=0), "v_reset must be a float or None"),
    (lambda: nrn.IFNode(detach_reset=1), "detach_reset must be a bool"),
    (lambda: nrn.ParametricLIFNode(init_tau=1.), "init_tau must be a float > 1"),
    (lambda: nrn.QIFNode(v_threshold=-0.5), "must be larger than v_reset"),
    (lambda: nrn.EIFNode(delta_T=0.), "delta_T must be > 0"),
    (lambda: nrn.IzhikevichNode(a=1), "a must be a float"),
])
def test_bad_arguments_raise_readable_assertions(build, message):
    with pytest.raises(AssertionError, match=message):
        build()


def test_nan_and_inf_propagate():
    x = rs.tensor(np.array([np.nan, np.inf, -np.inf, 0.5], np.float32))
    node = nrn.IFNode(v_reset=0.)
    with np.errstate(all="ignore"):
        spike = node(x).data
    np.testing.assert_array_equal(spike, [0., 1., 0., 0.])   # heaviside(NaN) = 0
    v = node.v.data
    assert np.isnan(v[0]) and np.isnan(v[1]) and v[2] == -np.inf and v[3] == 0.5
