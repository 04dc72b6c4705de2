"""The benchmark catalog: named cases, each a reference (SpikingJelly's torch
backend, or torch itself) and refsnn candidates doing the same work.

Groups and names (sizes in the name; `--quick` swaps in small sizes):
- neuron: `{if,lif,plif}-{fwd,fwdbwd}-T{T}-N{N}`: a multi-step neuron layer on
  `x_seq: [T, N]` float32; fwd runs without a tape (no_grad), fwdbwd is the
  training pass `spike_seq.backward(grad)`. Reference: SpikingJelly's
  `clock_driven.neuron.MultiStep*Node(backend='torch')` (or
  `activation_based.neuron.*Node(step_mode='m')` with `reference='ab'`);
  refsnn: `neurons.*Node(step_mode='m')` on each backend. Memory traffic of an
  ideal kernel: fwd 8 bytes per neuron-step (read x, write the spike),
  fwdbwd 24 (forward also writes h for the backward; backward reads the
  spike gradient and h, writes the input gradient).
- conv: `conv2d-*`, `linear-*`: `ops.conv2d`/`ops.linear` forward+backward
  against `torch.nn.functional`.
- scnn: `scnn-train-T4-B32`: one training step (forward, MSE on the firing
  rate, backward, SGD with momentum) of a spiking CNN made of
  `SeqToANNContainer(Conv2d, BatchNorm2d)` + multi-step LIF blocks on
  `[T=4, 32, 3, 32, 32]` inputs.
- onb: `onb-linear-lif-n{n}`: the open-neuromorphic SNN library benchmark's
  shape, Linear(n, n) then multi-step LIF on `[T=500, 16, n]`, forward+backward.
"""
from __future__ import annotations

import fnmatch
import math
import os
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

__all__ = ["Case", "Candidate", "Environment", "catalog", "select", "BenchError",
           "check_sizes", "format_count"]


class BenchError(ValueError):
    """Bad usage or input, found before any timing (the command exits 2)."""


@dataclass
class Candidate:
    """One implementation of a case: `run()` does the timed work once."""

    label: str
    run: Callable[[], None]
    is_reference: bool = False


@dataclass(frozen=True)
class Case:
    """A named piece of work and the implementations that do it.

    labels: candidate labels, the reference first (if any); `build()` returns
        the `Candidate`s in that order, allocating the inputs.
    traffic_bytes: bytes an ideal implementation must move (None: not a
        bandwidth-bound case).
    memory_bytes: a rough upper estimate of the memory the case needs.
    """

    name: str
    group: str
    description: str
    params: dict
    labels: tuple
    build: Callable[[], list] = field(repr=False, compare=False)
    traffic_bytes: int | None = None
    memory_bytes: int = 0

    def candidates(self) -> list:
        return self.build()

    def n_candidates(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class Environment:
    """What is installed: SpikingJelly/torch (references) and refsnn's usable
    fused backends; `reference` picks SpikingJelly's API ('cd' or 'ab');
    `backends` the refsnn neuron backends to time."""

    have_torch: bool
    have_spikingjelly: bool
    backends: tuple
    reference: str = "cd"

    @classmethod
    def detect(cls, backends=None, reference: str = "cd") -> "Environment":
        available = available_backends()
        if backends is None:
            chosen = available
        else:
            unknown = [b for b in backends if b not in ("numpy", "numpy-fused", "opencl")]
            if unknown:
                raise BenchError(f"refsnn bench: unknown backend(s) {', '.join(unknown)}; "
                                 f"known: numpy, numpy-fused, opencl")
            missing = [b for b in backends if b not in available]
            if missing:
                raise BenchError(f"refsnn bench: backend(s) {', '.join(missing)} not usable "
                                 f"here (usable: {', '.join(available)})")
            chosen = tuple(backends)
        if reference not in ("cd", "ab"):
            raise BenchError(f"refsnn bench: reference must be 'cd' or 'ab', got {reference!r}")
        return cls(_importable("torch"), _importable("spikingjelly"), tuple(chosen), reference)


def _importable(name: str) -> bool:
    import importlib.util
    return importlib.util.find_spec(name) is not None


def available_backends() -> tuple:
    """refsnn neuron backends usable here; 'opencl' only when its backend loads."""
    found = ["numpy", "numpy-fused"]
    try:
        from .. import fused
        fused.get_backend("opencl")
        found.append("opencl")
    except Exception:   # no pyopencl, no device, or a build problem: leave it out
        pass
    return tuple(found)


def format_count(n: int) -> str:
    """1000 -> '1e3', 100000 -> '1e5', 4096 -> '4096'."""
    exponent = int(round(math.log10(n))) if n > 0 else 0
    return f"1e{exponent}" if n == 10 ** exponent and exponent >= 3 else str(n)


def _torch():
    import torch
    torch.set_num_threads(2)
    return torch


# ----------------------------------------------------------------------------
# neuron layers
# ----------------------------------------------------------------------------
NEURON_KINDS = ("if", "lif", "plif")
_SJ_CLASSES = {  # kind -> (clock_driven class, activation_based class)
    "if": ("MultiStepIFNode", "IFNode"),
    "lif": ("MultiStepLIFNode", "LIFNode"),
    "plif": ("MultiStepParametricLIFNode", "ParametricLIFNode"),
}
_REFSNN_CLASSES = {"if": "IFNode", "lif": "LIFNode", "plif": "ParametricLIFNode"}
BYTES_PER_NEURON_STEP = {"fwd": 8, "fwdbwd": 24}


def _neuron_input(T: int, N: int):
    rng = np.random.default_rng(0)
    x = (rng.random((T, N), dtype=np.float32) * 1.5).astype(np.float32)
    grad = np.ones((T, N), np.float32)
    return x, grad


def _refsnn_neuron(kind: str, backend: str, mode: str, x, grad) -> Callable:
    import refsnn as rs
    from refsnn import neurons
    node = getattr(neurons, _REFSNN_CLASSES[kind])(step_mode="m", backend=backend)

    if mode == "fwd":
        def run():
            node.reset()
            with rs.no_grad():
                node(rs.Tensor(x))
    else:
        def run():
            node.reset()
            node(rs.Tensor(x, requires_grad=True)).backward(grad)
    return run


def _sj_neuron(kind: str, api: str, mode: str, x, grad) -> Callable:
    torch = _torch()
    if api == "cd":
        from spikingjelly.clock_driven import neuron
        node = getattr(neuron, _SJ_CLASSES[kind][0])(backend="torch")
    else:
        from spikingjelly.activation_based import neuron
        node = getattr(neuron, _SJ_CLASSES[kind][1])(step_mode="m", backend="torch")
    xs, gs = torch.from_numpy(x), torch.from_numpy(grad)

    if mode == "fwd":
        def run():
            node.reset()
            with torch.no_grad():
                node(xs)
    else:
        def run():
            node.reset()
            node(xs.detach().requires_grad_(True)).backward(gs)
    return run


def neuron_case(kind: str, mode: str, T: int, N: int, env: Environment) -> Case:
    labels, with_ref = _labels(env, f"SJ {env.reference} torch")

    def build():
        x, grad = _neuron_input(T, N)
        out = []
        if with_ref:
            out.append(Candidate(labels[0], _sj_neuron(kind, env.reference, mode, x, grad), True))
        out += [Candidate(b, _refsnn_neuron(kind, b, mode, x, grad)) for b in env.backends]
        return out

    steps = T * N
    arrays = 12 if mode == "fwdbwd" else 5     # [T, N] float32 arrays alive at the peak
    return Case(
        name=f"{kind}-{mode}-T{T}-N{format_count(N)}", group="neuron",
        description=f"multi-step {kind.upper()} {'forward+backward' if mode == 'fwdbwd' else 'forward'}"
                    f", x_seq [{T}, {N}] float32",
        params={"kind": kind, "mode": mode, "T": T, "N": N},
        labels=labels, build=build,
        traffic_bytes=BYTES_PER_NEURON_STEP[mode] * steps,
        memory_bytes=arrays * 4 * steps)


def _labels(env: Environment, reference: str):
    with_ref = env.have_torch and env.have_spikingjelly
    return ((reference,) if with_ref else ()) + tuple(env.backends), with_ref


# ----------------------------------------------------------------------------
# conv2d and linear against torch
# ----------------------------------------------------------------------------
def _op_case(name: str, description: str, op: str, shapes: list, kwargs: dict,
             env: Environment) -> Case:
    with_ref = env.have_torch
    labels = (("torch",) if with_ref else ()) + ("refsnn",)

    def build():
        import refsnn as rs
        from refsnn import ops
        rng = np.random.default_rng(0)
        arrays = [rng.standard_normal(s).astype(np.float32) for s in shapes]
        with rs.no_grad():
            out_shape = getattr(ops, op)(*[rs.Tensor(a) for a in arrays], **kwargs).shape
        grad = rng.standard_normal(out_shape).astype(np.float32)

        def run_refsnn():
            ts = [rs.Tensor(a, requires_grad=True) for a in arrays]
            getattr(ops, op)(*ts, **kwargs).backward(grad)

        out = []
        if with_ref:
            torch = _torch()
            fn = getattr(torch.nn.functional, op)
            tas, tg = [torch.from_numpy(a) for a in arrays], torch.from_numpy(grad)

            def run_torch():
                ts = [a.detach().requires_grad_(True) for a in tas]
                fn(*ts, **kwargs).backward(tg)
            out.append(Candidate("torch", run_torch, True))
        out.append(Candidate("refsnn", run_refsnn))
        return out

    size = sum(4 * math.prod(s) for s in shapes)
    return Case(name=name, group="conv", description=description,
                params={"op": op, "shapes": [list(s) for s in shapes], **kwargs},
                labels=labels, build=build, memory_bytes=40 * size)


def conv_cases(quick: bool, env: Environment) -> list:
    B, S = (4, 8) if quick else (32, 32)
    return [
        _op_case(f"conv2d-3x3-B{B}-16c-{S}px", f"conv2d 3x3 pad 1, [{B}, 16, {S}, {S}] -> 32 "
                 "channels, forward+backward", "conv2d",
                 [(B, 16, S, S), (32, 16, 3, 3), (32,)], {"padding": 1}, env),
        _op_case(f"conv2d-3x3s2-B{B}-32c-{S}px", f"conv2d 3x3 stride 2 pad 1, [{B}, 32, {S}, {S}]"
                 " -> 64, forward+backward", "conv2d",
                 [(B, 32, S, S), (64, 32, 3, 3)], {"stride": 2, "padding": 1}, env),
        _op_case(f"linear-B{8 * B}-512-256", f"linear [{8 * B}, 512] -> 256, forward+backward",
                 "linear", [(8 * B, 512), (256, 512), (256,)], {}, env),
        _op_case(f"linear-T8-B{2 * B}-784-100", f"linear [8, {2 * B}, 784] -> 100 (time folded "
                 "in), forward+backward", "linear", [(8, 2 * B, 784), (100, 784), (100,)], {}, env),
    ]


# ----------------------------------------------------------------------------
# a spiking-CNN training step
# ----------------------------------------------------------------------------
def _scnn_layers(C: int, S: int, classes: int):
    """The network as (kind, arguments) records, built alike in refsnn and SJ."""
    return [("seq", [("conv", (3, C)), ("bn", C)]), ("lif",), ("seq", [("pool",)]),
            ("seq", [("conv", (C, C)), ("bn", C)]), ("lif",), ("seq", [("pool",)]),
            ("seq", [("flatten",), ("linear", (C * (S // 4) ** 2, classes))]), ("lif",)]


def build_scnn(lib: str, C: int, S: int, classes: int, backend: str = "numpy"):
    """Conv-BN-LIF-pool x2, Linear-LIF, as `SeqToANNContainer`s and clock_driven
    multi-step LIF neurons; `lib` is 'refsnn' or 'sj' (layers from
    torch.nn / spikingjelly.clock_driven)."""
    if lib == "refsnn":
        from refsnn import containers, layers, neurons
        nn = layers
        seq, sequential = containers.SeqToANNContainer, containers.Sequential

        def lif():
            return neurons.MultiStepLIFNode(tau=2., detach_reset=True, backend=backend)
    else:
        import torch
        from spikingjelly.clock_driven import layer, neuron
        nn = torch.nn
        seq, sequential = layer.SeqToANNContainer, torch.nn.Sequential

        def lif():
            return neuron.MultiStepLIFNode(tau=2., detach_reset=True, backend="torch")

    def make(record):
        kind = record[0]
        if kind == "conv":
            return nn.Conv2d(*record[1], kernel_size=3, padding=1, bias=False)
        if kind == "bn":
            return nn.BatchNorm2d(record[1])
        if kind == "pool":
            return nn.MaxPool2d(2)
        if kind == "flatten":
            return nn.Flatten()
        if kind == "linear":
            return nn.Linear(*record[1])
        raise ValueError(kind)

    modules = []
    for record in _scnn_layers(C, S, classes):
        modules.append(lif() if record[0] == "lif" else seq(*[make(r) for r in record[1]]))
    return sequential(*modules)


def scnn_case(quick: bool, env: Environment) -> Case:
    T, B, S, C, classes = (2, 4, 8, 4, 10) if quick else (4, 32, 32, 32, 10)
    labels, with_ref = _labels(env, "SJ cd torch")

    def build():
        import refsnn as rs
        from refsnn import functional, optim
        rng = np.random.default_rng(0)
        x = rng.random((T, B, 3, S, S), dtype=np.float32)
        target = np.eye(classes, dtype=np.float32)[rng.integers(0, classes, B)]
        rs.manual_seed(0)
        weights = build_scnn("refsnn", C, S, classes).state_dict()
        out = []
        if with_ref:
            torch = _torch()
            from spikingjelly.clock_driven import functional as sjf
            net = build_scnn("sj", C, S, classes)
            net.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()})
            opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
            xt, tt = torch.from_numpy(x), torch.from_numpy(target)

            def run_sj():
                sjf.reset_net(net)
                opt.zero_grad()
                loss = ((net(xt).mean(0) - tt) ** 2).mean()
                loss.backward()
                opt.step()
            out.append(Candidate(labels[0], run_sj, True))
        for backend in env.backends:
            net = build_scnn("refsnn", C, S, classes, backend)
            net.load_state_dict(weights)
            opt = optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
            xr, tr = rs.Tensor(x), rs.Tensor(target)

            def run_refsnn(net=net, opt=opt, xr=xr, tr=tr):
                functional.reset_net(net)
                opt.zero_grad()
                loss = ((net(xr).mean(0) - tr) ** 2).mean()
                loss.backward()
                opt.step()
            out.append(Candidate(backend, run_refsnn))
        return out

    return Case(name=f"scnn-train-T{T}-B{B}", group="scnn",
                description=f"spiking CNN training step (SeqToANN conv+BN, LIF) x2, linear+LIF; "
                            f"x [{T}, {B}, 3, {S}, {S}], SGD momentum",
                params={"T": T, "batch": B, "size": S, "channels": C},
                labels=labels, build=build, memory_bytes=30 * 4 * T * B * C * S * S)


# ----------------------------------------------------------------------------
# the open-neuromorphic benchmark shape
# ----------------------------------------------------------------------------
def onb_case(n: int, T: int, B: int, env: Environment) -> Case:
    labels, with_ref = _labels(env, f"SJ {env.reference} torch")

    def build():
        import refsnn as rs
        from refsnn import layers, neurons
        rng = np.random.default_rng(0)
        x = rng.random((T, B, n), dtype=np.float32)
        rs.manual_seed(0)
        weights = layers.Linear(n, n).state_dict()
        out = []
        if with_ref:
            torch = _torch()
            fc = torch.nn.Linear(n, n)
            fc.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()})
            if env.reference == "cd":
                from spikingjelly.clock_driven import neuron
                lif = neuron.MultiStepLIFNode(backend="torch")
            else:
                from spikingjelly.activation_based import neuron
                lif = neuron.LIFNode(step_mode="m", backend="torch")
            xt = torch.from_numpy(x)

            def run_sj():
                lif.reset()
                fc.zero_grad()
                lif(fc(xt.detach().requires_grad_(True))).sum().backward()
            out.append(Candidate(labels[0], run_sj, True))
        for backend in env.backends:
            fc_r = layers.Linear(n, n)
            fc_r.load_state_dict(weights)
            lif_r = neurons.LIFNode(step_mode="m", backend=backend)

            def run_refsnn(fc_r=fc_r, lif_r=lif_r):
                lif_r.reset()
                fc_r.zero_grad()
                lif_r(fc_r(rs.Tensor(x, requires_grad=True))).sum().backward()
            out.append(Candidate(backend, run_refsnn))
        return out

    return Case(name=f"onb-linear-lif-n{n}", group="onb",
                description=f"open-neuromorphic benchmark: Linear({n}, {n}) + LIF, x [{T}, {B}, {n}],"
                            f" forward+backward",
                params={"n": n, "T": T, "batch": B}, labels=labels, build=build,
                memory_bytes=14 * 4 * T * B * n + 12 * n * n)


# ----------------------------------------------------------------------------
# spiking ResNet-18, layer by layer: time and bounded memory
# ----------------------------------------------------------------------------
def resnet18_refsnn_step(T: int, N: int, size: int, backend: str = "numpy"):
    """refsnn's `multi_step_spiking_resnet18` (MultiStepIFNode, ATan) and a
    function running one forward + backward on fixed input `[T, N, 3, size, size]`."""
    import refsnn as rs
    from refsnn import functional, models, neurons, surrogate
    rs.manual_seed(0)
    model = models.multi_step_spiking_resnet18(
        T=T, multi_step_neuron=neurons.MultiStepIFNode, surrogate_function=surrogate.ATan(),
        backend=backend)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, N, 3, size, size)).astype(np.float32)
    upstream = rng.standard_normal((T, N, 1000)).astype(np.float32)

    def step():
        functional.reset_net(model)
        model.zero_grad()
        (model(rs.tensor(x)) * rs.tensor(upstream)).sum().backward()
    return model, step


def resnet18_spikingjelly_step(T: int, N: int, size: int):
    """The same step in SpikingJelly's `clock_driven.model.spiking_resnet`, whose
    module imports torchvision only to download weights: a stand-in module
    serves that one import when torchvision is absent (it cannot be imported
    beside torch 2.13.0)."""
    import sys
    import types
    torch = _torch()
    stand_in = {}
    if not _importable("torchvision"):
        for name in ("torchvision", "torchvision.models", "torchvision.models.utils"):
            stand_in[name] = types.ModuleType(name)
        stand_in["torchvision.models.utils"].load_state_dict_from_url = None
        sys.modules.update(stand_in)
    try:
        from spikingjelly.clock_driven import functional, neuron, surrogate
        from spikingjelly.clock_driven.model import spiking_resnet
    finally:
        for name in stand_in:
            sys.modules.pop(name, None)
    torch.manual_seed(0)
    model = spiking_resnet.multi_step_spiking_resnet18(
        T=T, multi_step_neuron=neuron.MultiStepIFNode, surrogate_function=surrogate.ATan())
    rng = np.random.default_rng(0)
    x = torch.tensor(rng.standard_normal((T, N, 3, size, size)).astype(np.float32))
    upstream = torch.tensor(rng.standard_normal((T, N, 1000)).astype(np.float32))

    def step():
        functional.reset_net(model)
        model.zero_grad()
        (model(x) * upstream).sum().backward()
    return step


def resnet18_case(quick: bool, env: Environment) -> Case:
    T, N, size = (2, 1, 32) if quick else (4, 2, 64)
    labels, with_ref = _labels(env, "SJ cd torch")

    def build():
        out = []
        if with_ref:
            out.append(Candidate(labels[0], resnet18_spikingjelly_step(T, N, size), True))
        for backend in env.backends:
            out.append(Candidate(backend, resnet18_refsnn_step(T, N, size, backend)[1]))
        return out

    return Case(name=f"resnet18-T{T}-B{N}-{size}px", group="resnet",
                description=f"multi_step_spiking_resnet18 (IF, ATan), x [{T}, {N}, 3, {size}, "
                            f"{size}], forward+backward; peak memory is the bound to watch",
                params={"T": T, "batch": N, "size": size}, labels=labels, build=build,
                memory_bytes=600 * (1 << 20))


# ----------------------------------------------------------------------------
# the catalog
# ----------------------------------------------------------------------------
FULL_T, FULL_N = (8, 32, 128), (1_000, 10_000, 100_000, 1_000_000)
QUICK_T, QUICK_N = (4, 8), (1_000,)


def catalog(env: Environment, quick: bool = False, t_values=None, n_values=None) -> list:
    """Every case, in running order. `t_values`/`n_values` replace the neuron
    grid's T and N."""
    ts = tuple(t_values) if t_values else (QUICK_T if quick else FULL_T)
    ns = tuple(n_values) if n_values else (QUICK_N if quick else FULL_N)
    cases = [neuron_case(kind, mode, T, N, env)
             for kind in NEURON_KINDS for mode in ("fwd", "fwdbwd") for T in ts for N in ns]
    cases += conv_cases(quick, env)
    cases.append(scnn_case(quick, env))
    onb = [(64, 20, 4)] if quick else [(512, 500, 16), (4096, 500, 16)]
    cases += [onb_case(n, T, B, env) for n, T, B in onb]
    cases.append(resnet18_case(quick, env))
    return cases


def select(cases: list, patterns) -> list:
    """Cases whose name matches any of `patterns` (exact names or globs:
    'lif-fwdbwd-*', 'conv2d-*'), in catalog order. An unmatched pattern is
    an error naming the known cases' shapes."""
    if not patterns:
        return list(cases)
    chosen = set()
    for pattern in patterns:
        hits = [c.name for c in cases if fnmatch.fnmatchcase(c.name, pattern)]
        if not hits:
            groups = sorted({c.name.split("-")[0] + "-*" for c in cases})
            raise BenchError(f"refsnn bench: no case matches {pattern!r}; case names look like "
                             f"{cases[0].name!r} (groups: {', '.join(groups)}); "
                             f"see `refsnn bench --list`")
        chosen.update(hits)
    return [c for c in cases if c.name in chosen]


def available_memory() -> int | None:
    """Bytes of memory available to new allocations (Linux MemAvailable)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_sizes(cases: list, limit: int | None = None) -> None:
    """Refuse, before any timing, a case whose estimated memory exceeds 80% of
    the available memory (`limit` overrides that figure)."""
    limit = available_memory() if limit is None else limit
    if limit is None:
        return
    for case in cases:
        if case.memory_bytes > 0.8 * limit:
            raise BenchError(f"refsnn bench: case {case.name!r} needs about "
                             f"{case.memory_bytes / 2**30:.1f} GiB but only "
                             f"{limit / 2**30:.1f} GiB of memory is available; "
                             f"choose smaller sizes (--n / --t) or fewer cases")
