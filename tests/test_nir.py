"""NIR import/export (`refsnn.nirgraph`): round trips, the documented
discretisation (docs/nir.md) against refsnn's own neurons and against closed-form
solutions, graph execution (skip and recurrent edges), and bad input."""
import subprocess
import sys

import numpy as np
import pytest

import refsnn as rs
from refsnn import containers, functional, layers, neuron_dynamics as nd, neurons, surrogate

nir = pytest.importorskip("nir")
from refsnn.nirgraph import from_nir, to_nir  # noqa: E402
from refsnn.nirgraph.importer import infer_shape  # noqa: E402

def _seq(shape, scale=1.0, dtype=np.float32, seed=0):
    return (np.random.default_rng(seed).normal(size=shape) * scale).astype(dtype)


def _run(net, x_np, dtype=None):
    """Outputs, input gradient and parameter gradients of `net` on `x_np`
    (loss: a fixed random projection of the output)."""
    functional.reset_net(net)
    net.zero_grad()
    x = rs.tensor(x_np, requires_grad=True)
    y = net(x)
    w = np.random.default_rng(99).normal(size=y.shape).astype(y.dtype)
    (y * rs.tensor(w)).sum().backward()
    grads = [p.grad.data.copy() for p in net.parameters()]
    return y.data.copy(), x.grad.data.copy(), grads


def _assert_identical(a, b):
    (ya, gxa, gpa), (yb, gxb, gpb) = a, b
    np.testing.assert_array_equal(ya, yb)
    np.testing.assert_array_equal(gxa, gxb)
    assert len(gpa) == len(gpb)
    for p, q in zip(gpa, gpb):
        np.testing.assert_array_equal(p, q)


def _write_read(graph, tmp_path, name="g.nir"):
    path = tmp_path / name
    nir.write(path, graph)
    return path


# ----------------------------------------------------------------------------
# packaging
# ----------------------------------------------------------------------------
def test_import_refsnn_imports_neither_nir_nor_h5py():
    code = ("import sys, refsnn, refsnn.nirgraph, refsnn.interop; "
            "bad = [m for m in ('nir', 'h5py') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_nir_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "nir", None)
    with pytest.raises(ImportError) as e:
        from_nir("whatever.nir", dt=1.0)
    message = str(e.value)
    assert "\n" not in message and "refsnn[nir]" in message


# ----------------------------------------------------------------------------
# refsnn -> NIR -> refsnn: identical outputs and gradients
# ----------------------------------------------------------------------------
def _lif(**kw):
    return neurons.LIFNode(step_mode="m", **kw)


REFSNN_CASES = {
    "lif_decay_reset0": lambda: containers.Sequential(layers.Linear(5, 4), _lif(tau=2.)),
    "lif_decay_reset_neg": lambda: containers.Sequential(
        layers.Linear(5, 4), _lif(tau=3., v_reset=-0.1, v_threshold=0.7)),
    "lif_nodecay_reset0": lambda: containers.Sequential(
        layers.Linear(5, 4), _lif(tau=1.7, decay_input=False)),
    "lif_nodecay_reset_neg": lambda: containers.Sequential(
        layers.Linear(5, 4), _lif(tau=4., decay_input=False, v_reset=-0.2)),
    "lif_soft_atan_detach": lambda: containers.Sequential(
        layers.Linear(5, 4, bias=False),
        _lif(tau=2.5, v_reset=None, surrogate_function=surrogate.ATan(alpha=3.),
             detach_reset=True)),
    "multistep_lif": lambda: containers.Sequential(
        layers.Linear(5, 4), neurons.MultiStepLIFNode(tau=2., decay_input=False)),
    "if_hard_and_soft": lambda: containers.Sequential(
        layers.Linear(5, 4), neurons.IFNode(step_mode="m", v_reset=-0.3),
        layers.Linear(4, 3), neurons.IFNode(step_mode="m", v_reset=None)),
}


@pytest.mark.parametrize("dt", [1e-3, 0.1, 1.0])
@pytest.mark.parametrize("case", sorted(REFSNN_CASES))
def test_refsnn_round_trip_dense(case, dt, tmp_path):
    rs.manual_seed(3)
    net = REFSNN_CASES[case]()
    x = _seq((7, 3, 5), scale=1.5)
    back = from_nir(_write_read(to_nir(net, dt), tmp_path), dt)
    _assert_identical(_run(net, x), _run(back, x))


def test_refsnn_round_trip_conv_pool_flatten(tmp_path):
    rs.manual_seed(4)
    ann = containers.SeqToANNContainer(
        layers.Conv2d(2, 3, 3, stride=1, padding=1), layers.AvgPool2d(2),
        layers.Conv2d(3, 4, (3, 2), stride=(1, 2), dilation=(1, 1), bias=False),
        layers.Flatten(), layers.Linear(4, 3))
    net = containers.Sequential(ann, _lif(tau=2.))
    # Conv1d in its own chain
    net1 = containers.Sequential(
        containers.SeqToANNContainer(layers.Conv1d(2, 3, 3, padding="same", groups=1)),
        _lif(tau=2.))
    dt = 1e-3
    x = _seq((4, 2, 2, 6, 6), scale=2.)
    back = from_nir(_write_read(to_nir(net, dt, input_shape=(2, 6, 6)), tmp_path), dt)
    _assert_identical(_run(net, x), _run(back, x))
    x1 = _seq((4, 2, 2, 7), scale=2.)
    back1 = from_nir(_write_read(to_nir(net1, dt, input_shape=(2, 7)), tmp_path, "c1.nir"), dt)
    _assert_identical(_run(net1, x1), _run(back1, x1))


def test_to_nir_records_reset_convention():
    net = containers.Sequential(layers.Linear(2, 2), _lif(v_reset=None),
                                neurons.IFNode(step_mode="m"))
    g = to_nir(net, 0.5)
    assert g.nodes["1"].metadata["reset"] == "soft"
    assert g.nodes["2"].metadata["reset"] == "hard"
    assert g.nodes["1"].metadata["integration"] == "euler"


# ----------------------------------------------------------------------------
# NIR -> refsnn -> NIR -> refsnn, every node type
# ----------------------------------------------------------------------------
def _u(shape, lo, hi, seed):
    return np.random.default_rng(seed).uniform(lo, hi, size=shape)


def _node_graph(kind):
    """(graph, one-sample input shape) exercising node type `kind` with
    per-neuron parameters."""
    n = 4
    lin = nir.Affine(weight=_u((n, 3), -1, 1, 1).astype(np.float32),
                     bias=_u((n,), -.2, .2, 2).astype(np.float32))
    dt = 1e-3
    taus = _u((n,), 2e-3, 6e-3, 3)
    neuron = {
        "Linear": lambda: nir.Linear(weight=_u((n, n), -1, 1, 4).astype(np.float32)),
        "Affine": lambda: nir.Affine(weight=_u((n, n), -1, 1, 4), bias=_u((n,), -1, 1, 5)),
        "Scale": lambda: nir.Scale(scale=_u((n,), -2, 2, 6)),
        "Threshold": lambda: nir.Threshold(threshold=_u((n,), 0, .5, 7)),
        "Delay": lambda: nir.Delay(delay=np.array([0, 1, 2, 3]) * dt),
        "I": lambda: nir.I(r=_u((n,), 100, 900, 8)),
        "IF": lambda: nir.IF(r=_u((n,), 300, 900, 8), v_threshold=_u((n,), .5, 1, 9),
                             v_reset=_u((n,), -.2, 0, 10)),
        "LI": lambda: nir.LI(tau=taus, r=_u((n,), .5, 2, 11), v_leak=_u((n,), -.1, .1, 12)),
        "LIF": lambda: nir.LIF(tau=taus, r=_u((n,), .5, 2, 11), v_leak=_u((n,), -.1, .1, 12),
                               v_threshold=_u((n,), .3, .6, 13), v_reset=_u((n,), -.2, 0, 14)),
        "CubaLI": lambda: nir.CubaLI(tau_syn=taus, tau_mem=taus[::-1].copy(),
                                     r=_u((n,), .5, 2, 15), v_leak=_u((n,), -.1, .1, 16),
                                     w_in=_u((n,), .5, 2, 17)),
        "CubaLIF": lambda: nir.CubaLIF(tau_syn=taus, tau_mem=np.r_[taus[:2], taus[2:4]],
                                       r=_u((n,), .5, 2, 15), v_leak=_u((n,), -.1, .1, 16),
                                       v_threshold=_u((n,), .2, .4, 18),
                                       v_reset=np.zeros(n), w_in=_u((n,), .5, 2, 17)),
    }
    if kind in neuron:
        nodes = {"in": nir.Input(input_type=np.array([3])), "lin": lin, "node": neuron[kind](),
                 "out": nir.Output(output_type=np.array([n]))}
        return nir.NIRGraph(nodes, [("in", "lin"), ("lin", "node"), ("node", "out")],
                            type_check=False), (3,), dt
    conv = {
        "Conv1d": (nir.Conv1d(input_shape=6, weight=_u((3, 2, 3), -1, 1, 20), stride=2,
                              padding=1, dilation=1, groups=1, bias=_u((3,), -1, 1, 21)),
                   (2, 6)),
        "Conv2d": (nir.Conv2d(input_shape=(5, 6), weight=_u((4, 1, 2, 3), -1, 1, 22),
                              stride=(1, 2), padding=(1, 0), dilation=(2, 1), groups=2,
                              bias=_u((4,), -1, 1, 23)), (2, 5, 6)),
        "SumPool2d": (nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 1]),
                                    padding=np.array([1, 0])), (2, 5, 6)),
        "AvgPool2d": (nir.AvgPool2d(kernel_size=np.array([3, 2]), stride=np.array([1, 2]),
                                    padding=np.array([1, 1])), (2, 5, 6)),
        "Flatten": (nir.Flatten(input_type={"input": np.array([2, 5, 6])}, start_dim=1,
                                end_dim=2), (2, 5, 6)),
    }
    node, shape = conv[kind]
    out = nir.Output(output_type=np.array(infer_shape(node, shape)))
    nodes = {"in": nir.Input(input_type=np.array(shape)), "node": node, "out": out}
    return nir.NIRGraph(nodes, [("in", "node"), ("node", "out")], type_check=False), shape, dt


ALL_KINDS = ["Affine", "Linear", "Scale", "Conv1d", "Conv2d", "Flatten", "SumPool2d",
             "AvgPool2d", "Delay", "Threshold", "I", "LI", "IF", "LIF", "CubaLI", "CubaLIF"]


@pytest.mark.parametrize("integration", ["euler", "exact"])
@pytest.mark.parametrize("kind", ALL_KINDS)
def test_nir_round_trip_every_node(kind, integration, tmp_path):
    graph, shape, dt = _node_graph(kind)
    first = from_nir(graph, dt, integration=integration, reset="soft")
    again = from_nir(_write_read(to_nir(first, dt), tmp_path), dt, integration=integration)
    x = _seq((6, 2) + shape, scale=3., seed=5)
    a, b = _run(first, x), _run(again, x)
    _assert_identical(a, b)
    assert np.any(a[1] != 0)       # the gradient reaches the input


def test_nir_round_trip_float64(tmp_path):
    graph, shape, dt = _node_graph("CubaLIF")
    first = from_nir(graph, dt, integration="exact", dtype=np.float64)
    again = from_nir(_write_read(to_nir(first, dt), tmp_path), dt, integration="exact",
                     dtype=np.float64)
    x = _seq((6, 2) + shape, scale=3., dtype=np.float64)
    _assert_identical(_run(first, x), _run(again, x))


# ----------------------------------------------------------------------------
# euler: bit for bit refsnn's own LIF/IF formulas
# ----------------------------------------------------------------------------
def _single_node_graph(node, n):
    nodes = {"in": nir.Input(input_type=np.array([n])), "node": node,
             "out": nir.Output(output_type=np.array([n]))}
    return nir.NIRGraph(nodes, [("in", "node"), ("node", "out")], type_check=False)


@pytest.mark.parametrize("dt", [1e-3, 0.25])
@pytest.mark.parametrize("decay_input", [True, False])
@pytest.mark.parametrize("v_reset", [0., -0.1, None])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_euler_lif_is_refsnn_lifnode_bitwise(dt, decay_input, v_reset, dtype):
    n, k = 5, 3.
    leak = 0. if v_reset is None else v_reset
    node = nir.LIF(tau=np.full(n, k * dt), r=np.full(n, 1. if decay_input else k),
                   v_leak=np.full(n, leak), v_threshold=np.full(n, .8),
                   v_reset=np.full(n, leak))
    net = from_nir(_single_node_graph(node, n), dt, reset="soft" if v_reset is None else "hard")
    ref = neurons.LIFNode(tau=k, decay_input=decay_input, v_reset=v_reset, v_threshold=.8,
                          step_mode="m")
    x = _seq((12, 3, n), scale=1.5, dtype=dtype, seed=7)
    _assert_identical(_run(ref, x), _run(net, x))


def test_euler_if_is_refsnn_ifnode_bitwise():
    dt, n = 0.5, 4
    node = nir.IF(r=np.full(n, 1 / dt), v_threshold=np.full(n, 1.), v_reset=np.full(n, -.2))
    net = from_nir(_single_node_graph(node, n), dt)
    ref = neurons.IFNode(v_reset=-.2, step_mode="m")
    x = _seq((9, 2, n), seed=8)
    _assert_identical(_run(ref, x), _run(net, x))


@pytest.mark.parametrize("snntorch_form", [False, True])
def test_euler_cubalif_is_refsnn_synapse_then_lifnode_bitwise(snntorch_form):
    """CubaLIF under euler = a LIF charge without threshold for the current
    (`neuron_dynamics.lif_charge`, v_reset 0) followed by refsnn's LIFNode on
    the new current."""
    dt, n, ks, km = 1e-3, 4, 2.5, 4.
    w_in, r = (ks, km) if snntorch_form else (1., 1.)
    node = nir.CubaLIF(tau_syn=np.full(n, ks * dt), tau_mem=np.full(n, km * dt),
                       r=np.full(n, r), v_leak=np.zeros(n), v_threshold=np.full(n, .5),
                       v_reset=np.zeros(n), w_in=np.full(n, w_in))
    net = from_nir(_single_node_graph(node, n), dt, reset="soft" if snntorch_form else "hard")
    x_np = _seq((10, 3, n), scale=2., seed=9)

    lif = neurons.LIFNode(tau=km, decay_input=not snntorch_form,
                          v_reset=None if snntorch_form else 0., v_threshold=.5)

    class Reference(rs.Module):
        def __init__(self):
            super().__init__()
            self.lif = lif

        def forward(self, x_seq):
            i, out = rs.zeros(x_seq.shape[1:]), []
            for t in range(x_seq.shape[0]):
                i = nd.lif_charge(x_seq[t], i, ks, not snntorch_form, 0.)
                out.append(self.lif(i))
            return rs.stack(out)

    _assert_identical(_run(Reference(), x_np), _run(net, x_np))


# ----------------------------------------------------------------------------
# exact: spike times against independent closed-form solutions
# ----------------------------------------------------------------------------
def _spike_steps(net, current, T):
    functional.reset_net(net)
    x = np.broadcast_to(current, (T, 1, len(current))).astype(np.float64)
    with rs.no_grad():
        s = net(rs.tensor(x)).data[:, 0, :]
    return [np.nonzero(s[:, j])[0] for j in range(len(current))]


def _check_events(steps, dt, crossing):
    """Each spike step t (the sample at (t+1)*dt) comes at most one step after
    the exact crossing from the state after the previous spike, never before."""
    previous = 0.
    for t in steps:
        t_cross = crossing(previous)
        t_spike = (t + 1) * dt
        assert t_cross <= t_spike + 1e-9 and t_spike - t_cross < dt + 1e-9, \
            (t_cross, t_spike)
        previous = t_spike


@pytest.mark.parametrize("dt", [1e-3, 3.7e-3])
def test_exact_lif_spike_times_match_closed_form(dt):
    tau, r, v_leak, thr, v_reset = 0.02, 2., 0.05, 1., -0.1
    currents = np.array([0.55, 0.7, 1.3, 4.0])
    n = len(currents)
    node = nir.LIF(tau=np.full(n, tau), r=np.full(n, r), v_leak=np.full(n, v_leak),
                   v_threshold=np.full(n, thr), v_reset=np.full(n, v_reset))
    net = from_nir(_single_node_graph(node, n), dt, integration="exact", dtype=np.float64)
    T = int(0.3 / dt)
    for j, steps in enumerate(_spike_steps(net, currents, T)):
        v_inf = v_leak + r * currents[j]
        assert len(steps) >= 2

        def crossing(t0, v_inf=v_inf):
            v0 = v_leak if t0 == 0. else v_reset
            # v(t) = v_inf + (v0 - v_inf) exp(-(t - t0)/tau) reaches thr at:
            return t0 + tau * np.log((v0 - v_inf) / (thr - v_inf))
        _check_events(steps, dt, crossing)


@pytest.mark.parametrize("tau_syn", [0.005, 0.01])
def test_exact_cubalif_spike_times_match_closed_form(tau_syn):
    from scipy.optimize import brentq
    dt, tau_mem, r, w_in, thr = 1e-3, 0.01, 1.5, 1.2, 1.
    drives = np.array([0.7, 1.0, 2.5])
    n = len(drives)
    node = nir.CubaLIF(tau_syn=np.full(n, tau_syn), tau_mem=np.full(n, tau_mem),
                       r=np.full(n, r), v_leak=np.zeros(n), v_threshold=np.full(n, thr),
                       v_reset=np.zeros(n), w_in=np.full(n, w_in))
    net = from_nir(_single_node_graph(node, n), dt, integration="exact", dtype=np.float64)
    for j, steps in enumerate(_spike_steps(net, drives, 200)):
        i_inf = w_in * drives[j]
        assert len(steps) >= 2

        def current(t, i_inf=i_inf):          # I(0) = 0, never reset
            return i_inf * (1 - np.exp(-t / tau_syn))

        def crossing(t0, i_inf=i_inf):
            # from v(t0) = 0, I(t0): integrate tau_mem v' = -v + r I(t) in closed form
            i0 = current(t0)
            a = r * i0 - r * i_inf          # coefficient of the decaying part of r*I

            def v(t):
                s = t - t0
                if np.isclose(tau_syn, tau_mem):
                    decaying = a * (s / tau_mem) * np.exp(-s / tau_mem)
                else:
                    decaying = a * tau_syn / (tau_syn - tau_mem) * (
                        np.exp(-s / tau_syn) - np.exp(-s / tau_mem))
                return r * i_inf * (1 - np.exp(-s / tau_mem)) + decaying - thr
            return brentq(v, t0 + 1e-12, t0 + 1.)
        _check_events(steps, dt, crossing)


def test_exact_li_samples_the_continuous_solution():
    dt, tau, r, v_leak, n = 2e-3, 0.01, 1.5, 0.2, 3
    node = nir.LI(tau=np.full(n, tau), r=np.full(n, r), v_leak=np.full(n, v_leak))
    net = from_nir(_single_node_graph(node, n), dt, integration="exact", dtype=np.float64)
    currents = np.array([-1., 0.5, 2.])
    T = 40
    with rs.no_grad():
        v = net(rs.tensor(np.broadcast_to(currents, (T, 1, n)).copy())).data[:, 0, :]
    t = (np.arange(T) + 1)[:, None] * dt
    exact = v_leak + r * currents * (1 - np.exp(-t / tau))
    np.testing.assert_allclose(v, exact, rtol=1e-12, atol=1e-13)


# ----------------------------------------------------------------------------
# graph execution
# ----------------------------------------------------------------------------
def _lif_params(n, seed):
    return dict(tau=_u((n,), 2e-3, 5e-3, seed), r=np.ones(n), v_leak=np.zeros(n),
                v_threshold=np.full(n, .6), v_reset=np.zeros(n))


def _numpy_lif_step(x, v, p, dt):
    h = v + (x - v) / (p["tau"] / dt)
    s = (h >= p["v_threshold"]).astype(x.dtype)
    return s, (1 - s) * h + s * p["v_reset"]


def test_recurrent_edge_has_one_step_delay():
    """The back edge carries last step's value; at step 0 the recurrent Affine
    sees silent (zero) spikes and gives its bias."""
    dt, n = 1e-3, 3
    w_in, w_rec, b_rec = _u((n, 2), -1, 2, 30), _u((n, n), -1, 1, 31), _u((n,), -.3, .3, 34)
    p = _lif_params(n, 32)
    nodes = {"x": nir.Input(input_type=np.array([2])), "fc": nir.Linear(weight=w_in),
             "lif": nir.LIF(**p), "rec": nir.Affine(weight=w_rec, bias=b_rec),
             "y": nir.Output(output_type=np.array([n]))}
    edges = [("x", "fc"), ("fc", "lif"), ("lif", "rec"), ("rec", "lif"), ("lif", "y")]
    net = from_nir(nir.NIRGraph(nodes, edges, type_check=False), dt, dtype=np.float64)
    assert net.plan.back_edges == {("rec", "lif")}
    x = _seq((15, 2, 2), scale=2., dtype=np.float64, seed=33)
    with rs.no_grad():
        got = net(rs.tensor(x)).data
    v, s_prev, want, want_v = np.zeros((2, n)), np.zeros((2, n)), [], []
    for t in range(15):
        drive = x[t] @ w_in.T + (s_prev @ w_rec.T + b_rec)
        s_prev, v = _numpy_lif_step(drive, v, p, dt)
        want.append(s_prev)
        want_v.append(v)
    np.testing.assert_array_equal(got, np.stack(want))
    assert np.any(got)
    # step mode 's' with state carried between calls
    single = from_nir(nir.NIRGraph(nodes, edges, type_check=False), dt, step_mode="s",
                      dtype=np.float64)
    lif, steps = single.node_modules["lif"], []
    with rs.no_grad():
        for t in range(15):
            steps.append(single(rs.tensor(x[t])).data)
            np.testing.assert_allclose(lif.v.data, want_v[t], rtol=1e-13, atol=1e-15)
    np.testing.assert_array_equal(np.stack(steps), got)


def test_skip_connection_sums_inputs_and_layer_by_layer_equals_step_by_step():
    dt, n = 1e-3, 3
    a, b = _u((n, 2), -1, 2, 40), _u((n, 2), -1, 1, 41)
    p1, p2 = _lif_params(n, 42), _lif_params(n, 43)
    nodes = {"x": nir.Input(input_type=np.array([2])), "a": nir.Linear(weight=a),
             "l1": nir.LIF(**p1), "b": nir.Linear(weight=b), "l2": nir.LIF(**p2),
             "y": nir.Output(output_type=np.array([n]))}
    edges = [("x", "a"), ("a", "l1"), ("x", "b"), ("l1", "l2"), ("b", "l2"), ("l2", "y")]
    g = nir.NIRGraph(nodes, edges, type_check=False)
    x = _seq((12, 2, 2), scale=2., dtype=np.float64, seed=44)
    layered = from_nir(g, dt, dtype=np.float64)
    assert not layered.plan.back_edges
    v1, v2, want = np.zeros((2, n)), np.zeros((2, n)), []
    for t in range(12):
        s1, v1 = _numpy_lif_step(x[t] @ a.T, v1, p1, dt)
        s2, v2 = _numpy_lif_step(s1 + x[t] @ b.T, v2, p2, dt)
        want.append(s2)
    got = _run(layered, x)
    np.testing.assert_array_equal(got[0], np.stack(want))
    stepwise = from_nir(g, dt, dtype=np.float64, step_mode="s")

    class Loop(rs.Module):
        def __init__(self):
            super().__init__()
            self.net = stepwise

        def forward(self, x_seq):
            return rs.stack([self.net(x_seq[t]) for t in range(x_seq.shape[0])])
    y, gx, gw = _run(Loop(), x)
    np.testing.assert_array_equal(got[0], y)
    np.testing.assert_array_equal(got[1], gx)
    # weight gradients: one GEMM over T*N rows vs T accumulated ones
    for p, q in zip(got[2], gw):
        np.testing.assert_allclose(p, q, rtol=1e-12, atol=1e-15)


def test_delay_node_shifts_each_element():
    dt, n = 0.5, 3
    node = nir.Delay(delay=np.array([0., 0.5, 1.5]))
    net = from_nir(_single_node_graph(node, n), dt, dtype=np.float64)
    x = _seq((6, 2, n), dtype=np.float64, seed=50)
    with rs.no_grad():
        y = net(rs.tensor(x)).data
    want = np.zeros_like(x)
    for j, d in enumerate([0, 1, 3]):
        want[d:, :, j] = x[:x.shape[0] - d, :, j]
    np.testing.assert_array_equal(y, want)


# ----------------------------------------------------------------------------
# bad input
# ----------------------------------------------------------------------------
def test_unsupported_node_names_key_and_type():
    inner = _single_node_graph(nir.Threshold(threshold=np.ones(2)), 2)
    nodes = {"in": nir.Input(input_type=np.array([2])), "block7": inner,
             "out": nir.Output(output_type=np.array([2]))}
    g = nir.NIRGraph(nodes, [("in", "block7"), ("block7", "out")], type_check=False)
    with pytest.raises(NotImplementedError, match=r"node 'block7' has unsupported type NIRGraph"):
        from_nir(g, 1.0)


def test_inconsistent_shapes_report_the_edge():
    nodes = {"in": nir.Input(input_type=np.array([3])),
             "fc": nir.Linear(weight=np.ones((4, 3))),
             "lif": nir.LIF(**_lif_params(5, 1)),
             "out": nir.Output(output_type=np.array([5]))}
    g = nir.NIRGraph(nodes, [("in", "fc"), ("fc", "lif"), ("lif", "out")], type_check=False)
    with pytest.raises(ValueError, match=r"edge 'fc' -> 'lif'.*\(4,\)"):
        from_nir(g, 1e-3)


def test_disagreeing_incoming_edges_report_the_edge():
    nodes = {"in": nir.Input(input_type=np.array([3])),
             "a": nir.Linear(weight=np.ones((4, 3))), "b": nir.Linear(weight=np.ones((2, 3))),
             "s": nir.Scale(scale=np.ones(4)), "out": nir.Output(output_type=np.array([4]))}
    edges = [("in", "a"), ("in", "b"), ("a", "s"), ("b", "s"), ("s", "out")]
    with pytest.raises(ValueError, match=r"edge 'b' -> 's'"):
        from_nir(nir.NIRGraph(nodes, edges, type_check=False), 1.0)


def test_file_that_is_not_hdf5_gives_one_line(tmp_path):
    path = tmp_path / "broken.nir"
    path.write_bytes(b"this is not an HDF5 file\n")
    with pytest.raises(ValueError) as e:
        from_nir(path, 1.0)
    assert "\n" not in str(e.value) and "not valid HDF5" in str(e.value)


def test_file_lacking_required_fields_gives_one_line(tmp_path):
    import h5py
    g = _single_node_graph(nir.LIF(**_lif_params(2, 1)), 2)
    path = _write_read(g, tmp_path)
    with h5py.File(path, "a") as f:
        del f["node/nodes/node/tau"]
    with pytest.raises(ValueError) as e:
        from_nir(path, 1e-3)
    message = str(e.value)
    assert "\n" not in message and "tau" in message and "missing" in message
    empty = tmp_path / "empty.nir"
    with h5py.File(empty, "w") as f:
        f.create_dataset("version", data="1.0")
    with pytest.raises(ValueError) as e:
        from_nir(empty, 1e-3)
    assert "\n" not in str(e.value) and "not a valid NIR graph" in str(e.value)


def test_delay_not_a_whole_number_of_steps():
    g = _single_node_graph(nir.Delay(delay=np.array([0.3, 0.5])), 2)
    with pytest.raises(ValueError, match=r"node 'node' \(Delay\).*whole number of steps"):
        from_nir(g, 0.5)


def test_to_nir_lists_unsupported_modules():
    net = containers.Sequential(layers.Linear(2, 2), layers.BatchNorm1d(2),
                                neurons.QIFNode(step_mode="m"))
    with pytest.raises(NotImplementedError, match=r"1 \(BatchNorm1d\), 2 \(QIFNode\)"):
        to_nir(net, 1.0)


def test_to_nir_accepts_a_spikingjelly_network(tmp_path):
    torch = pytest.importorskip("torch")
    sj = pytest.importorskip("spikingjelly.activation_based")
    from spikingjelly.activation_based import layer, neuron
    torch.manual_seed(0)
    net = torch.nn.Sequential(layer.Linear(4, 3, step_mode="m"),
                              neuron.LIFNode(tau=2., step_mode="m"))
    x = _seq((6, 2, 4), scale=2.)
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
    back = from_nir(_write_read(to_nir(net, 1e-3), tmp_path), 1e-3)
    with rs.no_grad():
        np.testing.assert_array_equal(back(rs.tensor(x)).data, want)
    del sj
