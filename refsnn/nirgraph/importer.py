"""`from_nir`: a NIR graph (object or `.nir` file) -> a runnable `NIRNetwork`.

Checks, each failing with one line that names what is wrong:
- the file is HDF5 and holds a NIR graph with every required field;
- every node's type is supported (names the node's key and type);
- every edge joins existing nodes, and the shape leaving an edge's source is
  the shape its target takes (names the edge);
- every node is reachable from an Input node.
Shapes here are NIR's: one sample, no batch and no time dimension.
"""
from __future__ import annotations

import math
import os

import numpy as np

from .. import layers, ops, surrogate
from ..module import Module, Parameter
from . import dynamics as dyn
from .graph import GraphPlan, NIRNetwork

__all__ = ["from_nir", "require_nir", "load_graph", "infer_shape", "ShapeError",
           "SUPPORTED_TYPES", "Scale", "SumPool2d"]

SUPPORTED_TYPES = ("Input", "Output", "Affine", "Linear", "Scale", "Conv1d", "Conv2d",
                   "Flatten", "SumPool2d", "AvgPool2d", "Delay", "Threshold", "I", "LI",
                   "IF", "LIF", "CubaLI", "CubaLIF")


def require_nir():
    """The `nir` module, or one line saying how to install it."""
    try:
        import nir
    except ImportError:
        raise ImportError("refsnn NIR import/export needs the 'nir' package (and h5py): "
                          "pip install 'refsnn[nir]'") from None
    return nir


def _one_line(error: Exception) -> str:
    return " ".join(f"{type(error).__name__}: {error}".split())


def load_graph(graph_or_path):
    """A `nir.NIRGraph` from itself or from a `.nir` (HDF5) file path."""
    nir = require_nir()
    if isinstance(graph_or_path, nir.NIRGraph):
        return graph_or_path
    if not isinstance(graph_or_path, (str, os.PathLike)):
        raise TypeError(f"from_nir: expected a nir.NIRGraph or a path to a .nir file, got "
                        f"{type(graph_or_path).__name__}")
    path = os.fspath(graph_or_path)
    import h5py
    try:
        is_hdf5 = h5py.is_hdf5(path)
    except (OSError, TypeError) as e:
        raise ValueError(f"from_nir: cannot open {path!r}: {_one_line(e)}") from None
    if not is_hdf5:
        raise ValueError(f"from_nir: {path!r} is not a NIR file (not valid HDF5)")
    try:
        graph = nir.read(path, type_check=False)
    except (KeyError, TypeError, ValueError, AssertionError, AttributeError, OSError) as e:
        raise ValueError(f"from_nir: {path!r} is not a valid NIR graph (a required field "
                         f"is missing or malformed): {_one_line(e)}") from None
    if not isinstance(graph, nir.NIRGraph):
        raise ValueError(f"from_nir: {path!r} holds a {type(graph).__name__} node, not a "
                         f"NIRGraph")
    return graph


# ----------------------------------------------------------------------------
# shapes
# ----------------------------------------------------------------------------
class ShapeError(ValueError):
    """A node cannot take the shape it is given (the message says why)."""


def _ints(value, n: int) -> tuple:
    """An int, a sequence or an array as an n-tuple of ints."""
    arr = np.atleast_1d(np.asarray(value)).astype(np.int64).reshape(-1)
    if arr.size == 1:
        arr = np.repeat(arr, n)
    if arr.size != n:
        raise ShapeError(f"expected {n} values, got {arr.tolist()}")
    return tuple(int(v) for v in arr)


def _padding(value, n: int):
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, np.ndarray) and value.dtype.kind in "SUO":
        value = value.item().decode() if isinstance(value.item(), bytes) else str(value.item())
    return value if isinstance(value, str) else _ints(value, n)


def _window_out(size, kernel, stride, pad, dilation) -> int:
    return (size + 2 * pad - dilation * (kernel - 1) - 1) // stride + 1


def _conv_out(node, in_shape: tuple, n: int) -> tuple:
    w = np.asarray(node.weight)
    if len(in_shape) != n + 1:
        raise ShapeError(f"takes (C, {'L' if n == 1 else 'H, W'}), got {in_shape}")
    groups = int(np.asarray(node.groups))
    if in_shape[0] != w.shape[1] * groups:
        raise ShapeError(f"takes {w.shape[1] * groups} input channels (weight {w.shape}, "
                         f"groups={groups}), got shape {in_shape}")
    kernel, stride = w.shape[2:], _ints(node.stride, n)
    dilation, padding = _ints(node.dilation, n), _padding(node.padding, n)
    if padding == "same":
        return (w.shape[0],) + tuple(in_shape[1:])
    pads = (0,) * n if padding == "valid" else padding
    out = tuple(_window_out(s, k, st, p, d) for s, k, st, p, d in
                zip(in_shape[1:], kernel, stride, pads, dilation))
    if min(out) <= 0:
        raise ShapeError(f"input {in_shape} is smaller than the kernel {tuple(kernel)}")
    return (w.shape[0],) + out


def _flatten_out(start: int, end: int, in_shape: tuple) -> tuple:
    n = len(in_shape)
    start, end = start % n if n else 0, end % n if n else 0
    if start > end:
        raise ShapeError(f"start_dim={start} is after end_dim={end} for shape {in_shape}")
    return in_shape[:start] + (int(np.prod(in_shape[start:end + 1])),) + in_shape[end + 1:]


def _param_shape(node) -> tuple:
    name = {"Scale": "scale", "Delay": "delay", "Threshold": "threshold", "I": "r",
            "IF": "r", "LI": "r", "LIF": "r", "CubaLI": "r", "CubaLIF": "r"}[type(node).__name__]
    return np.shape(getattr(node, name))


def infer_shape(node, in_shape: tuple) -> tuple:
    """The shape `node` outputs for one sample of shape `in_shape`; ShapeError
    when it cannot take that shape."""
    kind = type(node).__name__
    in_shape = tuple(int(s) for s in in_shape)
    if kind in ("Input", "Output"):
        return in_shape
    if kind in ("Affine", "Linear"):
        w = np.asarray(node.weight)
        if w.ndim != 2:
            raise ShapeError(f"only 2-D weights are supported, got weight {w.shape}")
        if in_shape != (w.shape[1],):
            raise ShapeError(f"takes ({w.shape[1]},) (weight {w.shape}), got {in_shape}")
        return (w.shape[0],)
    if kind in ("Conv1d", "Conv2d"):
        return _conv_out(node, in_shape, 1 if kind == "Conv1d" else 2)
    if kind in ("SumPool2d", "AvgPool2d"):
        if len(in_shape) != 3:
            raise ShapeError(f"takes (C, H, W), got {in_shape}")
        k, s, p = (_ints(v, 2) for v in (node.kernel_size, node.stride, node.padding))
        out = tuple(_window_out(in_shape[i + 1], k[i], s[i], p[i], 1) for i in range(2))
        if min(out) <= 0:
            raise ShapeError(f"input {in_shape} is smaller than the window {k}")
        return (in_shape[0],) + out
    if kind == "Flatten":
        return _flatten_out(int(np.asarray(node.start_dim)), int(np.asarray(node.end_dim)),
                            in_shape)
    shape = _param_shape(node)
    if int(np.prod(shape)) != 1 and shape != in_shape:
        raise ShapeError(f"has parameters of shape {shape}, got {in_shape}")
    return in_shape


def _plan_and_shapes(graph, nir):
    nodes = graph.nodes
    for key, node in nodes.items():
        kind = type(node).__name__
        if kind not in SUPPORTED_TYPES or not isinstance(node, nir.NIRNode):
            raise NotImplementedError(f"from_nir: node {key!r} has unsupported type {kind} "
                                      f"(supported: {', '.join(SUPPORTED_TYPES)})")
    for a, b in graph.edges:
        for end in (a, b):
            if end not in nodes:
                raise ValueError(f"from_nir: edge {a!r} -> {b!r} names node {end!r}, which "
                                 f"is not in the graph")
    inputs = [k for k, n in nodes.items() if type(n).__name__ == "Input"]
    outputs = [k for k, n in nodes.items() if type(n).__name__ == "Output"]
    if not inputs or not outputs:
        raise ValueError(f"from_nir: the graph needs at least one Input and one Output node "
                         f"(has {len(inputs)} Input, {len(outputs)} Output)")
    plan = GraphPlan(nodes.keys(), graph.edges, inputs, outputs)
    if plan.unreachable:
        raise ValueError(f"from_nir: node(s) {plan.unreachable} cannot be reached from the "
                         f"Input node(s) {inputs}")
    shapes = {}
    for key in plan.order:
        node = nodes[key]
        if key in inputs:
            in_shape = tuple(int(s) for s in np.asarray(node.input_type["input"]).reshape(-1))
            shapes[key] = (in_shape, in_shape)
            continue
        sources = plan.incoming[key] or plan.feedback[key]
        in_shape = shapes[sources[0]][1] if sources[0] in shapes else None
        if in_shape is None:     # fed only by back edges: the node's own declared shape
            in_shape = tuple(int(s) for s in np.asarray(node.input_type["input"]).reshape(-1))
        try:
            shapes[key] = (in_shape, infer_shape(node, in_shape))
        except ShapeError as e:
            raise ValueError(f"from_nir: edge {sources[0]!r} -> {key!r}: {key!r} "
                             f"({type(node).__name__}) cannot take shape {in_shape}: {e}") \
                from None
    for a, b in graph.edges:
        if shapes[a][1] != shapes[b][0]:
            raise ValueError(f"from_nir: edge {a!r} -> {b!r}: {a!r} ({type(nodes[a]).__name__}"
                             f") outputs shape {shapes[a][1]} but {b!r} "
                             f"({type(nodes[b]).__name__}) takes {shapes[b][0]}")
    return plan, shapes


# ----------------------------------------------------------------------------
# stateless node modules that refsnn.layers has no twin for
# ----------------------------------------------------------------------------
class Scale(Module):
    """NIR `Scale`: `y = x * scale`; `scale: [*shape]` (a Parameter)."""

    def __init__(self, scale: np.ndarray):
        super().__init__()
        self.scale = Parameter(np.array(scale, copy=True))

    def forward(self, x):
        return x * self.scale


class SumPool2d(Module):
    """NIR `SumPool2d`: window sums of `[N, C, H, W]` (zero padding)."""

    def __init__(self, kernel_size, stride, padding):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x):
        return ops.avg_pool2d(x, self.kernel_size, self.stride, self.padding,
                              divisor_override=1)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


# ----------------------------------------------------------------------------
# node -> module
# ----------------------------------------------------------------------------
def _meta(node) -> dict:
    return {k: (v.decode() if isinstance(v, bytes) else v)
            for k, v in (getattr(node, "metadata", None) or {}).items()}


def _surrogate_from(meta: dict):
    """The surrogate recorded by `to_nir` in a node's metadata, else Sigmoid()."""
    name = meta.get("refsnn.surrogate")
    cls = getattr(surrogate, str(name), None) if name is not None else None
    if cls is None:
        return surrogate.Sigmoid()
    prefix = "refsnn.surrogate."
    params = {k[len(prefix):]: (v.item() if isinstance(v, np.generic) else v)
              for k, v in meta.items() if k.startswith(prefix)}
    return cls(**params)


def _weight(value, dtype) -> np.ndarray:
    return np.array(value, dtype=dtype, copy=True)


def _conv_module(node, dtype, n: int):
    """refsnn's Conv1d/Conv2d; without bias when `to_nir` recorded
    `metadata['refsnn.bias'] = False` (NIR convolutions always carry one)."""
    w = _weight(node.weight, dtype)
    groups = int(np.asarray(node.groups))
    bias = bool(_meta(node).get("refsnn.bias", True)) or bool(np.any(node.bias))
    cls = layers.Conv1d if n == 1 else layers.Conv2d
    m = cls(w.shape[1] * groups, w.shape[0], tuple(w.shape[2:]), _ints(node.stride, n),
            _padding(node.padding, n), _ints(node.dilation, n), groups, bias=bias, dtype=dtype)
    m.weight.data = w
    if bias:
        m.bias.data = _weight(np.broadcast_to(node.bias, (w.shape[0],)), dtype)
    return m


def _delay_steps(key, delay, dt: float) -> np.ndarray:
    steps = np.asarray(delay, dtype=np.float64) / dt
    whole = np.rint(steps)
    if np.any(np.abs(steps - whole) > 1e-6 * np.maximum(1., whole)) or np.any(whole < 0):
        raise ValueError(f"from_nir: node {key!r} (Delay): delay {np.asarray(delay).tolist()} "
                         f"is not a whole number of steps of dt={dt}")
    return whole.astype(np.int64)


def _build(key, node, in_shape, opts: dict):
    """The refsnn module running `node` (None for Input/Output)."""
    kind, dtype, dt = type(node).__name__, opts["dtype"], opts["dt"]
    meta = _meta(node)
    if kind in ("Input", "Output"):
        return None
    if kind in ("Affine", "Linear"):
        w = _weight(node.weight, dtype)
        m = layers.Linear(w.shape[1], w.shape[0], bias=kind == "Affine", dtype=dtype)
        m.weight.data = w
        if kind == "Affine":
            m.bias.data = _weight(np.broadcast_to(node.bias, (w.shape[0],)), dtype)
        return m
    if kind == "Scale":
        return Scale(_weight(node.scale, dtype))
    if kind in ("Conv1d", "Conv2d"):
        return _conv_module(node, dtype, 1 if kind == "Conv1d" else 2)
    if kind == "Flatten":
        start, end = int(np.asarray(node.start_dim)), int(np.asarray(node.end_dim))
        return layers.Flatten(start + 1 if start >= 0 else start, end + 1 if end >= 0 else end)
    if kind in ("SumPool2d", "AvgPool2d"):
        k, s, p = (_ints(v, 2) for v in (node.kernel_size, node.stride, node.padding))
        return SumPool2d(k, s, p) if kind == "SumPool2d" else layers.AvgPool2d(k, s, p)
    step_mode = opts["step_mode"]
    if kind == "Delay":
        return dyn.DelayNode(node.delay, _delay_steps(key, node.delay, dt), step_mode, meta)
    spiking = {}
    if kind in ("IF", "LIF", "CubaLIF", "Threshold"):
        sg = opts["surrogate_function"]
        spiking["surrogate_function"] = _surrogate_from(meta) if sg is None else sg
    if kind in ("IF", "LIF", "CubaLIF"):
        reset = opts["reset"] or meta.get("reset") or "hard"
        detach = opts["detach_reset"]
        spiking.update(reset=reset, detach_reset=bool(meta.get("refsnn.detach_reset", False))
                       if detach is None else detach)
    if kind == "Threshold":
        return dyn.ThresholdNode(node.threshold, step_mode=step_mode, metadata=meta, **spiking)
    integration = opts["integration"]
    common = dict(step_mode=step_mode, metadata=meta)
    if kind == "I":
        return dyn.Integrator(node.r, dt, **common)
    if kind == "IF":
        return dyn.IntegrateAndFire(node.r, node.v_threshold, node.v_reset, dt, **spiking,
                                    **common)
    if kind == "LI":
        return dyn.LeakyIntegrator(node.tau, node.r, node.v_leak, dt, integration, **common)
    if kind == "LIF":
        return dyn.LeakyIntegrateAndFire(node.tau, node.r, node.v_leak, node.v_threshold,
                                         node.v_reset, dt, integration, **spiking, **common)
    if kind == "CubaLI":
        return dyn.CurrentLeakyIntegrator(node.tau_syn, node.tau_mem, node.r, node.v_leak,
                                          node.w_in, dt, integration, **common)
    return dyn.CurrentLeakyIntegrateAndFire(node.tau_syn, node.tau_mem, node.r, node.v_leak,
                                            node.v_threshold, node.v_reset, node.w_in, dt,
                                            integration, **spiking, **common)


def _check_time_constants(graph, dt: float) -> None:
    names = {"LI": ("tau",), "LIF": ("tau",), "CubaLI": ("tau_syn", "tau_mem"),
             "CubaLIF": ("tau_syn", "tau_mem")}
    for key, node in graph.nodes.items():
        for name in names.get(type(node).__name__, ()):
            tau = np.asarray(getattr(node, name), dtype=np.float64)
            if not np.all(tau > 0):
                raise ValueError(f"from_nir: node {key!r} ({type(node).__name__}): {name} "
                                 f"must be > 0, got {tau.tolist()}")


def from_nir(graph_or_path, dt: float, reset: str | None = None, integration: str = "euler",
             step_mode: str = "m", surrogate_function=None, detach_reset: bool | None = None,
             dtype=np.float32) -> NIRNetwork:
    """A `NIRNetwork` running a NIR graph with time step `dt` (docs/nir.md).

    `graph_or_path`: a `nir.NIRGraph` or the path of a `.nir` file.
    `reset`: 'hard' (v <- v_reset, NIR's stated rule) or 'soft'
    (v <- v - v_threshold); None: each node's `metadata['reset']`, else 'hard'.
    `integration`: 'euler' or 'exact' (zero-order hold on inputs).
    `step_mode`: 'm' (`x_seq: [T, N, *]`) or 's' (`x: [N, *]` per call).
    `surrogate_function`: for every spiking node; None: the one `to_nir`
    recorded in the node's metadata, else `surrogate.Sigmoid()`.
    `detach_reset`: None: the node's metadata, else False. `dtype`: of the
    weights (neuron coefficients follow the input's dtype).
    """
    nir = require_nir()
    if integration not in dyn.INTEGRATIONS:
        raise ValueError(f"from_nir: integration must be one of {dyn.INTEGRATIONS}, got "
                         f"{integration!r}")
    if reset is not None and reset not in dyn.RESETS:
        raise ValueError(f"from_nir: reset must be one of {dyn.RESETS} or None, got {reset!r}")
    if not (isinstance(dt, (int, float, np.floating)) and math.isfinite(dt) and dt > 0):
        raise ValueError(f"from_nir: dt must be a positive number, got {dt!r}")
    graph = load_graph(graph_or_path)
    plan, shapes = _plan_and_shapes(graph, nir)
    _check_time_constants(graph, float(dt))
    opts = dict(dt=float(dt), reset=reset, integration=integration, step_mode=step_mode,
                surrogate_function=surrogate_function, detach_reset=detach_reset,
                dtype=np.dtype(dtype))
    modules = {key: _build(key, graph.nodes[key], shapes[key][0], opts) for key in plan.keys}
    types = {key: type(node).__name__ for key, node in graph.nodes.items()}
    return NIRNetwork(plan, modules, types, shapes, float(dt), step_mode,
                      metadata=_meta(graph))
