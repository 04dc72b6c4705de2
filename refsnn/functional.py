"""Network-wide helpers of SpikingJelly's `functional`: state, step mode, backend,
and the two propagation patterns written as functions.

- state: `reset_net`, `detach_net`;
- configuration: `set_step_mode`, `set_backend`;
- propagation: `seq_to_ann_forward` (fold time into the batch, run stateless
  layers once), `multi_step_forward` (loop single-step modules over time),
  `chunk_multi_step_forward`;
- spike utilities: `first_spike_index`, `redundant_one_hot`.

Wrapping the forward with these functions instead of wrapping the layers in
containers keeps `state_dict` keys unchanged (see `examples/propagation_patterns.py`).
"""
from __future__ import annotations

import warnings

import numpy as np

from .autograd import Tensor, cat, split, stack
from .module import Module

__all__ = [
    "reset_net", "detach_net", "set_step_mode", "set_backend", "seq_to_ann_forward",
    "multi_step_forward", "chunk_multi_step_forward", "first_spike_index",
    "redundant_one_hot",
]


# ----------------------------------------------------------------------------
# state
# ----------------------------------------------------------------------------
def reset_net(net: Module) -> None:
    """Call `reset()` on every module of `net` that has one.

    `net.modules()` is pre-order and de-duplicated, so a module shared by
    several parents is reset once. As in SpikingJelly's `clock_driven`, modules
    that are not `MemoryModule`s but have `reset()` are reset silently.
    """
    for m in net.modules():
        if callable(getattr(m, "reset", None)):
            m.reset()


def detach_net(net: Module) -> None:
    """Call `detach()` on every module of `net` that has one: tensor memories
    (membrane potentials, filter currents) stop carrying the autograd graph."""
    for m in net.modules():
        if callable(getattr(m, "detach", None)):
            m.detach()


# ----------------------------------------------------------------------------
# configuration
# ----------------------------------------------------------------------------
def set_step_mode(net: Module, step_mode: str) -> None:
    """Set `step_mode` on every module of `net` that has one, leaving the
    inside of propagation-pattern containers untouched.

    The descendants of `StepModeContainer`, `MultiStepContainer` and
    `SeqToANNContainer` keep their step mode: those containers drive their
    children one step at a time (or on folded `[T*N, *]` input), so their
    children must stay single-step. A `StepModeContainer` itself is set.

    Difference from SpikingJelly 0.0.0.0.14 (`activation_based`): there only
    `StepModeContainer` (and the recurrent containers) shield their children,
    so `set_step_mode(Sequential(..., MultiStepContainer(IFNode())), 'm')`
    switches the inner neuron to 'm', after which the container feeds it
    `x[t]` of shape `[N, C]` as N time steps: wrong dynamics, no error.
    SpikingJelly 2.0 fixed this by also stopping at `MultiStepContainer` and
    `SeqToANNContainer`; refsnn follows 2.0.

    Raises ValueError (from the module's setter) for a mode other than 's'/'m'.
    """
    from .containers import MultiStepContainer, SeqToANNContainer, StepModeContainer
    shielding = (StepModeContainer, MultiStepContainer, SeqToANNContainer)
    inside = set()
    for m in net.modules():
        if isinstance(m, shielding):
            inside.update(id(d) for d in m.modules() if d is not m)
    for m in net.modules():
        if id(m) not in inside and _has_attribute(m, "step_mode"):
            m.step_mode = step_mode


def set_backend(net: Module, backend: str, instance=(Module,)) -> None:
    """Set `backend` on every module of `net` that is an `instance` and has a
    `backend` attribute.

    The module's `backend` setter decides (it knows aliases such as 'torch'
    and which backends its current step mode supports). A module that refuses
    (`NotImplementedError` or `ValueError`) keeps its backend and a
    `warnings.warn` names it, as SpikingJelly logs a warning. A backend whose
    library is missing still raises (ImportError), as in SpikingJelly.
    """
    for m in net.modules():
        if not isinstance(m, instance) or not _has_attribute(m, "backend"):
            continue
        try:
            m.backend = backend
        except (NotImplementedError, ValueError) as refusal:
            warnings.warn(f"set_backend: {type(m).__name__} keeps backend={m.backend!r}: "
                          f"{refusal}", stacklevel=2)


def _has_attribute(m, name: str) -> bool:
    """`hasattr` that also treats a property raising AttributeError as absent."""
    try:
        getattr(m, name)
    except AttributeError:
        return False
    return True


# ----------------------------------------------------------------------------
# propagation patterns
# ----------------------------------------------------------------------------
def _apply_each(x, module_or_modules):
    """Apply one callable, or each element of a list/tuple/Sequential in order."""
    if isinstance(module_or_modules, (list, tuple)) or _is_sequential(module_or_modules):
        for m in module_or_modules:
            x = m(x)
        return x
    return module_or_modules(x)


def _is_sequential(m) -> bool:
    from .containers import Sequential
    return isinstance(m, Sequential)


def _check_sequence(x_seq, where: str, min_dims: int, expected: str) -> None:
    if x_seq.ndim < min_dims:
        raise ValueError(f"{where}: expected x_seq with shape {expected}, but got a "
                         f"{x_seq.ndim}-D input of shape {tuple(x_seq.shape)}")


def seq_to_ann_forward(x_seq: Tensor, stateless_module) -> Tensor:
    """Run stateless layers once on a whole sequence.

    `x_seq: [T, N, *]` is folded to `[T*N, *]` (row `t*N + n` holds
    `x_seq[t, n]`), passed through `stateless_module` (a module or callable, or
    a list/tuple/Sequential applied element by element), and unfolded to
    `[T, N, *out]`. The module must keep the leading `T*N` dimension.
    """
    _check_sequence(x_seq, "seq_to_ann_forward", 2, "[T, N, *]")
    T, N = x_seq.shape[0], x_seq.shape[1]
    y = _apply_each(x_seq.flatten(0, 1), stateless_module)
    if y.ndim == 0 or y.shape[0] != T * N:
        raise ValueError(f"seq_to_ann_forward: the module mapped the folded input "
                         f"[{T * N}, ...] (T={T}, N={N}) to shape {tuple(y.shape)}; "
                         f"it must keep the leading T*N dimension")
    return y.reshape((T, N) + tuple(y.shape[1:]))


def multi_step_forward(x_seq: Tensor, single_step_module) -> Tensor:
    """Loop single-step modules over time: `y_seq[t] = module(x_seq[t])`.

    `x_seq: [T, *]` -> `[T, *out]`. `single_step_module` is a module or
    callable, or a list/tuple/Sequential whose elements are applied in order at
    each step. The outputs are joined with `stack` (SpikingJelly
    `activation_based` and 2.0); `clock_driven` joins `cat` of unsqueezed
    outputs instead. Both are pure data movement, so values and gradients are
    identical.
    """
    _check_sequence(x_seq, "multi_step_forward", 1, "[T, *]")
    return stack([_apply_each(x_seq[t], single_step_module) for t in range(x_seq.shape[0])])


def chunk_multi_step_forward(split_size: int, x_seq: Tensor, multi_step_module) -> Tensor:
    """Apply a multi-step module to consecutive time chunks of `split_size` steps
    and concatenate the results along time; the module's state carries over
    from one chunk to the next. `x_seq: [T, *]` -> `[T, *out]`."""
    _check_sequence(x_seq, "chunk_multi_step_forward", 1, "[T, *]")
    return cat([multi_step_module(chunk) for chunk in split(x_seq, split_size)])


# ----------------------------------------------------------------------------
# spike utilities
# ----------------------------------------------------------------------------
def first_spike_index(spikes: Tensor) -> Tensor:
    """Boolean mask of the first spike along the last dimension.

    `spikes: [*, T]` of 0/1 values; `out[..., t]` is True where the first
    spike of that row happens at `t` (a row with no spike is all False).
    Computed as SpikingJelly does: `cumsum(cumsum(spikes)) == 1`. No gradient.
    """
    s = spikes.data if isinstance(spikes, Tensor) else np.asarray(spikes)
    counts = np.cumsum(np.cumsum(s, axis=-1, dtype=s.dtype), axis=-1, dtype=s.dtype)
    return Tensor._wrap(counts == 1)


def redundant_one_hot(labels, num_classes: int, n: int) -> Tensor:
    """One-hot codes with `n` neurons per class: `labels: [N]` of ints ->
    int64 `[N, num_classes * n]` with ones at `label*n + i` for `i < n`."""
    lab = np.asarray(labels.data if isinstance(labels, Tensor) else labels)
    if lab.ndim != 1 or lab.dtype.kind not in "iu":
        raise ValueError(f"redundant_one_hot: labels must be a 1-D integer array, got "
                         f"dtype {lab.dtype} and shape {lab.shape}")
    if lab.size and (lab.min() < 0 or lab.max() >= num_classes):
        raise ValueError(f"redundant_one_hot: labels must lie in [0, {num_classes}), "
                         f"got values from {lab.min()} to {lab.max()}")
    codes = np.zeros((lab.shape[0], num_classes * n), dtype=np.int64)
    cols = lab[:, None] * n + np.arange(n)
    np.put_along_axis(codes, cols, 1, axis=1)
    return Tensor._wrap(codes)
