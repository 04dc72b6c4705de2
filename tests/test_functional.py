"""refsnn.functional: state helpers, step-mode/backend configuration and the
propagation-pattern functions, checked against independent NumPy math."""
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import refsnn as rs
from refsnn import functional
from refsnn.containers import (MultiStepContainer, SeqToANNContainer, Sequential,
                               StepModeContainer, StepModule)
from refsnn.module import MemoryModule, Module, Parameter
from refsnn.spiking_layers import Dropout, SynapseFilter


class CountsCalls(MemoryModule):
    """Counts how often reset() and detach() are called on it."""

    def __init__(self):
        super().__init__()
        self.resets = 0
        self.detaches = 0

    def reset(self):
        self.resets += 1

    def detach(self):
        self.detaches += 1

    def forward(self, x):
        return x


class Affine(Module):
    """`x @ weight.T + bias` over the last dimension, for shape tests."""

    def __init__(self, weight, bias):
        super().__init__()
        self.weight = Parameter(np.asarray(weight, np.float64))
        self.bias = Parameter(np.asarray(bias, np.float64))

    def forward(self, x):
        return x @ self.weight.T + self.bias


class Mode(StepModule, Module):
    """A stateless module that only carries a step_mode."""

    def __init__(self, step_mode="s"):
        super().__init__()
        self.step_mode = step_mode

    def single_step_forward(self, x):
        return x


class WithBackend(Module):
    """A module whose backend setter refuses names outside `supported`."""

    def __init__(self, supported):
        super().__init__()
        self._supported = supported
        self._backend = "numpy"

    @property
    def backend(self):
        return self._backend

    @backend.setter
    def backend(self, value):
        if value not in self._supported:
            raise NotImplementedError(f"{value} is not a supported backend")
        object.__setattr__(self, "_backend", value)


# --- reset_net / detach_net --------------------------------------------------------
def test_reset_and_detach_visit_each_module_once_even_when_shared():
    shared, other = CountsCalls(), CountsCalls()
    net = Sequential(shared, Sequential(shared, other), shared)
    functional.reset_net(net)
    functional.detach_net(net)
    assert (shared.resets, shared.detaches) == (1, 1)
    assert (other.resets, other.detaches) == (1, 1)


def test_reset_net_restores_memories_of_nested_modules():
    syn = SynapseFilter(tau=2.0)
    net = Sequential(Sequential(syn))
    net(rs.ones(3))
    assert isinstance(syn.out_i, rs.Tensor)
    functional.reset_net(net)
    assert syn.out_i == 0. and isinstance(syn.out_i, float)


def test_detach_net_cuts_the_graph_behind_memories():
    syn = SynapseFilter(tau=2.0)
    x1 = rs.tensor([1., 0.5], requires_grad=True)
    x2 = rs.tensor([0., 1.], requires_grad=True)
    syn(x1)
    assert syn.out_i.requires_grad
    functional.detach_net(Sequential(syn))
    assert not syn.out_i.requires_grad and syn.out_i.grad_fn is None
    syn(x2).sum().backward()
    assert x1.grad is None and x2.grad is not None


# --- set_step_mode ------------------------------------------------------------------
def test_set_step_mode_skips_the_children_of_every_propagation_container():
    top, in_msc, in_s2a, in_smc = Mode(), Mode(), Mode(), Mode()
    nested = Mode()
    smc = StepModeContainer(True, in_smc)
    net = Sequential(top, MultiStepContainer(in_msc, StepModeContainer(False, nested)),
                     SeqToANNContainer(in_s2a), smc)
    functional.set_step_mode(net, "m")
    assert top.step_mode == "m" and smc.step_mode == "m"
    assert in_msc.step_mode == in_s2a.step_mode == in_smc.step_mode == "s"
    assert nested.step_mode == "s"
    assert net[1][1].step_mode == "s"  # a StepModeContainer inside a MultiStepContainer


def test_set_step_mode_sets_a_shielded_module_reached_only_from_outside():
    outside = Mode()
    net = Sequential(outside, MultiStepContainer(Mode()))
    functional.set_step_mode(net, "m")
    functional.set_step_mode(net, "s")
    assert outside.step_mode == "s"


def test_set_step_mode_rejects_unknown_modes():
    with pytest.raises(ValueError, match="step_mode can only be"):
        functional.set_step_mode(Sequential(Mode()), "x")


# --- set_backend --------------------------------------------------------------------
def test_set_backend_sets_supported_and_warns_for_the_rest():
    ok, refusing = WithBackend(("numpy", "opencl")), WithBackend(("numpy",))
    with pytest.warns(UserWarning, match="WithBackend keeps backend='numpy': opencl is not"):
        functional.set_backend(Sequential(ok, refusing, Mode()), "opencl")
    assert ok.backend == "opencl" and refusing.backend == "numpy"


def test_set_backend_only_touches_instances_of_the_given_types():
    class Special(WithBackend):
        pass

    plain, special = WithBackend(("numpy", "x")), Special(("numpy", "x"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        functional.set_backend(Sequential(plain, special), "x", instance=(Special,))
    assert plain.backend == "numpy" and special.backend == "x"


# --- seq_to_ann_forward / multi_step_forward -------------------------------------
def _affine_numpy(x, w, b):
    return x @ w.T + b


@settings(max_examples=20)
@given(T=st.integers(1, 4), N=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_seq_to_ann_forward_equals_the_per_step_computation(T, N, seed):
    g = np.random.default_rng(seed)
    w1, b1 = g.normal(size=(5, 4)), g.normal(size=5)
    w2, b2 = g.normal(size=(3, 5)), g.normal(size=3)
    x = g.normal(size=(T, N, 4))
    layers = [Affine(w1, b1), Affine(w2, b2)]
    expected = np.stack([_affine_numpy(_affine_numpy(x[t], w1, b1), w2, b2) for t in range(T)])
    for modules in (layers, tuple(layers), Sequential(*layers)):
        y = functional.seq_to_ann_forward(rs.tensor(x), modules)
        assert y.shape == (T, N, 3)
        np.testing.assert_allclose(y.data, expected, rtol=1e-12, atol=1e-12)


def test_seq_to_ann_forward_folds_time_major():
    x = rs.tensor(np.arange(2 * 3 * 2, dtype=np.float32).reshape(2, 3, 2))
    seen = []
    functional.seq_to_ann_forward(x, lambda y: seen.append(y.data.copy()) or y)
    np.testing.assert_array_equal(seen[0], x.data.reshape(6, 2))
    assert seen[0][4].tolist() == x.data[1, 1].tolist()  # row t*N + n


def test_seq_to_ann_forward_errors_name_the_function_and_shapes():
    with pytest.raises(ValueError, match=r"seq_to_ann_forward.*\[T, N, \*\].*\(4,\)"):
        functional.seq_to_ann_forward(rs.ones(4), lambda y: y)
    with pytest.raises(ValueError, match="must keep the leading T\\*N dimension"):
        functional.seq_to_ann_forward(rs.ones(2, 3, 4), lambda y: y.sum(0))


def test_multi_step_forward_applies_a_list_in_order_at_every_step():
    syn = SynapseFilter(tau=2.0)
    double = Affine(np.eye(2) * 2, np.zeros(2))
    x = np.array([[[1., 0.]], [[0., 1.]], [[1., 1.]]])
    y = functional.multi_step_forward(rs.tensor(x), [double, syn])
    # independent recurrence: out = out - (1 - s) * out / 2 + s with s = 2x
    out, expected = np.zeros((1, 2)), []
    for t in range(3):
        s = 2 * x[t]
        out = out - (1 - s) * out / 2 + s
        expected.append(out)
    np.testing.assert_allclose(y.data, np.stack(expected))


def test_multi_step_forward_gradient_reaches_every_step():
    x = rs.tensor(np.ones((3, 2)), requires_grad=True)
    functional.multi_step_forward(x, lambda xt: xt * 3.0).sum().backward()
    np.testing.assert_array_equal(x.grad.data, np.full((3, 2), 3.0))


def test_chunk_multi_step_forward_carries_state_between_chunks():
    g = np.random.default_rng(1)
    x = rs.tensor(g.random((7, 2, 3)).astype(np.float32))
    whole = SynapseFilter(tau=3.0, step_mode="m")
    chunked = SynapseFilter(tau=3.0, step_mode="m")
    y_whole = whole(x)
    y_chunked = functional.chunk_multi_step_forward(3, x, chunked)
    np.testing.assert_array_equal(y_chunked.data, y_whole.data)


# --- spike utilities ---------------------------------------------------------------
@settings(max_examples=30)
@given(hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=3, max_side=6),
                  elements=st.sampled_from([0.0, 1.0])))
def test_first_spike_index_marks_only_the_first_spike_of_each_row(spikes):
    mask = functional.first_spike_index(rs.tensor(spikes)).data
    assert mask.dtype == np.bool_ and mask.shape == spikes.shape
    rows = spikes.reshape(-1, spikes.shape[-1])
    expected = np.zeros(rows.shape, bool)
    for i, row in enumerate(rows):
        fired = np.flatnonzero(row)
        if fired.size:
            expected[i, fired[0]] = True
    np.testing.assert_array_equal(mask, expected.reshape(spikes.shape))


def test_redundant_one_hot_sets_n_neurons_per_class():
    codes = functional.redundant_one_hot(np.array([0, 2, 1]), num_classes=3, n=2).data
    assert codes.dtype == np.int64
    expected = np.zeros((3, 6), np.int64)
    for row, label in enumerate([0, 2, 1]):
        expected[row, 2 * label: 2 * label + 2] = 1
    np.testing.assert_array_equal(codes, expected)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        functional.redundant_one_hot(np.array([3]), 3, 2)


def test_dropout_memories_are_reset_by_reset_net():
    d = Dropout(0.5)
    d(rs.ones(2, 3))
    assert d.mask is not None
    functional.reset_net(Sequential(d))
    assert d.mask is None


# --- with real neurons -----------------------------------------------------------------
def test_set_step_mode_on_a_neuron_network_keeps_the_container_neuron_single_step():
    from refsnn import layers, neurons
    rs.manual_seed(0)
    inner = neurons.IFNode()
    net = Sequential(layers.Linear(3, 4), neurons.IFNode(), MultiStepContainer(inner))
    functional.set_step_mode(net, "m")
    assert net[1].step_mode == "m" and inner.step_mode == "s"
    x = rs.rand(5, 2, 3) * 2
    y = net(x)
    assert y.shape == (5, 2, 4)
    # the inner neuron really ran one step per time step: v has the step shape
    assert inner.v.shape == (2, 4)
    functional.reset_net(net)
    h = functional.multi_step_forward(net[0](x), neurons.IFNode())  # net[1] as a loop
    expected = functional.multi_step_forward(h, neurons.IFNode())
    np.testing.assert_array_equal(y.data, expected.data)


def test_set_backend_on_neurons_follows_their_step_mode():
    from refsnn import neurons
    single, multi = neurons.LIFNode(), neurons.LIFNode(step_mode="m")
    net = Sequential(single, multi)
    with pytest.warns(UserWarning, match="LIFNode keeps backend='numpy'"):
        functional.set_backend(net, "numpy-fused")
    assert single.backend == "numpy" and multi.backend == "numpy-fused"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        functional.set_backend(net, "torch")  # SpikingJelly's name for the composed path
    assert single.backend == multi.backend == "numpy"
