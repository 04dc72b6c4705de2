"""Network cases: a PyTorch / SpikingJelly network and its refsnn twin.

A builder `build(torch, case) -> NetSpec` makes the reference network (torch
seeded by the case, so weights are reproducible) in the case's dtype. The
reference runs it; the candidate runs `refsnn.interop.from_torch` of a copy
taken before the reference touched it, so the twin starts from the same
weights, buffers, memories (dropout masks are injected here: torch's RNG
cannot be reproduced) and modes. Single layers are networks of one module.

Outputs: the network output (`spikes` when it is binary, else `close:out`),
gradients of `sum(out * g)` w.r.t. the input and every parameter, and, in
training, every floating buffer afterwards (BatchNorm running statistics).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np

from .catalog import Case
from .drivers import _gaussian, _import, _torch
from .runner import register_driver

__all__ = ["NetSpec", "NetworkDriver"]


@dataclass
class NetSpec:
    """A reference network and how to drive it.

    - `forward`: 'plain' (`net(x)`, no time), 'module' (`net(x_seq)`), 'loop'
      (`net(x_seq[t])` for each t), 'multi_step_forward' /
      'seq_to_ann_forward' (the framework's functional helper applied to the
      net), 'chunk' (`chunk_multi_step_forward(2, x_seq, net)`);
    - `set_step_mode`: applied with each framework's own
      `functional.set_step_mode` after twinning (None: not applied);
    - `sequences`: how many input sequences are fed one after the other
      without a reset (state and dropout masks carry over);
    - `reset_between`: `reset_net` between the sequences instead;
    - `low`, `high`: input range; `fan_in`: largest reduction, for tolerances.
    """
    module: object
    input_shape: tuple
    forward: str = "module"
    set_step_mode: str | None = None
    sequences: int = 1
    reset_between: bool = False
    low: float = 0.0
    high: float = 1.0
    fan_in: int = 1
    api: str = "ab"
    extra: dict = field(default_factory=dict)


def _functional(framework: str, api: str):
    """The `functional` module of refsnn or of SpikingJelly's `api` ('ab'/'cd')."""
    import importlib
    if framework == "refsnn":
        return importlib.import_module("refsnn.functional")
    return importlib.import_module("spikingjelly.clock_driven.functional" if api == "cd"
                                   else "spikingjelly.activation_based.functional")


def _apply_forward(spec: NetSpec, net, x, F, stack):
    if spec.forward in ("plain", "module"):
        return net(x)
    if spec.forward == "loop":
        return stack([net(x[t]) for t in range(x.shape[0])])
    if spec.forward == "multi_step_forward":
        return F.multi_step_forward(x, net)
    if spec.forward == "seq_to_ann_forward":
        return F.seq_to_ann_forward(x, net)
    if spec.forward == "chunk":
        return F.chunk_multi_step_forward(2, x, net)
    raise ValueError(f"unknown forward kind {spec.forward!r}")


def _inputs(case: Case, spec: NetSpec) -> list:
    rng = np.random.default_rng(case.seed)
    return [rng.uniform(spec.low, spec.high, spec.input_shape).astype(case.dtype)
            for _ in range(spec.sequences)]


def _build(case: Case) -> NetSpec:
    torch = _torch()
    torch.manual_seed(case.seed % (2 ** 31))
    spec = _import(case.record.sj)(torch, case)
    spec.module.to(getattr(torch, case.dtype))
    spec.module.train(case.training)
    return spec


def _output_key(i: int, y: np.ndarray) -> str:
    """Key of the i-th sequence's output: spikes compare bit for bit (the first
    sequence's flips are counted), analog outputs within the tolerance."""
    if np.isin(y, (0.0, 1.0)).all():
        return "spikes" if i == 0 else f"exact:spikes{i}"
    return f"close:out{i}"


def _run(case: Case, spec: NetSpec, net, F, make_tensor, stack, inputs: list, grads: list,
         keys: list) -> dict:
    """Feed `inputs` to `net` (one framework), backpropagate `sum(out_i * g_i)`
    and collect outputs, input/parameter gradients and buffers as NumPy."""
    out, total, xs = {}, 0, []
    for i, x_np in enumerate(inputs):
        if i and spec.reset_between:
            F.reset_net(net)
        x = make_tensor(x_np, case.training)
        xs.append(x)
        y = _apply_forward(spec, net, x, F, stack)
        y_np = _numpy(y)
        out[keys[i] if keys else _output_key(i, y_np)] = y_np
        if case.training:
            if len(grads) <= i:
                grads.append(_gaussian(case.seed + 7 + i, y_np.shape, case.dtype))
            total = total + (y * make_tensor(grads[i], False)).sum()
    if case.training:
        total.backward()
        for i, x in enumerate(xs):
            out[f"grad:x{i}"] = _numpy(x.grad)
        for name, p in net.named_parameters():
            if p.grad is not None:
                out[f"grad:{name}"] = _numpy(p.grad)
        for name, b in net.named_buffers():
            value = _numpy(b)
            if value.dtype.kind == "f":
                out[f"close:{name}"] = value
            else:
                out[f"exact:{name}"] = value.astype(np.float64)
    return out


def _numpy(t) -> np.ndarray:
    if hasattr(t, "detach"):
        t = t.detach()
    return np.array(t.numpy() if hasattr(t, "numpy") else t, copy=True)


class NetworkDriver:
    """Runs `NetSpec` networks; see the module docstring."""

    @staticmethod
    def make_inputs(case):
        return {}  # the inputs depend on the built network: made in `reference`

    @staticmethod
    def reference(case, data):
        torch = _torch()
        spec = _build(case)
        pristine = copy.deepcopy(spec.module)
        F = _functional("sj", spec.api)
        if spec.set_step_mode:
            F.set_step_mode(spec.module, spec.set_step_mode)
        inputs, grads = _inputs(case, spec), []

        def make_tensor(a, requires_grad):
            return torch.from_numpy(a.copy()).requires_grad_(requires_grad)
        out = _run(case, spec, spec.module, F, make_tensor, torch.stack, inputs, grads, [])
        out["diag:run"] = dict(spec=spec, pristine=pristine, inputs=inputs, grads=grads,
                               keys=[k for k in out if k == "spikes" or k.startswith(
                                   ("exact:spikes", "close:out"))])
        return out

    @staticmethod
    def candidate(case, data, reference):
        import refsnn as rs
        from refsnn.interop import from_torch
        run = reference["diag:run"]
        spec = run["spec"]
        net = from_torch(run["pristine"], backend=case.backend)
        F = _functional("refsnn", spec.api)
        if spec.set_step_mode:
            F.set_step_mode(net, spec.set_step_mode)

        def make_tensor(a, requires_grad):
            return rs.tensor(a, requires_grad=requires_grad)
        return _run(case, spec, net, F, make_tensor, rs.stack, run["inputs"], run["grads"],
                    run["keys"])

    @staticmethod
    def steps(case):
        return case.record.option("T", 4)

    @staticmethod
    def fan_in(case):
        return case.record.option("fan_in", 1)


register_driver("network", NetworkDriver)


# ----------------------------------------------------------------------------
# builders: build(torch, case) -> NetSpec. `case.step_mode`: 's' (loop over T)
# or 'm' (one call on the sequence); `case.config`: builder options.
# ----------------------------------------------------------------------------
T, N = 4, 2


def _sj(api: str, module: str):
    import importlib
    package = "clock_driven" if api == "cd" else "activation_based"
    return importlib.import_module(f"spikingjelly.{package}.{module}")


def _mask(torch, case: Case, shape, p: float):
    """A dropout mask with values {0, 1/(1-p)} in the case's dtype."""
    rng = np.random.default_rng(case.seed + 99)
    keep = (rng.random(shape) >= p).astype(case.dtype)
    return torch.from_numpy(keep / np.asarray(1 - p, dtype=case.dtype))


def ab_conv_bn_lif_linear_if(torch, case: Case) -> NetSpec:
    """activation_based conv + BN + LIF + Linear + IF. `when`: 'before' (step
    mode set before twinning, so from_torch copies it), 'after' (set in each
    framework after twinning) or 'loop' (step mode 's', looped over T)."""
    layer, neuron, surrogate = _sj("ab", "layer"), _sj("ab", "neuron"), _sj("ab", "surrogate")
    cfg = case.config
    net = torch.nn.Sequential(
        layer.Conv2d(2, 4, 3, padding=1, bias=False), layer.BatchNorm2d(4),
        neuron.LIFNode(tau=cfg.get("tau", 2.0), surrogate_function=surrogate.ATan()),
        layer.MaxPool2d(2), layer.Flatten(), layer.Linear(4 * 3 * 3, 5),
        neuron.IFNode(v_reset=cfg.get("v_reset", 0.0), detach_reset=cfg.get("detach_reset", False)))
    when = cfg["when"]
    if when == "before":
        _sj("ab", "functional").set_step_mode(net, "m")
    return NetSpec(net, (T, N, 2, 6, 6), forward="loop" if when == "loop" else "module",
                   set_step_mode="m" if when == "after" else None, low=0.0, high=3.0,
                   fan_in=36, sequences=cfg.get("sequences", 1),
                   reset_between=cfg.get("reset_between", False))


def ab_containers(torch, case: Case) -> NetSpec:
    """activation_based MultiStepContainer, SeqToANNContainer, StepModeContainer
    around single-step neurons and layers; PLIF for its `w` gradient."""
    layer, neuron = _sj("ab", "layer"), _sj("ab", "neuron")
    net = torch.nn.Sequential(
        layer.Linear(8, 6, step_mode="m"),
        layer.MultiStepContainer(neuron.LIFNode(tau=3.0, decay_input=False)),
        layer.SeqToANNContainer(torch.nn.Linear(6, 6), torch.nn.ReLU()),
        layer.StepModeContainer(True, neuron.ParametricLIFNode(init_tau=3.0)),
        layer.StepModeContainer(False, torch.nn.Linear(6, 4)),
        neuron.IFNode(step_mode="m", v_reset=None))
    for m in net:
        if isinstance(m, layer.StepModeContainer):
            m.step_mode = "m"
    return NetSpec(net, (T, N, 8), low=0.0, high=2.0, fan_in=8,
                   forward="chunk" if case.config.get("chunk") else "module")


def ab_set_step_mode_into_container(torch, case: Case) -> NetSpec:
    """`set_step_mode(net, 'm')` on a net holding a MultiStepContainer."""
    layer, neuron = _sj("ab", "layer"), _sj("ab", "neuron")
    net = torch.nn.Sequential(layer.Linear(8, 6), layer.MultiStepContainer(neuron.IFNode()))
    return NetSpec(net, (T, N, 8), set_step_mode="m", low=0.0, high=2.0, fan_in=8)


def ab_dropout(torch, case: Case) -> NetSpec:
    """activation_based Dropout / Dropout2d in step mode 'm' or 's' with an
    injected mask, fed two sequences (the mask is kept until reset)."""
    layer, neuron = _sj("ab", "layer"), _sj("ab", "neuron")
    mode, two_d = case.step_mode, case.config.get("2d", False)
    if two_d:
        drop = layer.Dropout2d(0.2, step_mode=mode)
        net = torch.nn.Sequential(layer.Conv2d(2, 3, 3, padding=1, step_mode=mode), drop,
                                  neuron.IFNode(step_mode=mode))
        shape, mask_shape = (T, N, 2, 5, 5), (N, 3, 1, 1)
    else:
        drop = layer.Dropout(0.5, step_mode=mode)
        net = torch.nn.Sequential(layer.Linear(8, 6, step_mode=mode), drop,
                                  neuron.LIFNode(step_mode=mode))
        shape, mask_shape = (T, N, 8), (N, 6)
    mask = _mask(torch, case, mask_shape, drop.p)
    drop.mask = mask.expand(shape[1:2] + (3, 5, 5)).contiguous() if two_d else mask
    return NetSpec(net, shape, forward="module" if mode == "m" else "loop", sequences=2,
                   low=0.0, high=2.0, fan_in=18)


def cd_seq_to_ann(torch, case: Case) -> NetSpec:
    """clock_driven SeqToANNContainer(conv, BN) + MultiStep LIF/PLIF/IF."""
    layer, neuron = _sj("cd", "layer"), _sj("cd", "neuron")
    net = torch.nn.Sequential(
        layer.SeqToANNContainer(torch.nn.Conv2d(2, 4, 3, padding=1), torch.nn.BatchNorm2d(4)),
        neuron.MultiStepLIFNode(tau=2.0, detach_reset=True),
        layer.SeqToANNContainer(torch.nn.AvgPool2d(2), torch.nn.Flatten(), torch.nn.Linear(36, 6)),
        neuron.MultiStepParametricLIFNode(init_tau=2.0),
        layer.SeqToANNContainer(torch.nn.Linear(6, 3)),
        neuron.MultiStepIFNode(v_reset=None))
    return NetSpec(net, (T, N, 2, 6, 6), low=0.0, high=3.0, fan_in=36, api="cd",
                   sequences=2, reset_between=case.config.get("reset_between", False))


def cd_multi_step_container(torch, case: Case) -> NetSpec:
    """clock_driven MultiStepContainer around single-step layers and neurons."""
    layer, neuron = _sj("cd", "layer"), _sj("cd", "neuron")
    net = torch.nn.Sequential(
        layer.MultiStepContainer(torch.nn.Linear(8, 6), neuron.IFNode()),
        layer.MultiStepContainer(torch.nn.Linear(6, 4), neuron.LIFNode(tau=3.0, v_reset=-0.2)))
    return NetSpec(net, (T, N, 8), low=0.0, high=2.0, fan_in=8, api="cd")


def cd_functional(torch, case: Case) -> NetSpec:
    """clock_driven `multi_step_forward` (Linear + IF stepped over T) or
    `seq_to_ann_forward` (Conv + BN on the folded sequence)."""
    neuron = _sj("cd", "neuron")
    if case.config["helper"] == "multi_step_forward":
        net = torch.nn.Sequential(torch.nn.Linear(8, 5), neuron.IFNode(v_threshold=0.5))
        return NetSpec(net, (T, N, 8), forward="multi_step_forward", low=0.0, high=2.0,
                       fan_in=8, api="cd")
    net = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3, bias=False), torch.nn.BatchNorm2d(3))
    return NetSpec(net, (T, N, 2, 5, 5), forward="seq_to_ann_forward", low=-1.0, high=1.0,
                   fan_in=18, api="cd")


def cd_dropout(torch, case: Case) -> NetSpec:
    """clock_driven MultiStepDropout (or the single-step Dropout looped over T)
    with an injected mask, two sequences."""
    layer, neuron = _sj("cd", "layer"), _sj("cd", "neuron")
    if case.step_mode == "m":
        drop = layer.MultiStepDropout(0.5)
        net = torch.nn.Sequential(layer.SeqToANNContainer(torch.nn.Linear(8, 6)), drop,
                                  neuron.MultiStepLIFNode())
    else:
        drop = layer.Dropout(0.5)
        net = torch.nn.Sequential(torch.nn.Linear(8, 6), drop, neuron.LIFNode())
    drop.mask = _mask(torch, case, (N, 6), 0.5)
    return NetSpec(net, (T, N, 8), forward="module" if case.step_mode == "m" else "loop",
                   sequences=2, low=0.0, high=2.0, fan_in=8, api="cd")


def single_layer(torch, case: Case) -> NetSpec:
    """One torch.nn layer (`case.record.refsnn` names it) on `[N, ...]` input:
    config `args`/`kwargs` for the constructor and `shape` for the input."""
    cfg = dict(case.config)
    shape = cfg.pop("shape")
    cls = _import(case.record.option("layer"))
    return NetSpec(cls(*cfg.pop("args", ()), **cfg), shape, forward="plain", low=-2.0, high=2.0,
                   fan_in=case.record.option("fan_in", 1))
