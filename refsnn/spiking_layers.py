"""SpikingJelly's stateful non-neuron layers: the dropout family whose mask is
shared across time, and `SynapseFilter`.

- `Dropout(p=0.5, step_mode='s')`, `Dropout2d(p=0.2, step_mode='s')`: one mask
  per sequence, kept for every step and every later call until `reset()`
  (`functional.reset_net`); identity in eval mode.
- `MultiStepDropout(p=0.5)`, `MultiStepDropout2d(p=0.5)`: the same, always
  multi-step (`clock_driven` classes).
- `SynapseFilter(tau=100.0, learnable=False, step_mode='s')`: the low-pass
  synaptic current `I_t = I_{t-1} - (1 - S_t) * I_{t-1} / tau + S_t`.

PyTorch's own dropout (a fresh mask per call) is not here; it is a stateless
layer of `refsnn.layers`.
"""
from __future__ import annotations

import math

import numpy as np

from .autograd import Tensor, default_generator, zeros_like
from .containers import StepModule
from .module import MemoryModule, Parameter

__all__ = ["Dropout", "Dropout2d", "MultiStepDropout", "MultiStepDropout2d",
           "SynapseFilter"]


class Dropout(StepModule, MemoryModule):
    """Dropout with one mask per sequence.

    Training: on the first call after construction or `reset()`, the memory
    `mask` is drawn for the shape of `x` (or `x_seq[0]` in step mode 'm') from
    the library generator (`refsnn.manual_seed`), as PyTorch computes it:
    `bernoulli(1 - p)` then divided by `(1 - p)` in the input's dtype, so its
    values are `0` and `1 / f32(1 - p)` for float32. Every later step and call
    multiplies by the same mask until `reset()`. Eval: identity, the mask is
    left alone.

    `x: [N, *]` (step mode 's') or `x_seq: [T, N, *]` ('m'; the mask
    broadcasts over T). SpikingJelly silently broadcasts an input whose shape
    merely broadcasts with the mask; refsnn requires the shape it was drawn for.
    """

    def __init__(self, p: float = 0.5, step_mode: str = "s"):
        super().__init__()
        if not 0 <= p < 1:
            raise AssertionError(f"{type(self).__name__}: p is the probability of "
                                 f"zeroing an element and must satisfy 0 <= p < 1, got {p}")
        self.p = float(p)
        self.step_mode = step_mode
        self.register_memory("mask", None)

    def extra_repr(self) -> str:
        return f"p={self.p}"

    # --- the mask -------------------------------------------------------------
    def _noise_shape(self, shape: tuple) -> tuple:
        """Shape of the Bernoulli draw for one step of shape `shape`."""
        return shape

    def _check_step_input(self, shape: tuple) -> None:
        """Raise for a single-step shape this layer cannot mask."""

    def _use_mask(self, x: Tensor, step_shape: tuple) -> Tensor:
        self._check_step_input(step_shape)
        if self.mask is None:
            self.mask = self._draw_mask(step_shape, x.dtype)
        elif self.mask.shape != step_shape:
            raise RuntimeError(
                f"{type(self).__name__}: the mask was drawn for input steps of shape "
                f"{self.mask.shape}, but this input has steps of shape {step_shape}; "
                f"call refsnn.functional.reset_net(net) before a new sequence")
        return x * self.mask

    def _draw_mask(self, step_shape: tuple, dtype) -> Tensor:
        dtype = np.dtype(dtype)
        if dtype.kind != "f":
            raise TypeError(f"{type(self).__name__}: expected a floating-point input, "
                            f"got dtype {dtype}")
        keep_prob = np.asarray(1.0 - self.p, dtype=dtype)
        noise_shape = self._noise_shape(step_shape)
        noise = (default_generator().random(noise_shape) < keep_prob).astype(dtype)
        noise = noise / keep_prob
        return Tensor._wrap(np.ascontiguousarray(np.broadcast_to(noise, step_shape)))

    # --- forward --------------------------------------------------------------
    def single_step_forward(self, x: Tensor) -> Tensor:
        """`x: [N, *]` -> `[N, *]`."""
        if not self.training:
            return x
        return self._use_mask(x, tuple(x.shape))

    def multi_step_forward(self, x_seq: Tensor) -> Tensor:
        """`x_seq: [T, N, *]` -> `[T, N, *]`, the same mask at every step."""
        if x_seq.ndim < 2:
            raise ValueError(f"{type(self).__name__}: expected x_seq with shape "
                             f"[T, N, *], but got shape {tuple(x_seq.shape)}")
        if not self.training:
            return x_seq
        return self._use_mask(x_seq, tuple(x_seq.shape[1:]))


class Dropout2d(Dropout):
    """Channel-wise `Dropout`: one mask value per (sample, channel), shared over
    the spatial positions, over time, and until `reset()`.

    `x: [N, C, *spatial]` ('s') or `x_seq: [T, N, C, *spatial]` ('m'), with at
    least one spatial dimension (PyTorch's `dropout2d` noise of shape
    `[N, C, 1, ..., 1]`).
    """

    def __init__(self, p: float = 0.2, step_mode: str = "s"):
        super().__init__(p, step_mode)

    def _noise_shape(self, shape: tuple) -> tuple:
        return shape[:2] + (1,) * (len(shape) - 2)

    def _check_step_input(self, shape: tuple) -> None:
        if len(shape) < 3:
            where = "[N, C, H, W]" if self.step_mode == "s" else "[T, N, C, H, W]"
            raise ValueError(f"{type(self).__name__}: expected input of shape {where}, "
                             f"but one step has shape {shape}")


class MultiStepDropout(Dropout):
    """`Dropout` that is always multi-step: `x_seq: [T, N, *]`."""

    def __init__(self, p: float = 0.5):
        super().__init__(p, step_mode="m")

    def supported_step_mode(self) -> tuple:
        return ("m",)


class MultiStepDropout2d(Dropout2d):
    """`Dropout2d` that is always multi-step: `x_seq: [T, N, C, H, W]`."""

    def __init__(self, p: float = 0.5):
        super().__init__(p, step_mode="m")

    def supported_step_mode(self) -> tuple:
        return ("m",)


class SynapseFilter(StepModule, MemoryModule):
    """Low-pass synapse: the output current decays with time constant `tau`
    and jumps by the input spike.

    `out = out - (1 - x) * out * inv_tau + x`, evaluated in this order in the
    input dtype, where `inv_tau = 1 / tau` (a Python double, rounded to the
    input dtype by the multiplication) or, with `learnable=True`,
    `sigmoid(w)` with the 0-dim parameter `w = -ln(tau - 1)`.
    Memory `out_i` starts as `0.` and becomes a tensor shaped like `x` on the
    first step. `x: [N, *]` ('s') or `x_seq: [T, N, *]` ('m').
    """

    def __init__(self, tau: float = 100.0, learnable: bool = False, step_mode: str = "s"):
        super().__init__()
        if not tau > 1:
            raise AssertionError(f"SynapseFilter: tau must be > 1, got {tau}")
        self.step_mode = step_mode
        self.learnable = learnable
        if learnable:
            self.w = Parameter(np.asarray(-math.log(tau - 1), dtype=np.float32))
        else:
            self.tau = tau
        self.register_memory("out_i", 0.)

    def extra_repr(self) -> str:
        tau = 1. + math.exp(-float(self.w.data)) if self.learnable else self.tau  # 1/sigmoid(w)
        return f"tau={tau}, learnable={self.learnable}, step_mode={self.step_mode}"

    def single_step_forward(self, x: Tensor) -> Tensor:
        """`x: [N, *]` -> the current `out_i: [N, *]`."""
        if isinstance(self.out_i, float):
            start = self.out_i
            self.out_i = zeros_like(x)
            if start != 0.:
                self.out_i.data[...] = start
        inv_tau = self.w.sigmoid() if self.learnable else 1. / self.tau
        self.out_i = self.out_i - (1. - x) * self.out_i * inv_tau + x
        return self.out_i
