"""`to_nir`: a refsnn network -> a `nir.NIRGraph` (write it with `nir.write`).

Exported: `NIRNetwork` (the graph it runs, with current parameter values);
chains of `Sequential` (and the step-mode containers) made of
`layers.Linear` -> Affine/Linear, `Conv1d`/`Conv2d`, `AvgPool2d`, `Flatten`,
`Identity`/`Dropout` in eval (skipped), `neurons.IFNode` -> IF and
`neurons.LIFNode` -> LIF (and their `MultiStep*` forms); a PyTorch /
SpikingJelly network goes through `interop.from_torch` first.

Neurons are written so that `from_nir(..., integration='euler')` runs the
same discrete formulas bit for bit: with `k = tau_steps` (refsnn's `tau`),
NIR `tau = k*dt` chosen so that `tau/dt == k` exactly in float64, `r = 1`
(`decay_input=True`) or `r = k` (`decay_input=False`), `v_leak = v_reset`
(0 for soft reset), IF `r` with `dt*r == 1`. Each neuron's metadata records
`reset` ('hard'/'soft'), `integration` ('euler'), `dt`,
`refsnn.surrogate` (+ `refsnn.surrogate.<param>`), `refsnn.detach_reset` and
`refsnn.source` (the refsnn class).
"""
from __future__ import annotations

import numpy as np

from .. import containers, layers, neurons, spiking_layers
from ..module import Module
from . import dynamics as dyn
from .graph import NIRNetwork
from .importer import Scale, ShapeError, SumPool2d, infer_shape, require_nir

__all__ = ["to_nir"]


def _decodable(target: float, encode, decode) -> float:
    """A float64 `p` near `encode(target)` with `decode(p) == target` exactly
    (the nearest candidate within a few ulps), else `encode(target)`."""
    p = encode(target)
    candidates = [p]
    for direction in (np.inf, -np.inf):
        q = p
        for _ in range(4):
            q = float(np.nextafter(q, direction))
            candidates.append(q)
    for q in candidates:
        if decode(q) == target:
            return q
    return p


def _full(shape, value) -> np.ndarray:
    return np.full(shape, value, dtype=np.float64)


def _surrogate_meta(sg) -> dict:
    meta = {"refsnn.surrogate": type(sg).__name__}
    params = getattr(sg, "formula_params", dict)()
    meta.update({f"refsnn.surrogate.{k}": v for k, v in params.items()
                 if isinstance(v, (bool, int, float))})
    return meta


def _neuron_meta(m, dt: float, reset: str) -> dict:
    return {"reset": reset, "integration": "euler", "dt": float(dt),
            "refsnn.source": f"refsnn.neurons.{type(m).__name__}",
            "refsnn.detach_reset": bool(m.detach_reset), **_surrogate_meta(m.surrogate_function)}


def _if_node(nir, m, shape, dt):
    reset = "soft" if m.v_reset is None else "hard"
    r = _decodable(1.0, lambda t: t / dt, lambda q: dt * q)
    v_reset = 0. if m.v_reset is None else m.v_reset
    return nir.IF(r=_full(shape, r), v_threshold=_full(shape, m.v_threshold),
                  v_reset=_full(shape, v_reset), metadata=_neuron_meta(m, dt, reset))


def _lif_node(nir, m, shape, dt):
    reset = "soft" if m.v_reset is None else "hard"
    tau = _decodable(float(m.tau), lambda t: t * dt, lambda q: q / dt)
    v_reset = 0. if m.v_reset is None else m.v_reset
    r = 1. if m.decay_input else float(m.tau)
    return nir.LIF(tau=_full(shape, tau), r=_full(shape, r), v_leak=_full(shape, v_reset),
                   v_threshold=_full(shape, m.v_threshold), v_reset=_full(shape, v_reset),
                   metadata=_neuron_meta(m, dt, reset))


def _array(t) -> np.ndarray:
    return np.array(t.data, copy=True)


def _conv_node(nir, m, shape):
    n = len(m.kernel_size)
    bias = _array(m.bias) if m.bias is not None else np.zeros(m.out_channels, m.weight.dtype)
    padding = m.padding if isinstance(m.padding, str) else \
        (m.padding[0] if n == 1 else tuple(m.padding))
    cls = nir.Conv1d if n == 1 else nir.Conv2d
    return cls(input_shape=shape[1] if n == 1 else tuple(shape[1:]), weight=_array(m.weight),
               stride=m.stride[0] if n == 1 else tuple(m.stride), padding=padding,
               dilation=m.dilation[0] if n == 1 else tuple(m.dilation), groups=m.groups,
               bias=bias, metadata={} if m.bias is not None else {"refsnn.bias": False})


def _pair(v) -> np.ndarray:
    return np.array((v, v) if isinstance(v, (int, np.integer)) else tuple(v), dtype=np.int64)


class _Unsupported(Exception):
    pass


def _leaf_node(nir, m, shape, dt):
    """The NIR node for leaf module `m` taking one-sample shape `shape`
    (None: skip `m`)."""
    if isinstance(m, layers.Linear):
        if m.bias is None:
            return nir.Linear(weight=_array(m.weight))
        return nir.Affine(weight=_array(m.weight), bias=_array(m.bias))
    if isinstance(m, (layers.Conv1d, layers.Conv2d)):
        return _conv_node(nir, m, shape)
    if isinstance(m, layers.AvgPool2d):
        if m.ceil_mode or m.divisor_override is not None or (
                not m.count_include_pad and np.any(_pair(m.padding))):
            raise _Unsupported("AvgPool2d with ceil_mode, divisor_override or "
                               "count_include_pad=False and padding")
        return nir.AvgPool2d(kernel_size=_pair(m.kernel_size), stride=_pair(m.stride),
                             padding=_pair(m.padding))
    if isinstance(m, layers.Flatten):
        start = m.start_dim - 1 if m.start_dim > 0 else m.start_dim
        end = m.end_dim - 1 if m.end_dim > 0 else m.end_dim
        if m.start_dim == 0 or m.end_dim == 0:
            raise _Unsupported("Flatten over the batch dimension")
        return nir.Flatten(input_type={"input": np.array(shape)}, start_dim=start,
                           end_dim=end)
    if isinstance(m, layers.Identity):
        return None
    if isinstance(m, (layers.TorchDropout, spiking_layers.Dropout)) and not m.training:
        return None
    if type(m) in (neurons.IFNode, neurons.MultiStepIFNode):
        return _if_node(nir, m, shape, dt)
    if type(m) in (neurons.LIFNode, neurons.MultiStepLIFNode):
        return _lif_node(nir, m, shape, dt)
    raise _Unsupported(type(m).__name__)


def _leaves(module: Module, prefix: str = ""):
    """(path, module) of the layers of a chain of Sequential containers."""
    if isinstance(module, containers.Sequential):
        for name, child in module.named_children():
            yield from _leaves(child, f"{prefix}.{name}" if prefix else name)
    else:
        yield prefix or type(module).__name__, module


def _first_shape(module) -> tuple | None:
    for _, m in _leaves(module):
        if isinstance(m, layers.Linear):
            return (m.in_features,)
        if not isinstance(m, (layers.Identity,)):
            return None
    return None


def _chain_graph(nir, module: Module, dt: float, input_shape):
    shape = tuple(input_shape) if input_shape is not None else _first_shape(module)
    if shape is None:
        raise ValueError(f"to_nir: cannot tell the input shape of {type(module).__name__}; "
                         f"pass input_shape= (one sample, without batch and time dims)")
    nodes, edges, unsupported, last = {"input": nir.Input(input_type=np.array(shape))}, [], \
        [], "input"
    for path, m in _leaves(module):
        try:
            node = _leaf_node(nir, m, shape, dt)
        except _Unsupported as e:
            unsupported.append(f"{path} ({e})")
            continue
        if node is None or unsupported:
            continue
        key = path if path not in ("input", "output") else f"{path}_"
        nodes[key] = node
        edges.append((last, key))
        try:
            shape, last = infer_shape(node, shape), key
        except ShapeError as e:
            raise ValueError(f"to_nir: module {path} ({type(m).__name__}) cannot take "
                             f"shape {shape}: {e}") from None
    if unsupported:
        raise NotImplementedError("to_nir: unsupported modules: " + ", ".join(unsupported))
    nodes["output"] = nir.Output(output_type=np.array(shape))
    edges.append((last, "output"))
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


def _network_node(nir, key: str, kind: str, m, shapes):
    """The NIR node of one node of a `NIRNetwork`."""
    in_shape, out_shape = shapes
    if kind == "Input":
        return nir.Input(input_type=np.array(in_shape))
    if kind == "Output":
        return nir.Output(output_type=np.array(out_shape))
    if isinstance(m, dyn.NIRNode):
        cls = getattr(nir, m.nir_type)
        params = dict(m.nir_params)
        meta = dict(m.metadata)
        if isinstance(m, dyn._Spiking):
            meta.update(reset=m.reset_mode, **{"refsnn.detach_reset": bool(m.detach_reset)},
                        **_surrogate_meta(m.surrogate_function))
        elif isinstance(m, dyn.ThresholdNode):
            meta.update(_surrogate_meta(m.surrogate_function))
        return cls(**params, metadata=meta)
    if isinstance(m, Scale):
        return nir.Scale(scale=_array(m.scale))
    if isinstance(m, SumPool2d):
        return nir.SumPool2d(kernel_size=np.array(m.kernel_size), stride=np.array(m.stride),
                             padding=np.array(m.padding))
    return _leaf_node(nir, m, in_shape, None)


def _network_graph(nir, net: NIRNetwork):
    modules = net.node_modules
    nodes = {k: _network_node(nir, k, net.node_types[k], modules[k], net.shapes[k])
             for k in net.plan.keys}
    return nir.NIRGraph(nodes=nodes, edges=list(net.plan.edges), type_check=False,
                        metadata=dict(net.metadata))


def to_nir(module, dt: float, input_shape=None):
    """The NIR graph of a refsnn network (see the module docstring).

    `dt`: the time step the network's discrete dynamics stand for (NIR time
    constants are `tau_steps * dt`). `input_shape`: one sample's shape
    (without batch/time), needed unless the first layer is `Linear` or the
    module is a `NIRNetwork`. Raises NotImplementedError listing every
    unsupported module with its path.
    """
    nir = require_nir()
    if not isinstance(module, Module):
        from ..interop import from_torch
        module = from_torch(module)
    if isinstance(module, NIRNetwork):
        return _network_graph(nir, module)
    return _chain_graph(nir, module, float(dt), input_shape)
