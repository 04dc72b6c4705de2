"""Stateless ANN layers with PyTorch's constructors, defaults, initialisation,
parameter/buffer names (so `state_dict` keys match `torch.nn`) and `__repr__`.

Shapes: `Linear` `[*, in] -> [*, out]`; `Conv1d` `[N, C, L]`; `Conv2d`,
pools `[N, C, H, W]`; `BatchNorm1d` `[N, C]` or `[N, C, L]`; `BatchNorm2d`
`[N, C, H, W]`; the rest any shape.

Initial values are drawn from the library generator (`refsnn.manual_seed`),
with PyTorch's distributions: weights `kaiming_uniform_(a=sqrt(5))`, i.e.
U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
Parameters are float32 unless `dtype=` says otherwise.

SpikingJelly's dropout (one mask per sequence) is `refsnn.spiking_layers.Dropout`;
PyTorch's per-call dropout is `TorchDropout` here.
"""
from __future__ import annotations

import math

import numpy as np

from . import ops
from .autograd import default_generator
from .module import Module, Parameter

__all__ = ["Linear", "Conv1d", "Conv2d", "BatchNorm1d", "BatchNorm2d", "MaxPool2d",
           "AvgPool2d", "AdaptiveAvgPool2d", "Flatten", "ReLU", "Identity", "TorchDropout",
           "Dropout", "Dropout2d", "MultiStepDropout", "MultiStepDropout2d", "SynapseFilter"]


def _uniform(shape, bound: float, dtype) -> np.ndarray:
    """An array drawn from U(-bound, bound) by the library generator, drawn in
    the target precision (float32 draws avoid a float64 temporary)."""
    draw_dtype = np.float64 if np.dtype(dtype) == np.float64 else np.float32
    values = default_generator().random(shape, dtype=draw_dtype)
    values *= 2 * bound
    values -= bound
    return values.astype(dtype, copy=False)


def _fan_in_bound(fan_in: int) -> float:
    """PyTorch's default bound for weights (kaiming_uniform_ with a=sqrt(5))
    and biases alike: 1/sqrt(fan_in), 0 for an empty fan."""
    return 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0


def _dtype(dtype) -> np.dtype:
    return np.dtype(np.float32 if dtype is None else dtype)


class Linear(Module):
    """`y = x @ weight.T + bias`; `weight: [out_features, in_features]`."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, dtype=None):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        dtype = _dtype(dtype)
        self.weight = Parameter(np.empty((out_features, in_features), dtype))
        if bias:
            self.bias = Parameter(np.empty(out_features, dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = _fan_in_bound(self.in_features)
        self.weight.data = _uniform(self.weight.shape, bound, self.weight.dtype)
        if self.bias is not None:
            self.bias.data = _uniform(self.bias.shape, bound, self.bias.dtype)

    def forward(self, x):
        return ops.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class _ConvNd(Module):
    """Shared constructor, initialisation and repr of Conv1d/Conv2d."""

    _dims = 0
    _op = None

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 dilation=1, groups=1, bias=True, padding_mode="zeros", dtype=None):
        super().__init__()
        name = type(self).__name__
        if groups <= 0:
            raise ValueError(f"{name}: groups must be a positive integer, got {groups}")
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"{name}: in_channels={in_channels} and out_channels="
                             f"{out_channels} must both be divisible by groups={groups}")
        if padding_mode != "zeros":
            raise NotImplementedError(f"{name}: only padding_mode='zeros' is implemented, "
                                      f"got padding_mode={padding_mode!r}")
        n = self._dims
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = ops._ntuple(kernel_size, n, f"{name}: kernel_size")
        self.stride = ops._ntuple(stride, n, f"{name}: stride")
        self.dilation = ops._ntuple(dilation, n, f"{name}: dilation")
        self.groups, self.padding_mode = groups, padding_mode
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"{name}: invalid padding string {padding!r}, should be "
                                 f"one of ('same', 'valid')")
            if padding == "same" and any(s != 1 for s in self.stride):
                raise ValueError(f"{name}: padding='same' is not supported for strided "
                                 f"convolutions")
            self.padding = padding
        else:
            self.padding = ops._ntuple(padding, n, f"{name}: padding")
        dtype = _dtype(dtype)
        self.weight = Parameter(np.empty((out_channels, in_channels // groups)
                                         + self.kernel_size, dtype))
        if bias:
            self.bias = Parameter(np.empty(out_channels, dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = _fan_in_bound(int(np.prod(self.weight.shape[1:])))
        self.weight.data = _uniform(self.weight.shape, bound, self.weight.dtype)
        if self.bias is not None:
            self.bias.data = _uniform(self.bias.shape, bound, self.bias.dtype)

    def forward(self, x):
        return type(self)._op(x, self.weight, self.bias, self.stride, self.padding,
                              self.dilation, self.groups)

    def extra_repr(self) -> str:
        n = self._dims
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding != (0,) * n:
            s += f", padding={self.padding}"
        if self.dilation != (1,) * n:
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s


class Conv1d(_ConvNd):
    """`[N, C_in, L] -> [N, C_out, L_out]`; `weight: [C_out, C_in/groups, k]`."""
    _dims = 1
    _op = staticmethod(ops.conv1d)


class Conv2d(_ConvNd):
    """`[N, C_in, H, W] -> [N, C_out, H_out, W_out]`; `weight: [C_out, C_in/groups, kh, kw]`."""
    _dims = 2
    _op = staticmethod(ops.conv2d)


class _BatchNorm(Module):
    """PyTorch's `_BatchNorm`: per-channel normalisation with running statistics.

    In training the batch statistics normalise and, with `track_running_stats`,
    `num_batches_tracked` counts up and the running statistics move by
    `momentum` (or by `1 / num_batches_tracked` when `momentum=None`: a
    cumulative average). In eval the running statistics normalise (the batch
    statistics when they are not tracked).
    """

    _ranks = ()

    def __init__(self, num_features: int, eps: float = 1e-5, momentum=0.1, affine: bool = True,
                 track_running_stats: bool = True, dtype=None, *, bias: bool = True):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        dtype = _dtype(dtype)
        if affine:
            self.weight = Parameter(np.ones(num_features, dtype))
            if bias:
                self.bias = Parameter(np.zeros(num_features, dtype))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", np.zeros(num_features, dtype))
            self.register_buffer("running_var", np.ones(num_features, dtype))
            self.register_buffer("num_batches_tracked", np.array(0, dtype=np.int64))
        else:
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                self.register_buffer(name, None)

    def _older_state_defaults(self, prefix: str, version) -> dict:
        # PyTorch's BatchNorm gained num_batches_tracked in its version 2; a state
        # dict of an older version, or without metadata (any plain dict), may
        # lack it and then keeps this module's count, as torch 2.x does
        if self.track_running_stats and (version is None or version < 2):
            return {prefix + "num_batches_tracked": np.array(self.num_batches_tracked.data)}
        return {}

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean.data[...] = 0
            self.running_var.data[...] = 1
            self.num_batches_tracked.data[...] = 0

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if self.affine:
            self.weight.data[...] = 1
            if self.bias is not None:
                self.bias.data[...] = 0

    def forward(self, x):
        if x.ndim not in self._ranks:
            ranks = " or ".join(f"{r}D" for r in self._ranks)
            raise ValueError(f"{type(self).__name__}: expected {ranks} input "
                             f"(got {x.ndim}D input)")
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            count = self.num_batches_tracked.data
            np.add(count, 1, out=count)
            if self.momentum is None:
                factor = 1.0 / float(count)
        use_batch_stats = self.training or (self.running_mean is None
                                            and self.running_var is None)
        keep_stats = not self.training or self.track_running_stats
        return ops.batch_norm(x, self.running_mean if keep_stats else None,
                              self.running_var if keep_stats else None,
                              self.weight, self.bias, use_batch_stats, factor, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, bias={self.bias is not None}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Over `[N, C]` or `[N, C, L]`."""
    _ranks = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Over `[N, C, H, W]`."""
    _ranks = (4,)


class MaxPool2d(Module):
    """Max over windows of `[N, C, H, W]`; stride defaults to kernel_size."""

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1,
                 return_indices: bool = False, ceil_mode: bool = False):
        super().__init__()
        if return_indices:
            raise NotImplementedError("MaxPool2d: return_indices=True is not implemented")
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding, self.dilation = padding, dilation
        self.return_indices, self.ceil_mode = return_indices, ceil_mode

    def forward(self, x):
        return ops.max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation,
                              self.ceil_mode)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class AvgPool2d(Module):
    """Mean over windows of `[N, C, H, W]`; stride defaults to kernel_size."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
                 count_include_pad: bool = True, divisor_override=None):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding, self.ceil_mode = padding, ceil_mode
        self.count_include_pad, self.divisor_override = count_include_pad, divisor_override

    def forward(self, x):
        return ops.avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                              self.count_include_pad, self.divisor_override)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool2d(Module):
    """`[N, C, H, W] -> [N, C, *output_size]` with PyTorch's adaptive bins."""

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, x):
        return ops.adaptive_avg_pool2d(x, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class Flatten(Module):
    """Merge dims `start_dim..end_dim` into one: `[N, C, H, W] -> [N, C*H*W]` by default."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x):
        return x.flatten(self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class ReLU(Module):
    """`max(x, 0)`. `inplace` is accepted for PyTorch compatibility; the
    result is always a new tensor (autograd here never mutates inputs)."""

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace

    def forward(self, x):
        return x.relu()

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class Identity(Module):
    """Returns its input; ignores constructor arguments, as PyTorch."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, x):
        return x


class TorchDropout(Module):
    """PyTorch's `nn.Dropout`: a fresh mask on every call in training
    (`refsnn.ops.dropout`), identity in eval. `inplace` as for `ReLU`."""

    def __init__(self, p: float = 0.5, inplace: bool = False):
        super().__init__()
        if not 0 <= p <= 1:
            raise ValueError(f"TorchDropout: dropout probability has to be between 0 and 1, "
                             f"but got {p}")
        self.p, self.inplace = p, inplace

    def forward(self, x):
        return ops.dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


# SpikingJelly's stateful layers, importable from here as API.md lists them.
from .spiking_layers import (Dropout, Dropout2d, MultiStepDropout,  # noqa: E402
                             MultiStepDropout2d, SynapseFilter)
