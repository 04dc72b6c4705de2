"""A small tape-based reverse-mode autograd on NumPy.

A `Tensor` wraps one `np.ndarray`. Every differentiable op is a `Function`: a
pair of array functions `forward(ctx, *arrays) -> array` and
`backward(ctx, grad) -> one gradient per input`. While grad mode is on and an
input requires grad, `Function.apply` records the op as a `Node` (the node *is*
the `ctx`, as in PyTorch) carrying a global sequence number.

`backward()` runs, among the nodes that have received a gradient, the one with
the highest sequence number next (PyTorch's engine does the same: every consumer
of a node was recorded after it, so its gradient is complete by then). Incoming
gradients are summed in arrival order, and a leaf's `.grad` gets `old + (sum of
this backward's contributions)`, as PyTorch's AccumulateGrad does. With PyTorch's
own per-op formulas below this makes float32 gradients match PyTorch bit for bit
wherever NumPy and PyTorch round the same way (elementwise arithmetic).

dtype rules follow PyTorch: a Python scalar takes the tensor's dtype; a 0-dim
tensor does not widen a dim-ful one of the same kind; float32 never silently
becomes float64.
"""
from __future__ import annotations

import heapq
import itertools
import math
import sys
import threading
import weakref
from collections import namedtuple
from contextlib import contextmanager

import numpy as np
from scipy import special as _special

from .result_pool import pool_references

__all__ = [
    "Tensor", "Function", "Node", "Context", "no_grad", "enable_grad", "is_grad_enabled",
    "tensor", "as_tensor", "zeros", "ones", "zeros_like", "ones_like", "full",
    "rand", "randn", "manual_seed", "default_generator", "stack", "cat", "split",
    "where", "maximum", "minimum",
]


# ----------------------------------------------------------------------------
# grad mode: per thread, on by default (as in PyTorch)
# ----------------------------------------------------------------------------
class _GradMode(threading.local):
    enabled = True


_grad_mode = _GradMode()


def is_grad_enabled() -> bool:
    return _grad_mode.enabled


@contextmanager
def _set_grad_enabled(enabled: bool):
    previous = _grad_mode.enabled
    _grad_mode.enabled = enabled
    try:
        yield
    finally:
        _grad_mode.enabled = previous


def no_grad():
    """Context manager (or decorator): ops inside record nothing on the tape."""
    return _set_grad_enabled(False)


def enable_grad():
    return _set_grad_enabled(True)


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
# dtype and shape helpers
# ----------------------------------------------------------------------------
def _as_array(value, dtype=None) -> np.ndarray:
    """Array of `value`; Python floats and lists of floats become float32."""
    if isinstance(value, Tensor):
        value = value.data
    elif hasattr(value, "detach") and hasattr(value, "numpy"):  # a torch tensor
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return value if dtype is None else value.astype(dtype, copy=False)
    arr = np.asarray(value)
    if dtype is not None:
        return arr.astype(dtype, copy=False)
    if arr.dtype == np.float64 and not isinstance(value, np.generic):
        arr = arr.astype(np.float32)
    return arr


_KIND_RANK = {"b": 0, "u": 1, "i": 1, "f": 2, "c": 3}


def _promote_types(x: np.dtype, y: np.dtype) -> np.dtype:
    """PyTorch's `promote_types`: a higher kind (bool < int < float) wins
    outright (int64 with float32 is float32); within a kind, NumPy's rule."""
    rank_x, rank_y = _KIND_RANK.get(x.kind, 1), _KIND_RANK.get(y.kind, 1)
    if rank_x == rank_y or 3 in (rank_x, rank_y):
        return np.promote_types(x, y)
    return x if rank_x > rank_y else y


def _result_dtype(a: np.ndarray, b: np.ndarray) -> np.dtype:
    """PyTorch's result dtype for two tensors: a 0-dim operand does not widen a
    dim-ful one unless it is of a higher kind (float32 + 0-dim float64 is float32)."""
    if a.dtype == b.dtype:
        return a.dtype
    if (a.ndim == 0) != (b.ndim == 0):
        dimful, zero_dim = (a, b) if b.ndim == 0 else (b, a)
        if _KIND_RANK.get(dimful.dtype.kind, 1) >= _KIND_RANK.get(zero_dim.dtype.kind, 1):
            return dimful.dtype
    return _promote_types(a.dtype, b.dtype)


def _promote(a: np.ndarray, b: np.ndarray):
    """`a` and `b` cast to their PyTorch result dtype (no copy when they agree)."""
    if a.dtype is b.dtype:
        return a, b
    dtype = _result_dtype(a, b)
    return a.astype(dtype, copy=False), b.astype(dtype, copy=False)


def _binary(op, name: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """`op(a, b)` computed in PyTorch's result dtype, with NumPy broadcasting."""
    if a.dtype is not b.dtype:
        a, b = _promote(a, b)
    try:
        return op(a, b)
    except ValueError:
        raise ValueError(f"{name}: shapes {a.shape} and {b.shape} cannot be "
                         f"broadcast together") from None


def _unbroadcast(grad: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum `grad` down to `shape`, undoing NumPy broadcasting: one sum over the
    leading and the stretched dims, as PyTorch's `sum_to` does."""
    lead = grad.ndim - len(shape)
    if lead < 0:
        raise ValueError(f"cannot sum a gradient of shape {grad.shape} down to {shape}")
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and grad.shape[lead + i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    if grad.shape[lead:] != tuple(shape):
        raise ValueError(f"cannot sum a gradient of shape {grad.shape} down to {shape}")
    return grad.reshape(shape)


# ----------------------------------------------------------------------------
# the tape
# ----------------------------------------------------------------------------
_seq = itertools.count()


class Node:
    """One recorded op, and the `ctx` its Function's forward fills for backward.

    `fn` (the Function class), `inputs` (the arguments of `apply`, Tensors and
    others), `needs_input_grad` (one flag per argument) and `seq` (the order of
    recording) are set by `Function.apply`; forward stores what backward needs
    in `ctx.saved` or in any other attribute.
    """

    __slots__ = ("fn", "inputs", "needs_input_grad", "seq", "saved", "__dict__")
    _retained_by = None  # weak reference to a non-leaf output that retains its grad

    def save_for_backward(self, *arrays):
        self.saved = arrays

    @property
    def saved_tensors(self):
        return self.saved

    def _free(self):
        """Drop inputs and saved arrays after backward (retain_graph=False)."""
        self.inputs = None
        self.saved = None
        self.__dict__.clear()

    def __repr__(self):
        return f"<{getattr(self, 'fn', Function).__name__}Backward>"


Context = Node


class Function:
    """An op with a hand-written gradient.

    Subclasses define `forward(ctx, *args)` on arrays (Tensor arguments arrive
    as `np.ndarray`, anything else unchanged) and `backward(ctx, grad)` returning
    one gradient array (or None) per positional argument. `ctx.needs_input_grad`
    holds one flag per argument.
    """

    @staticmethod
    def forward(ctx, *args):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad):
        raise NotImplementedError

    @classmethod
    def apply(cls, *args):
        """Run `forward` on the arguments (Tensors as arrays) and wrap the result;
        record a Node when grad mode is on and some argument requires grad."""
        arrays, needs = [], []
        for a in args:  # one plain loop: cheaper than two comprehensions
            if isinstance(a, Tensor):
                arrays.append(a.data)
                needs.append(a.requires_grad)
            else:
                arrays.append(a)
                needs.append(False)
        record = True in needs and _grad_mode.enabled
        ctx = Node()
        ctx.needs_input_grad = tuple(needs) if record else (False,) * len(args)
        out = cls.forward(ctx, *arrays)
        if type(out) is not np.ndarray:
            out = _forward_output(cls, out)
        result = _wrap(out)
        if record:
            ctx.fn, ctx.inputs, ctx.seq = cls, args, next(_seq)
            result.requires_grad = True
            result._node = ctx
        return result


def _forward_output(fn, out) -> np.ndarray:
    if isinstance(out, (tuple, list)):
        raise TypeError(f"{fn.__name__}.forward must return one array, got {type(out).__name__}")
    return np.asarray(out)


class _SliceGrad:
    """The gradient of a basic-indexing op, kept unmaterialised: `value` at
    `index` of a zero array of `shape`. Looping `x_seq[t]` over T then costs
    O(size of x_seq) in backward instead of T full-size zero arrays and sums."""

    __slots__ = ("shape", "index", "value")

    def __init__(self, shape, index, value):
        self.shape, self.index, self.value = shape, index, value

    def dense(self) -> np.ndarray:
        out = np.zeros(self.shape, self.value.dtype)
        out[self.index] = self.value
        return out


def _sum_grads(previous, g, owned: dict):
    """`previous + g` in arrival order, either possibly a `_SliceGrad`. A slice
    is added in place into an array this backward allocated (`owned`, by id),
    which gives the same values as adding its dense form."""
    if type(g) is not _SliceGrad:
        if type(previous) is _SliceGrad:
            previous = previous.dense()
        return previous + g
    if type(previous) is _SliceGrad:
        previous = previous.dense()
        owned[id(previous)] = previous
    elif id(previous) not in owned:
        previous = np.array(previous, copy=True)
        owned[id(previous)] = previous
    previous[g.index] += g.value
    return previous


def _dense(g) -> np.ndarray:
    if type(g) is _SliceGrad:
        return g.dense()
    return g if type(g) is np.ndarray else np.asarray(g)  # NumPy gives scalars for 0-dim sums


def _run_backward(root: Node, grad: np.ndarray, retain_graph: bool) -> None:
    """Backpropagate `grad` from `root` and accumulate into the leaves' `.grad`.
    A leaf's gradient that only this backward references becomes its `.grad`
    without a copy (torch steals such gradients too)."""
    leaf_grads = _propagate(root, grad, retain_graph)
    while leaf_grads:
        leaf, g = leaf_grads.popitem()
        g = _dense(g)
        steal = _sole_reference(g)   # before g is pushed as a call argument
        _accumulate_grad(leaf, g, steal)


def _sole_reference(g: np.ndarray) -> bool:
    """Whether nothing outside this backward holds `g` or its memory: the
    caller's variable, this argument and getrefcount's are its only
    references, apart from result pools (which reuse an array only once
    nobody else holds it; the memory under a pooled array is its alone)."""
    pooled = pool_references(g)
    if g.base is not None and not (pooled and sys.getrefcount(g.base) == 2):
        return False     # a view, or a pooled array whose memory a view still holds
    return g.flags.writeable and sys.getrefcount(g) - pooled == 3


def _propagate(root: Node, grad: np.ndarray, retain_graph: bool) -> dict:
    """Run the nodes' backwards from `root`; returns {leaf Tensor: the sum of
    its gradients} (a separate frame, so that none of its variables still
    holds a gradient when the caller checks who references it)."""
    pending = {root: grad}         # node -> gradient of its output, summed so far
    ready = [(-root.seq, root)]     # nodes holding a gradient, highest seq first
    leaf_grads = {}                 # leaf Tensor -> sum of this backward's gradients
    owned = {}                      # id -> sum arrays allocated here (safe to add into)
    while ready:
        node = heapq.heappop(ready)[1]
        g = pending.pop(node)
        owned.pop(id(g), None)      # a backward may hand g on to several inputs
        g = _dense(g)
        inputs = node.inputs
        if inputs is None:
            raise RuntimeError(
                f"Trying to backward through the graph a second time ({node.fn.__name__}): "
                f"its saved arrays were freed by the first backward. Pass "
                f"retain_graph=True to the first backward() call.")
        retained = node._retained_by and node._retained_by()
        if retained is not None:
            _accumulate_grad(retained, g)
        in_grads = node.fn.backward(node, g)
        if type(in_grads) is not tuple:
            in_grads = (in_grads,)
        if len(in_grads) != len(inputs):
            raise RuntimeError(f"{node.fn.__name__}.backward returned {len(in_grads)} "
                               f"gradients for {len(inputs)} forward arguments")
        needs = node.needs_input_grad
        if not retain_graph:
            node._free()
        for i, (t, need, gi) in enumerate(zip(inputs, needs, in_grads)):
            if not need or gi is None:
                continue
            data = t.data
            if type(gi) is _SliceGrad:
                if gi.value.dtype is not data.dtype:
                    gi.value = gi.value.astype(data.dtype)
            else:
                if type(gi) is not np.ndarray:
                    gi = np.asarray(gi)
                if gi.shape != data.shape:
                    try:
                        gi = _unbroadcast(gi, data.shape)
                    except ValueError as e:
                        raise RuntimeError(
                            f"{node.fn.__name__}.backward: gradient {i}: {e}") from None
                if gi.dtype is not data.dtype:
                    gi = gi.astype(data.dtype)
            producer = t._node
            if producer is None:
                previous = leaf_grads.get(t)
                leaf_grads[t] = gi if previous is None else _sum_grads(previous, gi, owned)
            elif producer in pending:
                pending[producer] = _sum_grads(pending[producer], gi, owned)
            else:
                pending[producer] = gi
                heapq.heappush(ready, (-producer.seq, producer))
    return leaf_grads


def _accumulate_grad(t: "Tensor", g: np.ndarray, steal: bool = False) -> None:
    """`t.grad = g` the first time (a copy unless `steal`), `t.grad + g` after that."""
    if t.grad is None:
        t.grad = _wrap(g if steal else np.array(g))
    else:
        t.grad = _wrap(np.asarray(t.grad.data + g))


# ----------------------------------------------------------------------------
# Tensor
# ----------------------------------------------------------------------------
ValuesIndices = namedtuple("ValuesIndices", ["values", "indices"])


class Tensor:
    """An `np.ndarray` with an optional gradient and the node that made it."""

    __slots__ = ("data", "requires_grad", "grad", "_node", "__weakref__")
    __array_priority__ = 1000  # make ndarray (op) Tensor defer to Tensor

    def __init__(self, data, dtype=None, requires_grad: bool = False):
        self.data = _as_array(data, dtype)
        if requires_grad and self.data.dtype.kind not in "fc":
            raise RuntimeError(
                f"only floating point tensors can require gradients, got {self.data.dtype}")
        self.requires_grad = requires_grad
        self.grad = None
        self._node = None

    @staticmethod
    def _wrap(array) -> "Tensor":
        """A leaf Tensor around `array` (no copy, no checks); for library code."""
        return _wrap(array if isinstance(array, np.ndarray) else np.asarray(array))

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

    def __iter__(self):
        if self.data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(len(self.data)))

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

    def __int__(self):
        return int(self.data)

    def __hash__(self):
        return id(self)

    # --- autograd ----------------------------------------------------------
    def backward(self, gradient=None, retain_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into every leaf's `.grad`; `gradient` (same
        shape as self) is required unless self has one element."""
        if not self.requires_grad:
            raise RuntimeError("backward: this tensor does not require grad and has "
                               "no grad_fn (was it computed under no_grad, or from "
                               "tensors that do not require grad?)")
        if gradient is None:
            if self.data.size != 1:
                raise RuntimeError(
                    f"backward: grad can be implicitly created only for scalar outputs; "
                    f"this tensor has shape {self.shape}: pass gradient= of that shape")
            gradient = np.ones_like(self.data)
        else:
            gradient = _as_array(gradient, self.dtype)
            if gradient.shape != self.shape:
                raise RuntimeError(f"backward: gradient shape {gradient.shape} "
                                   f"does not match tensor shape {self.shape}")
        if self._node is None:
            _accumulate_grad(self, gradient)
        else:
            _run_backward(self._node, gradient, retain_graph)

    def retain_grad(self) -> None:
        """Keep `.grad` for this non-leaf tensor too (leaves always keep theirs)."""
        if self._node is not None:
            self._node._retained_by = weakref.ref(self)

    @property
    def retains_grad(self) -> bool:
        return self._node is not None and self._node._retained_by is not None

    def detach(self) -> "Tensor":
        """A new leaf sharing this tensor's data, outside the graph."""
        return _wrap(self.data)

    def detach_(self) -> "Tensor":
        self._node = None
        self.requires_grad = False
        return self

    def requires_grad_(self, flag: bool = True) -> "Tensor":
        if flag and self.data.dtype.kind not in "fc":
            raise RuntimeError(
                f"only floating point tensors can require gradients, got {self.data.dtype}")
        self.requires_grad = flag
        return self

    @property
    def grad_fn(self):
        """The Node that made this tensor (None for a leaf)."""
        return self._node

    # --- dtype --------------------------------------------------------------
    def to(self, dtype) -> "Tensor":
        """This tensor in `dtype` (self when it already is); differentiable
        between floating dtypes."""
        dtype = np.dtype(dtype)
        if dtype == self.dtype:
            return self
        if dtype.kind not in "fc":
            return _wrap(self.data.astype(dtype))
        return Cast.apply(self, dtype)

    def float(self) -> "Tensor":
        return self.to(np.float32)

    def double(self) -> "Tensor":
        return self.to(np.float64)

    def long(self) -> "Tensor":
        return self.to(np.int64)

    def bool(self) -> "Tensor":
        return self.to(np.bool_)

    def clone(self) -> "Tensor":
        return Clone.apply(self)

    # --- arithmetic ---------------------------------------------------------
    # (`o if isinstance(o, Tensor) else _operand(o, self)` spares a call on the
    #  common Tensor-Tensor path)
    def __add__(self, o):
        return Add.apply(self, o if isinstance(o, Tensor) else _operand(o, self))

    def __radd__(self, o):
        return Add.apply(_operand(o, self), self)

    def __sub__(self, o):
        return Sub.apply(self, o if isinstance(o, Tensor) else _operand(o, self))

    def __rsub__(self, o):
        return Sub.apply(_operand(o, self), self)

    def __mul__(self, o):
        return Mul.apply(self, o if isinstance(o, Tensor) else _operand(o, self))

    def __rmul__(self, o):
        return Mul.apply(_operand(o, self), self)

    def __truediv__(self, o):
        return Div.apply(self, o if isinstance(o, Tensor) else _operand(o, self))

    def __rtruediv__(self, o):
        if isinstance(o, (int, float)):  # PyTorch: c / t is reciprocal(t) * c
            return Reciprocal.apply(self) * o
        return Div.apply(_operand(o, self), self)

    def __neg__(self):
        return Neg.apply(self)

    def __matmul__(self, o):
        return MatMul.apply(self, _operand(o, self))

    def __rmatmul__(self, o):
        return MatMul.apply(_operand(o, self), self)

    def __pow__(self, exponent):
        if isinstance(exponent, (Tensor, np.ndarray)):
            return PowTensor.apply(self, _operand(exponent, self))
        if isinstance(exponent, np.generic):
            exponent = exponent.item()
        return Pow.apply(self, exponent)

    def __rpow__(self, base):
        if isinstance(base, (int, float)):
            return RPow.apply(base, self)
        return PowTensor.apply(_operand(base, self), self)

    def reciprocal(self):
        return Reciprocal.apply(self)

    # comparisons: no gradient, boolean result
    def __lt__(self, o): return _wrap(self.data < _raw(o))
    def __le__(self, o): return _wrap(self.data <= _raw(o))
    def __gt__(self, o): return _wrap(self.data > _raw(o))
    def __ge__(self, o): return _wrap(self.data >= _raw(o))
    def __eq__(self, o): return _wrap(self.data == _raw(o))
    def __ne__(self, o): return _wrap(self.data != _raw(o))

    # --- reductions -----------------------------------------------------------
    def sum(self, dim=None, keepdim: bool = False):
        return Sum.apply(self, _axes(dim, self.ndim), keepdim)

    def mean(self, dim=None, keepdim: bool = False):
        return Mean.apply(self, _axes(dim, self.ndim), keepdim)

    def max(self, dim=None, keepdim: bool = False):
        """max of all elements; over `dim`: (values, indices) as in PyTorch;
        with a Tensor: elementwise `maximum`."""
        return self._extremum(dim, keepdim, True)

    def min(self, dim=None, keepdim: bool = False):
        """min of all elements; over `dim`: (values, indices) as in PyTorch;
        with a Tensor: elementwise `minimum`."""
        return self._extremum(dim, keepdim, False)

    def _extremum(self, dim, keepdim, is_max):
        if isinstance(dim, Tensor):
            return MaximumMinimum.apply(self, dim, is_max)
        if dim is None:
            return MaxMinAll.apply(self, is_max)
        dim = _dim(dim, self.ndim)
        indices = (np.argmax if is_max else np.argmin)(self.data, axis=dim, keepdims=True)
        values = MaxMinDim.apply(self, dim, indices, keepdim)
        return ValuesIndices(values, _wrap(indices if keepdim else indices.squeeze(dim)))

    def argmax(self, dim=None, keepdim: bool = False):
        return _wrap(_arg_extremum(np.argmax, self.data, dim, keepdim))

    def argmin(self, dim=None, keepdim: bool = False):
        return _wrap(_arg_extremum(np.argmin, self.data, dim, keepdim))

    # --- shape ------------------------------------------------------------------
    def reshape(self, *shape):
        shape = _shape_arg(shape)
        return self if shape == self.shape else Reshape.apply(self, shape)

    def view(self, *shape):
        return self.reshape(*shape)

    def flatten(self, start_dim: int = 0, end_dim: int = -1):
        if self.ndim == 0:
            return self.reshape(1)
        s, e = _dim(start_dim, self.ndim), _dim(end_dim, self.ndim)
        shape = self.shape[:s] + (math.prod(self.shape[s:e + 1]),) + self.shape[e + 1:]
        return self.reshape(shape)

    def unflatten(self, dim: int, sizes):
        dim = _dim(dim, self.ndim)
        return self.reshape(self.shape[:dim] + tuple(sizes) + self.shape[dim + 1:])

    def unsqueeze(self, dim: int):
        dim = _dim(dim, self.ndim + 1)
        return Reshape.apply(self, self.shape[:dim] + (1,) + self.shape[dim:])

    def squeeze(self, dim=None):
        """Drop size-1 dims (all, or those in `dim`, an int or a tuple)."""
        if dim is None:
            drop = {i for i, n in enumerate(self.shape) if n == 1}
        else:
            dims = dim if isinstance(dim, (tuple, list)) else (dim,)
            drop = {d for d in (_dim(d, max(self.ndim, 1)) for d in dims)
                    if self.ndim and self.shape[d] == 1}
        if not drop:
            return self
        return Reshape.apply(self, tuple(n for i, n in enumerate(self.shape) if i not in drop))

    def permute(self, *dims):
        dims = tuple(_dim(d, self.ndim) for d in _shape_arg(dims))
        if sorted(dims) != list(range(self.ndim)):
            raise ValueError(f"permute: dims {dims} are not a permutation of "
                             f"the {self.ndim} dims of shape {self.shape}")
        return Permute.apply(self, dims)

    def transpose(self, dim0: int, dim1: int):
        dims = list(range(self.ndim))
        a, b = _dim(dim0, self.ndim), _dim(dim1, self.ndim)
        dims[a], dims[b] = dims[b], dims[a]
        return Permute.apply(self, tuple(dims))

    @property
    def T(self):
        return Permute.apply(self, tuple(reversed(range(self.ndim))))

    def t(self):
        return self.transpose(0, 1) if self.ndim == 2 else self

    def expand(self, *shape):
        """Broadcast to `shape` without copying (-1 keeps a dim)."""
        shape = _shape_arg(shape)
        lead = len(shape) - self.ndim
        if lead < 0:
            raise ValueError(f"expand: shape {shape} has fewer dims than the "
                             f"tensor's shape {self.shape}")
        shape = tuple(self.shape[i - lead] if n == -1 and i >= lead else n
                      for i, n in enumerate(shape))
        return Expand.apply(self, shape)

    def expand_as(self, other):
        return self.expand(other.shape)

    def contiguous(self):
        return self

    def __getitem__(self, index):
        return GetItem.apply(self, _raw_index(index))

    def split(self, split_size, dim: int = 0):
        return split(self, split_size, dim)

    # --- elementwise ---------------------------------------------------------
    def exp(self): return Exp.apply(self)
    def log(self): return Log.apply(self)
    def sqrt(self): return Sqrt.apply(self)
    def abs(self): return Abs.apply(self)
    def tanh(self): return Tanh.apply(self)
    def sigmoid(self): return Sigmoid.apply(self)
    def relu(self): return Relu.apply(self)
    def sign(self): return _wrap(np.sign(self.data))
    __abs__ = abs

    def clamp(self, min=None, max=None):
        """Elementwise clamp to [min, max] (either may be None); bounds get no gradient."""
        if min is None and max is None:
            raise ValueError("clamp: at least one of min and max must be given")
        return Clamp.apply(self, min, max)

    clip = clamp

    def clamp_min(self, value): return Clamp.apply(self, value, None)
    def clamp_max(self, value): return Clamp.apply(self, None, value)


def _wrap(array: np.ndarray) -> Tensor:
    """A leaf Tensor around `array`, without checks (the hot path)."""
    t = _new_tensor(Tensor)
    t.data = array
    t.requires_grad = False
    t.grad = None
    t._node = None
    return t


_new_tensor = object.__new__


def _raw(o):
    return o.data if isinstance(o, Tensor) else o


def _raw_index(index):
    if isinstance(index, tuple):
        return tuple(_raw(i) for i in index)
    return _raw(index)


def _operand(o, like: Tensor) -> Tensor:
    """`o` as a Tensor to combine with `like`. Python scalars follow PyTorch: a
    float takes `like`'s floating dtype (else float32), an int takes `like`'s
    dtype unless `like` is bool (then int64)."""
    if isinstance(o, Tensor):
        return o
    if isinstance(o, (bool, int, float)):
        kind = like.dtype.kind
        if isinstance(o, bool) or kind in "fc" or (kind in "iu" and isinstance(o, int)):
            dtype = like.dtype
        else:
            dtype = np.float32 if isinstance(o, float) else np.int64
        return _wrap(np.asarray(o, dtype=dtype))
    return _wrap(_as_array(o))


def _shape_arg(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return tuple(int(s) for s in shape)


def _dim(d: int, ndim: int) -> int:
    """`d` (possibly negative) as an index in range(ndim), or an IndexError."""
    if not -ndim <= d < ndim:
        raise IndexError(f"dimension {d} is out of range for a tensor with {ndim} dims")
    return d % ndim


def _axes(dim, ndim):
    if dim is None:
        return None
    if isinstance(dim, (list, tuple)):
        return tuple(_dim(d, ndim) for d in dim)
    return (_dim(dim, ndim),) if ndim else None


def _arg_extremum(arg_fn, a: np.ndarray, dim, keepdim: bool) -> np.ndarray:
    if dim is None:
        idx = np.asarray(arg_fn(a))
        return idx.reshape((1,) * a.ndim) if keepdim else idx
    return arg_fn(a, axis=_dim(dim, a.ndim), keepdims=keepdim)


def _operands(a, b):
    """Both as Tensors; a Python scalar takes the other one's dtype."""
    if isinstance(a, Tensor):
        return a, _operand(b, a)
    if isinstance(b, Tensor):
        return _operand(a, b), b
    a = _wrap(_as_array(a))
    return a, _operand(b, a)


# ----------------------------------------------------------------------------
# elementwise arithmetic (gradient formulas are PyTorch's, in its op order)
# ----------------------------------------------------------------------------
class Add(Function):
    @staticmethod
    def forward(ctx, a, b):
        return _binary(np.add, "add", a, b)

    @staticmethod
    def backward(ctx, g):
        return g, g


class Sub(Function):
    @staticmethod
    def forward(ctx, a, b):
        return _binary(np.subtract, "sub", a, b)

    @staticmethod
    def backward(ctx, g):
        return g, (-g if ctx.needs_input_grad[1] else None)


class Mul(Function):
    @staticmethod
    def forward(ctx, a, b):
        a, b = _promote(a, b)
        ctx.saved = (a, b)
        return _binary(np.multiply, "mul", a, b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved
        need_a, need_b = ctx.needs_input_grad
        return (g * b if need_a else None), (g * a if need_b else None)


class Div(Function):
    @staticmethod
    def forward(ctx, a, b):
        a, b = _promote(a, b)
        if a.dtype.kind in "biu":  # true division of integers gives float32 (PyTorch)
            a, b = a.astype(np.float32), b.astype(np.float32)
        ctx.saved = (a, b)
        return _binary(np.divide, "div", a, b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved
        need_a, need_b = ctx.needs_input_grad
        ga = g / b if need_a else None
        gb = -g * ((a / b) / b) if need_b else None
        return ga, gb


class Reciprocal(Function):
    """1 / a; PyTorch computes `c / t` as `reciprocal(t) * c`."""

    @staticmethod
    def forward(ctx, a):
        if a.dtype.kind in "biu":
            a = a.astype(np.float32)
        ctx.out = np.reciprocal(a)
        return ctx.out

    @staticmethod
    def backward(ctx, g):
        out = ctx.out
        return (-g * (out * out),)


class Neg(Function):
    @staticmethod
    def forward(ctx, a):
        return np.negative(a)

    @staticmethod
    def backward(ctx, g):
        return (-g,)


def _pow_forward(a: np.ndarray, k):
    """`a ** k` with PyTorch's CPU special cases for some exponents (N5)."""
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
    """`a ** k` for a Python number k."""

    @staticmethod
    def forward(ctx, a, k):
        ctx.saved = (a, k)
        return _pow_forward(a, k)

    @staticmethod
    def backward(ctx, g):
        a, k = ctx.saved
        if k == 0:
            return np.zeros_like(a), None
        return g * (k * _pow_forward(a, k - 1)), None


class PowTensor(Function):
    """`a ** b` for two tensors (NumPy broadcasting)."""

    @staticmethod
    def forward(ctx, a, b):
        a, b = _promote(a, b)
        out = _binary(np.power, "pow", a, b)
        ctx.saved = (a, b, out)
        return out

    @staticmethod
    def backward(ctx, g):
        a, b, out = ctx.saved
        need_a, need_b = ctx.needs_input_grad
        zero = np.zeros((), g.dtype)
        ga = gb = None
        with np.errstate(divide="ignore", invalid="ignore"):
            if need_a:
                ga = np.where(b == 0, zero, g * (b * np.power(a, b - 1)))
            if need_b:
                gb = g * np.where((a == 0) & (b >= 0), zero, out * np.log(a))
        return ga, gb


class RPow(Function):
    """`base ** t` for a Python number `base` (PyTorch's pow(Scalar, Tensor):
    the gradient uses log(base) computed in double)."""

    @staticmethod
    def forward(ctx, base, t):
        out = np.power(np.asarray(base, dtype=t.dtype), t)
        ctx.saved = (base, t, out)
        return out

    @staticmethod
    def backward(ctx, g):
        base, t, out = ctx.saved
        with np.errstate(divide="ignore", invalid="ignore"):
            d_out = out * float(np.log(np.float64(base)))
        if base == 0:
            d_out = np.where(t >= 0, np.zeros((), g.dtype), d_out)
        return None, g * d_out


class MatMul(Function):
    """Batched matrix product with NumPy's `@` rules (1-D operands are vectors)."""

    @staticmethod
    def forward(ctx, a, b):
        if a.ndim == 0 or b.ndim == 0:
            raise ValueError("matmul: both arguments need at least 1 dimension, "
                             f"got shapes {a.shape} and {b.shape}")
        k_a, k_b = a.shape[-1], b.shape[-2] if b.ndim > 1 else b.shape[0]
        if k_a != k_b:
            raise ValueError(f"matmul: shapes {a.shape} and {b.shape} are not "
                             f"aligned (inner dimensions {k_a} != {k_b})")
        a, b = _promote(a, b)
        ctx.saved = (a, b)
        return _binary(np.matmul, "matmul", a, b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved
        need_a, need_b = ctx.needs_input_grad
        # view vectors as matrices: a [..., n, k], b [..., k, m], g [..., n, m]
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        batch = g.shape[:g.ndim - (a.ndim > 1) - (b.ndim > 1)]
        g2 = g.reshape(batch + (a2.shape[-2], b2.shape[-1]))
        ga = gb = None
        if need_a:
            ga = _unbroadcast(g2 @ np.swapaxes(b2, -1, -2), a2.shape).reshape(a.shape)
        if need_b:
            if b2.ndim == 2 and a2.ndim > 2:  # one GEMM over all batch rows, as PyTorch folds it
                k, m = b2.shape
                a_rows = np.broadcast_to(a2, g2.shape[:-1] + (k,)).reshape(-1, k)
                gb = a_rows.T @ g2.reshape(-1, m)
            else:
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
def _expand_back(g: np.ndarray, shape: tuple, axes, keepdim: bool) -> np.ndarray:
    """The gradient of a reduction over `axes`, broadcast back to `shape`."""
    if axes is not None and not keepdim:
        g = np.expand_dims(g, axes)
    return np.broadcast_to(g, shape)


class Sum(Function):
    @staticmethod
    def forward(ctx, a, axes, keepdim):
        ctx.saved = (a.shape, axes, keepdim)
        return np.asarray(a.sum(axis=axes, keepdims=keepdim))

    @staticmethod
    def backward(ctx, g):
        shape, axes, keepdim = ctx.saved
        return _expand_back(g, shape, axes, keepdim), None, None


class Mean(Function):
    @staticmethod
    def forward(ctx, a, axes, keepdim):
        if a.dtype.kind not in "fc":
            raise TypeError(f"mean: needs a floating point input, got {a.dtype} "
                            f"(use .float() first)")
        ctx.saved = (a.shape, axes, keepdim)
        return np.asarray(a.mean(axis=axes, keepdims=keepdim))

    @staticmethod
    def backward(ctx, g):
        shape, axes, keepdim = ctx.saved
        n = math.prod(shape) if axes is None else math.prod(shape[i] for i in axes)
        return _expand_back(g, shape, axes, keepdim) / n, None, None


class MaxMinAll(Function):
    """max/min of all elements; tied elements share the gradient evenly (PyTorch)."""

    @staticmethod
    def forward(ctx, a, is_max):
        if a.size == 0:
            raise ValueError(f"{'max' if is_max else 'min'}: the input is empty "
                             f"(shape {a.shape}); give a dim")
        out = np.asarray(a.max() if is_max else a.min())
        ctx.saved = (a, out)
        return out

    @staticmethod
    def backward(ctx, g):
        a, out = ctx.saved
        hit = np.isnan(a) if np.isnan(out) else a == out
        return np.where(hit, g / np.count_nonzero(hit), np.zeros((), g.dtype)), None


class MaxMinDim(Function):
    """Values of max/min over `dim` at precomputed `indices` (keepdims-shaped);
    the gradient goes to those positions only (PyTorch)."""

    @staticmethod
    def forward(ctx, a, dim, indices, keepdim):
        ctx.saved = (a.shape, dim, indices, keepdim)
        out = np.take_along_axis(a, indices, dim)
        return out if keepdim else out.squeeze(dim)

    @staticmethod
    def backward(ctx, g):
        shape, dim, indices, keepdim = ctx.saved
        grad = np.zeros(shape, g.dtype)
        np.put_along_axis(grad, indices, g if keepdim else np.expand_dims(g, dim), dim)
        return grad, None, None, None


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


def _is_basic_index(index) -> bool:
    """True for ints, slices, None and Ellipsis (no element is selected twice)."""
    parts = index if isinstance(index, tuple) else (index,)
    return all(p is None or p is Ellipsis or isinstance(p, slice)
               or (isinstance(p, (int, np.integer)) and not isinstance(p, bool))
               for p in parts)


class GetItem(Function):
    """NumPy indexing: ints, slices, None, Ellipsis, integer arrays, boolean masks."""

    @staticmethod
    def forward(ctx, a, index):
        ctx.saved = (a.shape, index)
        try:
            return np.asarray(a[index])
        except IndexError as e:
            raise IndexError(f"index {index!r} is invalid for shape {a.shape}: {e}") from None

    @staticmethod
    def backward(ctx, g):
        shape, index = ctx.saved
        if _is_basic_index(index):
            return _SliceGrad(shape, index, g), None
        grad = np.zeros(shape, g.dtype)
        np.add.at(grad, index, g)  # repeated integer indices accumulate
        return grad, None


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
        return (None, *np.moveaxis(g, ctx.dim, 0))


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


def _tensor_list(tensors, name: str):
    tensors = [t if isinstance(t, Tensor) else tensor(t) for t in tensors]
    if not tensors:
        raise ValueError(f"{name}: expects a non-empty list of tensors")
    return tensors


def stack(tensors, dim: int = 0) -> Tensor:
    """Join same-shape tensors along a new dim: n x [*] -> [*] with n inserted at `dim`."""
    tensors = _tensor_list(tensors, "stack")
    return Stack.apply(_dim(dim, tensors[0].ndim + 1), *tensors)


def cat(tensors, dim: int = 0) -> Tensor:
    """Join tensors along an existing dim."""
    tensors = _tensor_list(tensors, "cat")
    return Cat.apply(_dim(dim, tensors[0].ndim), *tensors)


def split(t: Tensor, split_size, dim: int = 0):
    """PyTorch's `split`: chunks of `split_size` along `dim` (the last one may be
    smaller), or chunks of the listed sizes."""
    dim = _dim(dim, t.ndim)
    n = t.shape[dim]
    if isinstance(split_size, (list, tuple)):
        sizes = list(split_size)
    else:
        if split_size <= 0:
            raise ValueError(f"split: split_size must be positive, got {split_size}")
        sizes = [min(split_size, n - i) for i in range(0, n, split_size)]
    if sum(sizes) != n:
        raise ValueError(f"split: sizes {sizes} do not add up to {n} along dim {dim}")
    out, start = [], 0
    for s in sizes:
        out.append(t[(slice(None),) * dim + (slice(start, start + s),)])
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
        ctx.out = np.maximum(a, 0)
        return ctx.out

    @staticmethod
    def backward(ctx, g):  # PyTorch's threshold_backward: zero where out <= 0
        return (np.where(ctx.out <= 0, np.zeros((), g.dtype), g),)


class Clamp(Function):
    @staticmethod
    def forward(ctx, a, lo, hi):
        out = a
        if lo is not None:
            lo = np.asarray(lo, dtype=a.dtype)
            out = np.maximum(out, lo)
        if hi is not None:
            hi = np.asarray(hi, dtype=a.dtype)
            out = np.minimum(out, hi)
        ctx.saved = (a, lo, hi)
        return out

    @staticmethod
    def backward(ctx, g):  # PyTorch: grad where lo <= a <= hi, else 0
        a, lo, hi = ctx.saved
        inside = np.ones(a.shape, dtype=bool)
        if lo is not None:
            inside &= a >= lo
        if hi is not None:
            inside &= a <= hi
        return np.where(inside, g, np.zeros((), g.dtype)), None, None


class Where(Function):
    @staticmethod
    def forward(ctx, cond, a, b):
        a, b = _promote(a, b)
        ctx.cond = cond
        try:
            return np.where(cond, a, b)
        except ValueError:
            raise ValueError(f"where: shapes {np.shape(cond)} (condition), {a.shape} and "
                             f"{b.shape} cannot be broadcast together") from None

    @staticmethod
    def backward(ctx, g):
        zero = np.zeros((), g.dtype)
        need_a, need_b = ctx.needs_input_grad[1:]
        return (None, np.where(ctx.cond, g, zero) if need_a else None,
                np.where(ctx.cond, zero, g) if need_b else None)


class MaximumMinimum(Function):
    """Elementwise max/min; ties give each side half the gradient (PyTorch)."""

    @staticmethod
    def forward(ctx, a, b, is_max):
        a, b = _promote(a, b)
        ctx.saved = (a, b, is_max)
        return _binary(np.maximum if is_max else np.minimum,
                       "maximum" if is_max else "minimum", a, b)

    @staticmethod
    def backward(ctx, g):
        a, b, is_max = ctx.saved
        shared = np.where(a == b, g / 2, g)
        zero = np.zeros((), g.dtype)
        a_loses, b_loses = (a < b, a > b) if is_max else (a > b, a < b)
        return np.where(a_loses, zero, shared), np.where(b_loses, zero, shared), None


def where(cond, a, b) -> Tensor:
    """Elementwise `a` where `cond` else `b` (all broadcast together)."""
    a, b = _operands(a, b)
    return Where.apply(np.asarray(_raw(cond), dtype=bool), a, b)


def maximum(a, b) -> Tensor:
    a, b = _operands(a, b)
    return MaximumMinimum.apply(a, b, True)


def minimum(a, b) -> Tensor:
    a, b = _operands(a, b)
    return MaximumMinimum.apply(a, b, False)


# ----------------------------------------------------------------------------
# constructors
# ----------------------------------------------------------------------------
def tensor(data, dtype=None, requires_grad: bool = False) -> Tensor:
    """A new leaf Tensor holding a copy of `data` (Python floats -> float32)."""
    arr = np.array(_as_array(data, dtype), copy=True)
    return Tensor(arr, requires_grad=requires_grad)


def as_tensor(data, dtype=None) -> Tensor:
    return data if isinstance(data, Tensor) and dtype is None else Tensor(data, dtype)


def zeros(*shape, dtype=np.float32, requires_grad=False) -> Tensor:
    return Tensor(np.zeros(_shape_arg(shape), dtype), requires_grad=requires_grad)


def ones(*shape, dtype=np.float32, requires_grad=False) -> Tensor:
    return Tensor(np.ones(_shape_arg(shape), dtype), requires_grad=requires_grad)


def full(shape, value, dtype=np.float32, requires_grad=False) -> Tensor:
    return Tensor(np.full(_shape_arg((shape,)), value, dtype), requires_grad=requires_grad)


def zeros_like(t: Tensor, dtype=None) -> Tensor:
    return Tensor(np.zeros_like(_raw(t), dtype=dtype))


def ones_like(t: Tensor, dtype=None) -> Tensor:
    return Tensor(np.ones_like(_raw(t), dtype=dtype))


def rand(*shape, dtype=np.float32, requires_grad=False) -> Tensor:
    """Uniform [0, 1) from the library generator (see `manual_seed`)."""
    data = _generator.random(_shape_arg(shape), dtype=np.float64).astype(dtype)
    return Tensor(data, requires_grad=requires_grad)


def randn(*shape, dtype=np.float32, requires_grad=False) -> Tensor:
    data = _generator.standard_normal(_shape_arg(shape)).astype(dtype)
    return Tensor(data, requires_grad=requires_grad)
