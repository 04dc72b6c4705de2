"""Surrogate functions checked against independent float64 math (no torch).

Every class's primitive is compared with its textbook closed form, and its
surrogate derivative with central finite differences of that closed form.
"""
import math

import numpy as np
import pytest
from hypothesis import assume, given, strategies as st
from scipy import special

import refsnn as rs
from refsnn import surrogate as sg


def _sign0(x):
    """1 for x >= 0, -1 otherwise (SpikingJelly's NonzeroSign)."""
    return np.where(x >= 0, 1.0, -1.0)


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _qpseudo(x, alpha):
    b = 1.0 + 2.0 * np.abs(x) / (alpha - 1.0)
    half_tail = 0.5 * b ** (1.0 - alpha)
    return np.where(x < 0, half_tail, 1.0 - half_tail)


def _plrelu(x, w, c):
    return np.where(x < -w, c * x + c * w,
                    np.where(x > w, c * x - c * w + 1.0, x / (2 * w) + 0.5))


def _squarewave(x, n, T_period):
    omega = 2 * math.pi / T_period
    return 0.5 + 2 / math.pi * sum(np.sin((2 * i - 1) * omega * x) / (2 * i - 1)
                                   for i in range(1, n)) + 0 * x


def _log_tailed(x, alpha):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(x > 1, np.log(np.maximum(x, 1.0)) + 1.0, np.where(x > 0, x, alpha * x))


def _alpha(lo, hi):
    return {"alpha": st.floats(lo, hi)}


# name -> (strategies for constructor kwargs, closed-form primitive g(x, **kw), kinks(**kw))
CASES = {
    "Sigmoid": (_alpha(0.5, 8.0), lambda x, alpha: _sigmoid(alpha * x), lambda alpha: []),
    "ATan": (_alpha(0.5, 8.0), lambda x, alpha: np.arctan(math.pi / 2 * alpha * x) / math.pi + 0.5,
             lambda alpha: []),
    "PiecewiseQuadratic": (
        _alpha(0.5, 4.0),
        lambda x, alpha: np.where(x < -1 / alpha, 0.0, np.where(
            x > 1 / alpha, 1.0, -alpha ** 2 / 2 * np.abs(x) * x + alpha * x + 0.5)),
        lambda alpha: [-1 / alpha, 1 / alpha]),
    "PiecewiseExp": (_alpha(0.5, 4.0),
                     lambda x, alpha: np.where(x < 0, np.exp(alpha * x) / 2,
                                               1 - np.exp(-alpha * x) / 2),
                     lambda alpha: [0.0]),
    "SoftSign": (_alpha(0.5, 8.0),
                 lambda x, alpha: (alpha * x / (1 + np.abs(alpha * x)) + 1) / 2,
                 lambda alpha: []),
    "Erf": (_alpha(0.5, 4.0), lambda x, alpha: (1 + special.erf(alpha * x)) / 2, lambda alpha: []),
    "NonzeroSignLogAbs": (_alpha(0.5, 4.0),
                          lambda x, alpha: _sign0(x) * np.log(alpha * np.abs(x) + 1),
                          lambda alpha: []),
    "QPseudoSpike": (_alpha(1.5, 4.0), _qpseudo, lambda alpha: []),
    "LogTailedReLU": (_alpha(0.0, 0.5), _log_tailed, lambda alpha: [0.0, 1.0]),
    "PiecewiseLeakyReLU": (
        {"w": st.floats(0.25, 2.0), "c": st.floats(0.0, 0.2), "consistent_slope": st.just(True)},
        lambda x, w, c, consistent_slope: _plrelu(x, w, c),
        lambda w, c, consistent_slope: [-w, w]),
    "SquarewaveFourierSeries": (
        {"n": st.integers(1, 5), "T_period": st.floats(2.0, 16.0)},
        lambda x, n, T_period: _squarewave(x, n, T_period), lambda n, T_period: []),
    "S2NN": ({"alpha": st.floats(1.0, 8.0), "beta": st.floats(0.25, 2.0)},
             lambda x, alpha, beta: np.where(x < 0, _sigmoid(alpha * x),
                                             beta * np.log(np.abs(x + 1) + 1e-5) + 0.5),
             lambda alpha, beta: [0.0]),
    "LeakyKReLU": ({"leak": st.floats(0.0, 0.5), "k": st.floats(0.5, 2.0)},
                   lambda x, leak, k: np.where(x < 0, leak * x, k * x),
                   lambda leak, k: [0.0]),
}

ALL_CLASSES = sorted(CASES) + ["FakeNumericalGradient"]
ALL_CLASSES_DEFAULT = [getattr(sg, name)() for name in ALL_CLASSES]

X_RANGE = st.floats(-4.0, 4.0)


def _draw_case(data, name):
    kw_strategies, closed_form, kinks = CASES[name]
    kw = {k: data.draw(s, label=k) for k, s in kw_strategies.items()}
    x = data.draw(X_RANGE, label="x")
    # 0 is a kink of |x| (the derivative's derivative jumps there) in most classes
    assume(all(abs(x - k) > 1e-3 for k in [0.0, *kinks(**kw)]))
    return kw, x, closed_form


def _central_difference(f, x, h=1e-6):
    return (f(x + h) - f(x - h)) / (2 * h)


# --- formulas against independent math ------------------------------------------------
@pytest.mark.parametrize("name", sorted(CASES))
@given(data=st.data())
def test_primitive_equals_closed_form(name, data):
    kw, x, closed_form = _draw_case(data, name)
    xs = np.array([x, -x, x / 3], dtype=np.float64)
    got = getattr(sg, name)(**kw).primitive_array(xs)
    np.testing.assert_allclose(got, closed_form(xs, **kw), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", sorted(CASES))
@given(data=st.data())
def test_surrogate_derivative_equals_finite_differences_of_primitive(name, data):
    kw, x, closed_form = _draw_case(data, name)
    xs = np.array([x], dtype=np.float64)
    got = getattr(sg, name)(**kw).derivative_array(xs)
    expected = _central_difference(lambda z: closed_form(z, **kw), xs)
    # S2NN's surrogate is beta/(x+1) while its primitive has log(|x+1| + 1e-5)
    rtol = 2e-5 if name == "S2NN" else 1e-6
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=1e-7)


@given(w=st.floats(0.25, 2.0), c=st.floats(0.0, 0.2), x=X_RANGE)
def test_piecewise_leaky_relu_default_inner_slope_is_spikingjelly_014s_one_over_w(w, c, x):
    assume(abs(abs(x) - w) > 1e-3)
    xs = np.array([x])
    default = sg.PiecewiseLeakyReLU(w, c).derivative_array(xs)
    consistent = sg.PiecewiseLeakyReLU(w, c, consistent_slope=True).derivative_array(xs)
    if abs(x) < w:
        np.testing.assert_allclose(default, 1 / w, rtol=1e-15)
        np.testing.assert_allclose(consistent, 1 / (2 * w), rtol=1e-15)
    else:
        np.testing.assert_allclose(default, consistent)


@given(alpha=st.floats(0.05, 2.0), x=st.floats(-4.0, 4.0).filter(lambda v: v != 0))
def test_fake_numerical_gradient_is_min_of_inverse_abs_and_alpha(alpha, x):
    got = sg.FakeNumericalGradient(alpha).derivative_array(np.array([x]))
    np.testing.assert_allclose(got, min(1 / abs(x), alpha), rtol=1e-15)


def test_fake_numerical_gradient_at_signed_zeros():
    got = sg.FakeNumericalGradient(0.3).derivative_array(np.array([0.0, -0.0]))
    assert got[0] == 0.3 and got[1] == -np.inf  # -0.0 >= 0, so 1/-0.0 = -inf, kept by clamp_max


def test_log_tailed_relu_primitive_has_no_nan_for_nonpositive_inputs():
    x = np.array([-2.0, -0.5, -0.0, 0.0, 0.5, np.inf])
    got = sg.LogTailedReLU(0.1).primitive_array(x)
    np.testing.assert_array_equal(got, [-0.2, -0.05, 0.0, 0.0, 0.5, np.inf])


# --- heaviside --------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_heaviside_edge_values(dtype):
    tiny = np.finfo(dtype).smallest_subnormal
    x = np.array([np.nan, 0.0, -0.0, tiny, -tiny, np.inf, -np.inf, 1.0, -1.0], dtype=dtype)
    expected = np.array([0, 1, 1, 1, 0, 1, 0, 1, 0], dtype=dtype)
    out = sg.heaviside(x)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, expected)
    out_t = sg.heaviside(rs.tensor(x))
    assert isinstance(out_t, rs.Tensor) and not out_t.requires_grad
    np.testing.assert_array_equal(out_t.data, expected)


@pytest.mark.parametrize("surrogate", ALL_CLASSES_DEFAULT, ids=ALL_CLASSES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_spiking_forward_is_heaviside(surrogate, dtype):
    tiny = np.finfo(dtype).smallest_subnormal
    x = np.array([np.nan, 0.0, -0.0, tiny, -tiny, 0.3, -0.3], dtype=dtype)
    out = surrogate(rs.tensor(x, requires_grad=True))
    assert out.dtype == dtype and out.requires_grad
    np.testing.assert_array_equal(out.data, [0, 1, 1, 1, 0, 1, 0])


# --- the two autograd paths ------------------------------------------------------------
_rng = np.random.default_rng(1234)
X32 = _rng.uniform(-3, 3, 64).astype(np.float32)
G32 = _rng.normal(size=64).astype(np.float32)


@pytest.mark.parametrize("name", sorted(CASES))
def test_non_spiking_forward_is_the_primitive(name):
    surrogate = getattr(sg, name)(spiking=False) if name != "LeakyKReLU" else sg.LeakyKReLU(False)
    out = surrogate(rs.tensor(X32))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out.data, surrogate.primitive_array(X32))


@pytest.mark.parametrize("surrogate", ALL_CLASSES_DEFAULT, ids=ALL_CLASSES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_spiking_backward_is_the_surrogate_derivative(surrogate, dtype):
    x = rs.tensor(X32.astype(dtype), requires_grad=True)
    surrogate(x).backward(G32.astype(dtype))
    assert x.grad.dtype == dtype
    np.testing.assert_array_equal(x.grad.data,
                                  surrogate.derivative_array(X32.astype(dtype), G32.astype(dtype)))


@pytest.mark.parametrize("surrogate", ALL_CLASSES_DEFAULT, ids=ALL_CLASSES)
def test_derivative_with_unit_gradient_is_psi(surrogate):
    np.testing.assert_array_equal(surrogate.derivative_array(X32),
                                  surrogate.derivative_array(X32, np.ones_like(X32)))


# x away from every default kink (0, +-1, +-1/alpha)
X64_SMOOTH = np.array([-2.7, -1.6, -0.73, -0.21, 0.17, 0.58, 1.3, 2.2])


@pytest.mark.parametrize("name", sorted(CASES))
def test_non_spiking_autograd_gradient_equals_finite_differences(name):
    surrogate = getattr(sg, name)(spiking=False) if name != "LeakyKReLU" else sg.LeakyKReLU(False)
    x = rs.tensor(X64_SMOOTH, requires_grad=True)
    surrogate(x).sum().backward()
    expected = _central_difference(surrogate.primitive_array, X64_SMOOTH)
    np.testing.assert_allclose(x.grad.data, expected, rtol=1e-6, atol=1e-8)


# surrogates whose spiking backward is not the exact derivative of their primitive
INCONSISTENT = {"PiecewiseLeakyReLU", "S2NN"}


@pytest.mark.parametrize("name", sorted(set(CASES) - INCONSISTENT))
def test_spiking_gradient_equals_non_spiking_autograd_gradient(name):
    spiking = getattr(sg, name)()
    x1 = rs.tensor(X64_SMOOTH, requires_grad=True)
    spiking(x1).sum().backward()
    spiking.set_spiking_mode(False)
    x2 = rs.tensor(X64_SMOOTH, requires_grad=True)
    spiking(x2).sum().backward()
    np.testing.assert_allclose(x1.grad.data, x2.grad.data, rtol=1e-12, atol=1e-15)


def test_backward_uses_the_parameters_of_the_forward_call():
    surrogate = sg.Sigmoid(alpha=4.0)
    x = rs.tensor(X32, requires_grad=True)
    out = surrogate(x)
    surrogate.alpha = 1.0
    out.backward(G32)
    np.testing.assert_array_equal(x.grad.data, sg.Sigmoid(4.0).derivative_array(X32, G32))


# --- the Module side -------------------------------------------------------------------
@pytest.mark.parametrize("surrogate", ALL_CLASSES_DEFAULT, ids=ALL_CLASSES)
def test_surrogates_have_no_parameters_or_buffers(surrogate):
    assert list(surrogate.parameters()) == [] and list(surrogate.buffers()) == []
    assert len(surrogate.state_dict()) == 0


def test_reprs_follow_spikingjelly():
    assert repr(sg.Sigmoid()) == "Sigmoid(alpha=4.0, spiking=True)"
    assert repr(sg.ATan(3, spiking=False)) == "ATan(alpha=3, spiking=False)"
    assert repr(sg.S2NN()) == "S2NN()"  # SpikingJelly's multi-argument base has no extra_repr


def test_defaults_follow_spikingjelly():
    assert [getattr(sg, n)().alpha for n in
            ("Sigmoid", "ATan", "PiecewiseQuadratic", "PiecewiseExp", "SoftSign", "Erf",
             "NonzeroSignLogAbs", "QPseudoSpike", "FakeNumericalGradient", "LogTailedReLU")] \
        == [4.0, 2.0, 1.0, 1.0, 2.0, 2.0, 1.0, 2.0, 0.3, 0.0]
    p = sg.PiecewiseLeakyReLU()
    assert (p.w, p.c, p.spiking, p.consistent_slope) == (1.0, 0.01, True, False)
    s = sg.SquarewaveFourierSeries()
    assert (s.n, s.T_period) == (2, 8)
    s2 = sg.S2NN()
    assert (s2.alpha, s2.beta) == (4.0, 1.0)


def test_leaky_k_relu_takes_spiking_first():
    m = sg.LeakyKReLU(0.1)
    assert (m.spiking, m.leak, m.k) == (0.1, 0.0, 1.0)


@pytest.mark.parametrize("name", sorted(CASES))
def test_set_spiking_mode_switches_every_class(name):
    m = getattr(sg, name)()
    m.set_spiking_mode(False)
    np.testing.assert_array_equal(m(rs.tensor(X32)).data, m.primitive_array(X32))
    m.set_spiking_mode(True)
    np.testing.assert_array_equal(m(rs.tensor(X32)).data, sg.heaviside(X32))


def test_fake_numerical_gradient_has_no_primitive():
    m = sg.FakeNumericalGradient()
    m.set_spiking_mode(False)
    with pytest.raises(NotImplementedError, match="FakeNumericalGradient"):
        m(rs.tensor(X32))


@pytest.mark.parametrize("make", [lambda: sg.SoftSign(0.0), lambda: sg.PiecewiseLeakyReLU(w=0.0),
                                  lambda: sg.SquarewaveFourierSeries(n=2.0),
                                  lambda: sg.SquarewaveFourierSeries(T_period=0)])
def test_invalid_arguments_are_rejected(make):
    with pytest.raises(ValueError):
        make()
