"""Golden cases: JSON-described components with `.npy` inputs and refsnn's
outputs, to test another implementation (CUDA, Triton, FPGA, a compiler,
another framework) against refsnn. The format is specified in
docs/golden-format.md; this module writes, reads, validates and checks it.

A *case* is one component (`neuron`, `surrogate` or `network`) with a JSON
`config`, a dtype and named arrays, each with a *role*:
- `input` (`x_seq: [T, N, *]`, `v_init: [N, *]`, `w_init`, surrogate `x: [K]`),
  `parameter` (`param.<name>`), `upstream` (the loss weights `grad_spike_seq`,
  `grad_v_seq`, `grad_y`): what an implementation receives;
- `output` (`spike_seq`, `v_seq`, `h_seq`, `y`) and `gradient` (`grad_x_seq`,
  `grad_v_init`, `grad_param.<name>`, ...): what it must reproduce. The
  gradients are those of `loss = sum(spike_seq * grad_spike_seq) +
  sum(v_seq * grad_v_seq)` (`sum(y * grad_y)` for a surrogate).

Calling convention of an implementation under test:
`impl(manifest: dict, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]`;
`arrays` holds the input, parameter and upstream arrays; the result holds
outputs and gradients by name (`spike_seq`, or `y` for a surrogate, is
required; whatever else is returned is checked). Raise NotImplementedError to
decline a case.

Entry points: `default_cases()`, `reference_outputs(case)`,
`export_bundle(directory)`, `read_bundle(directory)`, `check_bundle(directory,
impl)`, `compare_outputs(...)`, `assert_outputs_match(...)`; the refsnn
implementation of the calling convention is `reference_impl`.
"""
from __future__ import annotations

import copy
import importlib
import importlib.util
import inspect
import json
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .autograd import Tensor, no_grad, stack
from .comparisons import assert_grads_close, spike_report
from .conformance.compare import bit_equal, relative_error

__all__ = [
    "SCHEMA", "SCHEMA_VERSION", "CONVENTIONS", "Case", "BundleError", "CaseResult",
    "surrogate_from_config", "neuron_from_config", "network_from_config",
    "neuron_state_names", "threshold_inputs", "neuron_case", "surrogate_case",
    "network_case", "default_cases", "reference_outputs", "reference_impl",
    "spikingjelly_outputs", "output_entries", "compare_outputs", "assert_outputs_match",
    "export_bundle", "read_case", "read_bundle", "load_impl", "check_case", "check_bundle",
]

SCHEMA = "refsnn.golden"
SCHEMA_VERSION = 1
COMPONENTS = ("neuron", "surrogate", "network")
DTYPES = ("float32", "float64")
ROLES = ("input", "parameter", "upstream", "output", "gradient")

#: what every case assumes; written into each manifest
CONVENTIONS = {
    "layout": "time-major: x_seq and every *_seq array is [T, N, *]; states are [N, *]",
    "step_order": "charge, then fire, then reset, all within step t",
    "threshold": "spike = 1 where h - v_threshold >= 0 (so h == v_threshold fires, "
                 "-0.0 fires, NaN does not)",
    "reset": "v_reset null: soft reset v = h - spike * v_threshold; else hard reset "
             "v = (1 - spike) * h + spike * v_reset; the spike resets the same step",
    "h_seq": "potential after charge, before reset",
    "v_seq": "potential after reset (v_seq[T-1] is the final state)",
    "loss": "sum(spike_seq * grad_spike_seq) + sum(v_seq * grad_v_seq); "
            "surrogate: sum(y * grad_y)",
    "surrogate_gradient": "d spike / d h is the surrogate's derivative at h - v_threshold",
    "float_params": "hyper-parameters are JSON doubles; an implementation rounds each once "
                    "to the case dtype where it meets an array (PyTorch's rule)",
}


class BundleError(Exception):
    """A golden file that cannot be read or is invalid. The message is one
    line naming the file and field."""


# ----------------------------------------------------------------------------
# building refsnn modules from JSON configs
# ----------------------------------------------------------------------------
def surrogate_from_config(config: dict):
    """`{"class": "ATan", "kwargs": {"alpha": 3.0}}` -> `refsnn.surrogate.ATan(alpha=3.0)`."""
    from . import surrogate
    cls = getattr(surrogate, config["class"], None)
    if not isinstance(cls, type):
        raise ValueError(f"unknown surrogate class {config['class']!r}")
    return cls(**config.get("kwargs", {}))


def _float_kwargs(kwargs: dict) -> dict:
    """JSON writers may spell 2.0 as 2; SpikingJelly's neurons insist on floats."""
    return {k: float(v) if isinstance(v, int) and not isinstance(v, bool) else v
            for k, v in kwargs.items()}


def neuron_from_config(config: dict, dtype="float32", backend: str = "numpy",
                       step_mode: str | None = None):
    """A refsnn neuron from a neuron config (see docs/golden-format.md):
    `{"class": "LIFNode", "api": "activation_based", "step_mode": "m",
    "training": true, "kwargs": {...}, "surrogate": {...}}`; `MultiStep*`
    classes are `clock_driven`'s. Multi-step neurons record `v_seq`."""
    from . import neurons
    name = config["class"]
    cls = getattr(neurons, name, None)
    if not isinstance(cls, type) or not issubclass(cls, neurons.BaseNode):
        raise ValueError(f"unknown neuron class {name!r}")
    kwargs = _float_kwargs(config.get("kwargs", {}))
    kwargs["surrogate_function"] = surrogate_from_config(
        config.get("surrogate", {"class": "Sigmoid"}))
    kwargs["backend"] = backend
    if not name.startswith("MultiStep"):
        mode = step_mode or config.get("step_mode", "m")
        kwargs.update(step_mode=mode, store_v_seq=mode == "m")
    m = neurons.__dict__[name](**kwargs)
    m.to(np.dtype(dtype))
    m.train(bool(config.get("training", True)))
    return m


def neuron_state_names(config: dict) -> tuple:
    """The neuron's state variables: ('v',), or ('v', 'w') for Izhikevich."""
    return ("v", "w") if config["class"] == "IzhikevichNode" else ("v",)


_STATELESS = ("Linear", "Conv2d", "Flatten", "AvgPool2d", "MaxPool2d")


def network_from_config(config: dict, dtype="float32"):
    """A refsnn network from a network config `{"pattern": ..., "layers": [...]}`.

    Returns `(net, layers)`: `net` maps `x_seq: [T, N, *]` to the last
    layer's spikes `[T, N, *]`; `layers[i]` is the module built for config
    layer i (parameters are named `param.<i>.<name>`).
    pattern 'layer_by_layer': runs of stateless layers in `SeqToANNContainer`,
    neurons in step mode 'm'; 'step_by_step': everything in one
    `MultiStepContainer`, neurons in step mode 's'.
    """
    from . import layers as L
    from .containers import MultiStepContainer, SeqToANNContainer, Sequential
    pattern = config["pattern"]
    if pattern not in ("layer_by_layer", "step_by_step"):
        raise ValueError(f"unknown network pattern {pattern!r}")
    built = []
    for spec in config["layers"]:
        kind = spec["type"]
        kwargs = {k: v for k, v in spec.items() if k != "type"}
        if kind == "neuron":
            built.append(neuron_from_config(
                kwargs["neuron"], dtype, step_mode="m" if pattern == "layer_by_layer" else "s"))
        elif kind in _STATELESS:
            built.append(getattr(L, kind)(**kwargs))
            built[-1].to(np.dtype(dtype))
        else:
            raise ValueError(f"unknown layer type {kind!r}")
    if pattern == "step_by_step":
        return MultiStepContainer(*built), built
    blocks, run = [], []
    for spec, m in zip(config["layers"], built):
        if spec["type"] == "neuron":
            if run:
                blocks.append(SeqToANNContainer(*run))
                run = []
            blocks.append(m)
        else:
            run.append(m)
    if run:
        blocks.append(SeqToANNContainer(*run))
    return Sequential(*blocks), built


# ----------------------------------------------------------------------------
# cases
# ----------------------------------------------------------------------------
@dataclass
class Case:
    """One golden case in memory: what an implementation receives.

    inputs: arrays of roles input, parameter and upstream, by name.
    roles: name -> role for every array in `inputs`.
    """
    name: str
    component: str
    config: dict
    dtype: str
    inputs: dict
    roles: dict = field(default_factory=dict)

    def manifest(self, outputs: dict | None = None, spikingjelly: dict | None = None) -> dict:
        """The manifest.json content (the `arrays` table includes `outputs`'
        entries when given)."""
        from . import __version__
        arrays = {n: _entry(n, self.roles[n], a) for n, a in self.inputs.items()}
        if outputs is not None:
            arrays.update(output_entries(self, outputs))
        return {
            "schema": SCHEMA, "schema_version": SCHEMA_VERSION, "name": self.name,
            "component": self.component, "config": copy.deepcopy(self.config),
            "dtype": self.dtype, "conventions": dict(CONVENTIONS),
            "refsnn_version": __version__,
            "spikingjelly_version": None if spikingjelly is None else spikingjelly["version"],
            "spikingjelly_check": None if spikingjelly is None else spikingjelly["check"],
            "arrays": arrays,
        }


def _entry(name: str, role: str, array: np.ndarray) -> dict:
    return {"file": f"{name}.npy", "role": role, "dtype": np.asarray(array).dtype.name,
            "shape": list(np.shape(array))}


def output_entries(case: Case, outputs: dict) -> dict:
    """Manifest entries of outputs and gradients, with the `steps` (T) and
    `fan_in` (terms summed into one gradient element) that size tolerances."""
    x = case.inputs.get("x_seq", case.inputs.get("x"))
    steps = int(x.shape[0]) if case.component != "surrogate" else 1
    entries = {}
    for name, array in outputs.items():
        role = "gradient" if name.startswith("grad_") else "output"
        entry = _entry(name, role, array)
        entry["steps"] = steps
        if role == "gradient":
            if case.component == "network" or name.startswith("grad_param."):
                entry["fan_in"] = int(x.size)  # a weight or PLIF w sums over every step and neuron
            else:
                entry["fan_in"] = 1
        entries[name] = entry
    return entries


def _rng(name: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(name.encode()))


def _v_threshold(config: dict) -> float:
    return float(config.get("kwargs", {}).get("v_threshold", 1.0))


def _state_default(config: dict, name: str) -> float:
    """The float a fresh neuron starts from (v_reset or 0.; w_rest)."""
    kwargs = config.get("kwargs", {})
    if name == "w":
        return float(kwargs.get("w_rest", 0.0))
    from . import neurons
    default = inspect.signature(getattr(neurons, config["class"])).parameters["v_reset"].default
    v_reset = kwargs.get("v_reset", default)
    return 0.0 if v_reset is None else float(v_reset)


def threshold_inputs(config: dict, state: dict, dtype, lo: float = -1e4,
                     hi: float = 1e4) -> np.ndarray:
    """For a neuron in `state` (`{"v": [M], ...}`), the inputs `x: [M]` whose
    first charge lands on `v_threshold`: exactly where such an input exists in
    `dtype`, else the smallest input that fires. Found by bisection on the
    neuron's own charge (which is non-decreasing in x)."""
    dtype = np.dtype(dtype)
    m = neuron_from_config(config, dtype, step_mode="s")
    v_th = dtype.type(_v_threshold(config))
    shape = np.shape(state["v"])

    def charge(x: np.ndarray) -> np.ndarray:
        for k in neuron_state_names(config):
            setattr(m, k, Tensor(np.array(state[k], dtype=dtype)))
        with no_grad(), np.errstate(all="ignore"):
            m.neuronal_charge(Tensor(x.astype(dtype)))
        return m.v.data

    low, high = np.full(shape, lo), np.full(shape, hi)
    for _ in range(200):
        if np.all(low.astype(dtype) == high.astype(dtype)) or np.all(np.nextafter(
                low.astype(dtype), dtype.type(np.inf)) >= high.astype(dtype)):
            break
        mid = (low + high) / 2
        fires = charge(mid) >= v_th
        high, low = np.where(fires, mid, high), np.where(fires, low, mid)
    x = high.astype(dtype)
    return np.where(charge(x) >= v_th, x, high.astype(dtype))


def _special_inputs(dtype) -> np.ndarray:
    d = np.dtype(dtype)
    return np.array([0.0, -0.0, np.finfo(d).smallest_subnormal, -np.finfo(d).smallest_subnormal,
                     np.nextafter(np.finfo(d).smallest_normal, d.type(0))], dtype=d)


def neuron_case(name: str, config: dict, dtype: str = "float32", shape=(8, 2, 4),
                low: float = -0.5, high: float = 2.0, nan: bool = False,
                threshold_hits: bool = True) -> Case:
    """A neuron case with deterministic inputs (seeded by `name`): uniform
    `x_seq` in [low, high) scaled by v_threshold, a random initial state, one
    neuron started exactly at v_threshold, inputs landing exactly on the
    threshold at t=0 for a few neurons (`threshold_hits`; leave it off for
    charges with transcendentals, EIF, whose last bit differs between
    libraries), signed zeros and subnormals at t=1 (and NaN, +-inf when
    `nan`), and Gaussian loss weights."""
    rng = _rng(name)
    d = np.dtype(dtype)
    v_th = _v_threshold(config)
    x = (rng.uniform(low, high, size=shape) * abs(v_th)).astype(d)
    step = shape[1:]
    states = {k: np.full(step, _state_default(config, k), dtype=d)
              for k in neuron_state_names(config)}
    states["v"] = (rng.uniform(-0.5, 1.0, size=step) * abs(v_th)).astype(d)
    flat_v = states["v"].reshape(-1)
    flat_v[0] = d.type(v_th)
    if threshold_hits:
        x0 = x[0].reshape(-1)
        x0[1:4] = threshold_inputs(config, states, d).reshape(-1)[1:4]
    specials = _special_inputs(d)
    if nan:
        specials = np.concatenate([specials, np.array([np.nan, np.inf, -np.inf], dtype=d)])
    x1 = x[min(1, shape[0] - 1)].reshape(-1)
    x1[-len(specials):] = specials[:x1.size]
    inputs = {"x_seq": x}
    roles = {"x_seq": "input"}
    for k in neuron_state_names(config):
        inputs[f"{k}_init"], roles[f"{k}_init"] = states[k], "input"
    m = neuron_from_config(config, d)
    for pname, p in m.named_parameters():
        inputs[f"param.{pname}"], roles[f"param.{pname}"] = np.array(p.data), "parameter"
    if config.get("training", True):
        inputs["grad_spike_seq"] = rng.standard_normal(shape).astype(d)
        inputs["grad_v_seq"] = rng.standard_normal(shape).astype(d)
        roles.update(grad_spike_seq="upstream", grad_v_seq="upstream")
    return Case(name, "neuron", config, dtype, inputs, roles)


def surrogate_case(name: str, config: dict, dtype: str = "float32") -> Case:
    """A surrogate case: `x: [K]` on a grid over [-3, 3] plus edges (0, -0,
    +-1/alpha, subnormals, +-1e30), and Gaussian `grad_y: [K]`."""
    d = np.dtype(dtype)
    alpha = config.get("kwargs", {}).get("alpha", 1.0)
    edges = [1.0 / alpha, -1.0 / alpha, 1e30, -1e30] if alpha else [1e30, -1e30]
    x = np.concatenate([np.linspace(-3.0, 3.0, 41), edges]).astype(d)
    x = np.concatenate([x, _special_inputs(d)])
    g = _rng(name).standard_normal(x.shape).astype(d)
    return Case(name, "surrogate", config, dtype, {"x": x, "grad_y": g},
                {"x": "input", "grad_y": "upstream"})


def network_case(name: str, config: dict, input_shape, dtype: str = "float32",
                 seed: int | None = None, x_seq: np.ndarray | None = None) -> Case:
    """A network case: parameters drawn with PyTorch's default initialisation,
    `x_seq: input_shape` uniform in [0, 1.5) (unless given), Gaussian
    `grad_spike_seq`, all from `seed` (default: derived from `name`). Neurons
    start from their default state."""
    from . import manual_seed
    d = np.dtype(dtype)
    seed = zlib.crc32(name.encode()) if seed is None else seed
    rng = np.random.default_rng(seed)
    manual_seed(seed)
    net, built = network_from_config(config, d)
    x = rng.uniform(0.0, 1.5, size=input_shape).astype(d) if x_seq is None else \
        np.asarray(x_seq, dtype=d)
    inputs, roles = {"x_seq": x}, {"x_seq": "input"}
    for i, m in enumerate(built):
        for pname, p in m.named_parameters():
            inputs[f"param.{i}.{pname}"] = np.array(p.data)
            roles[f"param.{i}.{pname}"] = "parameter"
    with no_grad():
        out_shape = net(Tensor(x)).shape
    inputs["grad_spike_seq"] = rng.standard_normal(out_shape).astype(d)
    roles["grad_spike_seq"] = "upstream"
    return Case(name, "network", config, dtype, inputs, roles)


def _neuron(cls: str, api: str = "activation_based", step_mode: str = "m",
            surrogate=("Sigmoid", {}), training: bool = True, **kwargs) -> dict:
    mode = "m" if cls.startswith("MultiStep") else step_mode
    return {"class": cls, "api": api, "step_mode": mode,
            "training": training, "kwargs": kwargs,
            "surrogate": {"class": surrogate[0], "kwargs": dict(surrogate[1])}}


def default_cases() -> list:
    """The default catalog: a few dozen small cases covering the neuron
    classes and their reset / decay forms in both APIs, step modes, eval
    forms, float64, special inputs, a few surrogates, and small networks in
    both propagation patterns."""
    N = _neuron
    neuron_configs = [
        ("if_hard", N("IFNode")),
        ("if_soft_atan", N("IFNode", v_reset=None, surrogate=("ATan", {"alpha": 3.0}))),
        ("if_single_step_detach", N("IFNode", step_mode="s", detach_reset=True)),
        ("if_threshold_half", N("IFNode", v_threshold=0.5, v_reset=-0.125)),
        ("lif_decay_hard", N("LIFNode", tau=2.0)),
        ("lif_decay_hard_vreset", N("LIFNode", tau=3.0, v_reset=-0.25)),
        ("lif_decay_soft", N("LIFNode", tau=1.5, v_reset=None)),
        ("lif_nodecay_hard", N("LIFNode", tau=3.0, decay_input=False)),
        ("lif_nodecay_hard_vreset", N("LIFNode", tau=4.0, decay_input=False, v_reset=0.25)),
        ("lif_nodecay_soft_detach", N("LIFNode", tau=2.5, decay_input=False, v_reset=None,
                                      detach_reset=True)),
        ("lif_single_step", N("LIFNode", step_mode="s", tau=5.0)),
        ("lif_eval_nodecay_hard", N("LIFNode", training=False, tau=3.0, decay_input=False)),
        ("lif_eval_single_step", N("LIFNode", step_mode="s", training=False, tau=2.0)),
        ("lif_piecewise_quadratic", N("LIFNode", tau=2.0,
                                      surrogate=("PiecewiseQuadratic", {"alpha": 1.5}))),
        ("lif_erf", N("LIFNode", tau=2.0, surrogate=("Erf", {"alpha": 2.5}))),
        ("plif_decay_hard", N("ParametricLIFNode", init_tau=2.0)),
        ("plif_nodecay_soft", N("ParametricLIFNode", init_tau=3.0, decay_input=False,
                                v_reset=None)),
        ("qif", N("QIFNode")),
        ("eif", N("EIFNode"), {"threshold_hits": False}),
        ("izhikevich", N("IzhikevichNode", a=0.5, b=0.25)),
        ("klif", N("KLIFNode", tau=2.0)),
        ("cd_multistep_if", N("MultiStepIFNode", api="clock_driven")),
        ("cd_multistep_lif_soft", N("MultiStepLIFNode", api="clock_driven", tau=2.5,
                                    v_reset=None)),
        ("cd_multistep_plif", N("MultiStepParametricLIFNode", api="clock_driven",
                                init_tau=4.0)),
    ]
    cases = [neuron_case(f"{n}_f32", c, **(more[0] if more else {}))
             for n, c, *more in neuron_configs]
    cases += [neuron_case("lif_decay_hard_f64", N("LIFNode", tau=3.0), "float64"),
              neuron_case("plif_decay_hard_f64", N("ParametricLIFNode", init_tau=2.5),
                          "float64"),
              neuron_case("lif_nan_inf_f32", N("LIFNode", tau=2.0), nan=True)]
    cases += [surrogate_case("surrogate_sigmoid_f32",
                             {"class": "Sigmoid", "kwargs": {"alpha": 4.0}}),
              surrogate_case("surrogate_atan_f32", {"class": "ATan", "kwargs": {"alpha": 3.0}}),
              surrogate_case("surrogate_piecewise_quadratic_f32",
                             {"class": "PiecewiseQuadratic", "kwargs": {"alpha": 1.0}}),
              surrogate_case("surrogate_softsign_f64", {"class": "SoftSign",
                                                        "kwargs": {"alpha": 2.0}}, "float64")]
    mlp = [{"type": "Linear", "in_features": 6, "out_features": 5},
           {"type": "neuron", "neuron": N("LIFNode", tau=2.0)},
           {"type": "Linear", "in_features": 5, "out_features": 3},
           {"type": "neuron", "neuron": N("IFNode", v_reset=None)}]
    conv = [{"type": "Conv2d", "in_channels": 1, "out_channels": 2, "kernel_size": 3,
             "padding": 1},
            {"type": "neuron", "neuron": N("ParametricLIFNode", init_tau=2.0)},
            {"type": "AvgPool2d", "kernel_size": 2},
            {"type": "Flatten"},
            {"type": "Linear", "in_features": 8, "out_features": 3},
            {"type": "neuron", "neuron": N("LIFNode", tau=2.0)}]
    cases += [network_case("net_mlp_layer_by_layer_f32",
                           {"pattern": "layer_by_layer", "layers": mlp}, (6, 2, 6)),
              network_case("net_mlp_step_by_step_f32",
                           {"pattern": "step_by_step", "layers": mlp}, (6, 2, 6)),
              network_case("net_conv_f32", {"pattern": "layer_by_layer", "layers": conv},
                           (4, 2, 1, 4, 4))]
    return cases


# ----------------------------------------------------------------------------
# refsnn's outputs (the reference) and the calling convention
# ----------------------------------------------------------------------------
def _record_charges(m, store: list) -> None:
    """Make the neuron also append each step's charged potential h to `store`
    (its training charge and, for IF/LIF in eval mode, its eval charge)."""
    charge = m.neuronal_charge

    def recording_charge(x):
        charge(x)
        store.append(np.array(m.v.data))
    object.__setattr__(m, "neuronal_charge", recording_charge)
    eval_charge = getattr(m, "_eval_charge", None)
    if eval_charge is not None:
        def recording_eval_charge(x, v):
            h = eval_charge(x, v)
            store.append(np.array(h))
            return h
        object.__setattr__(m, "_eval_charge", recording_eval_charge)


def _grad(t: Tensor) -> np.ndarray:
    return np.zeros_like(t.data) if t.grad is None else np.array(t.grad.data)


def _neuron_outputs(manifest: dict, arrays: dict) -> dict:
    config, dtype = manifest["config"], manifest["dtype"]
    m = neuron_from_config(config, dtype)
    params = {k[len("param."):]: v for k, v in arrays.items() if k.startswith("param.")}
    m.load_state_dict(params)
    training = "grad_spike_seq" in arrays and bool(config.get("training", True))
    hs: list = []
    _record_charges(m, hs)
    x = Tensor(arrays["x_seq"], requires_grad=training)
    init = {}
    for k in neuron_state_names(config):
        init[k] = Tensor(arrays[f"{k}_init"], requires_grad=training)
        setattr(m, k, init[k])
    with np.errstate(all="ignore"):
        if m.step_mode == "m":
            spikes = m(x)
            v_seq = m.v_seq
        else:
            outs, vs = [], []
            for t in range(x.shape[0]):
                outs.append(m(x[t]))
                vs.append(m.v)
            spikes, v_seq = stack(outs), stack(vs)
        out = {"spike_seq": np.array(spikes.data), "v_seq": np.array(v_seq.data)}
        if len(hs) == x.shape[0]:
            out["h_seq"] = np.stack(hs)
        if training:
            loss = (spikes * Tensor(arrays["grad_spike_seq"])).sum() + \
                (v_seq * Tensor(arrays["grad_v_seq"])).sum()
            loss.backward()
            out["grad_x_seq"] = _grad(x)
            for k, t in init.items():
                out[f"grad_{k}_init"] = _grad(t)
            for pname, p in m.named_parameters():
                out[f"grad_param.{pname}"] = _grad(p)
    return out


def _surrogate_outputs(manifest: dict, arrays: dict) -> dict:
    f = surrogate_from_config(manifest["config"])
    x = Tensor(arrays["x"], requires_grad=True)
    with np.errstate(all="ignore"):
        y = f(x)
        (y * Tensor(arrays["grad_y"])).sum().backward()
    return {"y": np.array(y.data), "grad_x": _grad(x)}


def _network_outputs(manifest: dict, arrays: dict) -> dict:
    net, built = network_from_config(manifest["config"], manifest["dtype"])
    for i, m in enumerate(built):
        for pname, p in m.named_parameters():
            p.data = np.array(arrays[f"param.{i}.{pname}"])
    x = Tensor(arrays["x_seq"], requires_grad=True)
    with np.errstate(all="ignore"):
        spikes = net(x)
        (spikes * Tensor(arrays["grad_spike_seq"])).sum().backward()
    out = {"spike_seq": np.array(spikes.data), "grad_x_seq": _grad(x)}
    for i, m in enumerate(built):
        for pname, p in m.named_parameters():
            out[f"grad_param.{i}.{pname}"] = _grad(p)
    return out


_REFERENCE = {"neuron": _neuron_outputs, "surrogate": _surrogate_outputs,
              "network": _network_outputs}


def reference_impl(manifest: dict, arrays: dict) -> dict:
    """refsnn itself under the calling convention (the default `--impl`)."""
    return _REFERENCE[manifest["component"]](manifest, arrays)


def reference_outputs(case: Case) -> dict:
    """refsnn's outputs and gradients for `case`, by name."""
    return reference_impl(case.manifest(), {k: v.copy() for k, v in case.inputs.items()})


# ----------------------------------------------------------------------------
# SpikingJelly's outputs (export verifies each case against them when present)
# ----------------------------------------------------------------------------
def spikingjelly_version() -> str | None:
    """The installed SpikingJelly's version when it and torch import, else None."""
    try:
        import spikingjelly  # noqa: F401
        import torch  # noqa: F401
        from importlib.metadata import version
        return version("spikingjelly")
    except Exception:  # noqa: BLE001 - any failure means "not usable here"
        return None


def _sj_neuron(config: dict, dtype: str, step_mode: str | None = None):
    import torch
    api = "clock_driven" if config["class"].startswith("MultiStep") else "activation_based"
    surrogate = importlib.import_module(f"spikingjelly.{api}.surrogate")
    neuron = importlib.import_module(f"spikingjelly.{api}.neuron")
    sg = getattr(surrogate, config["surrogate"]["class"])(**config["surrogate"]["kwargs"])
    kwargs = _float_kwargs(config["kwargs"])
    kwargs["surrogate_function"] = sg
    if api == "activation_based":
        mode = step_mode or config.get("step_mode", "m")
        kwargs.update(step_mode=mode, backend="torch", store_v_seq=mode == "m")
    else:
        kwargs["backend"] = "torch"
    m = getattr(neuron, config["class"])(**kwargs)
    m.to(getattr(torch, dtype))
    m.train(bool(config.get("training", True)))
    return m


def _sj_neuron_outputs(manifest: dict, arrays: dict) -> dict:
    import torch
    config = manifest["config"]
    m = _sj_neuron(config, manifest["dtype"])
    training = "grad_spike_seq" in arrays and bool(config.get("training", True))
    with torch.no_grad():
        for name, p in m.named_parameters():
            p.copy_(torch.from_numpy(arrays[f"param.{name}"]))
    x = torch.from_numpy(arrays["x_seq"].copy()).requires_grad_(training)
    init = {k: torch.from_numpy(arrays[f"{k}_init"].copy()).requires_grad_(training)
            for k in neuron_state_names(config)}
    for k, t in init.items():
        setattr(m, k, t)
    hs: list = []
    charge = m.neuronal_charge

    def recording_charge(inp):
        charge(inp)
        hs.append(m.v.detach().clone())
    m.neuronal_charge = recording_charge
    if config["class"].startswith("MultiStep") or config.get("step_mode", "m") == "m":
        spikes, v_seq = m(x), m.v_seq
    else:
        outs, vs = [], []
        for t in range(x.shape[0]):
            outs.append(m(x[t]))
            vs.append(m.v)
        spikes, v_seq = torch.stack(outs), torch.stack(vs)
    out = {"spike_seq": spikes.detach().numpy().copy(), "v_seq": v_seq.detach().numpy().copy()}
    if len(hs) == x.shape[0]:
        out["h_seq"] = torch.stack(hs).numpy()
    if training:
        loss = (spikes * torch.from_numpy(arrays["grad_spike_seq"])).sum() + \
            (v_seq * torch.from_numpy(arrays["grad_v_seq"])).sum()
        loss.backward()
        out["grad_x_seq"] = x.grad.numpy().copy()
        for k, t in init.items():
            out[f"grad_{k}_init"] = t.grad.numpy().copy()
        for name, p in m.named_parameters():
            out[f"grad_param.{name}"] = p.grad.numpy().copy()
    return out


def _sj_surrogate_outputs(manifest: dict, arrays: dict) -> dict:
    import torch
    from spikingjelly.activation_based import surrogate
    config = manifest["config"]
    f = getattr(surrogate, config["class"])(**config.get("kwargs", {}))
    x = torch.from_numpy(arrays["x"].copy()).requires_grad_(True)
    y = f(x)
    (y * torch.from_numpy(arrays["grad_y"])).sum().backward()
    return {"y": y.detach().numpy().copy(), "grad_x": x.grad.numpy().copy()}


def _sj_network_outputs(manifest: dict, arrays: dict) -> dict:
    import torch
    from spikingjelly.activation_based import layer
    config, dtype = manifest["config"], manifest["dtype"]
    by_layer = config["pattern"] == "layer_by_layer"
    built = []
    for spec in config["layers"]:
        kwargs = {k: v for k, v in spec.items() if k != "type"}
        if spec["type"] == "neuron":
            built.append(_sj_neuron(kwargs["neuron"], dtype, "m" if by_layer else "s"))
        else:
            built.append(getattr(torch.nn, spec["type"])(**kwargs).to(getattr(torch, dtype)))
    with torch.no_grad():
        for i, m in enumerate(built):
            for name, p in m.named_parameters():
                p.copy_(torch.from_numpy(arrays[f"param.{i}.{name}"]))
    if by_layer:
        blocks, run = [], []
        for spec, m in zip(config["layers"], built):
            if spec["type"] == "neuron":
                blocks += [layer.SeqToANNContainer(*run)] if run else []
                blocks.append(m)
                run = []
            else:
                run.append(m)
        blocks += [layer.SeqToANNContainer(*run)] if run else []
        net = torch.nn.Sequential(*blocks)
    else:
        net = layer.MultiStepContainer(*built)
    x = torch.from_numpy(arrays["x_seq"].copy()).requires_grad_(True)
    spikes = net(x)
    (spikes * torch.from_numpy(arrays["grad_spike_seq"])).sum().backward()
    out = {"spike_seq": spikes.detach().numpy().copy(), "grad_x_seq": x.grad.numpy().copy()}
    for i, m in enumerate(built):
        for name, p in m.named_parameters():
            out[f"grad_param.{i}.{name}"] = p.grad.numpy().copy()
    return out


_SPIKINGJELLY = {"neuron": _sj_neuron_outputs, "surrogate": _sj_surrogate_outputs,
                 "network": _sj_network_outputs}


def spikingjelly_outputs(case: Case) -> dict:
    """SpikingJelly's (torch backend's) outputs for `case`; needs torch and
    SpikingJelly. SpikingJelly's logging warnings (a single-step neuron in a
    MultiStepContainer) are silenced while it runs."""
    import logging
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        return _SPIKINGJELLY[case.component](case.manifest(),
                                             {k: v.copy() for k, v in case.inputs.items()})
    finally:
        logging.disable(previous)


# ----------------------------------------------------------------------------
# comparing outputs
# ----------------------------------------------------------------------------
@dataclass
class CaseResult:
    """The outcome of one case: status 'pass', 'fail' or 'skip', a one-line
    summary, and detail lines (one per failing or unchecked output)."""
    name: str
    status: str
    summary: str
    details: list = field(default_factory=list)


_SPIKES = ("spike_seq", "y")
_POTENTIALS = ("v_seq", "h_seq")


def _spike_threshold(manifest: dict) -> float:
    if manifest["component"] == "surrogate":
        return 0.0
    if manifest["component"] == "neuron":
        return _v_threshold(manifest["config"])
    return _v_threshold(manifest["config"]["layers"][-1].get("neuron", {}))


def compare_outputs(manifest: dict, inputs: dict, actual: dict, expected: dict, *,
                    exact: bool = False, allow_rounding_flips: bool = False,
                    ulps: float = 16.0) -> list:
    """Compare an implementation's outputs for a case (`manifest`, `inputs`)
    with the expected ones.

    Returns `(name, ok, message)` per expected output: ok is True, False, or
    None when `actual` lacks it (the spikes are then a failure). Spikes must
    be equal (or, with `allow_rounding_flips`, differ only by rounding-level
    flips and their cascades; those neurons then drop out of the per-neuron
    comparisons). Potentials and gradients must be close (`grad_tolerance`
    with the manifest's steps and fan_in, `ulps` per step), or bitwise equal
    with `exact`.
    """
    entries = manifest["arrays"]
    results = []
    spike_name = next(n for n in _SPIKES if n in expected)
    keep = None           # per-neuron mask [N, *] of neurons without flips
    for name, want in expected.items():
        entry = entries.get(name, {})
        if name not in actual or actual[name] is None:
            results.append((name, False if name == spike_name else None, "not returned"))
            continue
        got = np.asarray(actual[name])
        if got.shape != want.shape:
            results.append((name, False, f"shape {got.shape}, expected {want.shape}"))
            continue
        if name == spike_name:
            time_major = manifest["component"] != "surrogate"
            a, e = (got, want) if time_major else (got[None], want[None])
            h = expected.get("h_seq") if time_major else np.asarray(inputs["x"])[None]
            report = spike_report(a, e, h_seq=h, v_seq=expected.get("v_seq"),
                                  actual_h_seq=actual.get("h_seq") if time_major else None,
                                  v_threshold=_spike_threshold(manifest))
            if report is None:
                results.append((name, True, f"{want.size} spikes equal"))
            elif allow_rounding_flips and report.explained_by_rounding:
                flips = ~bit_equal(np.asarray(a, np.float64) + 0.0,
                                   np.asarray(e, np.float64) + 0.0)
                keep = ~flips.reshape(flips.shape[0], -1).any(axis=0)
                results.append((name, True, f"{report.differing} rounding-level flip(s) "
                                f"allowed in {report.neurons} neuron(s)"))
            else:
                results.append((name, False, str(report)))
            continue
        results.append((name, *_compare_values(name, got, want, entry, manifest["dtype"],
                                               exact, ulps, keep)))
    return results


def _compare_values(name: str, got: np.ndarray, want: np.ndarray, entry: dict, dtype: str,
                    exact: bool, ulps: float, keep) -> tuple:
    if keep is not None:
        per_neuron = want.ndim >= 1 and want.reshape(want.shape[0], -1).shape[1] == keep.size \
            and name in _POTENTIALS + ("grad_x_seq",)
        if per_neuron:
            mask = np.broadcast_to(keep, want.reshape(want.shape[0], -1).shape).reshape(want.shape)
            got, want = np.where(mask, got, 0), np.where(mask, want, 0)
        elif name.endswith("_init") and want.size == keep.size:    # a state [N, *]
            mask = keep.reshape(want.shape)
            got, want = np.where(mask, got, 0), np.where(mask, want, 0)
        elif name.startswith("grad_"):
            return None, "not compared: a spike flipped, and this gradient sums over neurons"
    if exact:
        same = bit_equal(got.astype(want.dtype), want)
        if same.all():
            return True, "bitwise equal"
        first = np.unravel_index(int(np.argmax(~same)), want.shape)
        return False, (f"{int((~same).sum())} of {want.size} element(s) differ bitwise; "
                       f"first at {tuple(int(i) for i in first)}: actual "
                       f"{float(got[first]):.9g}, expected {float(want[first]):.9g}")
    steps, fan_in = int(entry.get("steps", 1)), int(entry.get("fan_in", 1))
    try:
        assert_grads_close(got, want, steps=steps, fan_in=fan_in, ulps=ulps, dtype=dtype,
                           name=name)
    except AssertionError as e:
        return False, str(e).split(": ", 1)[1]
    err = relative_error(got, want)
    return True, "bitwise equal" if bit_equal(got.astype(want.dtype), want).all() else \
        f"normwise error {err:.2g}"


def assert_outputs_match(case: Case, actual: dict, expected: dict | None = None, *,
                         exact: bool = False, allow_rounding_flips: bool = False,
                         ulps: float = 16.0) -> None:
    """Assert an implementation's `actual` outputs for `case` match refsnn's
    (`expected`, computed when not given); outputs missing from `actual` are
    not checked, except the spikes. The message lists every failing output."""
    expected = reference_outputs(case) if expected is None else expected
    manifest = case.manifest(expected)
    results = compare_outputs(manifest, case.inputs, actual, expected, exact=exact,
                              allow_rounding_flips=allow_rounding_flips, ulps=ulps)
    bad = [f"{n}: {msg}" for n, ok, msg in results if ok is False]
    if bad:
        raise AssertionError(f"case {case.name} ({case.component} {_describe(manifest)}):\n  "
                             + "\n  ".join(bad))


def _describe(manifest: dict) -> str:
    c = manifest["config"]
    if manifest["component"] == "network":
        return f"{c.get('pattern')}, {len(c.get('layers', []))} layers, {manifest['dtype']}"
    kw = ", ".join(f"{k}={v!r}" for k, v in c.get("kwargs", {}).items())
    sg = c.get("surrogate")
    sg_kw = ", ".join(f"{k}={v!r}" for k, v in (sg or {}).get("kwargs", {}).items())
    sgs = f", surrogate={sg['class']}({sg_kw})" if sg else ""
    mode = f", step_mode={c['step_mode']}" if "step_mode" in c else ""
    train = ", eval" if c.get("training", True) is False else ""
    return f"{c.get('class')}({kw}{sgs}{mode}{train}), {manifest['dtype']}"


# ----------------------------------------------------------------------------
# writing a bundle
# ----------------------------------------------------------------------------
class VerificationError(Exception):
    """refsnn and SpikingJelly disagree on some cases at export; `failures`
    lists `(case name, message)`."""

    def __init__(self, failures: list):
        self.failures = failures
        super().__init__(f"{len(failures)} case(s) differ from SpikingJelly: "
                         + ", ".join(n for n, _ in failures))


def _verify(case: Case, expected: dict) -> tuple:
    """(check dict for the manifest, failure message or None) of refsnn's
    `expected` against SpikingJelly on `case`."""
    try:
        sj = spikingjelly_outputs(case)
    except Exception as e:  # noqa: BLE001 - report, do not crash the export
        return None, f"SpikingJelly raised {type(e).__name__}: {_one_line(e)}"
    results = compare_outputs(case.manifest(expected), case.inputs, sj, expected)
    bad = [f"{n}: {msg}" for n, ok, msg in results if ok is False]
    check = {n: (msg if ok else "not produced by SpikingJelly") for n, ok, msg in results}
    return check, ("; ".join(bad) if bad else None)


def _write_npy(path: Path, array: np.ndarray) -> None:
    array = np.asarray(array)
    np.save(path, array.astype(array.dtype.newbyteorder("<"), order="C"), allow_pickle=False)


def export_bundle(directory, cases=None, verify: bool = True, force: bool = False) -> dict:
    """Write `cases` (default: `default_cases()`) as a golden bundle in
    `directory`: one folder per case with manifest.json and .npy files, and an
    index.json listing the cases.

    verify: when torch and SpikingJelly import, run every case in SpikingJelly
      first and record its version and the comparison in each manifest
      (otherwise `spikingjelly_version` is null). A disagreement raises
      VerificationError and writes nothing.
    force: write into a non-empty directory (files of the same name are replaced).
    Returns `{"cases": n, "spikingjelly_version": version or None}`.
    """
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise BundleError(f"{directory}: exists and is not a directory")
    if directory.exists() and any(directory.iterdir()) and not force:
        raise BundleError(f"{directory}: directory is not empty; choose a new one or pass "
                          f"--force to write over it")
    cases = default_cases() if cases is None else list(cases)
    names = [c.name for c in cases]
    if len(set(names)) != len(names):
        raise ValueError("export_bundle: case names must be unique")
    sj_version = spikingjelly_version() if verify else None
    written, failures = [], []
    for case in cases:
        expected = reference_outputs(case)
        sj = None
        if sj_version is not None:
            check, problem = _verify(case, expected)
            if problem is not None:
                failures.append((case.name, problem))
            sj = {"version": sj_version, "check": check}
        written.append((case, expected, case.manifest(expected, sj)))
    if failures:
        raise VerificationError(failures)
    directory.mkdir(parents=True, exist_ok=True)
    for case, expected, manifest in written:
        folder = directory / case.name
        folder.mkdir(exist_ok=True)
        for name, array in {**case.inputs, **expected}.items():
            _write_npy(folder / manifest["arrays"][name]["file"], array)
        (folder / "manifest.json").write_text(json.dumps(manifest, indent=1, allow_nan=False)
                                              + "\n")
    from . import __version__
    index = {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "refsnn_version": __version__,
             "spikingjelly_version": sj_version, "cases": names}
    (directory / "index.json").write_text(json.dumps(index, indent=1) + "\n")
    return {"cases": len(cases), "spikingjelly_version": sj_version}


# ----------------------------------------------------------------------------
# reading and validating a bundle (never unpickles)
# ----------------------------------------------------------------------------
@dataclass
class BundleCase:
    """A case read from disk: its manifest, the arrays an implementation
    receives (`inputs`) and the ones it must reproduce (`expected`)."""
    path: Path
    manifest: dict
    inputs: dict
    expected: dict


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text if len(text) <= 300 else text[:297] + "..."


def _read_json(path: Path) -> dict:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise BundleError(f"{path}: file missing") from None
    except (OSError, UnicodeDecodeError) as e:
        raise BundleError(f"{path}: cannot be read: {_one_line(e)}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise BundleError(f"{path}: invalid JSON: {e.msg} (line {e.lineno}, column {e.colno})") \
            from None
    if not isinstance(data, dict):
        raise BundleError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def _check_schema(path: Path, data: dict) -> None:
    if data.get("schema") != SCHEMA:
        raise BundleError(f"{path}: field 'schema' must be {SCHEMA!r}, got {data.get('schema')!r}")
    version = data.get("schema_version")
    if "schema_version" not in data:
        raise BundleError(f"{path}: missing field 'schema_version'")
    if version != SCHEMA_VERSION or isinstance(version, bool):
        raise BundleError(f"{path}: unknown schema_version {version!r} (this refsnn reads "
                          f"version {SCHEMA_VERSION})")


_MANIFEST_FIELDS = {"name": str, "component": str, "config": dict, "dtype": str,
                    "conventions": dict, "refsnn_version": str,
                    "spikingjelly_version": (str, type(None)), "arrays": dict}

#: per component: (required config fields, required arrays by role)
_COMPONENT_RULES = {
    "neuron": (("class", "kwargs", "surrogate"),
               {"x_seq": "input", "v_init": "input", "spike_seq": "output"}),
    "surrogate": (("class",), {"x": "input", "y": "output"}),
    "network": (("pattern", "layers"), {"x_seq": "input", "spike_seq": "output"}),
}


def _is_count(value, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _validate_manifest(path: Path, m: dict) -> None:
    _check_schema(path, m)
    for key, kind in _MANIFEST_FIELDS.items():
        if key not in m:
            raise BundleError(f"{path}: missing field '{key}'")
        if not isinstance(m[key], kind):
            raise BundleError(f"{path}: field '{key}' has type {type(m[key]).__name__}")
    if m["component"] not in COMPONENTS:
        raise BundleError(f"{path}: field 'component' is {m['component']!r}, expected one of "
                          f"{', '.join(COMPONENTS)}")
    if m["dtype"] not in DTYPES:
        raise BundleError(f"{path}: field 'dtype' is {m['dtype']!r}, expected one of "
                          f"{', '.join(DTYPES)}")
    config_fields, required = _COMPONENT_RULES[m["component"]]
    for key in config_fields:
        if key not in m["config"]:
            raise BundleError(f"{path}: missing field 'config.{key}'")
    for name, entry in m["arrays"].items():
        where = f"{path}: arrays.{name}"
        if not isinstance(entry, dict):
            raise BundleError(f"{where}: expected an object")
        for key in ("file", "role", "dtype", "shape"):
            if key not in entry:
                raise BundleError(f"{where}: missing field '{key}'")
        file = entry["file"]
        if not isinstance(file, str) or not file.endswith(".npy") or file.startswith(".") \
                or file != os.path.basename(file):
            raise BundleError(f"{where}.file: must be a plain file name ending in .npy, "
                              f"got {file!r}")
        if entry["role"] not in ROLES:
            raise BundleError(f"{where}.role: {entry['role']!r} is not one of {', '.join(ROLES)}")
        if entry["dtype"] != m["dtype"]:
            raise BundleError(f"{where}.dtype: {entry['dtype']!r} differs from the case dtype "
                              f"{m['dtype']!r}")
        shape = entry["shape"]
        if not isinstance(shape, list) or not all(_is_count(s, 0) for s in shape):
            raise BundleError(f"{where}.shape: expected a list of non-negative integers, "
                              f"got {shape!r}")
        if entry["role"] in ("output", "gradient") and not _is_count(entry.get("steps"), 1):
            raise BundleError(f"{where}.steps: expected an integer >= 1, got "
                              f"{entry.get('steps')!r}")
        if entry["role"] == "gradient" and not _is_count(entry.get("fan_in"), 1):
            raise BundleError(f"{where}.fan_in: expected an integer >= 1, got "
                              f"{entry.get('fan_in')!r}")
    for name, role in required.items():
        if name not in m["arrays"]:
            raise BundleError(f"{path}: missing field 'arrays.{name}'")
        if m["arrays"][name]["role"] != role:
            raise BundleError(f"{path}: arrays.{name}.role must be {role!r}")
    _validate_shapes(path, m)


def _validate_shapes(path: Path, m: dict) -> None:
    """Shapes that must agree: a gradient and what it differentiates, an
    upstream weight and its output, a neuron's sequences and states."""
    arrays = {n: tuple(e["shape"]) for n, e in m["arrays"].items()}
    pairs = []
    for name in arrays:
        if name.startswith("grad_"):
            base = name[len("grad_"):]
            pairs.append((name, base))
    if m["component"] == "neuron":
        pairs += [(n, "x_seq") for n in ("spike_seq", "v_seq", "h_seq")]
    if m["component"] == "surrogate":
        pairs.append(("y", "x"))
    for a, b in pairs:
        if a in arrays and b in arrays and arrays[a] != arrays[b]:
            raise BundleError(f"{path}: arrays.{a}.shape {list(arrays[a])} differs from "
                              f"arrays.{b}.shape {list(arrays[b])}")
    x = arrays.get("x_seq", ())
    if m["component"] in ("neuron", "network") and len(x) < 2:
        raise BundleError(f"{path}: arrays.x_seq.shape {list(x)} must be [T, N, *]")
    if m["component"] == "neuron":
        for name in arrays:
            if name.endswith("_init") and arrays[name] != x[1:]:
                raise BundleError(f"{path}: arrays.{name}.shape {list(arrays[name])} must be "
                                  f"x_seq's step shape {list(x[1:])}")
    if m["component"] == "network" and arrays["spike_seq"][:2] != x[:2]:
        raise BundleError(f"{path}: arrays.spike_seq.shape {list(arrays['spike_seq'])} must "
                          f"start with x_seq's [T, N] = {list(x[:2])}")


def _read_npy(path: Path, entry: dict) -> np.ndarray:
    """Read one .npy file without unpickling; check dtype and shape against
    its manifest entry."""
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise BundleError(f"{path}: file missing (listed in manifest.json)") from None
    except OSError as e:
        raise BundleError(f"{path}: cannot be read: {_one_line(e)}") from None
    with f:
        try:
            version = np.lib.format.read_magic(f)
            if version not in ((1, 0), (2, 0)):
                raise BundleError(f"{path}: .npy format version {version[0]}.{version[1]} is "
                                  f"not supported (1.0 or 2.0)")
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                np.lib.format.read_array_header_2_0
            shape, _, dtype = read_header(f)
        except (ValueError, EOFError, OSError, SyntaxError) as e:
            raise BundleError(f"{path}: not a valid .npy file ({_one_line(e)})") from None
        if dtype.hasobject:
            raise BundleError(f"{path}: holds a pickled object array (dtype {dtype}); golden "
                              f"files are read with allow_pickle=False")
        f.seek(0)
        try:
            array = np.lib.format.read_array(f, allow_pickle=False)
        except (ValueError, EOFError, OSError) as e:
            raise BundleError(f"{path}: truncated or corrupted .npy data ({_one_line(e)})") \
                from None
        if f.read(1):
            raise BundleError(f"{path}: corrupted .npy file (extra bytes after the array data)")
    expected_dtype = np.dtype(entry["dtype"]).newbyteorder("<")
    if array.dtype != expected_dtype:
        raise BundleError(f"{path}: dtype {array.dtype.str} but manifest.json says "
                          f"{entry['dtype']} (little-endian {expected_dtype.str})")
    if list(array.shape) != list(entry["shape"]):
        raise BundleError(f"{path}: shape {list(array.shape)} but manifest.json says "
                          f"{entry['shape']}")
    return array


def read_case(folder) -> BundleCase:
    """Read and validate one case folder; raises BundleError (one line naming
    the file or field) on anything missing, malformed or inconsistent."""
    folder = Path(folder)
    path = folder / "manifest.json"
    manifest = _read_json(path)
    _validate_manifest(path, manifest)
    inputs, expected = {}, {}
    for name, entry in manifest["arrays"].items():
        array = _read_npy(folder / entry["file"], entry)
        (expected if entry["role"] in ("output", "gradient") else inputs)[name] = array
    return BundleCase(folder, manifest, inputs, expected)


def read_bundle(directory, select: str | None = None) -> list:
    """Read and validate every case of a bundle (a directory with index.json,
    or a single case folder with manifest.json); `select` keeps the cases
    whose name contains it. Raises BundleError on the first invalid file."""
    directory = Path(directory)
    if not directory.is_dir():
        raise BundleError(f"{directory}: no such directory")
    index_path = directory / "index.json"
    if not index_path.exists() and (directory / "manifest.json").exists():
        names = [None]
    else:
        if not index_path.exists():
            raise BundleError(f"{index_path}: file missing (not a golden bundle; write one "
                              f"with `refsnn golden export DIR`)")
        index = _read_json(index_path)
        _check_schema(index_path, index)
        names = index.get("cases")
        if not isinstance(names, list) or not names or \
                not all(isinstance(n, str) and n and n == os.path.basename(n) for n in names):
            raise BundleError(f"{index_path}: field 'cases' must be a non-empty list of "
                              f"case folder names")
    cases = []
    for name in names:
        if select and name and select not in name:
            continue
        case = read_case(directory if name is None else directory / name)
        if name is not None and case.manifest["name"] != name:
            raise BundleError(f"{directory / name / 'manifest.json'}: field 'name' is "
                              f"{case.manifest['name']!r}, but the folder is {name!r}")
        cases.append(case)
    if not cases:
        raise BundleError(f"{directory}: no case matches --select {select!r}")
    return cases


# ----------------------------------------------------------------------------
# checking an implementation
# ----------------------------------------------------------------------------
class ImplError(Exception):
    """`--impl module:function` cannot be loaded; the message is one line."""


def load_impl(spec: str):
    """The function named by 'package.module:function' or 'path/to/file.py:function'
    (the current directory is importable)."""
    module_name, sep, func_name = spec.rpartition(":")
    if not sep or not module_name or not func_name:
        raise ImplError(f"--impl {spec!r}: expected 'module:function' or 'file.py:function'")
    try:
        if module_name.endswith(".py"):
            file = Path(module_name)
            if not file.is_file():
                raise ImplError(f"--impl {spec!r}: file {module_name} not found")
            spec_obj = importlib.util.spec_from_file_location(file.stem, file)
            module = importlib.util.module_from_spec(spec_obj)
            spec_obj.loader.exec_module(module)
        else:
            import sys
            if os.getcwd() not in sys.path and "" not in sys.path:
                sys.path.insert(0, os.getcwd())
            module = importlib.import_module(module_name)
    except ImplError:
        raise
    except Exception as e:  # noqa: BLE001 - any import failure is the user's to fix
        raise ImplError(f"--impl {spec!r}: cannot import {module_name!r}: "
                        f"{type(e).__name__}: {_one_line(e)}") from None
    func = getattr(module, func_name, None)
    if func is None:
        raise ImplError(f"--impl {spec!r}: module {module_name!r} has no attribute {func_name!r}")
    if not callable(func):
        raise ImplError(f"--impl {spec!r}: {func_name!r} is not callable")
    return func


def check_case(case: BundleCase, impl, *, exact: bool = False,
               allow_rounding_flips: bool = False, ulps: float = 16.0) -> CaseResult:
    """Run `impl` on one case and compare its outputs. An implementation that
    raises NotImplementedError declines (status 'skip'); any other exception,
    a non-dict result or a value that is not a numeric array is a failure."""
    name = case.manifest["name"]
    try:
        actual = impl(copy.deepcopy(case.manifest), {k: v.copy() for k, v in case.inputs.items()})
    except NotImplementedError as e:
        reason = _one_line(e) or "NotImplementedError"
        return CaseResult(name, "skip", f"declined by the implementation ({reason})")
    except Exception as e:  # noqa: BLE001 - an implementation's crash is a failed case
        return CaseResult(name, "fail", f"the implementation raised {type(e).__name__}: "
                                        f"{_one_line(e)}")
    if not isinstance(actual, dict):
        return CaseResult(name, "fail", f"the implementation returned "
                                        f"{type(actual).__name__}, expected a dict of arrays")
    arrays = {}
    for key, value in actual.items():
        if value is None:       # the same as not returned
            continue
        try:
            arr = np.asarray(value)
        except Exception as e:  # noqa: BLE001
            return CaseResult(name, "fail", f"output {key!r} is not an array: {_one_line(e)}")
        if arr.dtype.kind not in "biuf":
            return CaseResult(name, "fail", f"output {key!r} has dtype {arr.dtype}, expected "
                                            f"a numeric array")
        arrays[key] = arr
    results = compare_outputs(case.manifest, case.inputs, arrays, case.expected, exact=exact,
                              allow_rounding_flips=allow_rounding_flips, ulps=ulps)
    failed = [(n, msg) for n, ok, msg in results if ok is False]
    missing = [n for n, ok, _ in results if ok is None]
    checked = [n for n, ok, _ in results if ok]
    details = [f"{n}: {msg}" for n, msg in failed]
    summary = f"{len(checked)} of {len(results)} outputs match"
    if missing:
        summary += f"; not checked: {', '.join(missing)}"
    if failed:
        return CaseResult(name, "fail", f"{len(failed)} output(s) differ: "
                          + ", ".join(n for n, _ in failed), details)
    return CaseResult(name, "pass", summary)


def check_bundle(directory, impl, *, select: str | None = None, exact: bool = False,
                 allow_rounding_flips: bool = False, ulps: float = 16.0) -> list:
    """Read and validate the bundle (BundleError on a bad file, before
    anything runs), then `check_case` every case; returns the CaseResults."""
    cases = read_bundle(directory, select)
    return [check_case(c, impl, exact=exact, allow_rounding_flips=allow_rounding_flips,
                       ulps=ulps) for c in cases]
