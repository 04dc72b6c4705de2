"""Optimizers: `SGD` and `Adam`, step for step PyTorch's update rules.

Each update is written in the operation order of PyTorch's single-tensor
implementation (`torch.optim.sgd._single_tensor_sgd`,
`torch.optim.adam._single_tensor_adam`) and rounds where PyTorch's CPU kernels
round: hyper-parameters become the parameter's dtype before they touch an
array, and `add(alpha=)`, `lerp` and `addcmul` are fused multiply-adds (one
rounding), as PyTorch's vectorised CPU kernels compute them.

Parameters are updated in place (`p.data` keeps its identity and dtype);
optimizer state lives in `optimizer.state[p]` under PyTorch's names
(`momentum_buffer`; `step`, `exp_avg`, `exp_avg_sq`, `max_exp_avg_sq`).
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np

from .autograd import Tensor, enable_grad

__all__ = ["Optimizer", "SGD", "Adam"]

# The square root in Adam's denominator; a module attribute so that a test can
# substitute PyTorch's (MKL's) square root and check everything else bit for bit.
_sqrt = np.sqrt


def _scalar(value: float, like: np.ndarray) -> np.ndarray:
    """A Python number as a 0-dim array of `like`'s dtype (PyTorch casts
    scalar arguments to the tensor's dtype before computing)."""
    return np.asarray(value, dtype=like.dtype)


def _fma(a: np.ndarray, b, c: np.ndarray) -> np.ndarray:
    """`a * b + c` rounded once, in `c`'s dtype.

    float32: the product is exact in float64; the sum is rounded to odd in
    float64 (TwoSum, then one ulp towards the exact value when the rounded sum
    is even) and then to nearest in float32, which is the correctly rounded
    fused multiply-add (Boldo & Melquiond, IEEE TC 2008). float64: NumPy has no
    fused multiply-add, so this is `a * b + c` with two roundings (within an ulp
    of PyTorch's result).
    """
    if c.dtype != np.float32:
        return a * b + c
    x = np.asarray(a, np.float64) * np.asarray(b, np.float64)
    y = np.asarray(c, np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        s = np.asarray(x + y)
        t = s - x
        err = (x - (s - t)) + (y - t)
        towards = np.where(err > 0, np.inf, -np.inf)
        make_odd = (err != 0) & np.isfinite(err) & (s.view(np.int64) & 1 == 0)
        s = np.where(make_odd, np.nextafter(s, towards), s)
    return s.astype(np.float32)


def _lerp(start: np.ndarray, end: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """PyTorch's `start.lerp(end, weight)` on CPU: `start + weight * (end - start)`
    for |weight| < 0.5, else `end - (end - start) * (1 - weight)`, each fused."""
    diff = end - start
    if abs(weight) < 0.5:
        return _fma(weight, diff, start)
    return _fma(-diff, np.asarray(1, weight.dtype) - weight, end)


def _write(param: Tensor, value: np.ndarray) -> None:
    """Store `value` into `param.data` in place (a read-only array is replaced)."""
    if param.data.flags.writeable:
        np.copyto(param.data, value)
    else:
        param.data = np.array(value, dtype=param.data.dtype)


class Optimizer:
    """Base class: `param_groups` (a list of dicts, one per group, holding
    `params` and that group's hyper-parameters), `state` (per-parameter dicts)
    and `zero_grad`; subclasses implement `step`."""

    def __init__(self, params, defaults: dict):
        if isinstance(params, Tensor):
            raise TypeError(f"{type(self).__name__}: params should be an iterable of "
                            f"Tensors or dicts, got a single Tensor of shape {params.shape}; "
                            f"wrap it in a list")
        self.defaults = defaults
        self.state = defaultdict(dict)
        self.param_groups = []
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, param_group: dict) -> None:
        """Append a group; hyper-parameters it does not give take the defaults."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, got {type(param_group).__name__}")
        group = dict(param_group)
        params = group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, set):
            raise TypeError("optimizer parameters need to be an ordered collection (a list), "
                            "not a set: the order of a set changes between runs")
        group["params"] = params = list(params)
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizer can only optimize refsnn Tensors, "
                                f"got {type(p).__name__}")
            if not p.is_leaf:
                raise ValueError("can't optimize a non-leaf Tensor")
        for name, default in self.defaults.items():
            group.setdefault(name, default)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in params):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop every gradient (`set_to_none=True`) or fill it with zeros."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    p.grad = Tensor._wrap(np.zeros_like(p.grad.data))

    def step(self, closure=None):
        """Update every parameter that has a gradient; return `closure()`'s loss."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self._update(p, p.grad.data, self.state[p], group)
        return loss

    def _update(self, param: Tensor, grad: np.ndarray, state: dict, group: dict) -> None:
        raise NotImplementedError

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in sorted(group.items()) if k != "params"]
        return "\n".join(lines + [")"])


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, dampening, weight
    decay and Nesterov momentum (PyTorch's `torch.optim.SGD`)."""

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0, dampening: float = 0,
                 weight_decay: float = 0, nesterov: bool = False):
        if lr < 0:
            raise ValueError(f"SGD: invalid lr={lr} (the learning rate must be >= 0)")
        if momentum < 0:
            raise ValueError(f"SGD: invalid momentum={momentum} (must be >= 0)")
        if weight_decay < 0:
            raise ValueError(f"SGD: invalid weight_decay={weight_decay} (must be >= 0)")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError(f"SGD: nesterov=True requires momentum > 0 and dampening=0, "
                             f"got momentum={momentum}, dampening={dampening}")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))

    def _update(self, param, grad, state, group):
        p = param.data
        momentum = group["momentum"]
        if group["weight_decay"] != 0:
            grad = _fma(p, _scalar(group["weight_decay"], p), grad)
        if momentum != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = Tensor._wrap(np.array(grad, copy=True))
            else:
                buf.data = _fma(grad, _scalar(1 - group["dampening"], p),
                                buf.data * _scalar(momentum, p))
            grad = _fma(buf.data, _scalar(momentum, p), grad) if group["nesterov"] \
                else buf.data
        _write(param, _fma(grad, _scalar(-group["lr"], p), p))


class Adam(Optimizer):
    """Adam (PyTorch's `torch.optim.Adam`, L2 weight decay added to the
    gradient; `amsgrad=True` normalises by the running maximum of `exp_avg_sq`).

    PyTorch's CPU `sqrt` (Intel MKL in the x86 wheels) is not always correctly
    rounded; NumPy's is, so results can differ from PyTorch's by an ulp in the
    denominator. With PyTorch's square root substituted for `_sqrt`, float32
    updates are bit-identical (tests/test_optim.py).
    """

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, amsgrad: bool = False):
        if lr < 0:
            raise ValueError(f"Adam: invalid lr={lr} (the learning rate must be >= 0)")
        if eps < 0:
            raise ValueError(f"Adam: invalid eps={eps} (must be >= 0)")
        if len(betas) != 2:
            raise ValueError(f"Adam: betas must be a pair (beta1, beta2), got {betas!r}")
        for i, beta in enumerate(betas):
            if not 0 <= beta < 1:
                raise ValueError(f"Adam: invalid betas[{i}]={beta} (must be in [0, 1))")
        if weight_decay < 0:
            raise ValueError(f"Adam: invalid weight_decay={weight_decay} (must be >= 0)")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps,
                                      weight_decay=weight_decay, amsgrad=amsgrad))

    def _update(self, param, grad, state, group):
        p = param.data
        beta1, beta2 = group["betas"]
        if not state:
            state["step"] = Tensor._wrap(np.zeros((), np.float32))
            state["exp_avg"] = Tensor._wrap(np.zeros_like(p))
            state["exp_avg_sq"] = Tensor._wrap(np.zeros_like(p))
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = Tensor._wrap(np.zeros_like(p))
        step_t, exp_avg, exp_avg_sq = state["step"], state["exp_avg"], state["exp_avg_sq"]
        step_t.data = step_t.data + np.float32(1)  # a float32 counter, as in PyTorch

        if group["weight_decay"] != 0:
            grad = _fma(p, _scalar(group["weight_decay"], p), grad)
        exp_avg.data = _lerp(exp_avg.data, grad, _scalar(1 - beta1, p))
        exp_avg_sq.data = _fma(grad * _scalar(1 - beta2, p), grad,
                               exp_avg_sq.data * _scalar(beta2, p))

        step = float(step_t.data)
        bias_correction1 = 1 - beta1 ** step
        bias_correction2 = 1 - beta2 ** step
        step_size = group["lr"] / bias_correction1
        bias_correction2_sqrt = bias_correction2 ** 0.5

        second_moment = exp_avg_sq.data
        if group["amsgrad"]:
            maximum = state["max_exp_avg_sq"]
            maximum.data = np.maximum(maximum.data, exp_avg_sq.data)
            second_moment = maximum.data
        denom = _sqrt(second_moment) / _scalar(bias_correction2_sqrt, p) \
            + _scalar(group["eps"], p)
        _write(param, p + _scalar(-step_size, p) * exp_avg.data / denom)
