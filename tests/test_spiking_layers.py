"""SpikingJelly's dropout family (one mask per sequence) and SynapseFilter,
checked against their specification with independent NumPy math."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import refsnn as rs
from refsnn import functional
from refsnn.spiking_layers import (Dropout, Dropout2d, MultiStepDropout, MultiStepDropout2d,
                                   SynapseFilter)


def _scale(p, dtype=np.float32):
    """The kept value: 1 / (1 - p) computed in `dtype`, as ATen's `div_(1 - p)`."""
    return dtype(1) / dtype(1.0 - p)


# --- dropout: mask values and statistics --------------------------------------------
@pytest.mark.parametrize("p", [0.0, 0.2, 0.3, 0.5, 0.9])
def test_dropout_mask_values_are_zero_or_one_over_keep_probability(p):
    rs.manual_seed(0)
    y = Dropout(p)(rs.ones(40, 50)).data
    assert y.dtype == np.float32
    assert set(np.unique(y)) <= {np.float32(0), _scale(p)}
    kept = np.mean(y != 0)
    sigma = math.sqrt(p * (1 - p) / y.size)
    assert abs(kept - (1 - p)) <= 5 * sigma + 1e-12


def test_dropout_mask_follows_the_input_dtype():
    rs.manual_seed(0)
    y = Dropout(0.3)(rs.ones(100, dtype=np.float64)).data
    assert y.dtype == np.float64
    assert set(np.unique(y)) == {0.0, 1.0 / 0.7}


def test_dropout_same_seed_same_mask_and_reset_draws_a_new_one():
    d = Dropout(0.5)
    rs.manual_seed(7)
    first = d(rs.ones(8, 16)).data.copy()
    functional.reset_net(d)
    rs.manual_seed(7)
    np.testing.assert_array_equal(d(rs.ones(8, 16)).data, first)
    functional.reset_net(d)
    assert not np.array_equal(d(rs.ones(8, 16)).data, first)  # 2**-128 to fail by chance


def test_dropout_mask_persists_over_calls_until_reset():
    rs.manual_seed(1)
    d = Dropout(0.5)
    x1, x2 = rs.rand(4, 6), rs.rand(4, 6)
    mask = d(rs.ones(4, 6)).data.copy()
    np.testing.assert_array_equal(d(x1).data, x1.data * mask)
    np.testing.assert_array_equal(d(x2).data, x2.data * mask)


@pytest.mark.parametrize("make", [lambda: MultiStepDropout(0.5),
                                  lambda: Dropout(0.5, step_mode="m")])
def test_multi_step_dropout_shares_one_mask_over_time(make):
    rs.manual_seed(2)
    x = rs.rand(5, 3, 7)
    y = make()(x).data
    ratio = np.where(x.data != 0, y / x.data, 0)
    for t in range(1, 5):
        np.testing.assert_array_equal(ratio[t], ratio[0])


def test_single_step_loop_equals_multi_step_with_the_same_seed():
    x = rs.rand(4, 3, 6)
    rs.manual_seed(3)
    single = Dropout(0.4)
    y_loop = np.stack([single(x[t]).data for t in range(4)])
    rs.manual_seed(3)
    y_multi = MultiStepDropout(0.4)(x).data
    np.testing.assert_array_equal(y_loop, y_multi)


def test_dropout2d_drops_whole_channels_once_per_sequence():
    rs.manual_seed(4)
    y = MultiStepDropout2d(0.5)(rs.ones(3, 4, 6, 2, 5)).data
    assert set(np.unique(y)) <= {0.0, 2.0}
    per_channel = y[0, :, :, :1, :1]
    np.testing.assert_array_equal(y, np.broadcast_to(per_channel, y.shape))
    assert 0 < np.count_nonzero(per_channel) < per_channel.size


def test_dropout2d_default_probability_and_single_step_shape():
    d = Dropout2d()
    assert d.p == 0.2 and MultiStepDropout2d().p == 0.5
    assert d(rs.ones(2, 3, 4, 4)).shape == (2, 3, 4, 4)
    with pytest.raises(ValueError, match=r"Dropout2d: expected input of shape \[N, C, H, W\]"):
        Dropout2d()(rs.ones(2, 3))


def test_dropout_is_identity_in_eval_and_leaves_the_mask_alone():
    rs.manual_seed(5)
    d = Dropout(0.5)
    x = rs.rand(3, 4)
    d.eval()
    assert d(x) is x and d.mask is None
    d.train()
    trained = d(x).data.copy()
    d.eval()
    assert d(x) is x
    d.train()
    np.testing.assert_array_equal(d(x).data, trained)
    assert MultiStepDropout(0.5).eval()(x) is x


def test_dropout_gradient_is_the_mask():
    rs.manual_seed(6)
    d = MultiStepDropout(0.5)
    x = rs.rand(3, 2, 5, requires_grad=True)
    y = d(x)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.data, np.broadcast_to(d.mask.data, x.shape))


def test_dropout_errors():
    with pytest.raises(AssertionError, match="0 <= p < 1, got 1"):
        Dropout(1.0)
    with pytest.raises(AssertionError, match="got -0.1"):
        MultiStepDropout(-0.1)
    d = Dropout(0.5)
    d(rs.ones(2, 5))
    with pytest.raises(RuntimeError, match=r"\(2, 5\).*\(3, 5\).*reset_net"):
        d(rs.ones(3, 5))
    with pytest.raises(ValueError, match="step_mode can only be \\('m',\\)"):
        MultiStepDropout().step_mode = "s"
    with pytest.raises(ValueError, match=r"MultiStepDropout: expected x_seq with shape \[T, N"):
        MultiStepDropout()(rs.ones(4))


def test_dropout_mask_is_a_memory_not_state():
    d = Dropout(0.5)
    d(rs.ones(2, 2))
    assert d.state_dict() == {} and dict(d.named_memories()).keys() == {"mask"}


# --- SynapseFilter -------------------------------------------------------------------
def test_synapse_filter_matches_spikingjelly_example():
    # SpikingJelly 0.0.0.0.14, spikes [1, 0, 0, 1, 1], tau=2 (reference §4.5)
    y = functional.multi_step_forward(rs.tensor([1., 0., 0., 1., 1.]), SynapseFilter(tau=2.0))
    np.testing.assert_array_equal(y.data, np.float32([1, .5, .25, 1.25, 2.25]))


@settings(max_examples=20)
@given(tau=st.sampled_from([1.7, 3.0, 7.0, 100.0]), seed=st.integers(0, 2**16))
def test_synapse_filter_float32_op_order(tau, seed):
    x = np.random.default_rng(seed).random((6, 3, 4)).astype(np.float32)
    inv = np.float32(1.0 / tau)
    out, expected = np.zeros((3, 4), np.float32), []
    for t in range(6):
        out = (out - ((np.float32(1) - x[t]) * out) * inv) + x[t]
        expected.append(out)
    for step_mode in ("s", "m"):
        syn = SynapseFilter(tau=tau, step_mode=step_mode)
        y = syn(rs.tensor(x)) if step_mode == "m" else \
            rs.stack([syn(rs.tensor(x[t])) for t in range(6)])
        np.testing.assert_array_equal(y.data, np.stack(expected))


def test_learnable_synapse_filter_parameter_and_values():
    syn = SynapseFilter(tau=3.0, learnable=True)
    assert syn.w.shape == () and syn.w.dtype == np.float32
    assert syn.w.data == np.float32(-math.log(2.0))
    assert list(syn.state_dict()) == ["w"] and list(SynapseFilter().state_dict()) == []
    x = np.random.default_rng(0).random((4, 5)).astype(np.float32)
    inv = np.float32(1) / (np.float32(1) + np.exp(-syn.w.data))
    y = functional.multi_step_forward(rs.tensor(x), syn).data
    out = np.zeros(5, np.float32)
    for t in range(4):
        out = out - (1 - x[t]) * out * inv + x[t]
        np.testing.assert_allclose(y[t], out, rtol=2e-6)


def test_learnable_synapse_filter_gradient_matches_finite_differences():
    x = np.random.default_rng(1).random((5, 3))

    def loss(w_value, x_value):
        syn = SynapseFilter(tau=3.0, learnable=True).double()
        syn.w.data = np.asarray(w_value, np.float64)
        xt = rs.tensor(x_value, requires_grad=True)
        y = functional.multi_step_forward(xt, syn)
        return (y * y).sum(), syn, xt

    value, syn, xt = loss(-math.log(2.0), x)
    value.backward()
    eps = 1e-6
    w0 = -math.log(2.0)
    fd_w = (loss(w0 + eps, x)[0].item() - loss(w0 - eps, x)[0].item()) / (2 * eps)
    np.testing.assert_allclose(syn.w.grad.item(), fd_w, rtol=1e-6)
    i = (2, 1)
    xp, xm = x.copy(), x.copy()
    xp[i] += eps
    xm[i] -= eps
    fd_x = (loss(w0, xp)[0].item() - loss(w0, xm)[0].item()) / (2 * eps)
    np.testing.assert_allclose(xt.grad.data[i], fd_x, rtol=1e-6)


def test_synapse_filter_reset_and_errors():
    syn = SynapseFilter(tau=2.0)
    syn(rs.ones(3))
    functional.reset_net(syn)
    assert syn.out_i == 0. and isinstance(syn.out_i, float)
    with pytest.raises(AssertionError, match="tau must be > 1"):
        SynapseFilter(tau=1.0)
