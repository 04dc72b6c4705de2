"""A case's outputs and gradients, computed by refsnn (the reference, and
the calling convention `impl(manifest, arrays) -> dict of arrays`) and by
SpikingJelly's torch backend (to verify the reference at export).

Gradients are those of `loss = sum(spike_seq * grad_spike_seq) + sum(v_seq *
grad_v_seq)` (`sum(y * grad_y)` for a surrogate)."""
from __future__ import annotations

import importlib

import numpy as np

from ..autograd import Tensor, stack
from ..conformance.neuron_run import run_neuron
from .catalog import Case
from .configs import (float_kwargs, layer_by_layer_blocks, network_from_config,
                      neuron_from_config, neuron_state_names, surrogate_from_config)

__all__ = ["reference_impl", "reference_outputs", "spikingjelly_version",
           "spikingjelly_outputs"]


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


def _grad_or_zeros(t: Tensor) -> np.ndarray:
    """A copy of `t`'s gradient; zeros when nothing flowed back to it."""
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
        spikes, v_seq = run_neuron(m, x, m.step_mode == "m", stack)
        out = {"spike_seq": np.array(spikes.data), "v_seq": np.array(v_seq.data)}
        if len(hs) == x.shape[0]:
            out["h_seq"] = np.stack(hs)
        if training:
            loss = (spikes * Tensor(arrays["grad_spike_seq"])).sum() + \
                (v_seq * Tensor(arrays["grad_v_seq"])).sum()
            loss.backward()
            out["grad_x_seq"] = _grad_or_zeros(x)
            for k, t in init.items():
                out[f"grad_{k}_init"] = _grad_or_zeros(t)
            for pname, p in m.named_parameters():
                out[f"grad_param.{pname}"] = _grad_or_zeros(p)
    return out


def _surrogate_outputs(manifest: dict, arrays: dict) -> dict:
    f = surrogate_from_config(manifest["config"])
    x = Tensor(arrays["x"], requires_grad=True)
    with np.errstate(all="ignore"):
        y = f(x)
        (y * Tensor(arrays["grad_y"])).sum().backward()
    return {"y": np.array(y.data), "grad_x": _grad_or_zeros(x)}


def _network_outputs(manifest: dict, arrays: dict) -> dict:
    net, built = network_from_config(manifest["config"], manifest["dtype"])
    for i, m in enumerate(built):
        for pname, p in m.named_parameters():
            p.data = np.array(arrays[f"param.{i}.{pname}"])
    x = Tensor(arrays["x_seq"], requires_grad=True)
    with np.errstate(all="ignore"):
        spikes = net(x)
        (spikes * Tensor(arrays["grad_spike_seq"])).sum().backward()
    out = {"spike_seq": np.array(spikes.data), "grad_x_seq": _grad_or_zeros(x)}
    for i, m in enumerate(built):
        for pname, p in m.named_parameters():
            out[f"grad_param.{i}.{pname}"] = _grad_or_zeros(p)
    return out


_REFSNN_RUNNERS = {"neuron": _neuron_outputs, "surrogate": _surrogate_outputs,
                   "network": _network_outputs}


def reference_impl(manifest: dict, arrays: dict) -> dict:
    """refsnn itself under the calling convention (the default `--impl`)."""
    return _REFSNN_RUNNERS[manifest["component"]](manifest, arrays)


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
    kwargs = float_kwargs(config["kwargs"])
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
    multi_step = config["class"].startswith("MultiStep") or config.get("step_mode", "m") == "m"
    spikes, v_seq = run_neuron(m, x, multi_step, torch.stack)
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
        net = torch.nn.Sequential(*layer_by_layer_blocks(config["layers"], built,
                                                         layer.SeqToANNContainer))
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


_SPIKINGJELLY_RUNNERS = {"neuron": _sj_neuron_outputs, "surrogate": _sj_surrogate_outputs,
                         "network": _sj_network_outputs}


def spikingjelly_outputs(case: Case) -> dict:
    """SpikingJelly's (torch backend's) outputs for `case`; needs torch and
    SpikingJelly. SpikingJelly's logging warnings (a single-step neuron in a
    MultiStepContainer) are silenced while it runs."""
    import logging
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        return _SPIKINGJELLY_RUNNERS[case.component](
            case.manifest(), {k: v.copy() for k, v in case.inputs.items()})
    finally:
        logging.disable(previous)

