"""Golden cases in memory (`Case`, and the manifest it writes), how each kind
of case draws its inputs, and the default catalog (`default_cases`)."""
from __future__ import annotations

import copy
import zlib
from dataclasses import dataclass, field

import numpy as np

from ..autograd import Tensor, no_grad
from .configs import (network_from_config, neuron_from_config, neuron_state_names,
                      state_default, v_threshold)
from .schema import CONVENTIONS, SCHEMA, SCHEMA_VERSION

__all__ = ["Case", "array_entry", "output_entries", "threshold_inputs", "neuron_case",
           "surrogate_case", "network_case", "default_cases"]


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
        from .. import __version__
        arrays = {n: array_entry(n, self.roles[n], a) for n, a in self.inputs.items()}
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


def array_entry(name: str, role: str, array: np.ndarray) -> dict:
    """The manifest's `arrays` entry of `array`: file, role, dtype and shape."""
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
        entry = array_entry(name, role, array)
        entry["steps"] = steps
        if role == "gradient":
            if case.component == "network" or name.startswith("grad_param."):
                entry["fan_in"] = int(x.size)  # a weight or PLIF w sums over every step and neuron
            else:
                entry["fan_in"] = 1
        entries[name] = entry
    return entries


def _rng(name: str) -> np.random.Generator:
    """The case's own generator, seeded by its name."""
    return np.random.default_rng(zlib.crc32(name.encode()))


def threshold_inputs(config: dict, state: dict, dtype, lo: float = -1e4,
                     hi: float = 1e4) -> np.ndarray:
    """For a neuron in `state` (`{"v": [M], ...}`), the inputs `x: [M]` whose
    first charge lands on `v_threshold`: exactly where such an input exists in
    `dtype`, else the smallest input that fires. Found by bisection on the
    neuron's own charge (which is non-decreasing in x)."""
    dtype = np.dtype(dtype)
    m = neuron_from_config(config, dtype, step_mode="s")
    v_th = dtype.type(v_threshold(config))
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
    """0, -0, the smallest subnormal of each sign and the largest subnormal."""
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
    v_th = v_threshold(config)
    x = (rng.uniform(low, high, size=shape) * abs(v_th)).astype(d)
    step = shape[1:]
    states = {k: np.full(step, state_default(config, k), dtype=d)
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
    from .. import manual_seed
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


def _neuron_config(cls: str, api: str = "activation_based", step_mode: str = "m",
                   surrogate=("Sigmoid", {}), training: bool = True, **kwargs) -> dict:
    """A neuron config (docs/golden-format.md); `kwargs` are the neuron's."""
    mode = "m" if cls.startswith("MultiStep") else step_mode
    return {"class": cls, "api": api, "step_mode": mode,
            "training": training, "kwargs": kwargs,
            "surrogate": {"class": surrogate[0], "kwargs": dict(surrogate[1])}}


def default_cases() -> list:
    """The default catalog: a few dozen small cases covering the neuron
    classes and their reset / decay forms in both APIs, step modes, eval
    forms, float64, special inputs, a few surrogates, and small networks in
    both propagation patterns."""
    N = _neuron_config
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


