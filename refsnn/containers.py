"""Containers: `Sequential` and SpikingJelly's propagation-pattern containers.

- `MultiStepContainer`: loop single-step children over time, `[T, N, *] -> [T, N, *]`.
- `SeqToANNContainer`: fold time into the batch, `[T*N, *]`, run stateless
  children once, unfold. Its `state_dict` keys gain a level (`0.0.weight`).
- `StepModeContainer`: either of the two, chosen by its own `step_mode`.
- `StepModule`: the `step_mode` attribute ('s' single-step, 'm' multi-step)
  with SpikingJelly's validation, for modules that support both modes.
"""
from __future__ import annotations

from collections import OrderedDict

from . import functional
from .module import Module

__all__ = ["Sequential", "StepModule", "MultiStepContainer", "SeqToANNContainer",
           "StepModeContainer"]


class Sequential(Module):
    """Apply child modules in order; keys are `0.weight`, `1.bias`, ... as in PyTorch."""

    def __init__(self, *args):
        super().__init__()
        if len(args) == 1 and isinstance(args[0], OrderedDict):
            for name, module in args[0].items():
                self.add_module(name, module)
        else:
            for i, module in enumerate(args):
                self.add_module(str(i), module)

    def forward(self, x):
        for module in self._modules.values():
            x = module(x)
        return x

    def __getitem__(self, index):
        modules = list(self._modules.values())
        if isinstance(index, slice):
            return type(self)(OrderedDict(list(self._modules.items())[index]))
        return modules[index]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def append(self, module) -> "Sequential":
        self.add_module(str(len(self)), module)
        return self


class StepModule:
    """Mixin: a validated `step_mode` attribute, 's' (input `[N, *]`, one step
    per call) or 'm' (input `[T, N, *]`, a whole sequence per call), and a
    `forward` that dispatches on it. List it before `Module` in the bases."""

    def supported_step_mode(self) -> tuple:
        return ("s", "m")

    @property
    def step_mode(self) -> str:
        return self._step_mode

    @step_mode.setter
    def step_mode(self, value: str) -> None:
        if value not in self.supported_step_mode():
            raise ValueError(f"{type(self).__name__}: step_mode can only be "
                             f"{self.supported_step_mode()}, but got {value!r}")
        object.__setattr__(self, "_step_mode", value)

    def forward(self, x):
        """Dispatch on `step_mode` to `single_step_forward` / `multi_step_forward`."""
        if self.step_mode == "s":
            return self.single_step_forward(x)
        return self.multi_step_forward(x)

    def single_step_forward(self, x):
        raise NotImplementedError(f"{type(self).__name__} has no single_step_forward()")

    def multi_step_forward(self, x_seq):
        """Default: loop `single_step_forward` over `x_seq: [T, *]`."""
        return functional.multi_step_forward(x_seq, self.single_step_forward)


def _refuse_multi_step_children(container: Module) -> None:
    """Containers feed their children one step (or a folded batch) at a time,
    so no module below them may be in multi-step mode."""
    for name, m in container.named_modules():
        if m is not container and getattr(m, "step_mode", "s") != "s":
            raise ValueError(
                f"{type(container).__name__}: child '{name}' ({type(m).__name__}) has "
                f"step_mode={m.step_mode!r}, but the container feeds it single steps "
                f"[N, *]; construct it with step_mode='s' (or drop the container and "
                f"use the multi-step module directly)")


def _check_sequence(container: Module, x_seq) -> None:
    if x_seq.ndim < 2:
        raise ValueError(f"{type(container).__name__}: expected x_seq with shape "
                         f"[T, N, *], but got a {x_seq.ndim}-D input of shape "
                         f"{tuple(x_seq.shape)}")


class MultiStepContainer(Sequential):
    """Run single-step children over time: `y_seq[t] = children(x_seq[t])`.

    `x_seq: [T, N, *]` -> `[T, N, *out]`. State carried by the children (for
    example a neuron's `v`) flows from step to step; `reset_net` resets it.
    Outputs are joined with `stack` (see `functional.multi_step_forward`:
    SpikingJelly `clock_driven` uses `cat` of unsqueezed outputs, with
    identical values and gradients). Children in step mode 'm' are refused.
    """

    def __init__(self, *modules):
        super().__init__(*modules)
        _refuse_multi_step_children(self)

    def forward(self, x_seq):
        _check_sequence(self, x_seq)
        return functional.multi_step_forward(x_seq, tuple(self))


class SeqToANNContainer(Sequential):
    """Run stateless children once on the folded sequence.

    `x_seq: [T, N, *]` -> `[T*N, *]` -> children -> `[T, N, *out]`. The
    children are registered under this container, so `state_dict` keys gain a
    level: `Sequential(SeqToANNContainer(conv, bn), ...)` has `0.0.weight`,
    `0.1.running_mean`, ... Wrap the forward with
    `functional.seq_to_ann_forward` instead to keep the keys flat.
    """

    def __init__(self, *modules):
        super().__init__(*modules)
        _refuse_multi_step_children(self)

    def forward(self, x_seq):
        _check_sequence(self, x_seq)
        return functional.seq_to_ann_forward(x_seq, tuple(self))


class StepModeContainer(Sequential, StepModule):
    """Single-step children driven in either step mode.

    - `step_mode='s'`: plain Sequential, `x: [N, *]`.
    - `step_mode='m'`, `x_seq: [T, N, *]`: `multi_step_forward` when
      `stateful` (children carry state between steps), `seq_to_ann_forward`
      otherwise.

    `set_step_mode` sets the container's mode but never its children's.
    `step_mode` is keyword-only here (SpikingJelly 0.0.0.0.14 has no such
    argument; the container starts in 's' there too).
    """

    def __init__(self, stateful: bool, *modules, step_mode: str = "s"):
        super().__init__(*modules)
        _refuse_multi_step_children(self)
        self.stateful = stateful
        self.step_mode = step_mode

    def forward(self, x):
        if self.step_mode == "s":
            return super().forward(x)
        _check_sequence(self, x)
        if self.stateful:
            return functional.multi_step_forward(x, tuple(self))
        return functional.seq_to_ann_forward(x, tuple(self))

    def __getitem__(self, index):
        if isinstance(index, slice):
            return StepModeContainer(self.stateful,
                                     OrderedDict(list(self._modules.items())[index]),
                                     step_mode=self.step_mode)
        return super().__getitem__(index)

    def extra_repr(self) -> str:
        return f"stateful={self.stateful}, step_mode={self.step_mode}"
