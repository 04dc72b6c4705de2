"""Interchange with PyTorch and SpikingJelly: `from_torch` builds the refsnn
twin of a network.

`from_torch(module)` walks a PyTorch / SpikingJelly 0.0.0.0.14 network (either
API) and builds the same structure from refsnn modules: the same child names
(so `state_dict` keys are identical), the same configuration (thresholds,
resets, tau, surrogate function and its parameters, step mode, detach_reset,
...), the same weights and buffers, the same train/eval mode, and the current
values of memories (membrane potentials, dropout masks). Everything the twin
cannot reproduce is reported at once:

    NotImplementedError: from_torch: unsupported modules: 3.attn (MultiDimensionalAttention), ...

Supported: `torch.nn` `Sequential`, `Linear`, `Conv1d`, `Conv2d`, `BatchNorm1d`,
`BatchNorm2d`, `MaxPool2d`, `AvgPool2d`, `AdaptiveAvgPool2d`, `Flatten`, `ReLU`,
`Identity`, `Dropout`; every SpikingJelly neuron that can be constructed
(`activation_based` IF/LIF/PLIF/QIF/EIF/Izhikevich/KLIF; `clock_driven`
IF/LIF/PLIF/QIF/EIF/LIAF and the `MultiStep*` classes); every surrogate
function; the containers `MultiStepContainer`, `SeqToANNContainer`,
`StepModeContainer`; the dropout family; `SynapseFilter`; and the
`activation_based` stateless layers with a `step_mode` (`layer.Linear`,
`layer.Conv2d`, `layer.BatchNorm2d`, ...).

torch is never imported here: modules are recognised by their class's module
path, and tensors are converted with `.detach().cpu().numpy()`.
"""
from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np

from . import containers, layers, neurons, spiking_layers, surrogate
from .autograd import Tensor
from .containers import StepModule
from .functional import seq_to_ann_forward
from .module import Module

__all__ = ["from_torch", "StepModeLayer", "step_mode_layer", "from_nir", "to_nir",
           "save_npz", "load_npz", "save_safetensors", "load_safetensors",
           "load_torch_state_dict", "load_checkpoint", "convert_keys", "CheckpointError"]


# ----------------------------------------------------------------------------
# activation_based stateless layers: the refsnn layer plus a step mode
# ----------------------------------------------------------------------------
class StepModeLayer(StepModule):
    """Mixin giving a stateless refsnn layer SpikingJelly's `activation_based`
    wrapper behaviour (`layer.Conv2d(..., step_mode='m')`): step mode 's' is
    the plain layer; 'm' folds `x_seq: [T, N, *]` into `[T*N, *]`, runs the
    layer once and unfolds (`seq_to_ann_forward`), after checking the input has
    `sequence_ndim` dims (None: no check; `Linear` never folds). The layer's
    parameters stay its own, so `state_dict` keys are the plain layer's."""

    sequence_ndim = None
    folds = True

    def single_step_forward(self, x):
        return self._layer_cls.forward(self, x)

    def multi_step_forward(self, x_seq):
        if not self.folds:
            return self._layer_cls.forward(self, x_seq)
        if self.sequence_ndim is not None and x_seq.ndim != self.sequence_ndim:
            raise ValueError(f"{type(self).__name__}: expected x with {self.sequence_ndim} "
                             f"dims [T, N, ...] in step_mode 'm', but got x with shape "
                             f"{tuple(x_seq.shape)}")
        return seq_to_ann_forward(x_seq, lambda x: self._layer_cls.forward(self, x))

    def extra_repr(self) -> str:
        base = self._layer_cls.extra_repr(self)
        return f"{base}, step_mode={self.step_mode}" if base else f"step_mode={self.step_mode}"


_STEP_LAYERS: dict = {}
# [T, N, ...] dims required in step mode 'm' (SpikingJelly's check)
_SEQUENCE_NDIM = {"Conv1d": 4, "Conv2d": 5, "BatchNorm1d": 4, "BatchNorm2d": 5,
                  "MaxPool2d": 5, "AvgPool2d": 5, "AdaptiveAvgPool2d": 5}


def step_mode_layer(layer_cls: type, *args, step_mode: str = "s", **kwargs) -> Module:
    """An instance of `layer_cls` (a `refsnn.layers` class) with a `step_mode`
    (see `StepModeLayer`); `args`/`kwargs` go to the layer's constructor."""
    name = layer_cls.__name__
    cls = _STEP_LAYERS.get(name)
    if cls is None:
        cls = type(name, (StepModeLayer, layer_cls), {
            "_layer_cls": layer_cls, "sequence_ndim": _SEQUENCE_NDIM.get(name),
            "folds": name != "Linear", "__module__": __name__,
            "__doc__": f"`refsnn.layers.{name}` with a step mode (see `StepModeLayer`)."})
        _STEP_LAYERS[name] = cls
    m = cls(*args, **kwargs)
    m.step_mode = step_mode
    return m


# ----------------------------------------------------------------------------
# converters: (torch module, converted children) -> refsnn module
# ----------------------------------------------------------------------------
def _dtype_of(m):
    for t in list(m.parameters(recurse=False)) + list(m.buffers(recurse=False)):
        if t.is_floating_point():
            return np.dtype(str(t.dtype).replace("torch.", ""))
    return None


def _linear(m, kids, ab):
    return _layer(layers.Linear, ab, m, m.in_features, m.out_features,
                  bias=m.bias is not None, dtype=_dtype_of(m))


def _conv(cls):
    def convert(m, kids, ab):
        if m.padding_mode != "zeros":
            raise _Unsupported(f"padding_mode={m.padding_mode!r}")
        return _layer(cls, ab, m, m.in_channels, m.out_channels, m.kernel_size, m.stride,
                      m.padding, m.dilation, m.groups, bias=m.bias is not None,
                      dtype=_dtype_of(m))
    return convert


def _batchnorm(cls):
    def convert(m, kids, ab):
        return _layer(cls, ab, m, m.num_features, eps=m.eps, momentum=m.momentum,
                      affine=m.affine, track_running_stats=m.track_running_stats,
                      dtype=_dtype_of(m), bias=getattr(m, "bias", None) is not None)
    return convert


def _maxpool(m, kids, ab):
    if m.return_indices:
        raise _Unsupported("return_indices=True")
    return _layer(layers.MaxPool2d, ab, m, m.kernel_size, m.stride, m.padding, m.dilation,
                  ceil_mode=m.ceil_mode)


def _avgpool(m, kids, ab):
    return _layer(layers.AvgPool2d, ab, m, m.kernel_size, m.stride, m.padding,
                  ceil_mode=m.ceil_mode, count_include_pad=m.count_include_pad,
                  divisor_override=m.divisor_override)


def _layer(cls, ab, m, *args, **kwargs):
    if ab:
        return step_mode_layer(cls, *args, step_mode=m.step_mode, **kwargs)
    return cls(*args, **kwargs)


def _sequential(m, kids, ab):
    return containers.Sequential(OrderedDict(kids))


def _container(cls):
    def convert(m, kids, ab):
        return cls(*[child for _, child in kids])
    return convert


def _step_mode_container(m, kids, ab):
    twin = containers.StepModeContainer(m.stateful, *[child for _, child in kids])
    twin.step_mode = m.step_mode
    return twin


_SURROGATE_PARAMS = {
    "PiecewiseLeakyReLU": ("w", "c"), "SquarewaveFourierSeries": ("n", "T_period"),
    "S2NN": ("alpha", "beta"), "LeakyKReLU": ("leak", "k"), "FakeNumericalGradient": ("alpha",),
}


def _surrogate(m, kids, ab):
    name = type(m).__name__
    kwargs = {p: getattr(m, p) for p in _SURROGATE_PARAMS.get(name, ("alpha",))}
    if name != "FakeNumericalGradient":
        kwargs["spiking"] = m.spiking
    return getattr(surrogate, name)(**kwargs)


# neuron class -> its own constructor arguments (besides the BaseNode ones)
_NEURON_ARGS = {
    "IFNode": (), "MultiStepIFNode": (),
    "LIFNode": ("tau", "decay_input"), "MultiStepLIFNode": ("tau", "decay_input"),
    "LIAFNode": ("tau", "decay_input"),
    "ParametricLIFNode": ("decay_input",), "MultiStepParametricLIFNode": ("decay_input",),
    "QIFNode": ("tau", "v_c", "a0", "v_rest"),
    "EIFNode": ("tau", "delta_T", "theta_rh", "v_rest"),
    "MultiStepEIFNode": ("tau", "delta_T", "theta_rh", "v_rest"),
    "IzhikevichNode": ("tau", "v_c", "a0", "v_rest", "w_rest", "tau_w", "a", "b"),
    "KLIFNode": ("scale_reset", "tau", "decay_input"),
}


def _neuron_factory(backend):
    def convert(m, kids, ab):
        name = type(m).__name__
        # clock_driven keeps thresholds as memories: read their reset values
        memory_rv = getattr(m, "_memories_rv", {})
        get = (lambda k: memory_rv[k] if not ab and k in memory_rv else getattr(m, k))
        kwargs = dict(v_threshold=get("v_threshold"), v_reset=get("v_reset"),
                      detach_reset=m.detach_reset,
                      surrogate_function=dict(kids).get("surrogate_function")
                      or _surrogate(m.surrogate_function, [], ab))
        kwargs.update({k: getattr(m, k) for k in _NEURON_ARGS[name]})
        if name in ("ParametricLIFNode", "MultiStepParametricLIFNode"):
            kwargs["init_tau"] = 1.0 + math.exp(-float(m.w.detach().cpu()))  # w is copied later
        if ab:
            kwargs.update(step_mode=m.step_mode, store_v_seq=bool(getattr(m, "store_v_seq", False)))
        cls = getattr(neurons, name)
        if name == "LIAFNode":
            act = dict(kids).get("act") or _convert_leaf_act(m.act)
            twin = cls(act, m.threshold_related, **kwargs)
        else:
            twin = cls(**kwargs)
        _set_backend(twin, m, backend)
        return twin
    return convert


def _convert_leaf_act(act):
    """LIAF's `act` when it is a plain function rather than a module."""
    raise _Unsupported(f"LIAF activation {getattr(act, '__name__', act)!r} is not a module")


def _set_backend(twin, m, backend) -> None:
    """SpikingJelly's backend name maps to refsnn's ('torch' -> 'numpy',
    'cupy' -> 'numpy-fused'); an explicit `backend` wins where supported."""
    wanted = backend or getattr(m, "backend", "torch")
    if wanted in twin.supported_backends or neurons.BACKEND_ALIASES.get(wanted) in \
            twin.supported_backends:
        twin.backend = wanted


def _dropout(cls, multi_step=False):
    def convert(m, kids, ab):
        if multi_step:
            return cls(m.p)
        return cls(m.p, step_mode=getattr(m, "step_mode", "s"))
    return convert


def _torch_dropout(m, kids, ab):
    return layers.TorchDropout(m.p)


def _synapse_filter(m, kids, ab):
    tau = 1.0 + math.exp(-float(m.w.detach().cpu())) if m.learnable else m.tau
    return spiking_layers.SynapseFilter(tau, m.learnable, step_mode=getattr(m, "step_mode", "s"))


def _simple(cls, *attrs):
    def convert(m, kids, ab):
        return _layer(cls, ab, m, *[getattr(m, a) for a in attrs])
    return convert


class _Unsupported(Exception):
    """A supported class with an unsupported setting."""


_NN = "torch.nn.modules."
_AB, _CD = "spikingjelly.activation_based.", "spikingjelly.clock_driven."
_SURROGATE_NAMES = ("Sigmoid", "ATan", "PiecewiseQuadratic", "PiecewiseExp", "SoftSign", "Erf",
                    "NonzeroSignLogAbs", "PiecewiseLeakyReLU", "SquarewaveFourierSeries", "S2NN",
                    "QPseudoSpike", "LeakyKReLU", "FakeNumericalGradient", "LogTailedReLU")


def _converters(backend) -> dict:
    """class path -> (converter, is an activation_based step-mode layer)."""
    table = {
        _NN + "container.Sequential": (_sequential, False),
        _NN + "linear.Linear": (_linear, False),
        _NN + "linear.Identity": (_simple(layers.Identity), False),
        _NN + "conv.Conv1d": (_conv(layers.Conv1d), False),
        _NN + "conv.Conv2d": (_conv(layers.Conv2d), False),
        _NN + "batchnorm.BatchNorm1d": (_batchnorm(layers.BatchNorm1d), False),
        _NN + "batchnorm.BatchNorm2d": (_batchnorm(layers.BatchNorm2d), False),
        _NN + "pooling.MaxPool2d": (_maxpool, False),
        _NN + "pooling.AvgPool2d": (_avgpool, False),
        _NN + "pooling.AdaptiveAvgPool2d": (_simple(layers.AdaptiveAvgPool2d, "output_size"),
                                            False),
        _NN + "flatten.Flatten": (_simple(layers.Flatten, "start_dim", "end_dim"), False),
        _NN + "activation.ReLU": (_simple(layers.ReLU), False),
        _NN + "dropout.Dropout": (_torch_dropout, False),
        # activation_based stateless layers (nn layer + step_mode)
        _AB + "layer.Linear": (_linear, True),
        _AB + "layer.Conv1d": (_conv(layers.Conv1d), True),
        _AB + "layer.Conv2d": (_conv(layers.Conv2d), True),
        _AB + "layer.BatchNorm1d": (_batchnorm(layers.BatchNorm1d), True),
        _AB + "layer.BatchNorm2d": (_batchnorm(layers.BatchNorm2d), True),
        _AB + "layer.MaxPool2d": (_maxpool, True),
        _AB + "layer.AvgPool2d": (_avgpool, True),
        _AB + "layer.AdaptiveAvgPool2d": (_simple(layers.AdaptiveAvgPool2d, "output_size"), True),
        _AB + "layer.Flatten": (_simple(layers.Flatten, "start_dim", "end_dim"), True),
        # containers
        _AB + "layer.MultiStepContainer": (_container(containers.MultiStepContainer), True),
        _AB + "layer.SeqToANNContainer": (_container(containers.SeqToANNContainer), True),
        _AB + "layer.StepModeContainer": (_step_mode_container, True),
        _CD + "layer.MultiStepContainer": (_container(containers.MultiStepContainer), False),
        _CD + "layer.SeqToANNContainer": (_container(containers.SeqToANNContainer), False),
        # stateful layers
        _AB + "layer.Dropout": (_dropout(spiking_layers.Dropout), True),
        _AB + "layer.Dropout2d": (_dropout(spiking_layers.Dropout2d), True),
        _CD + "layer.Dropout": (_dropout(spiking_layers.Dropout), False),
        _CD + "layer.Dropout2d": (_dropout(spiking_layers.Dropout2d), False),
        _CD + "layer.MultiStepDropout": (_dropout(spiking_layers.MultiStepDropout, True), False),
        _CD + "layer.MultiStepDropout2d": (_dropout(spiking_layers.MultiStepDropout2d, True),
                                           False),
        _AB + "layer.SynapseFilter": (_synapse_filter, True),
        _CD + "layer.SynapseFilter": (_synapse_filter, False),
    }
    neuron = _neuron_factory(backend)
    for name in ("IFNode", "LIFNode", "ParametricLIFNode", "QIFNode", "EIFNode",
                 "IzhikevichNode", "KLIFNode"):
        table[_AB + "neuron." + name] = (neuron, True)
    for name in ("IFNode", "LIFNode", "ParametricLIFNode", "QIFNode", "EIFNode", "LIAFNode",
                 "MultiStepIFNode", "MultiStepLIFNode", "MultiStepParametricLIFNode",
                 "MultiStepEIFNode"):
        table[_CD + "neuron." + name] = (neuron, False)
    for name in _SURROGATE_NAMES:
        table[_AB + "surrogate." + name] = (_surrogate, True)
        if name not in ("LeakyKReLU", "FakeNumericalGradient", "LogTailedReLU"):
            table[_CD + "surrogate." + name] = (_surrogate, False)
    return table


# ----------------------------------------------------------------------------
# the walk
# ----------------------------------------------------------------------------
def _class_path(m) -> str:
    return f"{type(m).__module__}.{type(m).__name__}"


def _convert(m, path: str, table: dict, unsupported: list):
    entry = table.get(_class_path(m))
    kids = []
    for name, child in m.named_children():
        twin = _convert(child, f"{path}.{name}" if path else name, table, unsupported)
        kids.append((name, twin))
    where = path or "(root)"
    if entry is None:
        unsupported.append(f"{where} ({type(m).__name__})")
        return None
    if any(twin is None for _, twin in kids):
        return None
    converter, ab = entry
    try:
        return converter(m, kids, ab)
    except _Unsupported as e:
        unsupported.append(f"{where} ({type(m).__name__}: {e})")
        return None


def _to_numpy(t) -> np.ndarray:
    return t.detach().cpu().numpy().copy()


def _pairs(source, twin, prefix: str = ""):
    """(path, source module, twin module) for every module, matched by child
    name (a module shared by several parents is visited under each path)."""
    yield prefix, source, twin
    twin_children = dict(twin.named_children())
    for name, child in source.named_children():
        if name in twin_children:
            yield from _pairs(child, twin_children[name], f"{prefix}.{name}" if prefix else name)


def _copy_state(source, twin) -> None:
    """Parameters and buffers with the source's values and dtypes (after a
    strict `load_state_dict` has checked keys and shapes), the current memory
    values (membrane potential, adaptation, dropout mask, synaptic current)
    and each module's train/eval mode."""
    twin.load_state_dict(OrderedDict((k, _to_numpy(v)) for k, v in source.state_dict().items()))
    for _, s, t in _pairs(source, twin):
        for store in ("_parameters", "_buffers"):
            for name, value in getattr(s, store).items():
                mine = getattr(t, store).get(name)
                if value is not None and mine is not None:
                    mine.data = _to_numpy(value)
        memories, twin_memories = getattr(s, "_memories", None), getattr(t, "_memories", None)
        if memories and twin_memories is not None:
            for name, value in memories.items():
                if name not in twin_memories or name == "v_seq":
                    continue
                if hasattr(value, "detach"):
                    setattr(t, name, Tensor(_to_numpy(value)))
                elif value is None or isinstance(value, (float, int)):
                    setattr(t, name, value)
        object.__setattr__(t, "training", s.training)


def from_torch(module, backend: str | None = None) -> Module:
    """The refsnn twin of a PyTorch / SpikingJelly network.

    `module`: a `torch.nn.Module` built from the supported classes (see the
    module docstring). `backend`: refsnn backend for every neuron that supports
    it in its step mode ('numpy', 'numpy-fused', 'opencl'); by default each
    neuron keeps its SpikingJelly backend ('torch' -> 'numpy', 'cupy' ->
    'numpy-fused').

    Returns a refsnn `Module` with the same structure, child names,
    `state_dict` (keys and values, in the same dtypes), train/eval mode and
    memory values. Raises NotImplementedError listing every unsupported
    module with its path in the model.
    """
    unsupported: list = []
    twin = _convert(module, "", _converters(backend), unsupported)
    if unsupported:
        raise NotImplementedError("from_torch: unsupported modules: " + ", ".join(unsupported))
    _copy_state(module, twin)
    return twin


# Weight files (never unpickled) live in refsnn.checkpoints; NIR import/export in
# refsnn.nirgraph (it needs the `nir` extra only when called).
from .checkpoints import (CheckpointError, convert_keys, load_checkpoint, load_npz,  # noqa: E402
                          load_safetensors, load_torch_state_dict, save_npz, save_safetensors)
from .nirgraph import from_nir, to_nir  # noqa: E402
