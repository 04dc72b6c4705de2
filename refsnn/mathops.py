"""Math namespaces: write each formula once, run it on arrays, tensors or OpenCL C.

A *formula* (a surrogate derivative, a neuron's charge) is a plain Python
function. Its operands support `+ - * /` and unary `-`, mixed freely with
Python numbers (floats, and ints such as a user's `alpha=2`); everything else
goes through a namespace argument `ops`:

    def atan_grad(x, g, ops, alpha):
        z = x * (math.pi / 2 * alpha)
        return (ops.reciprocal(1.0 + z * z) * (alpha / 2)) * g

The same function then runs on three namespaces that share the protocol below
(`Ops`):
- `NUMPY`: `np.ndarray` in, `np.ndarray` out, in the array's dtype;
- `TENSOR`: refsnn autograd `Tensor`s, so a formula has a gradient;
- the C-expression emitter of `refsnn/opencl/codegen.py`, which turns the
  formula into OpenCL C source. Every method is expressible in OpenCL C.

Constant rules (these decide bit-exactness against PyTorch; see N2-N5 of the
SpikingJelly reference):
- A Python float meeting an operand is rounded once to the operand's dtype,
  then the op runs in that dtype (PyTorch's rule; NumPy >= 2 does the same for
  Python floats, NEP 50). Never pass `np.float64` scalars: they upcast.
- Sub-expressions made only of Python floats (`math.pi / 2 * alpha`,
  `alpha / 2`, `-(alpha ** 2)`) are folded in double by Python itself before
  they meet an operand, exactly as in SpikingJelly; write them the same way.
- PyTorch runs `c / t` (Python float over tensor) as `reciprocal(t) * c`, so
  formulas write it that way; `t / c` is a true division.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import special as _special

from .autograd import Function, Reciprocal, Tensor, _pow_forward
from .autograd import where as _tensor_where

__all__ = ["Ops", "NumpyOps", "TensorOps", "NUMPY", "TENSOR"]


class Ops:
    """The namespace protocol shared by every formula.

    `a`, `b` are operands of the namespace (arrays, tensors, C expressions);
    `b` of a comparison, `a`/`b` of `where`, may also be Python floats.
    Masks (`heaviside`, comparisons) are 0/1 values in the operands' dtype.
    """

    def exp(self, a): raise NotImplementedError
    def log(self, a): raise NotImplementedError
    def sqrt(self, a): raise NotImplementedError
    def abs(self, a): raise NotImplementedError

    def sign(self, a):
        """PyTorch's sign: 1, -1, or +0 for +-0 and NaN (OpenCL's `sign` agrees
        except sign(-0.0) = -0.0)."""
        raise NotImplementedError

    def atan(self, a): raise NotImplementedError
    def erfc(self, a): raise NotImplementedError
    def cos(self, a): raise NotImplementedError
    def sin(self, a): raise NotImplementedError
    def tanh(self, a): raise NotImplementedError

    def sigmoid(self, a):
        """1 / (1 + exp(-a))."""
        raise NotImplementedError

    def reciprocal(self, a):
        """1 / a, correctly rounded."""
        raise NotImplementedError

    def square(self, a):
        """a * a."""
        raise NotImplementedError

    def pow(self, a, k: float):
        """a ** k for a Python-float exponent, with PyTorch's CPU special cases:
        k=2: a*a; k=3: a*a*a; k=-1: 1/a; k=-2: 1/(a*a); k=-0.5: 1/sqrt(a);
        any other k: the library's general pow (not reproducible bit for bit)."""
        raise NotImplementedError

    def heaviside(self, a):
        """1 where a >= 0 (including -0.0), else 0 (including NaN)."""
        raise NotImplementedError

    def ge(self, a, b):
        """1 where a >= b else 0 (NaN compares false)."""
        raise NotImplementedError

    def gt(self, a, b): raise NotImplementedError
    def le(self, a, b): raise NotImplementedError
    def lt(self, a, b): raise NotImplementedError

    def where(self, cond, a, b):
        """a where the mask `cond` is nonzero, else b; in `cond`'s dtype when
        both branches are Python floats (each rounded once)."""
        raise NotImplementedError

    def const(self, c: float, like):
        """The Python float c, rounded once to like's dtype, as an operand shaped
        like `like` (for a constant that must stand on its own)."""
        raise NotImplementedError


class NumpyOps(Ops):
    """`Ops` on `np.ndarray`s; results keep the operands' dtype. Callers that
    expect inf/NaN wrap the evaluation in `np.errstate(all="ignore")`."""

    exp = staticmethod(np.exp)
    log = staticmethod(np.log)
    sqrt = staticmethod(np.sqrt)
    abs = staticmethod(np.abs)
    atan = staticmethod(np.arctan)
    erfc = staticmethod(_special.erfc)
    cos = staticmethod(np.cos)
    sin = staticmethod(np.sin)
    tanh = staticmethod(np.tanh)
    sigmoid = staticmethod(_special.expit)

    def sign(self, a):
        return self.gt(a, 0.0) - self.lt(a, 0.0)

    def reciprocal(self, a):
        return np.divide(1.0, a, dtype=a.dtype)

    def square(self, a):
        return a * a

    def pow(self, a, k):
        return _pow_forward(a, k)

    def heaviside(self, a):
        return self.ge(a, 0.0)

    def ge(self, a, b): return self._mask(np.greater_equal, a, b)
    def gt(self, a, b): return self._mask(np.greater, a, b)
    def le(self, a, b): return self._mask(np.less_equal, a, b)
    def lt(self, a, b): return self._mask(np.less, a, b)

    @staticmethod
    def _mask(compare, a, b):
        return compare(a, b).astype(np.result_type(a, b))

    def where(self, cond, a, b):
        return np.where(cond != 0, a, b).astype(np.result_type(cond, a, b), copy=False)

    def const(self, c, like):
        return np.full(np.shape(like), c, dtype=like.dtype)


# ----------------------------------------------------------------------------
# elementwise functions the autograd core does not have (gradients as PyTorch's)
# ----------------------------------------------------------------------------
class _Atan(Function):
    @staticmethod
    def forward(ctx, a):
        ctx.a = a
        return np.arctan(a)

    @staticmethod
    def backward(ctx, g):
        a = ctx.a
        return (g / (a * a + 1.0),)


class _Erfc(Function):
    @staticmethod
    def forward(ctx, a):
        ctx.a = a
        return _special.erfc(a)

    @staticmethod
    def backward(ctx, g):
        a = ctx.a
        return ((-2.0 / math.sqrt(math.pi)) * np.exp(-(a * a)) * g,)


class _Cos(Function):
    @staticmethod
    def forward(ctx, a):
        ctx.a = a
        return np.cos(a)

    @staticmethod
    def backward(ctx, g):
        return (g * -np.sin(ctx.a),)


class _Sin(Function):
    @staticmethod
    def forward(ctx, a):
        ctx.a = a
        return np.sin(a)

    @staticmethod
    def backward(ctx, g):
        return (g * np.cos(ctx.a),)


def _raw(a):
    return a.data if isinstance(a, Tensor) else a


class TensorOps(Ops):
    """`Ops` on refsnn `Tensor`s, recorded on the tape. Masks, `sign` and
    `const` carry no gradient (PyTorch's sign has a zero gradient)."""

    def exp(self, a): return a.exp()
    def log(self, a): return a.log()
    def sqrt(self, a): return a.sqrt()
    def abs(self, a): return a.abs()
    def tanh(self, a): return a.tanh()
    def sigmoid(self, a): return a.sigmoid()
    def atan(self, a): return _Atan.apply(a)
    def erfc(self, a): return _Erfc.apply(a)
    def cos(self, a): return _Cos.apply(a)
    def sin(self, a): return _Sin.apply(a)
    def reciprocal(self, a): return Reciprocal.apply(a)
    def square(self, a): return a ** 2
    def pow(self, a, k): return a ** k

    def sign(self, a): return Tensor(NUMPY.sign(a.data))
    def heaviside(self, a): return Tensor(NUMPY.heaviside(a.data))
    def ge(self, a, b): return Tensor(NUMPY.ge(_raw(a), _raw(b)))
    def gt(self, a, b): return Tensor(NUMPY.gt(_raw(a), _raw(b)))
    def le(self, a, b): return Tensor(NUMPY.le(_raw(a), _raw(b)))
    def lt(self, a, b): return Tensor(NUMPY.lt(_raw(a), _raw(b)))

    def where(self, cond, a, b):
        dtype = cond.dtype
        a = a if isinstance(a, Tensor) else Tensor(np.asarray(a, dtype))
        b = b if isinstance(b, Tensor) else Tensor(np.asarray(b, dtype))
        return _tensor_where(cond.data != 0, a, b)

    def const(self, c, like):
        return Tensor(NUMPY.const(c, like.data))


NUMPY = NumpyOps()
TENSOR = TensorOps()
