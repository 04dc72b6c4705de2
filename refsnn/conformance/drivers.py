"""The drivers that run each kind of catalog record in SpikingJelly / PyTorch
(`reference`) and in refsnn (`candidate`); see `runner.py` for the output
keys and how they are compared. torch and SpikingJelly are imported inside
the functions that need them.
"""
from __future__ import annotations

import importlib

import numpy as np

from . import inputs
from .catalog import Act, Case, Sg
from .neuron_run import run_neuron
from .runner import register_driver

__all__ = ["available_backends", "NeuronDriver", "SurrogateDriver", "OptimizerDriver"]


# ----------------------------------------------------------------------------
# helpers shared by the drivers
# ----------------------------------------------------------------------------
def _import(path: str):
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _torch():
    import torch
    return torch


def _torch_dtype(dtype: str):
    return getattr(_torch(), dtype)


def _sj_api_path(case: Case) -> str:
    return "spikingjelly.clock_driven" if case.record.api == "cd" else \
        "spikingjelly.activation_based"


def _build_value(value, framework: str, case: Case):
    """Turn catalog values (`Sg`, `Act`) into modules of `framework`
    ('sj' or 'refsnn'); other values pass through."""
    if isinstance(value, Sg):
        if framework == "sj":
            cls = _import(f"{_sj_api_path(case)}.surrogate.{value.name}")
        else:
            cls = _import(f"refsnn.surrogate.{value.name}")
        return cls(**dict(value.kwargs))
    if isinstance(value, Act):
        cls = _import(f"torch.nn.{value.name}" if framework == "sj" else
                      f"refsnn.layers.{value.name}")
        return cls()
    return value


def _kwargs(case: Case, framework: str) -> dict:
    return {k: _build_value(v, framework, case) for k, v in case.config.items()}


def _gaussian(seed: int, shape, dtype) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def available_backends() -> tuple:
    """The refsnn neuron backends that can run here: 'numpy' always, the fused
    ones when a multi-step IF neuron accepts them (OpenCL needs a device)."""
    from .catalog import NEURON_BACKENDS
    found = []
    for b in NEURON_BACKENDS:
        try:
            neurons = importlib.import_module("refsnn.neurons")
            neurons.IFNode(step_mode="m", backend=b)
        except Exception:  # noqa: BLE001 - any failure means "not available here"
            continue
        found.append(b)
    return tuple(found)


# ----------------------------------------------------------------------------
# neurons
# ----------------------------------------------------------------------------
def _neuron_inputs(case: Case) -> dict:
    rec = case.record
    shape = rec.option("shape")
    v_th = case.config.get("v_threshold", 1.0)
    x = inputs.neuron_input(case.seed, shape, case.dtype, rec.option("low"),
                            rec.option("high"), specials=True, v_threshold=v_th)
    return dict(x=x, g_spikes=_gaussian(case.seed + 1, shape, case.dtype),
                g_v=_gaussian(case.seed + 2, shape, case.dtype))


def _neuron_class_name(case: Case) -> str:
    return case.record.sj.rsplit(".", 1)[1]


def _v_key(case: Case) -> str:
    return "close:v_seq" if case.record.forward_rtol else "exact:v_seq"


def _output_key(case: Case) -> str:
    """LIAF outputs the analog `y`, every other neuron spikes."""
    return "exact:y" if _neuron_class_name(case) == "LIAFNode" else "spikes"


def _sj_neuron(case: Case):
    cls = _import(case.record.sj)
    kw = _kwargs(case, "sj")
    name = _neuron_class_name(case)
    if case.record.api == "ab":
        kw.update(step_mode=case.step_mode, backend="torch")
        if case.step_mode == "m":
            kw["store_v_seq"] = True
    elif name.startswith("MultiStep"):
        kw["backend"] = "torch"
    if name == "LIAFNode":
        m = cls(kw.pop("act"), kw.pop("threshold_related"), **kw)
    else:
        m = cls(**kw)
    m.to(_torch_dtype(case.dtype))
    m.train(case.training)
    return m


def _record_charge(m, store: list) -> None:
    """Make `m.neuronal_charge` also append the charged potential h to `store`
    (SpikingJelly's torch paths call it once per step)."""
    charge = getattr(m, "neuronal_charge", None)
    if charge is None:
        return

    def recording_charge(x):
        charge(x)
        v = m.v
        store.append(v.detach().clone() if hasattr(v, "detach") else v)
    m.neuronal_charge = recording_charge


def _run_sj_neuron(case: Case, data: dict) -> dict:
    torch = _torch()
    m = _sj_neuron(case)
    state = {k: v.detach().numpy().copy() for k, v in m.state_dict().items()}
    hs = []
    _record_charge(m, hs)
    x = torch.from_numpy(data["x"].copy())
    if case.training:
        x.requires_grad_(True)
    if case.record.option("tensor_state"):
        m.v = torch.full_like(x[0].detach(), m.v)
    spikes, v_seq = run_neuron(m, x, case.step_mode == "m", torch.stack)
    out = {_output_key(case): spikes.detach().numpy().copy(),
           _v_key(case): v_seq.detach().numpy().copy(), "diag:state_dict": state}
    if len(hs) == x.shape[0] and all(torch.is_tensor(h) for h in hs):
        out["diag:h"] = torch.stack([h.expand_as(x[0]) for h in hs]).numpy()
    if case.training:
        loss = (spikes * torch.from_numpy(data["g_spikes"])).sum() + \
            (v_seq * torch.from_numpy(data["g_v"])).sum()
        loss.backward()
        out["grad:x"] = x.grad.numpy().copy()
        for name, p in m.named_parameters():
            out[f"grad:{name}"] = p.grad.numpy().copy()
    return out


def _rs_neuron(case: Case):
    cls = _import(case.record.refsnn)
    kw = _kwargs(case, "refsnn")
    if case.record.api == "ab":
        kw["step_mode"] = case.step_mode
        if case.step_mode == "m":
            kw["store_v_seq"] = True
    kw["backend"] = case.backend
    name = _neuron_class_name(case)
    if name == "LIAFNode":
        m = cls(kw.pop("act"), kw.pop("threshold_related"), **kw)
    else:
        m = cls(**kw)
    m.to(np.dtype(case.dtype))
    m.train(case.training)
    return m


def _run_refsnn_neuron(case: Case, data: dict, sj_state: dict | None) -> dict:
    import refsnn as rs
    m = _rs_neuron(case)
    if sj_state:
        m.load_state_dict(sj_state)
    x = rs.tensor(data["x"], requires_grad=case.training)
    if case.record.option("tensor_state"):
        m.v = rs.tensor(np.full(x.shape[1:], m.v, dtype=x.dtype))
    spikes, v_seq = run_neuron(m, x, case.step_mode == "m", rs.stack)
    out = {_output_key(case): np.array(spikes.data), _v_key(case): np.array(v_seq.data)}
    if case.training:
        loss = (spikes * rs.tensor(data["g_spikes"])).sum() + (v_seq * rs.tensor(data["g_v"])).sum()
        loss.backward()
        out["grad:x"] = np.array(x.grad.data)
        for name, p in m.named_parameters():
            out[f"grad:{name}"] = np.zeros_like(p.data) if p.grad is None else np.array(p.grad.data)
    return out


class NeuronDriver:
    """A neuron over `x_seq: [T, N, F]`: spikes, post-reset potentials `v_seq`,
    gradients of `sum(spikes*g_s) + sum(v_seq*g_v)` w.r.t. x and parameters.
    Parameters (PLIF `w`, KLIF `k`) are copied from SpikingJelly's state_dict."""

    make_inputs = staticmethod(_neuron_inputs)
    error_axis = 0  # each neuron's trajectory is scaled by its own largest value

    reference = staticmethod(_run_sj_neuron)

    @staticmethod
    def candidate(case, data, reference):
        return _run_refsnn_neuron(case, data, reference.get("diag:state_dict"))

    @staticmethod
    def steps(case):
        return case.record.option("shape")[0]


# ----------------------------------------------------------------------------
# surrogate functions
# ----------------------------------------------------------------------------
def _surrogate_inputs(case: Case) -> dict:
    cfg = case.config
    edges = [0.0, -0.0, -1.0, 1.0]
    for key in ("alpha", "w"):
        if key in cfg and cfg[key]:
            edges += [1.0 / cfg[key], -1.0 / cfg[key], cfg[key], -cfg[key]]
    dtype = np.dtype(case.dtype)
    tiny = np.finfo(dtype).smallest_subnormal
    specials = [tiny, -tiny, np.nan, 1e30, -1e30]
    grid = np.linspace(-3.0, 3.0, 49)
    rng = np.random.default_rng(case.seed)
    x = np.concatenate([grid, edges, specials, rng.uniform(-3, 3, 16)]).astype(dtype)
    return dict(x=x, g=_gaussian(case.seed + 1, x.shape, dtype))


def _surrogate_kwargs(case: Case, framework: str) -> dict:
    kw = dict(case.config)
    if framework == "refsnn":
        kw.update(case.record.option("refsnn_kwargs", {}))
    return kw


def _surrogate_key(case: Case) -> str:
    if case.config.get("spiking", True):
        return "spikes"
    return "exact:y" if case.record.option("exact_primitive") else "close:y"


class SurrogateDriver:
    """A surrogate function on a 1-D x (grid, edges, subnormals, NaN, +-1e30):
    its forward (heaviside or primitive) and the gradient of `sum(f(x)*g)`."""

    make_inputs = staticmethod(_surrogate_inputs)

    @staticmethod
    def reference(case, data):
        torch = _torch()
        f = _import(case.record.sj)(**_surrogate_kwargs(case, "sj"))
        x = torch.from_numpy(data["x"].copy()).requires_grad_(True)
        y = f(x)
        (y * torch.from_numpy(data["g"])).sum().backward()
        return {_surrogate_key(case): y.detach().numpy().copy(), "grad:x": x.grad.numpy().copy()}

    @staticmethod
    def candidate(case, data, reference):
        import refsnn as rs
        f = _import(case.record.refsnn)(**_surrogate_kwargs(case, "refsnn"))
        x = rs.tensor(data["x"], requires_grad=True)
        y = f(x)
        (y * rs.tensor(data["g"])).sum().backward()
        return {_surrogate_key(case): np.array(y.data), "grad:x": np.array(x.grad.data)}

    @staticmethod
    def steps(case):
        return 1


# ----------------------------------------------------------------------------
# optimizers
# ----------------------------------------------------------------------------
_PARAM_SHAPES = ((7, 5), (13,), (3, 4, 6), ())


def _optimizer_inputs(case: Case) -> dict:
    rng = np.random.default_rng(case.seed)
    steps = case.record.option("steps")
    init = [rng.standard_normal(s).astype(case.dtype) for s in _PARAM_SHAPES]
    grads = [[rng.standard_normal(s).astype(case.dtype) for s in _PARAM_SHAPES]
             for _ in range(steps)]
    return dict(init=init, grads=grads)


class OptimizerDriver:
    """An optimizer on four parameters (matrix, vector, 3-D, scalar) fed the same
    random gradients for `steps` steps: parameters and optimizer state after
    the last step (`momentum_buffer`, `exp_avg`, `exp_avg_sq`, ...)."""

    make_inputs = staticmethod(_optimizer_inputs)

    @staticmethod
    def reference(case, data):
        torch = _torch()
        params = [torch.nn.Parameter(torch.from_numpy(a.copy())) for a in data["init"]]
        opt = _import(case.record.sj)(params, **case.config)
        for grads in data["grads"]:
            for p, g in zip(params, grads):
                p.grad = torch.from_numpy(g.copy())
            opt.step()
        out = {}
        for i, p in enumerate(params):
            out[f"close:param{i}"] = p.detach().numpy().copy()
            for name, value in opt.state[p].items():
                if name != "step":
                    out[f"close:param{i}.{name}"] = value.detach().numpy().copy()
        return out

    @staticmethod
    def candidate(case, data, reference):
        from refsnn.autograd import Tensor
        from refsnn.module import Parameter
        params = [Parameter(a.copy()) for a in data["init"]]
        opt = _import(case.record.refsnn)(params, **case.config)
        for grads in data["grads"]:
            for p, g in zip(params, grads):
                p.grad = Tensor(g.copy())
            opt.step()
        out = {}
        for i, p in enumerate(params):
            out[f"close:param{i}"] = np.array(p.data)
            for name, value in opt.state[p].items():
                if name != "step":
                    out[f"close:param{i}.{name}"] = np.array(getattr(value, "data", value))
        return out

    @staticmethod
    def steps(case):
        return case.record.option("steps")


register_driver("optimizer", OptimizerDriver)
register_driver("neuron", NeuronDriver)
register_driver("surrogate", SurrogateDriver)
