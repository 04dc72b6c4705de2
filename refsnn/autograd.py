"""A small tape-based reverse-mode autograd on NumPy.

A `Tensor` wraps one `np.ndarray`. Every differentiable op is a `Function`: a
pair of array functions `forward(ctx, *arrays) -> array` and
`backward(ctx, grad) -> one gradient per input`. While grad mode is on,
`Function.apply` records a `Node` carrying a global sequence number. `backward()`
walks the nodes reachable from the root in decreasing sequence order (a reverse
tape walk is a topological order) and accumulates each incoming gradient in
arrival order, as PyTorch's engine does, so float32 results match PyTorch's bit
for bit wherever the per-op formulas below are PyTorch's.

dtype rules follow PyTorch: a Python scalar takes the tensor's dtype; a 0-dim
tensor does not promote a dim-ful one of the same kind; float32 never silently
becomes float64.
"""
from __future__ import annotations

import itertools
import threading
from contextlib import contextmanager

import numpy as np
from scipy import special as _special

__all__ = [
    "Tensor", "Function", "Node", "no_grad", "enable_grad", "is_grad_enabled",
    "tensor", "as_tensor", "zeros", "ones", "zeros_like", "ones_like", "full",
    "rand", "randn", "manual_seed", "default_generator", "stack", "cat", "where",
    "maximum", "minimum",
]

_state = threading.local()
_seq = itertools.count()


def is_grad_enabled() -> bool:
    return getattr(_state, "grad_enabled", True)


@contextmanager
def _grad_mode(enabled: bool):
    previous = is_grad_enabled()
    _state.grad_enabled = enabled
    try:
        yield
    finally:
        _state.grad_enabled = previous


def no_grad():
    """Context manager: ops inside record nothing on the tape."""
    return _grad_mode(False)


def enable_grad():
    return _grad_mode(True)


# ----------------------------------------------------------------------------
# random numbers: one seedable generator for the whole library
# ----------------------------------------------------------------------------
_generator = np.random.default_rng(0)


def manual_seed(seed: int) -> None:
    """Seed the generator used by `rand`, `randn`, layer init and dropout."""
    global _generator
    _generator = np.random.default_rng(seed)


def default_generator() -> np.random.Generator:
    return _generator


# ----------------------------------------------------------------------------
# dtype helpers
# ----------------------------------------------------------------------------
def _as_array(value, dtype=None) -> np.ndarray:
    """Array of `value`; Python floats and lists of floats become float32."""
    if isinstance(value, np.ndarray):
        return value if dtype is None else value.astype(dtype, copy=False)
    if hasattr(value, "detach") and hasattr(value, "numpy"):  # a torch tensor
        value = value.detach().cpu().numpy()
        return value if dtype is None else value.astype(dtype, copy=False)
    arr = np.asarray(value)
    if dtype is not None:
        return arr.astype(dtype, copy=False)
    if arr.dtype == np.float64 and not isinstance(value, np.generic):
        arr = arr.astype(np.float32)
    return arr


def _result_dtype(a: np.ndarray, b: np.ndarray) -> np.dtype:
    """PyTorch's promotion for two tensors: a 0-dim operand of the same kind
    does not widen a dim-ful one."""
    if a.dtype == b.dtype:
        return a.dtype
    fa, fb = a.dtype.kind == "f", b.dtype.kind == "f"
    if fa == fb and (a.ndim == 0) != (b.ndim == 0):
        return a.dtype if b.ndim == 0 else b.dtype
    if fa and not fb:
        return a.dtype
    if fb and not fa:
        return b.dtype
    return np.result_type(a.dtype, b.dtype)


def _unbroadcast(grad: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum `grad` down to `shape`, undoing NumPy broadcasting."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad


# ----------------------------------------------------------------------------
# the tape
# ----------------------------------------------------------------------------
class Node:
    """One recorded op: its Function, saved context, inputs and sequence number."""

    __slots__ = ("fn", "ctx", "inputs", "seq", "freed")

    def __init__(self, fn, ctx, inputs):
        self.fn = fn
        self.ctx = ctx
        self.inputs = inputs
        self.seq = next(_seq)
        self.freed = False


class Context:
    """Scratch space a Function's forward fills for its backward."""

    __slots__ = ("saved", "needs_input_grad", "__dict__")

    def save_for_backward(self, *arrays):
        self.saved = arrays


class Function:
    """An op with a hand-written gradient.

    Subclasses define `forward(ctx, *args)` on arrays (Tensor arguments arrive
    as `np.ndarray`, anything else unchanged) and `backward(ctx, grad)` returning
    one gradient array (or None) per positional argument.
    """

    @staticmethod
    def forward(ctx, *args):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad):
        raise NotImplementedError

    @classmethod
    def apply(cls, *args):
        ctx = Context()
        arrays = [a.data if isinstance(a, Tensor) else a for a in args]
        record = is_grad_enabled() and any(
            isinstance(a, Tensor) and a.requires_grad for a in args)
        if record:
            ctx.needs_input_grad = tuple(
                isinstance(a, Tensor) and a.requires_grad for a in args)
        out = cls.forward(ctx, *arrays)
        if isinstance(out, tuple):
            raise TypeError(f"{cls.__name__}.forward must return one array")
        result = Tensor._wrap(out)
        if record:
            result.requires_grad = True
            result._node = Node(cls, ctx, args)
        return result


def _collect(root: "Tensor"):
    """Nodes reachable from root, highest sequence number first."""
    nodes, stack, seen = [], [root._node], set()
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        nodes.append(node)
        for t in node.inputs:
            if isinstance(t, Tensor) and t._node is not None:
                stack.append(t._node)
    nodes.sort(key=lambda n: n.seq, reverse=True)
    return nodes


def _run_backward(root: "Tensor", grad: np.ndarray, retain_graph: bool):
    grads = {id(root._node): grad}
    for node in _collect(root):
        g = grads.pop(id(node), None)
        if g is None:
            continue
        if node.freed:
            raise RuntimeError(
                f"Trying to backward through the graph a second time "
                f"({node.fn.__name__}): its saved arrays were freed. "
                f"Pass retain_graph=True to the first backward() call.")
        in_grads = node.fn.backward(node.ctx, g)
        if not isinstance(in_grads, tuple):
            in_grads = (in_grads,)
        if not retain_graph:
            node.freed = True
            node.ctx = None
        for t, gi in zip(node.inputs, in_grads):
            if gi is None or not isinstance(t, Tensor) or not t.requires_grad:
                continue
            gi = np.asarray(gi)
            if gi.dtype != t.data.dtype:
                gi = gi.astype(t.data.dtype)
            if gi.shape != t.data.shape:
                gi = _unbroadcast(gi, t.data.shape)
            if t._node is None:  # a leaf
                t.grad = Tensor._wrap(gi.copy()) if t.grad is None else \
                    Tensor._wrap(t.grad.data + gi)
            else:
                key = id(t._node)
                prev = grads.get(key)
                grads[key] = gi if prev is None else prev + gi
            if t._retains_grad and t._node is not None:
                t.grad = Tensor._wrap(gi.copy()) if t.grad is None else \
                    Tensor._wrap(t.grad.data + gi)


# ----------------------------------------------------------------------------
# Tensor
# ----------------------------------------------------------------------------
class Tensor:
    """An `np.ndarray` with an optional gradient and the node that made it."""

    __slots__ = ("data", "requires_grad", "grad", "_node", "_retains_grad",
                 "__weakref__")
    __array_priority__ = 1000  # make ndarray (op) Tensor defer to Tensor

    def __init__(self, data, dtype=None, requires_grad: bool = False):
        self.data = _as_array(data, dtype)
        if requires_grad and self.data.dtype.kind not in "fc":
            raise RuntimeError(
                f"only floating point tensors can require gradients, got {self.data.dtype}")
        self.requires_grad = requires_grad
        self.grad = None
        self._node = None
        self._retains_grad = False

    @classmethod
    def _wrap(cls, array: np.ndarray) -> "Tensor":
        t = cls.__new__(cls)
        t.data = array if isinstance(array, np.ndarray) else np.asarray(array)
        t.requires_grad = False
        t.grad = None
        t._node = None
        t._retains_grad = False
        return t

    # --- basic properties -------------------------------------------------
    shape = property(lambda self: self.data.shape)
    dtype = property(lambda self: self.data.dtype)
    ndim = property(lambda self: self.data.ndim)
    is_leaf = property(lambda self: self._node is None)

    def size(self, dim=None):
        return self.data.shape if dim is None else self.data.shape[dim]

    def dim(self) -> int:
        return self.data.ndim

    def numel(self) -> int:
        return self.data.size

    def __len__(self):
        return len(self.data)

    def numpy(self) -> np.ndarray:
        return self.data

    def item(self):
        return self.data.item()

    def tolist(self):
        return self.data.tolist()

    def __array__(self, dtype=None, copy=None):
        return self.data if dtype is None else self.data.astype(dtype)

    def __repr__(self):
        grad = ", requires_grad=True" if self.requires_grad else ""
        return f"tensor({np.array2string(self.data, separator=', ')}, dtype={self.dtype}{grad})"

    def __bool__(self):
        return bool(self.data)

    def __float__(self):
        return float(self.data)

    def __hash__(self):
        return id(self)

    # --- autograd ----------------------------------------------------------
    def backward(self, gradient=None, retain_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into every leaf's `.grad`."""
        if not self.requires_grad:
            raise RuntimeError("element 0 of tensors does not require grad and "
                               "does not have a grad_fn")
        if gradient is None:
            if self.data.size != 1:
                raise RuntimeError(
                    f"grad can be implicitly created only for scalar outputs; "
                    f"this tensor has shape {self.shape}: pass gradient=")
            gradient = np.ones_like(self.data)
        else:
            gradient = _as_array(gradient, self.dtype)
            if gradient.shape != self.shape:
                raise RuntimeError(f"backward: gradient shape {gradient.shape} "
                                   f"does not match tensor shape {self.shape}")
        if self._node is None:
            self.grad = Tensor._wrap(gradient.copy()) if self.grad is None else \
                Tensor._wrap(self.grad.data + gradient)
            return
        _run_backward(self, gradient, retain_graph)

    def retain_grad(self) -> None:
        self._retains_grad = True

    def detach(self) -> "Tensor":
        return Tensor._wrap(self.data)

    def detach_(self) -> "Tensor":
        self._node = None
        self.requires_grad = False
        return self

    def requires_grad_(self, flag: bool = True) -> "Tensor":
        self.requires_grad = flag
        return self

    @property
    def grad_fn(self):
        return None if self._node is None else self._node.fn

    # --- dtype --------------------------------------------------------------
    def to(self, dtype) -> "Tensor":
        dtype = np.dtype(dtype)
        return self if dtype == self.dtype else Cast.apply(self, dtype)

    def float(self) -> "Tensor":
        return self.to(np.float32)

    def double(self) -> "Tensor":
        return self.to(np.float64)

    def clone(self) -> "Tensor":
        return Clone.apply(self)

    # --- arithmetic ---------------------------------------------------------
    def __add__(self, o): return Add.apply(self, _operand(o, self))
    def __radd__(self, o): return Add.apply(_operand(o, self), self)
    def __sub__(self, o): return Sub.apply(self, _operand(o, self))
    def __rsub__(self, o): return Sub.apply(_operand(o, self), self)
    def __mul__(self, o): return Mul.apply(self, _operand(o, self))
    def __rmul__(self, o): return Mul.apply(_operand(o, self), self)
    def __truediv__(self, o): return Div.apply(self, _operand(o, self))
    def __rtruediv__(self, o): return Div.apply(_operand(o, self), self)
    def __neg__(self): return Neg.apply(self)
    def __matmul__(self, o): return MatMul.apply(self, _operand(o, self))
    def __rmatmul__(self, o): return MatMul.apply(_operand(o, self), self)

    def __pow__(self, exponent):
        if isinstance(exponent, Tensor):
            return PowTensor.apply(self, exponent)
        return Pow.apply(self, exponent)

    def __rpow__(self, base):
        return PowTensor.apply(_operand(base, self), self)

    # comparisons: no gradient, boolean result
    def __lt__(self, o): return Tensor._wrap(self.data < _raw(o))
    def __le__(self, o): return Tensor._wrap(self.data <= _raw(o))
    def __gt__(self, o): return Tensor._wrap(self.data > _raw(o))
    def __ge__(self, o): return Tensor._wrap(self.data >= _raw(o))
    def __eq__(self, o): return Tensor._wrap(self.data == _raw(o))
    def __ne__(self, o): return Tensor._wrap(self.data != _raw(o))

    # --- reductions -----------------------------------------------------------
    def sum(self, dim=None, keepdim: bool = False):
        return Sum.apply(self, _axes(dim, self.ndim), keepdim)

    def mean(self, dim=None, keepdim: bool = False):
        return Mean.apply(self, _axes(dim, self.ndim), keepdim)

    def max(self, dim=None, keepdim: bool = False):
        return MaxMin.apply(self, dim, keepdim, True)

    def min(self, dim=None, keepdim: bool = False):
        return MaxMin.apply(self, dim, keepdim, False)

    # --- shape ------------------------------------------------------------------
    def reshape(self, *shape):
        shape = _shape_arg(shape)
        return self if shape == self.shape else Reshape.apply(self, shape)

    def view(self, *shape):
        return self.reshape(*shape)

    def flatten(self, start_dim: int = 0, end_dim: int = -1):
        if self.ndim == 0:
            return self.reshape(1)
        s, e = start_dim % self.ndim, end_dim % self.ndim
        shape = self.shape[:s] + (int(np.prod(self.shape[s:e + 1])),) + self.shape[e + 1:]
        return self.reshape(shape)

    def unflatten(self, dim: int, sizes):
        dim %= self.ndim
        return self.reshape(self.shape[:dim] + tuple(sizes) + self.shape[dim + 1:])

    def unsqueeze(self, dim: int):
        dim = dim % (self.ndim + 1)
        return Reshape.apply(self, self.shape[:dim] + (1,) + self.shape[dim:])

    def squeeze(self, dim=None):
        if dim is None:
            shape = tuple(n for n in self.shape if n != 1)
        else:
            dim %= max(self.ndim, 1)
            shape = self.shape if self.ndim == 0 or self.shape[dim] != 1 else \
                self.shape[:dim] + self.shape[dim + 1:]
        return self if shape == self.shape else Reshape.apply(self, shape)

    def permute(self, *dims):
        dims = tuple(d % self.ndim for d in _shape_arg(dims))
        return Permute.apply(self, dims)

    def transpose(self, a: int, b: int):
        dims = list(range(self.ndim))
        dims[a], dims[b] = dims[b], dims[a]
        return Permute.apply(self, tuple(dims))

    @property
    def T(self):
        return Permute.apply(self, tuple(reversed(range(self.ndim))))

    def t(self):
        return self.transpose(0, 1) if self.ndim == 2 else self

    def expand(self, *shape):
        shape = _shape_arg(shape)
        lead = len(shape) - self.ndim
        shape = tuple(self.shape[i - lead] if n == -1 else n for i, n in enumerate(shape))
        return Expand.apply(self, shape)

    def contiguous(self):
        return self

    def __getitem__(self, index):
        return GetItem.apply(self, _raw_index(index))

    def split(self, size, dim: int = 0):
        return split(self, size, dim)

    # --- elementwise ---------------------------------------------------------
    def exp(self): return Exp.apply(self)
    def log(self): return Log.apply(self)
    def sqrt(self): return Sqrt.apply(self)
    def abs(self): return Abs.apply(self)
    def tanh(self): return Tanh.apply(self)
    def sigmoid(self): return Sigmoid.apply(self)
    def relu(self): return Relu.apply(self)
    def sign(self): return Tensor._wrap(np.sign(self.data))

    def clamp(self, min=None, max=None):
        return Clamp.apply(self, min, max)

    clip = clamp

    def clamp_min(self, value): return Clamp.apply(self, value, None)
    def clamp_max(self, value): return Clamp.apply(self, None, value)


def _raw(o):
    return o.data if isinstance(o, Tensor) else o


def _raw_index(index):
    if isinstance(index, tuple):
        return tuple(_raw(i) for i in index)
    return _raw(index)


def _operand(o, like: Tensor):
    """A Tensor for `o`; Python scalars take `like`'s dtype (PyTorch's rule)."""
    if isinstance(o, Tensor):
        return o
    if isinstance(o, (bool, int, float)):
        dtype = like.dtype if like.dtype.kind in "fc" or isinstance(o, (bool, int)) \
            else np.float32
        return Tensor._wrap(np.asarray(o, dtype=dtype))
    return Tensor._wrap(_as_array(o))


def _shape_arg(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return tuple(int(s) for s in shape)


def _axes(dim, ndim):
    if dim is None:
        return None
    if isinstance(dim, (list, tuple)):
        return tuple(d % ndim for d in dim)
    return (dim % ndim,) if ndim else None


def _binary(a: np.ndarray, b: np.ndarray, op, name: str):
    dtype = _result_dtype(a, b)
    try:
        out = op(a, b)
    except ValueError:
        raise ValueError(f"{name}: shapes {a.shape} and {b.shape} cannot be "
                         f"broadcast together") from None
    return out if out.dtype == dtype else out.astype(dtype)


# ----------------------------------------------------------------------------
# elementwise arithmetic (gradient formulas are PyTorch's, in its order)
# ----------------------------------------------------------------------------
class Add(Function):
    @staticmethod
    def forward(ctx, a, b):
        return _binary(a, b, np.add, "add")

    @staticmethod
    def backward(ctx, g):
        return g, g


class Sub(Function):
    @staticmethod
    def forward(ctx, a, b):
        return _binary(a, b, np.subtract, "sub")

    @staticmethod
    def backward(ctx, g):
        return g, (-g if ctx.needs_input_grad[1] else None)


class Mul(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.saved = (a, b)
        return _binary(a, b, np.multiply, "mul")

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved
        need_a, need_b = ctx.needs_input_grad
        return (g * b if need_a else None), (g * a if need_b else None)


class Div(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.saved = (a, b)
        return _binary(a, b, np.divide, "div")

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved
        need_a, need_b = ctx.needs_input_grad
        ga = g / b if need_a else None
        gb = -g * a / (b * b) if need_b else None
        return ga, gb


class Neg(Function):
    @staticmethod
    def forward(ctx, a):
        return np.negative(a)

    @staticmethod
    def backward(ctx, g):
        return (-g,)


def _pow_forward(a: np.ndarray, k):
    """PyTorch's CPU special cases for integral and half exponents (N5)."""
    if k == 2:
        return a * a
    if k == 3:
        return a * a * a
    if k == -1:
        return np.divide(1, a, dtype=a.dtype)
    if k == -2:
        return np.divide(1, a * a, dtype=a.dtype)
    if k == -0.5:
        return np.divide(1, np.sqrt(a), dtype=a.dtype)
    if k == 1:
        return a.copy()
    if k == 0:
        return np.ones_like(a)
    return np.power(a, np.asarray(k, dtype=a.dtype) if a.dtype.kind == "f" else k)


class Pow(Function):
    @staticmethod
    def forward(ctx, a, k):
        ctx.saved = (a, k)
        return _pow_forward(a, k)

    @staticmethod
    def backward(ctx, g):
        a, k = ctx.saved
        if k == 0:
            return np.zeros_like(g), None
        return g * (k * _pow_forward(a, k - 1)), None


class PowTensor(Function):
    @staticmethod
    def forward(ctx, a, b):
        out = _binary(a, b, np.power, "pow")
        ctx.saved = (a, b, out)
        return out

    @staticmethod
    def backward(ctx, g):
        a, b, out = ctx.saved
        need_a, need_b = ctx.needs_input_grad
        ga = g * (b * np.power(a, b - 1)) if need_a else None
        if need_b:
            with np.errstate(divide="ignore", invalid="ignore"):
                gb = g * np.where((a == 0) & (b >= 0), 0, out * np.log(a))
        else:
            gb = None
        return ga, gb


class MatMul(Function):
    @staticmethod
    def forward(ctx, a, b):
        if a.ndim == 0 or b.ndim == 0:
            raise ValueError("matmul: both arguments need at least 1 dimension, "
                             f"got shapes {a.shape} and {b.shape}")
        k_a, k_b = a.shape[-1], b.shape[-2] if b.ndim > 1 else b.shape[0]
        if k_a != k_b:
            raise ValueError(f"matmul: shapes {a.shape} and {b.shape} are not "
                             f"aligned (inner dimensions {k_a} != {k_b})")
        ctx.saved = (a, b)
        return _binary(a, b, np.matmul, "matmul")

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved
        need_a, need_b = ctx.needs_input_grad
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        g2 = g
        if a.ndim == 1:
            g2 = np.expand_dims(g2, -2)
        if b.ndim == 1:
            g2 = np.expand_dims(g2, -1)
        ga = gb = None
        if need_a:
            ga = _unbroadcast(g2 @ np.swapaxes(b2, -1, -2), a2.shape)
            ga = ga.reshape(a.shape)
        if need_b:
            gb = _unbroadcast(np.swapaxes(a2, -1, -2) @ g2, b2.shape)
            gb = gb.reshape(b.shape)
        return ga, gb


class Cast(Function):
    @staticmethod
    def forward(ctx, a, dtype):
        ctx.src = a.dtype
        return a.astype(dtype)

    @staticmethod
    def backward(ctx, g):
        return g.astype(ctx.src), None


class Clone(Function):
    @staticmethod
    def forward(ctx, a):
        return a.copy()

    @staticmethod
    def backward(ctx, g):
        return (g,)


# ----------------------------------------------------------------------------
# reductions
# ----------------------------------------------------------------------------
def _expand_back(g, shape, axes, keepdim):
    if axes is not None and not keepdim:
        g = np.expand_dims(g, axes)
    return np.broadcast_to(g, shape)


class Sum(Function):
    @staticmethod
    def forward(ctx, a, axes, keepdim):
        ctx.saved = (a.shape, axes, keepdim)
        return np.asarray(a.sum(axis=axes, keepdims=keepdim), dtype=a.dtype)

    @staticmethod
    def backward(ctx, g):
        shape, axes, keepdim = ctx.saved
        return _expand_back(g, shape, axes, keepdim), None, None


class Mean(Function):
    @staticmethod
    def forward(ctx, a, axes, keepdim):
        ctx.saved = (a.shape, axes, keepdim)
        return np.asarray(a.mean(axis=axes, keepdims=keepdim), dtype=a.dtype)

    @staticmethod
    def backward(ctx, g):
        shape, axes, keepdim = ctx.saved
        n = int(np.prod(shape)) if axes is None else int(np.prod([shape[i] for i in axes]))
        return _expand_back(g / n, shape, axes, keepdim), None, None


class MaxMin(Function):
    """max/min over all elements (ties share the gradient, as in PyTorch) or
    over one dim (the gradient goes to the first arg-extremum)."""

    @staticmethod
    def forward(ctx, a, dim, keepdim, is_max):
        reduce = np.max if is_max else np.min
        if dim is None:
            out = reduce(a)
            ctx.saved = (a, None, out, keepdim)
            return np.asarray(out, dtype=a.dtype)
        dim %= a.ndim
        idx = (np.argmax if is_max else np.argmin)(a, axis=dim)
        out = np.take_along_axis(a, np.expand_dims(idx, dim), dim)
        ctx.saved = (a, dim, idx, keepdim)
        return out if keepdim else out.squeeze(dim)

    @staticmethod
    def backward(ctx, g):
        a, dim, extra, keepdim = ctx.saved
        if dim is None:
            mask = a == extra
            return (mask * (g / mask.sum())).astype(a.dtype), None, None, None
        out = np.zeros_like(a)
        g = g if keepdim else np.expand_dims(g, dim)
        np.put_along_axis(out, np.expand_dims(extra, dim), g, dim)
        return out, None, None, None


# ----------------------------------------------------------------------------
# shape ops
# ----------------------------------------------------------------------------
class Reshape(Function):
    @staticmethod
    def forward(ctx, a, shape):
        ctx.shape = a.shape
        try:
            return a.reshape(shape)
        except ValueError:
            raise ValueError(f"reshape: shape {tuple(shape)} is invalid for input "
                             f"of shape {a.shape} ({a.size} elements)") from None

    @staticmethod
    def backward(ctx, g):
        return g.reshape(ctx.shape), None


class Permute(Function):
    @staticmethod
    def forward(ctx, a, dims):
        ctx.dims = dims
        return a.transpose(dims)

    @staticmethod
    def backward(ctx, g):
        return g.transpose(np.argsort(ctx.dims)), None


class Expand(Function):
    @staticmethod
    def forward(ctx, a, shape):
        ctx.shape = a.shape
        try:
            return np.broadcast_to(a, shape)
        except ValueError:
            raise ValueError(f"expand: cannot expand shape {a.shape} to {shape}") from None

    @staticmethod
    def backward(ctx, g):
        return _unbroadcast(g, ctx.shape), None


class GetItem(Function):
    @staticmethod
    def forward(ctx, a, index):
        ctx.saved = (a.shape, a.dtype, index)
        try:
            return a[index]
        except IndexError as e:
            raise IndexError(f"index {index!r} is invalid for shape {a.shape}: {e}") from None

    @staticmethod
    def backward(ctx, g):
        shape, dtype, index = ctx.saved
        out = np.zeros(shape, dtype=dtype)
        np.add.at(out, index, g)
        return out, None


class Stack(Function):
    @staticmethod
    def forward(ctx, dim, *arrays):
        ctx.dim = dim
        try:
            return np.stack(arrays, axis=dim)
        except ValueError:
            raise ValueError("stack: all tensors need the same shape, got "
                             f"{[a.shape for a in arrays]}") from None

    @staticmethod
    def backward(ctx, g):
        parts = np.moveaxis(g, ctx.dim, 0)
        return (None, *parts)


class Cat(Function):
    @staticmethod
    def forward(ctx, dim, *arrays):
        ctx.dim = dim
        ctx.sizes = [a.shape[dim] for a in arrays]
        try:
            return np.concatenate(arrays, axis=dim)
        except ValueError:
            raise ValueError(f"cat: shapes {[a.shape for a in arrays]} differ "
                             f"outside dimension {dim}") from None

    @staticmethod
    def backward(ctx, g):
        return (None, *np.split(g, np.cumsum(ctx.sizes)[:-1], axis=ctx.dim))


def stack(tensors, dim: int = 0) -> Tensor:
    tensors = [t if isinstance(t, Tensor) else tensor(t) for t in tensors]
    dim %= tensors[0].ndim + 1
    return Stack.apply(dim, *tensors)


def cat(tensors, dim: int = 0) -> Tensor:
    tensors = [t if isinstance(t, Tensor) else tensor(t) for t in tensors]
    dim %= tensors[0].ndim
    return Cat.apply(dim, *tensors)


def split(t: Tensor, size, dim: int = 0):
    """PyTorch's `split`: chunks of `size` along `dim` (or the listed sizes)."""
    n = t.shape[dim]
    sizes = list(size) if isinstance(size, (list, tuple)) else \
        [min(size, n - i) for i in range(0, n, size)]
    if sum(sizes) != n:
        raise ValueError(f"split: sizes {sizes} do not add up to {n} along dim {dim}")
    out, start = [], 0
    for s in sizes:
        index = (slice(None),) * (dim % t.ndim) + (slice(start, start + s),)
        out.append(t[index])
        start += s
    return tuple(out)


# ----------------------------------------------------------------------------
# elementwise functions
# ----------------------------------------------------------------------------
class Exp(Function):
    @staticmethod
    def forward(ctx, a):
        ctx.out = np.exp(a)
        return ctx.out

    @staticmethod
    def backward(ctx, g):
        return (g * ctx.out,)


class Log(Function):
    @staticmethod
    def forward(ctx, a):
        ctx.a = a
        return np.log(a)

    @staticmethod
    def backward(ctx, g):
        return (g / ctx.a,)


class Sqrt(Function):
    @staticmethod
    def forward(ctx, a):
        ctx.out = np.sqrt(a)
        return ctx.out

    @staticmethod
    def backward(ctx, g):
        return (g / (2 * ctx.out),)


class Abs(Function):
    @staticmethod
    def forward(ctx, a):
        ctx.a = a
        return np.abs(a)

    @staticmethod
    def backward(ctx, g):
        return (g * np.sign(ctx.a),)


class Tanh(Function):
    @staticmethod
    def forward(ctx, a):
        ctx.out = np.tanh(a)
        return ctx.out

    @staticmethod
    def backward(ctx, g):
        y = ctx.out
        return (g * (1 - y * y),)


class Sigmoid(Function):
    @staticmethod
    def forward(ctx, a):
        ctx.out = _special.expit(a)
        return ctx.out

    @staticmethod
    def backward(ctx, g):
        y = ctx.out
        return (g * (1 - y) * y,)


class Relu(Function):
    @staticmethod
    def forward(ctx, a):
        ctx.mask = a > 0
        return np.where(ctx.mask, a, np.zeros((), a.dtype))

    @staticmethod
    def backward(ctx, g):
        return (np.where(ctx.mask, g, np.zeros((), g.dtype)),)


class Clamp(Function):
    @staticmethod
    def forward(ctx, a, lo, hi):
        lo, hi = _raw(lo), _raw(hi)
        mask = np.ones(a.shape, dtype=bool)
        out = a
        if lo is not None:
            mask &= a >= lo
            out = np.maximum(out, np.asarray(lo, dtype=a.dtype))
        if hi is not None:
            mask &= a <= hi
            out = np.minimum(out, np.asarray(hi, dtype=a.dtype))
        ctx.mask = mask
        return out.astype(a.dtype, copy=False)

    @staticmethod
    def backward(ctx, g):
        return g * ctx.mask, None, None


class Where(Function):
    @staticmethod
    def forward(ctx, cond, a, b):
        ctx.cond = cond
        return _binary(a, b, lambda x, y: np.where(cond, x, y), "where")

    @staticmethod
    def backward(ctx, g):
        zero = np.zeros((), g.dtype)
        need_a, need_b = ctx.needs_input_grad[1:]
        return (None, np.where(ctx.cond, g, zero) if need_a else None,
                np.where(ctx.cond, zero, g) if need_b else None)


class MaximumMinimum(Function):
    """Elementwise max/min; ties split the gradient in halves (PyTorch)."""

    @staticmethod
    def forward(ctx, a, b, is_max):
        ctx.saved = (a, b, is_max)
        return _binary(a, b, np.maximum if is_max else np.minimum,
                       "maximum" if is_max else "minimum")

    @staticmethod
    def backward(ctx, g):
        a, b, is_max = ctx.saved
        wins = (a > b) if is_max else (a < b)
        share = wins + 0.5 * (a == b)
        return (g * share).astype(g.dtype), (g * (1 - share)).astype(g.dtype), None


def where(cond, a, b) -> Tensor:
    like = a if isinstance(a, Tensor) else b if isinstance(b, Tensor) else None
    if like is None:
        like = Tensor._wrap(_as_array(a))
    return Where.apply(_raw(cond), _operand(a, like), _operand(b, like))


def maximum(a, b) -> Tensor:
    return MaximumMinimum.apply(a, _operand(b, a), True)


def minimum(a, b) -> Tensor:
    return MaximumMinimum.apply(a, _operand(b, a), False)


# ----------------------------------------------------------------------------
# constructors
# ----------------------------------------------------------------------------
def tensor(data, dtype=None, requires_grad: bool = False) -> Tensor:
    """A new leaf Tensor holding a copy of `data` (Python floats -> float32)."""
    arr = np.array(_as_array(data, dtype), copy=True)
    return Tensor(arr, requires_grad=requires_grad)


def as_tensor(data, dtype=None) -> Tensor:
    return data if isinstance(data, Tensor) and dtype is None else Tensor(data, dtype)


def _dims(shape):
    return _shape_arg(shape)


def zeros(*shape, dtype=np.float32, requires_grad=False) -> Tensor:
    return Tensor(np.zeros(_dims(shape), dtype), requires_grad=requires_grad)


def ones(*shape, dtype=np.float32, requires_grad=False) -> Tensor:
    return Tensor(np.ones(_dims(shape), dtype), requires_grad=requires_grad)


def full(shape, value, dtype=np.float32, requires_grad=False) -> Tensor:
    return Tensor(np.full(_dims((shape,)), value, dtype), requires_grad=requires_grad)


def zeros_like(t: Tensor, dtype=None) -> Tensor:
    return Tensor(np.zeros_like(_raw(t), dtype=dtype))


def ones_like(t: Tensor, dtype=None) -> Tensor:
    return Tensor(np.ones_like(_raw(t), dtype=dtype))


def rand(*shape, dtype=np.float32, requires_grad=False) -> Tensor:
    """Uniform [0, 1) from the library generator (see `manual_seed`)."""
    data = _generator.random(_dims(shape), dtype=np.float64).astype(dtype)
    return Tensor(data, requires_grad=requires_grad)


def randn(*shape, dtype=np.float32, requires_grad=False) -> Tensor:
    data = _generator.standard_normal(_dims(shape)).astype(dtype)
    return Tensor(data, requires_grad=requires_grad)
