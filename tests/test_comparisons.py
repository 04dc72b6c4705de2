"""Spike and gradient comparisons: where spikes first diverge, margins,
rounding-level versus real flips and their cascades; normwise gradient
tolerances that scale with T and fan-in."""
import numpy as np
import pytest

import refsnn as rs
from refsnn import neurons
from refsnn.comparisons import (assert_grads_close, assert_spikes_equal, grad_tolerance,
                                spike_report)

F32 = np.float32
ONE_BELOW = np.nextafter(F32(1), F32(0))


def spikes_and_h(T=5, M=4):
    """Reference spikes [T, 1, M] fired on h - 1 >= 0 from a potential h."""
    h = np.full((T, 1, M), 0.25, dtype=F32)
    return (h >= 1).astype(F32), h


def test_equal_spike_trains_have_no_report():
    s, h = spikes_and_h()
    assert spike_report(s, s.copy(), h_seq=h) is None
    assert_spikes_equal(s.astype(bool), s)          # dtype does not matter
    assert_spikes_equal(np.where(s == 0, F32(-0.0), s), s)   # nor the sign of zero


def test_first_flip_count_and_margin_at_threshold():
    s, h = spikes_and_h()
    h[2, 0, 1] = 1.0                                # exactly at threshold: the reference fires
    expected = (h - 1 >= 0).astype(F32)
    actual = (h > 1).astype(F32)                    # the `>` bug
    actual[4, 0, 3] = 1.0                           # and an unrelated real mismatch later
    r = spike_report(actual, expected, h_seq=h)
    assert (r.first.t, r.first.index) == (2, (0, 1))
    assert (r.first.expected, r.first.actual, r.first.margin) == (1.0, 0.0, 0.0)
    assert r.first.kind == "at_threshold"
    assert (r.differing, r.total, r.neurons) == (2, 20, 2)
    assert r.first_flip_kinds["at_threshold"] == 1 and r.first_flip_kinds["real"] == 1
    with pytest.raises(AssertionError) as e:
        assert_spikes_equal(actual, expected, h_seq=h)
    message = str(e.value)
    assert "first flip at t=2, index=(0, 1)" in message and "`>`" in message
    assert "2 of 20 spikes differ, in 2 neuron(s)" in message


def test_rounding_level_flip_and_its_cascade_are_allowed_on_request():
    s, h = spikes_and_h(T=6)
    h[1, 0, 0] = ONE_BELOW                          # 1 ulp below: the reference does not fire
    expected = (h - 1 >= 0).astype(F32)
    actual = expected.copy()
    actual[1, 0, 0] = 1                             # the implementation's h rounded up
    actual[3, 0, 0] = 1                             # and its state diverged afterwards
    actual[4, 0, 0] = 1
    r = spike_report(actual, expected, h_seq=h)
    assert r.first.kind == "rounding" and r.first.margin == float(ONE_BELOW - F32(1))
    assert r.cascaded == 2 and r.explained_by_rounding
    with pytest.raises(AssertionError, match="rounding-level"):
        assert_spikes_equal(actual, expected, h_seq=h)
    assert_spikes_equal(actual, expected, h_seq=h, allow_rounding_flips=True)
    actual[5, 0, 2] = 1                             # a real flip in another neuron
    with pytest.raises(AssertionError, match="1 real"):
        assert_spikes_equal(actual, expected, h_seq=h, allow_rounding_flips=True)


def test_rounding_threshold_is_counted_in_ulps_of_the_dtype():
    s, h = spikes_and_h(T=2, M=2)
    h[0, 0, 0] = F32(1) - 8 * np.spacing(F32(1))    # 8 ulp below: still rounding-level
    h[0, 0, 1] = F32(1) - 9 * np.spacing(F32(1))    # 9 ulp below: real
    expected = (h - 1 >= 0).astype(F32)
    actual = expected.copy()
    actual[0, 0, :] = 1
    r = spike_report(actual, expected, h_seq=h, rounding_ulps=8)
    assert r.first_flip_kinds["rounding"] == 1 and r.first_flip_kinds["real"] == 1


def test_margin_from_post_reset_potential_only_where_the_reference_did_not_fire():
    s, h = spikes_and_h(T=3, M=2)
    h[1, 0, 0] = 1.5                                # the reference fires here: v_seq hides h
    h[2, 0, 1] = 0.75
    expected = (h - 1 >= 0).astype(F32)
    v_seq = np.where(expected == 1, F32(0), h)       # hard reset to 0
    actual = expected.copy()
    actual[1, 0, 0], actual[2, 0, 1] = 0, 1
    r = spike_report(actual, expected, v_seq=v_seq)
    assert r.first.margin is None and r.first.kind == "unknown"
    assert r.first_flip_kinds["real"] == 1          # neuron 1: v = h = 0.75 there
    with pytest.raises(AssertionError, match="margin unknown"):
        assert_spikes_equal(actual, expected, v_seq=v_seq, allow_rounding_flips=True)


def test_implementation_potential_separates_rounding_from_firing_rule():
    s, h = spikes_and_h(T=2, M=2)
    h[0, 0, :] = 1.0
    expected = (h - 1 >= 0).astype(F32)
    actual = expected.copy()
    actual[0, 0, :] = 0
    own_h = h.copy()
    own_h[0, 0, 1] = ONE_BELOW                      # neuron 1 computed h one ulp lower
    r = spike_report(actual, expected, h_seq=h, actual_h_seq=own_h)
    assert r.first.kind == "same_potential"         # neuron 0: same h, no spike
    assert r.first_flip_kinds["rounding"] == 1


def test_shape_mismatch_is_an_assertion():
    with pytest.raises(AssertionError, match="shape"):
        assert_spikes_equal(np.zeros((2, 3)), np.zeros((3, 2)))


def test_a_real_reassociation_gives_rounding_level_flips_only():
    """A LIF charge written `v * (1 - 1/tau) + x / tau` instead of SpikingJelly's
    `v + (x - v) / tau`: found inputs where the reference lands exactly on the
    threshold and the variant one ulp below. Strictly a failure, accepted as
    rounding with the reference's h."""
    rng = np.random.default_rng(1)
    tau = 3.0
    v = rng.uniform(-0.5, 1.0, 200_000).astype(F32)
    x = ((F32(1) - v) * F32(tau) + v).astype(F32)   # h = 1 for exact arithmetic
    ref_h = v + (x - v) / tau
    variant_h = v * (1. - 1. / tau) + x / tau
    pick = np.flatnonzero((ref_h == 1) & (variant_h < 1))[:4]
    assert pick.size == 4
    T = 3
    x_seq = np.zeros((T, 1, 4), F32)
    x_seq[0, 0] = x[pick]
    node = neurons.LIFNode(tau=tau, step_mode="m", store_v_seq=True)
    node.v = rs.tensor(v[pick].reshape(1, 4))
    hs = []
    charge = node.neuronal_charge
    object.__setattr__(node, "neuronal_charge", lambda inp: (charge(inp), hs.append(node.v.data)))
    expected = node(rs.tensor(x_seq)).data
    h_seq = np.stack(hs)
    actual = np.zeros_like(expected)                # the variant's spikes (no later input)
    actual[0, 0] = (variant_h[pick] - 1 >= 0)
    with pytest.raises(AssertionError, match="4 at threshold"):
        assert_spikes_equal(actual, expected, h_seq=h_seq)
    own_h = h_seq.copy()
    own_h[0, 0] = variant_h[pick]
    assert_spikes_equal(actual, expected, h_seq=h_seq, actual_h_seq=own_h,
                        allow_rounding_flips=True)


# ----------------------------------------------------------------------------
# gradients
# ----------------------------------------------------------------------------
def test_grad_tolerance_scales_with_steps_and_fan_in():
    eps = float(np.finfo(np.float32).eps)
    assert grad_tolerance("float32") == pytest.approx(16 * eps * 2)
    assert grad_tolerance(np.float32, steps=64, fan_in=100) == pytest.approx(16 * eps * 164)
    assert grad_tolerance("float64", steps=8, ulps=4) == pytest.approx(4 * 2.0 ** -52 * 9)
    with pytest.raises(ValueError):
        grad_tolerance("float32", steps=0)


def test_grads_close_passes_rounding_and_fails_beyond_the_scaled_tolerance():
    g = np.random.default_rng(0).standard_normal((16, 2, 8)).astype(F32)
    off = g.copy()
    off[3, 1, 4] += F32(1e-5) * np.abs(g).max()      # normwise error 1e-5
    with pytest.raises(AssertionError) as e:
        assert_grads_close(off, g)                    # T=1: rtol 3.8e-6
    assert "worst at (3, 1, 4)" in str(e.value) and "1 of 256" in str(e.value)
    assert "steps=1 + fan_in=1" in str(e.value)
    assert_grads_close(off, g, steps=16)              # T=16: rtol 3.2e-5
    assert_grads_close(off, g, rtol=2e-5)


def test_grads_close_requires_matching_nonfinite_entries():
    g = np.array([1.0, np.nan, np.inf, -2.0])
    assert_grads_close(g.copy(), g)
    for bad in ([1.0, 0.0, np.inf, -2.0], [1.0, np.nan, -np.inf, -2.0],
                [np.nan, np.nan, np.inf, -2.0]):
        with pytest.raises(AssertionError):
            assert_grads_close(np.array(bad), g)
    with pytest.raises(AssertionError, match="shape"):
        assert_grads_close(np.zeros(3), np.zeros(4))


def test_all_zero_expected_requires_exact_zero_unless_atol():
    assert_grads_close(np.zeros(3), np.zeros(3))
    with pytest.raises(AssertionError):
        assert_grads_close(np.array([0.0, 1e-30, 0.0]), np.zeros(3))
    assert_grads_close(np.array([0.0, 1e-30, 0.0]), np.zeros(3), atol=1e-20)


def test_default_tolerance_accepts_the_fused_backend_against_the_composed_path():
    """Two real implementations that are not bitwise equal in their backward
    (closed-form BPTT versus the tape) pass with the T-scaled default."""
    rng = np.random.default_rng(3)
    T, shape = 32, (4, 16)
    x = rng.uniform(-0.5, 2.0, (T,) + shape).astype(F32)
    g = rng.standard_normal((T,) + shape).astype(F32)
    grads = []
    for backend in ("numpy", "numpy-fused"):
        node = neurons.ParametricLIFNode(init_tau=3.0, step_mode="m", backend=backend)
        xt = rs.tensor(x, requires_grad=True)
        (node(xt) * rs.tensor(g)).sum().backward()
        grads.append((xt.grad.data, node.w.grad.data))
    (gx_ref, gw_ref), (gx, gw) = grads
    assert not np.array_equal(gx, gx_ref) or not np.array_equal(gw, gw_ref)
    assert_grads_close(gx, gx_ref, steps=T)
    assert_grads_close(gw, gw_ref, steps=T, fan_in=x.size)
