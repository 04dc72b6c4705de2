"""Surrogate spiking functions: SpikingJelly 0.0.0.0.14's `surrogate` module.

Every class has SpikingJelly's name, constructor arguments, defaults and
`spiking` flag (from `clock_driven.surrogate`, plus the `activation_based`-only
`LeakyKReLU`, `FakeNumericalGradient` and `LogTailedReLU`). A surrogate is a
`Module` without parameters or buffers:
- `spiking=True`: the forward is `heaviside(x)` (1 for x >= 0, -0.0 included;
  0 for x < 0 and NaN) through one autograd `Function`, `SpikeFunction`, whose
  backward is the class's `grad_x` formula evaluated on NumPy arrays;
- `spiking=False`: the forward is the class's `primitive` formula evaluated on
  autograd Tensors, so its gradient comes from the tape.

Each class writes its two formulas once, as static functions over the
`refsnn.mathops` protocol (see there for the constant-folding rules):
- `grad_x(x, g, ops, **params)`: SpikingJelly's torch backward, `g` being the
  incoming gradient, in SpikingJelly's exact operation order;
- `primitive(x, ops, **params)`: the function whose derivative the surrogate is.
`formula_params()` gives the instance's `params`. The fused NumPy neuron path
calls `derivative_array(x, g)`, and OpenCL code generation evaluates
`sg.grad_x(x_expr, g_expr, emitter, **sg.formula_params())`. With `g=1.0` the
formula returns the surrogate derivative psi(x) itself.

Shapes: `x: [*]` (any shape); outputs have x's shape and dtype.
"""
from __future__ import annotations

import math

import numpy as np

from .autograd import Function, Tensor
from .mathops import NUMPY, TENSOR
from .module import Module

__all__ = [
    "heaviside", "SpikeFunction", "SurrogateFunctionBase", "MultiArgsSurrogateFunctionBase",
    "Sigmoid", "ATan", "PiecewiseQuadratic", "PiecewiseExp", "SoftSign", "Erf",
    "NonzeroSignLogAbs", "PiecewiseLeakyReLU", "SquarewaveFourierSeries", "S2NN",
    "QPseudoSpike", "LeakyKReLU", "FakeNumericalGradient", "LogTailedReLU",
]


def heaviside(x):
    """1 where x >= 0 (including -0.0), else 0 (including NaN); x's dtype, no
    gradient. `x`: a Tensor (gives a Tensor) or an array (gives an array)."""
    if isinstance(x, Tensor):
        return Tensor(NUMPY.heaviside(x.data))
    return NUMPY.heaviside(np.asarray(x))


def _grad_x_array(grad_x, x: np.ndarray, g, params: dict) -> np.ndarray:
    """Evaluate a `grad_x` formula on arrays; the result has x's shape and dtype."""
    with np.errstate(all="ignore"):
        out = grad_x(x, g, NUMPY, **params)
    return np.asarray(out, dtype=x.dtype)


class SpikeFunction(Function):
    """Spikes with a surrogate gradient: forward `heaviside(x)`, backward
    `grad_x(x, g, NUMPY, **params)`. The formula and its parameters are taken at
    forward time, as SpikingJelly saves them in its autograd context."""

    @staticmethod
    def forward(ctx, x, grad_x, params):
        ctx.saved = (x, grad_x, params)
        return NUMPY.heaviside(x)

    @staticmethod
    def backward(ctx, g):
        x, grad_x, params = ctx.saved
        return _grad_x_array(grad_x, x, g, params), None, None


class _Surrogate(Module):
    """What every surrogate shares: the `spiking` flag, the forward, and the
    array-level entry points. Subclasses set `param_names` and the formulas."""

    param_names: tuple = ()

    def __init__(self, spiking=True):
        super().__init__()
        self.spiking = spiking

    def set_spiking_mode(self, spiking: bool) -> None:
        self.spiking = spiking

    def formula_params(self) -> dict:
        """Keyword arguments of this instance's `grad_x` and `primitive`."""
        return {name: getattr(self, name) for name in self.param_names}

    @staticmethod
    def grad_x(x, g, ops, **params):
        raise NotImplementedError

    @staticmethod
    def primitive(x, ops, **params):
        raise NotImplementedError

    def derivative_array(self, x: np.ndarray, g=1.0) -> np.ndarray:
        """The surrogate backward on arrays: `grad_x` for incoming gradient `g`
        (an array like x, or 1.0 for the derivative itself). x: [*] -> [*]."""
        return _grad_x_array(self.grad_x, np.asarray(x), g, self.formula_params())

    def primitive_array(self, x: np.ndarray) -> np.ndarray:
        """The primitive function on arrays. x: [*] -> [*]."""
        with np.errstate(all="ignore"):
            return self.primitive(np.asarray(x), NUMPY, **self.formula_params())

    def forward(self, x):
        """x: [*] -> spikes (spiking=True) or primitive values, [*]."""
        x = x if isinstance(x, Tensor) else Tensor(x)
        if self.spiking:
            return SpikeFunction.apply(x, self.grad_x, self.formula_params())
        with np.errstate(all="ignore"):
            return self.primitive(x, TENSOR, **self.formula_params())


class SurrogateFunctionBase(_Surrogate):
    """Base of the surrogates with one parameter `alpha` (SpikingJelly's
    `SurrogateFunctionBase(alpha, spiking=True)`)."""

    param_names = ("alpha",)

    def __init__(self, alpha, spiking=True):
        super().__init__(spiking)
        self.alpha = alpha

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, spiking={self.spiking}"


class MultiArgsSurrogateFunctionBase(_Surrogate):
    """Base of the surrogates with several parameters (SpikingJelly's
    `MultiArgsSurrogateFunctionBase(spiking, *args, **kwargs)`); like
    SpikingJelly, no `extra_repr`.

    Differences from SpikingJelly: `clock_driven` picks the spiking or primitive
    function once in `__init__`, so there `set_spiking_mode` has no effect on
    PiecewiseLeakyReLU, SquarewaveFourierSeries and S2NN; here (as in
    `activation_based`) the flag is read on every call."""

    def __init__(self, spiking=True, *args, **kwargs):
        super().__init__(spiking)


# ----------------------------------------------------------------------------
# one-parameter surrogates
# ----------------------------------------------------------------------------
class Sigmoid(SurrogateFunctionBase):
    """g(x) = sigmoid(alpha*x); g'(x) = alpha * sigmoid(alpha*x) * (1 - sigmoid(alpha*x))."""

    def __init__(self, alpha=4.0, spiking=True):
        super().__init__(alpha, spiking)

    @staticmethod
    def grad_x(x, g, ops, alpha):
        s = ops.sigmoid(x * alpha)
        return ((g * (1.0 - s)) * s) * alpha

    @staticmethod
    def primitive(x, ops, alpha):
        return ops.sigmoid(x * alpha)


class ATan(SurrogateFunctionBase):
    """g(x) = atan(pi/2*alpha*x)/pi + 1/2; g'(x) = alpha / (2 * (1 + (pi/2*alpha*x)^2))."""

    def __init__(self, alpha=2.0, spiking=True):
        super().__init__(alpha, spiking)

    @staticmethod
    def grad_x(x, g, ops, alpha):
        z = (math.pi / 2 * alpha) * x
        return (ops.reciprocal(1.0 + z * z) * (alpha / 2)) * g

    @staticmethod
    def primitive(x, ops, alpha):
        return ops.atan((math.pi / 2 * alpha) * x) / math.pi + 0.5


class PiecewiseQuadratic(SurrogateFunctionBase):
    """g'(x) = alpha - alpha^2*|x| for |x| <= 1/alpha, else 0;
    g(x) = 0 (x < -1/alpha), -alpha^2/2*|x|*x + alpha*x + 1/2, 1 (x > 1/alpha)."""

    def __init__(self, alpha=1.0, spiking=True):
        super().__init__(alpha, spiking)

    @staticmethod
    def grad_x(x, g, ops, alpha):
        x_abs = ops.abs(x)
        return ops.where(ops.gt(x_abs, 1 / alpha), 0.0, g * (-(alpha ** 2) * x_abs + alpha))

    @staticmethod
    def primitive(x, ops, alpha):
        above = ops.gt(x, 1.0 / alpha)
        inside = ops.le(ops.abs(x), 1.0 / alpha)
        return above + inside * (-(alpha ** 2) / 2 * ops.square(x) * ops.sign(x)
                                 + alpha * x + 0.5)


class PiecewiseExp(SurrogateFunctionBase):
    """g'(x) = alpha/2 * exp(-alpha*|x|); g(x) = exp(alpha*x)/2 (x < 0),
    1 - exp(-alpha*x)/2 (x >= 0)."""

    def __init__(self, alpha=1.0, spiking=True):
        super().__init__(alpha, spiking)

    @staticmethod
    def grad_x(x, g, ops, alpha):
        return alpha / 2 * ops.exp(-alpha * ops.abs(x)) * g

    @staticmethod
    def primitive(x, ops, alpha):
        nonnegative = ops.heaviside(x)
        sign = nonnegative * 2.0 - 1.0
        half_exp = ops.exp(sign * x * -alpha) / 2.0
        return nonnegative - half_exp * sign


class SoftSign(SurrogateFunctionBase):
    """g(x) = (softsign(alpha*x) + 1)/2, softsign(z) = z/(1+|z|);
    g'(x) = 1 / (2*alpha*(1/alpha + |x|)^2). alpha must be > 0 (SpikingJelly
    asserts; here a ValueError)."""

    def __init__(self, alpha=2.0, spiking=True):
        if not alpha > 0:
            raise ValueError(f"SoftSign: alpha must be larger than 0, got {alpha}")
        super().__init__(alpha, spiking)

    @staticmethod
    def grad_x(x, g, ops, alpha):
        return g / (2 * alpha * ops.square(1 / alpha + ops.abs(x)))

    @staticmethod
    def primitive(x, ops, alpha):
        z = x * alpha
        return (z / (ops.abs(z) + 1.0) + 1.0) / 2.0


class Erf(SurrogateFunctionBase):
    """g(x) = erfc(-alpha*x)/2; g'(x) = alpha/sqrt(pi) * exp(-alpha^2*x^2)."""

    def __init__(self, alpha=2.0, spiking=True):
        super().__init__(alpha, spiking)

    @staticmethod
    def grad_x(x, g, ops, alpha):
        return g * ops.exp(-ops.square(x * alpha)) * (alpha / math.sqrt(math.pi))

    @staticmethod
    def primitive(x, ops, alpha):
        return ops.erfc(-alpha * x) / 2.0


class NonzeroSignLogAbs(SurrogateFunctionBase):
    """g(x) = s*log(alpha*s*x + 1) with s = 1 (x >= 0) or -1 (x < 0);
    g'(x) = 1 / (1/alpha + |x|).

    Difference from SpikingJelly: `activation_based`'s backward raises a
    RuntimeError (it passes a tuple to its TorchScript function); here the
    backward works and equals `clock_driven`'s."""

    def __init__(self, alpha=1.0, spiking=True):
        super().__init__(alpha, spiking)

    @staticmethod
    def grad_x(x, g, ops, alpha):
        return g / (1 / alpha + ops.abs(x))

    @staticmethod
    def primitive(x, ops, alpha):
        sign = ops.heaviside(x) * 2.0 - 1.0
        return sign * ops.log(alpha * sign * x + 1.0)


class QPseudoSpike(SurrogateFunctionBase):
    """g'(x) = (1 + 2/(alpha-1)*|x|)^(-alpha);
    g(x) = 1/2*(1 - 2/(alpha-1)*x)^(1-alpha) (x < 0),
    1 - 1/2*(1 + 2/(alpha-1)*x)^(1-alpha) (x >= 0). The powers follow PyTorch's
    special cases (alpha=2 gives exact reciprocals)."""

    def __init__(self, alpha=2.0, spiking=True):
        super().__init__(alpha, spiking)

    @staticmethod
    def grad_x(x, g, ops, alpha):
        return ops.pow(1.0 + 2 / (alpha - 1) * ops.abs(x), -alpha) * g

    @staticmethod
    def primitive(x, ops, alpha):
        nonnegative = ops.heaviside(x)
        sign = nonnegative * 2.0 - 1.0
        return nonnegative - sign * (0.5 * ops.pow(1.0 + 2.0 / (alpha - 1.0) * x * sign,
                                                   1.0 - alpha))


class FakeNumericalGradient(SurrogateFunctionBase):
    """Always spiking (`activation_based` only): g'(x) = min(sign(x)/x, alpha)
    with sign(0) = 1, i.e. min(1/|x|, alpha); x = -0.0 gives -inf, as in
    SpikingJelly. There is no primitive: `set_spiking_mode(False)` makes the
    forward raise NotImplementedError, as in SpikingJelly."""

    def __init__(self, alpha=0.3):
        super().__init__(alpha, spiking=True)

    @staticmethod
    def grad_x(x, g, ops, alpha):
        slope = (ops.ge(x, 0.0) * 2.0 - 1.0) / x
        return g * ops.where(ops.gt(slope, alpha), alpha, slope)  # clamp_max, NaN kept

    @staticmethod
    def primitive(x, ops, alpha):
        raise NotImplementedError("FakeNumericalGradient has no primitive function; "
                                  "it only works with spiking=True")


class LogTailedReLU(SurrogateFunctionBase):
    """g(x) = alpha*x (x <= 0), x (0 < x <= 1), log(x) + 1 (x > 1)
    (`activation_based` only); g'(x) = alpha, 1, 1/x.

    Difference from SpikingJelly: its primitive
    `(1-[x>1])*leaky_relu(x, alpha) + [x>1]*(log(x)+1)` is NaN for x <= 0
    (0*log(x)) and for x = +inf (0*inf); here the pieces are selected, as
    SpikingJelly 2.0 does, so those inputs give alpha*x and +inf."""

    def __init__(self, alpha=0.0, spiking=True):
        super().__init__(alpha, spiking)

    @staticmethod
    def grad_x(x, g, ops, alpha):
        slope = ops.where(ops.gt(x, 1.0), ops.reciprocal(x), 1.0)
        return g * ops.where(ops.le(x, 0.0), alpha, slope)

    @staticmethod
    def primitive(x, ops, alpha):
        tail = ops.gt(x, 1.0)
        log_tail = ops.log(ops.where(tail, x, 1.0)) + 1.0  # log only where x > 1
        return ops.where(tail, log_tail, ops.where(ops.gt(x, 0.0), x, x * alpha))


# ----------------------------------------------------------------------------
# multi-parameter surrogates
# ----------------------------------------------------------------------------
class PiecewiseLeakyReLU(MultiArgsSurrogateFunctionBase):
    """g(x) = c*x + c*w (x < -w), x/(2w) + 1/2 (|x| <= w), c*x - c*w + 1 (x > w).

    Backward: c outside, and inside |x| < w (strict) SpikingJelly 0.0.0.0.14's
    slope 1/w, twice the primitive's slope 1/(2w). `consistent_slope=True`
    (keyword only, not in SpikingJelly) uses 1/(2w), as SpikingJelly 2.0 does.
    w must be > 0 (SpikingJelly asserts; here a ValueError)."""

    param_names = ("w", "c", "consistent_slope")

    def __init__(self, w=1.0, c=0.01, spiking=True, *, consistent_slope: bool = False):
        if not w > 0:
            raise ValueError(f"PiecewiseLeakyReLU: w must be larger than 0, got {w}")
        super().__init__(spiking)
        self.w = w
        self.c = c
        self.consistent_slope = consistent_slope

    @staticmethod
    def grad_x(x, g, ops, w, c, consistent_slope):
        inner_slope = 1 / (2 * w) if consistent_slope else 1 / w
        return g * ops.where(ops.lt(ops.abs(x), w), inner_slope, c)

    @staticmethod
    def primitive(x, ops, w, c, consistent_slope):
        below = ops.lt(x, -w)
        above = ops.gt(x, w)
        inside = ops.const(1.0, x) - below - above
        if c == 0:
            return inside * (x / (2 * w) + 1 / 2) + above
        cw = c * w
        return below * (c * x + cw) + above * (c * x + (-cw + 1)) \
            + inside * (x / (2 * w) + 1 / 2)


class SquarewaveFourierSeries(MultiArgsSurrogateFunctionBase):
    """g(x) = 1/2 + 2/pi * sum_{i=1}^{n-1} sin((2i-1)*omega*x)/(2i-1), omega = 2pi/T_period;
    g'(x) = 4/T_period * sum cos((2i-1)*omega*x). Requires an int n and
    T_period > 0 (ValueError; SpikingJelly asserts)."""

    param_names = ("n", "T_period")

    def __init__(self, n: int = 2, T_period: float = 8, spiking=True):
        if not (isinstance(n, int) and T_period > 0):
            raise ValueError("SquarewaveFourierSeries: n must be an int and T_period > 0, "
                             f"got n={n!r}, T_period={T_period!r}")
        super().__init__(spiking)
        self.n = n
        self.T_period = T_period

    @staticmethod
    def grad_x(x, g, ops, n, T_period):
        omega = math.pi * 2.0 / T_period
        total = ops.const(0.0, x)
        for i in range(1, n):
            total = total + ops.cos((2 * i - 1.0) * omega * x)
        return total * (4.0 / T_period) * g

    @staticmethod
    def primitive(x, ops, n, T_period):
        omega = math.pi * 2.0 / T_period
        total = ops.const(0.0, x)
        for i in range(1, n):
            harmonic = 2 * i - 1.0
            total = total + ops.sin(harmonic * omega * x) / harmonic
        return 0.5 + 2.0 / math.pi * total


class S2NN(MultiArgsSurrogateFunctionBase):
    """g(x) = sigmoid(alpha*x) (x < 0), beta*log(|x+1| + 1e-5) + 1/2 (x >= 0);
    g'(x) = alpha*sigmoid(alpha*x)*(1 - sigmoid(alpha*x)) (x < 0), beta/(x+1) (x >= 0)
    (the 1e-5 makes the surrogate differ from the primitive's derivative by ~1e-5)."""

    param_names = ("alpha", "beta")

    def __init__(self, alpha=4.0, beta=1.0, spiking=True):
        super().__init__(spiking)
        self.alpha = alpha
        self.beta = beta

    @staticmethod
    def grad_x(x, g, ops, alpha, beta):
        s = ops.sigmoid(alpha * x)
        return ops.where(ops.lt(x, 0.0), alpha * s * (1.0 - s),
                         ops.reciprocal(x + 1.0) * beta) * g

    @staticmethod
    def primitive(x, ops, alpha, beta):
        return ops.where(ops.lt(x, 0.0), ops.sigmoid(x * alpha),
                         beta * ops.log(ops.abs(x + 1.0) + 1e-05) + 0.5)


class LeakyKReLU(MultiArgsSurrogateFunctionBase):
    """g(x) = leak*x (x < 0), k*x (x >= 0); g'(x) = leak, k (`activation_based`
    only). Note SpikingJelly's argument order: `LeakyKReLU(0.1)` sets
    spiking=0.1, not leak."""

    param_names = ("leak", "k")

    def __init__(self, spiking=True, leak: float = 0.0, k: float = 1.0):
        super().__init__(spiking, leak, k)
        self.leak = leak
        self.k = k

    @staticmethod
    def grad_x(x, g, ops, leak, k):
        nonnegative = ops.ge(x, 0.0)
        return g * (nonnegative * k + (1.0 - nonnegative) * leak)

    @staticmethod
    def primitive(x, ops, leak, k):
        nonnegative = ops.ge(x, 0.0)
        return (leak * (1.0 - nonnegative) + k * nonnegative) * x
