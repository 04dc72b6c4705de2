"""Propagation-pattern containers: MultiStepContainer, SeqToANNContainer,
StepModeContainer (Sequential keeps its own tests with the module tests)."""
import numpy as np
import pytest

import refsnn as rs
from refsnn import functional
from refsnn.containers import (MultiStepContainer, SeqToANNContainer, Sequential,
                               StepModeContainer)
from refsnn.module import Module, Parameter
from refsnn.spiking_layers import SynapseFilter

CONTAINERS = [MultiStepContainer, SeqToANNContainer,
              lambda *m: StepModeContainer(True, *m, step_mode="m")]


class Affine(Module):
    """`x @ weight.T + bias` over the last dimension (stateless)."""

    def __init__(self, n_in, n_out, seed):
        super().__init__()
        g = np.random.default_rng(seed)
        self.weight = Parameter(g.normal(size=(n_out, n_in)).astype(np.float32))
        self.bias = Parameter(g.normal(size=n_out).astype(np.float32))

    def forward(self, x):
        return x @ self.weight.T + self.bias


def _sequence(shape, seed=0):
    return np.random.default_rng(seed).random(shape).astype(np.float32)


# --- MultiStepContainer ------------------------------------------------------------
def test_multi_step_container_equals_the_step_by_step_loop_values_and_grads():
    x = _sequence((6, 2, 3))
    syn = SynapseFilter(tau=3.0)
    x_loop = rs.tensor(x, requires_grad=True)
    y_loop = rs.stack([syn(x_loop[t]) for t in range(6)])
    (y_loop * y_loop).sum().backward()
    functional.reset_net(syn)

    container = MultiStepContainer(syn)
    x_seq = rs.tensor(x, requires_grad=True)
    y_seq = container(x_seq)
    (y_seq * y_seq).sum().backward()
    np.testing.assert_array_equal(y_seq.data, y_loop.data)
    np.testing.assert_array_equal(x_seq.grad.data, x_loop.grad.data)


def test_multi_step_container_runs_its_children_in_order_at_each_step():
    affine, syn = Affine(3, 2, seed=1), SynapseFilter(tau=2.0)
    x = _sequence((4, 5, 3))
    y = MultiStepContainer(affine, syn)(rs.tensor(x)).data
    w, b = affine.weight.data, affine.bias.data
    out = np.zeros((5, 2), np.float32)
    for t in range(4):
        s = x[t] @ w.T + b
        out = out - (1 - s) * out * np.float32(0.5) + s
        np.testing.assert_allclose(y[t], out, rtol=1e-5, atol=1e-6)


def test_multi_step_container_keeps_state_across_calls_until_reset():
    syn = SynapseFilter(tau=2.0)
    container = MultiStepContainer(syn)
    x = rs.tensor(_sequence((3, 2)))
    first = container(x).data
    second = container(x).data
    assert not np.array_equal(first, second)
    functional.reset_net(container)
    np.testing.assert_array_equal(container(x).data, first)


# --- SeqToANNContainer -------------------------------------------------------------
def test_seq_to_ann_container_maps_tutorial_shapes_and_equals_per_step():
    a, b = Affine(4, 2, seed=2), Affine(2, 3, seed=3)
    x = _sequence((16, 8, 4))
    y = SeqToANNContainer(a, b)(rs.tensor(x))
    assert y.shape == (16, 8, 3)
    wa, ba, wb, bb = (p.data.astype(np.float64) for p in (a.weight, a.bias, b.weight, b.bias))
    expected = (x.astype(np.float64) @ wa.T + ba) @ wb.T + bb
    np.testing.assert_allclose(y.data, expected, rtol=1e-5, atol=1e-5)


def test_seq_to_ann_container_adds_a_level_to_state_dict_keys():
    flat = Sequential(Affine(4, 2, seed=0), Affine(2, 3, seed=1))
    wrapped = Sequential(SeqToANNContainer(Affine(4, 2, seed=5), Affine(2, 3, seed=6)))
    assert list(flat.state_dict()) == ["0.weight", "0.bias", "1.weight", "1.bias"]
    assert list(wrapped.state_dict()) == ["0.0.weight", "0.0.bias", "0.1.weight", "0.1.bias"]
    with pytest.raises(RuntimeError, match="Missing key"):
        wrapped.load_state_dict(flat.state_dict())
    wrapped.load_state_dict({"0." + k: v for k, v in flat.state_dict().items()})
    x = rs.tensor(_sequence((3, 2, 4)))
    np.testing.assert_allclose(wrapped(x).data, functional.seq_to_ann_forward(x, flat).data)


def test_seq_to_ann_container_has_no_step_mode_like_spikingjelly():
    assert not hasattr(SeqToANNContainer(Affine(2, 2, 0)), "step_mode")
    assert not hasattr(MultiStepContainer(Affine(2, 2, 0)), "step_mode")


# --- StepModeContainer -------------------------------------------------------------
def test_step_mode_container_single_step_is_the_plain_sequential():
    affine = Affine(3, 2, seed=4)
    x = rs.tensor(_sequence((5, 3)))
    np.testing.assert_array_equal(StepModeContainer(False, affine)(x).data, affine(x).data)


@pytest.mark.parametrize("stateful", [True, False])
def test_step_mode_container_multi_step_matches_its_pattern(stateful):
    x = rs.tensor(_sequence((4, 2, 3)))
    if stateful:
        expected = MultiStepContainer(SynapseFilter(tau=2.0))(x)
        got = StepModeContainer(True, SynapseFilter(tau=2.0), step_mode="m")(x)
    else:
        affine = Affine(3, 2, seed=7)
        expected = SeqToANNContainer(affine)(x)
        got = StepModeContainer(False, affine, step_mode="m")(x)
    np.testing.assert_array_equal(got.data, expected.data)


def test_step_mode_container_slicing_repr_and_mode_errors():
    c = StepModeContainer(True, SynapseFilter(), SynapseFilter(), step_mode="m")
    part = c[1:]
    assert isinstance(part, StepModeContainer) and len(part) == 1
    assert part.stateful and part.step_mode == "m"
    assert "stateful=True, step_mode=m" in repr(c)
    with pytest.raises(ValueError, match="StepModeContainer: step_mode can only be"):
        c.step_mode = "x"


# --- errors -------------------------------------------------------------------------
@pytest.mark.parametrize("make", CONTAINERS)
def test_containers_refuse_multi_step_children(make):
    with pytest.raises(ValueError, match=r"child '0' \(SynapseFilter\) has step_mode='m'"):
        make(SynapseFilter(step_mode="m"))
    with pytest.raises(ValueError, match=r"child '0.0' \(SynapseFilter\)"):
        make(Sequential(SynapseFilter(step_mode="m")))


@pytest.mark.parametrize("make, name", [
    (MultiStepContainer, "MultiStepContainer"), (SeqToANNContainer, "SeqToANNContainer"),
    (lambda *m: StepModeContainer(True, *m, step_mode="m"), "StepModeContainer")])
def test_containers_name_themselves_and_the_shape_for_short_input(make, name):
    with pytest.raises(ValueError, match=rf"{name}: expected x_seq with shape \[T, N, \*\], "
                                         rf"but got a 1-D input of shape \(4,\)"):
        make(SynapseFilter())(rs.ones(4))


def test_containers_refuse_multi_step_neurons():
    from refsnn import neurons
    for child in (neurons.IFNode(step_mode="m"), neurons.MultiStepIFNode()):
        with pytest.raises(ValueError, match=f"\\({type(child).__name__}\\) has step_mode='m'"):
            MultiStepContainer(child)
