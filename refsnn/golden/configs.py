"""Building refsnn modules from a case's JSON config (docs/golden-format.md):
surrogates, neurons (either SpikingJelly API, either step mode) and small
networks in both propagation patterns."""
from __future__ import annotations

import inspect

import numpy as np

__all__ = ["surrogate_from_config", "neuron_from_config", "network_from_config",
           "neuron_state_names", "float_kwargs", "v_threshold", "state_default",
           "layer_by_layer_blocks", "STATELESS_LAYERS"]


def surrogate_from_config(config: dict):
    """`{"class": "ATan", "kwargs": {"alpha": 3.0}}` -> `refsnn.surrogate.ATan(alpha=3.0)`."""
    from .. import surrogate
    cls = getattr(surrogate, config["class"], None)
    if not isinstance(cls, type):
        raise ValueError(f"unknown surrogate class {config['class']!r}")
    return cls(**config.get("kwargs", {}))


def float_kwargs(kwargs: dict) -> dict:
    """JSON writers may spell 2.0 as 2; SpikingJelly's neurons insist on floats."""
    return {k: float(v) if isinstance(v, int) and not isinstance(v, bool) else v
            for k, v in kwargs.items()}


def neuron_from_config(config: dict, dtype="float32", backend: str = "numpy",
                       step_mode: str | None = None):
    """A refsnn neuron from a neuron config (see docs/golden-format.md):
    `{"class": "LIFNode", "api": "activation_based", "step_mode": "m",
    "training": true, "kwargs": {...}, "surrogate": {...}}`; `MultiStep*`
    classes are `clock_driven`'s. Multi-step neurons record `v_seq`."""
    from .. import neurons
    name = config["class"]
    cls = getattr(neurons, name, None)
    if not isinstance(cls, type) or not issubclass(cls, neurons.BaseNode):
        raise ValueError(f"unknown neuron class {name!r}")
    kwargs = float_kwargs(config.get("kwargs", {}))
    kwargs["surrogate_function"] = surrogate_from_config(
        config.get("surrogate", {"class": "Sigmoid"}))
    kwargs["backend"] = backend
    if not name.startswith("MultiStep"):
        mode = step_mode or config.get("step_mode", "m")
        kwargs.update(step_mode=mode, store_v_seq=mode == "m")
    m = cls(**kwargs)
    m.to(np.dtype(dtype))
    m.train(bool(config.get("training", True)))
    return m


def neuron_state_names(config: dict) -> tuple:
    """The neuron's state variables: ('v',), or ('v', 'w') for Izhikevich."""
    return ("v", "w") if config["class"] == "IzhikevichNode" else ("v",)


#: the stateless layer types a network config may use (refsnn.layers / torch.nn names)
STATELESS_LAYERS = ("Linear", "Conv2d", "Flatten", "AvgPool2d", "MaxPool2d")


def network_from_config(config: dict, dtype="float32"):
    """A refsnn network from a network config `{"pattern": ..., "layers": [...]}`.

    Returns `(net, layers)`: `net` maps `x_seq: [T, N, *]` to the last
    layer's spikes `[T, N, *]`; `layers[i]` is the module built for config
    layer i (parameters are named `param.<i>.<name>`).
    pattern 'layer_by_layer': runs of stateless layers in `SeqToANNContainer`,
    neurons in step mode 'm'; 'step_by_step': everything in one
    `MultiStepContainer`, neurons in step mode 's'.
    """
    from .. import layers as L
    from ..containers import MultiStepContainer, SeqToANNContainer, Sequential
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
        elif kind in STATELESS_LAYERS:
            built.append(getattr(L, kind)(**kwargs))
            built[-1].to(np.dtype(dtype))
        else:
            raise ValueError(f"unknown layer type {kind!r}")
    if pattern == "step_by_step":
        return MultiStepContainer(*built), built
    return Sequential(*layer_by_layer_blocks(config["layers"], built, SeqToANNContainer)), built


def layer_by_layer_blocks(layer_specs: list, modules: list, seq_to_ann) -> list:
    """The blocks of a layer-by-layer network: each neuron of `modules` on its
    own, each maximal run of stateless layers wrapped as `seq_to_ann(*run)`
    (refsnn's or SpikingJelly's `SeqToANNContainer`); `layer_specs[i]` is the
    config of `modules[i]`."""
    blocks, run = [], []
    for spec, module in zip(layer_specs, modules):
        if spec["type"] == "neuron":
            if run:
                blocks.append(seq_to_ann(*run))
                run = []
            blocks.append(module)
        else:
            run.append(module)
    if run:
        blocks.append(seq_to_ann(*run))
    return blocks


def v_threshold(config: dict) -> float:
    """A neuron config's `v_threshold` (SpikingJelly's default 1.0)."""
    return float(config.get("kwargs", {}).get("v_threshold", 1.0))


def state_default(config: dict, name: str) -> float:
    """The float a fresh neuron's state variable `name` starts from: v_reset
    (0. for a soft reset) for 'v', w_rest for 'w'."""
    kwargs = config.get("kwargs", {})
    if name == "w":
        return float(kwargs.get("w_rest", 0.0))
    from .. import neurons
    default = inspect.signature(getattr(neurons, config["class"])).parameters["v_reset"].default
    v_reset = kwargs.get("v_reset", default)
    return 0.0 if v_reset is None else float(v_reset)


