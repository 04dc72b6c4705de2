"""`refsnn.testing.gradcheck`: passes correct gradients, catches wrong ones and
says where, refuses what it cannot check."""
from __future__ import annotations

import re

import numpy as np
import pytest

import refsnn as rs
from refsnn.autograd import Function
from refsnn.testing import gradcheck


class Cube(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.x = x
        return x * x * x

    @staticmethod
    def backward(ctx, g):
        return (3 * ctx.x * ctx.x * g,)


WRONG_ELEMENT = 4  # element (1, 1) of a (3, 3) input


class CubeWithWrongBackward(Cube):
    """x**3 whose backward forgets the factor 3 at one element."""

    @staticmethod
    def backward(ctx, g):
        (grad,) = Cube.backward(ctx, g)
        grad.flat[WRONG_ELEMENT] /= 3
        return (grad,)


class ScaleByArg(Function):
    """y = x * k with a non-tensor argument k; backward returns None for k."""

    @staticmethod
    def forward(ctx, x, k):
        ctx.k = k
        return x * k

    @staticmethod
    def backward(ctx, g):
        return g * ctx.k, None


def _x(shape=(3, 3), seed=0):
    return rs.tensor(np.random.default_rng(seed).uniform(0.5, 1.5, shape), requires_grad=True)


def test_passes_a_correct_function_and_returns_true():
    assert gradcheck(Cube.apply, [_x()]) is True
    assert gradcheck(Cube.apply, [_x()], fast_mode=True) is True


def test_fails_a_wrong_backward_naming_input_and_worst_element():
    y = _x(seed=1)
    with pytest.raises(AssertionError) as info:
        gradcheck(lambda a, b: a + CubeWithWrongBackward.apply(b), [_x(), y])
    message = str(info.value)
    assert "input 1" in message and "element (1, 1)" in message
    # both values carry the output projection's weight; the wrong one is a third
    analytic, numeric = map(float, re.search(r"analytic (\S+), numeric (\S+)", message).groups())
    assert numeric == pytest.approx(3 * analytic, rel=1e-6)


def test_fast_mode_also_catches_a_wrong_backward():
    with pytest.raises(AssertionError, match=r"input 0 .*directional derivative"):
        gradcheck(CubeWithWrongBackward.apply, [_x()], fast_mode=True)


def test_non_scalar_outputs_are_projected_so_every_element_counts():
    # the wrong element only influences one output element; a plain sum of the
    # outputs would still see it, and a projection must too
    with pytest.raises(AssertionError, match="element"):
        gradcheck(lambda x: CubeWithWrongBackward.apply(x) * 2, [_x()])


def test_refuses_non_float64_inputs_with_a_clear_error():
    with pytest.raises(TypeError, match=r"input 0 has dtype float32.*float64.*double\(\)"):
        gradcheck(Cube.apply, [rs.tensor(np.ones(3, np.float32), requires_grad=True)])


def test_refuses_a_float32_output():
    with pytest.raises(TypeError, match="float64 Tensor"):
        gradcheck(lambda x: x.float(), [_x()])


def test_needs_an_input_that_requires_grad():
    with pytest.raises(ValueError, match="no input requires grad"):
        gradcheck(Cube.apply, [rs.tensor(np.ones(3))])


def test_non_tensor_and_constant_arguments_pass_through():
    constant = rs.tensor(np.full((3, 3), 2.0))
    assert gradcheck(lambda x, c, k: ScaleByArg.apply(x, k) * c, [_x(), constant, 1.5])


def test_leaves_the_inputs_grad_untouched():
    x = _x()
    gradcheck(Cube.apply, [x])
    assert x.grad is None


def test_an_unused_input_has_zero_gradient():
    assert gradcheck(lambda x, y: x * 2, [_x(), _x(seed=3)])


def test_tolerances_are_respected():
    # x**3 at x ~ 1 with eps=1e-2: the central difference is off by eps**2 = 1e-4
    x = rs.tensor(np.array([1.0]), requires_grad=True)
    assert gradcheck(Cube.apply, [x], eps=1e-2, atol=2e-4, rtol=0)
    with pytest.raises(AssertionError):
        gradcheck(Cube.apply, [x], eps=1e-2, atol=1e-6, rtol=0)


def test_seed_changes_the_projection_but_not_the_verdict():
    for seed in range(3):
        assert gradcheck(lambda x: x.exp() * x, [_x((4,))], seed=seed)
        assert gradcheck(lambda x: x.exp() * x, [_x((4,))], seed=seed, fast_mode=True)
