"""What every spiking model shares: the two propagation patterns, neuron
construction with its checks, SpikingJelly's weight initialisation, and the
refusal of `pretrained=True`.

A model's forward is written once against two methods that the pattern mixins
define:
- `_ann(x, *layers)`: stateless layers. `StepByStep`: applied to one step
  `x: [N, *]`. `LayerByLayer`: applied once to the folded sequence
  (`functional.seq_to_ann_forward`: `[T, N, *] -> [T*N, *] -> [T, N, *out]`).
- `_input_layers(x, *layers)`: the first stateless layers, which also turn the
  input into what the rest of the network takes. `StepByStep`: `x: [N, C, H, W]`.
  `LayerByLayer`: `x_seq: [T, N, C, H, W]` (folded), or `x: [N, C, H, W]` run
  once and repeated `T` times (SpikingJelly's trick for a static image).
Neurons are called directly: single-step neurons see `[N, *]`, multi-step
neurons `[T, N, *]`. Layers are attributes of the model, not wrapped in
containers, so `state_dict` keys are the ANN's in both patterns.
"""
from __future__ import annotations

import math

import numpy as np

from .. import functional
from ..autograd import default_generator, stack
from ..module import Module

__all__ = ["StepByStep", "LayerByLayer", "build_neuron", "refuse_pretrained",
           "kaiming_normal_fan_out", "normal_"]


class StepByStep:
    """Mixin: the module runs one time step per call, `x: [N, *]`."""

    multi_step = False

    def _ann(self, x, *layers):
        for layer in layers:
            x = layer(x)
        return x

    def _input_layers(self, x, *layers):
        if x.ndim != 4:
            raise ValueError(
                f"{type(self).__name__}: a step-by-step model takes one time step "
                f"x: [N, C, H, W], got shape {tuple(x.shape)}; call it once per step "
                f"(and functional.reset_net between samples), or build the multi-step "
                f"model (multi_step_*) for x_seq: [T, N, C, H, W]")
        return self._ann(x, *layers)


class LayerByLayer:
    """Mixin: the module runs a whole sequence per call, `x_seq: [T, N, *]`;
    `self.T` repeats a static input `[N, C, H, W]` over time."""

    multi_step = True
    T = None

    def _ann(self, x_seq, *layers):
        return functional.seq_to_ann_forward(x_seq, list(layers))

    def _input_layers(self, x, *layers):
        if x.ndim == 5:
            return self._ann(x, *layers)
        if x.ndim != 4:
            raise ValueError(
                f"{type(self).__name__}: expected x_seq: [T, N, C, H, W] or a static "
                f"x: [N, C, H, W], got shape {tuple(x.shape)}")
        if self.T is None:
            raise ValueError(
                f"{type(self).__name__}: x has shape {tuple(x.shape)} = [N, C, H, W], "
                f"which is repeated over T time steps, but T is None; build the model "
                f"with T=... or pass x_seq: [T, N, C, H, W]")
        for layer in layers:
            x = layer(x)
        return stack([x] * self.T)


def build_neuron(owner: Module, neuron, kwargs: dict) -> Module:
    """`neuron(**kwargs)`, checked against `owner`'s propagation pattern.

    `neuron` is a neuron class (or any factory of modules); the neuron made must
    run single steps in a `StepByStep` owner and sequences in a `LayerByLayer`
    owner, as far as its `step_mode` tells.
    """
    arg = "multi_step_neuron" if owner.multi_step else "single_step_neuron"
    where = type(owner).__name__
    if neuron is None:
        raise TypeError(f"{where}: {arg} is required: a neuron class such as "
                        f"refsnn.neurons.{'MultiStepIFNode' if owner.multi_step else 'IFNode'}"
                        f", whose arguments are passed as keyword arguments")
    if not callable(neuron):
        raise TypeError(f"{where}: {arg} must be a neuron class or factory, got "
                        f"{neuron!r}")
    made = neuron(**kwargs)
    if not isinstance(made, Module):
        raise TypeError(f"{where}: {arg}(**kwargs) must make a refsnn Module, got "
                        f"{type(made).__name__}")
    wanted = "m" if owner.multi_step else "s"
    mode = getattr(made, "step_mode", wanted)
    if mode != wanted:
        raise ValueError(
            f"{where}: {arg} made {type(made).__name__} with step_mode={mode!r}, but "
            f"this {'layer-by-layer' if owner.multi_step else 'step-by-step'} model feeds "
            f"its neurons {'[T, N, *] sequences' if owner.multi_step else '[N, *] steps'}; "
            f"pass step_mode={wanted!r} or a "
            f"{'MultiStep* neuron' if owner.multi_step else 'single-step neuron'}")
    return made


def refuse_pretrained(name: str, arch: str) -> None:
    raise NotImplementedError(
        f"{name}(pretrained=True): refsnn does not download weights. Build the model "
        f"with pretrained=False and load torchvision's '{arch}' weights into it with "
        f"the checkpoint helpers: refsnn.checkpoints.load_torch_state_dict(model, "
        f"torch_state_dict_or_path), load_npz(path) or load_safetensors(path) followed "
        f"by model.load_state_dict(...)")


def kaiming_normal_fan_out(weight) -> None:
    """PyTorch's `kaiming_normal_(w, mode='fan_out', nonlinearity='relu')`:
    N(0, 2 / fan_out) with `fan_out = w.shape[0] * prod(w.shape[2:])`."""
    fan_out = weight.shape[0] * math.prod(weight.shape[2:])
    normal_(weight, math.sqrt(2.0 / fan_out))


def normal_(weight, std: float) -> None:
    """Fill `weight` from N(0, std^2), drawn by the library generator."""
    dtype = weight.dtype if weight.dtype in (np.float32, np.float64) else np.dtype(np.float64)
    draw = default_generator().standard_normal(weight.shape, dtype=dtype)
    weight.data = (draw * dtype.type(std)).astype(weight.dtype, copy=False)
