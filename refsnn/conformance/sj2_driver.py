"""SpikingJelly 2.0.0 as a second conformance target, run in a subprocess.

SpikingJelly 0.0.0.0.14 is the installed reference; 2.0.0 is installed apart
(`pip install --target DIR --no-deps spikingjelly==2.0.0 loguru`) and, since
two versions of one package cannot share a process, runs in a child process
with `PYTHONPATH=DIR`:

    python -m refsnn.conformance.sj2_driver REQUEST.json RESULT.npz

`run_batch(jobs, DIR)` does this from the parent, one child per batch. A job:

- `case_job(case)`: the SpikingJelly half of a catalog case (or of one of the
  `EXTRA_RECORDS` below), computed on the inputs the catalog's driver makes
  (seeded, so both processes draw the same bits). Neurons are built without
  `backend=` (2.0 has none); surrogates and networks go through the catalog's
  own `reference` half, whose `spikingjelly.activation_based` imports resolve
  to whichever SpikingJelly the process imports. Output keys are the
  catalog's (`spikes`, `exact:v_seq`, `grad:x`, ...), plus `state:<name>`
  for a neuron's initial state_dict.
- `probe_job(name, **args)`: one of the `PROBES`, a small behaviour check
  written against the API both versions share (eval outputs and grad flags,
  a batch change without reset, `set_step_mode` over containers, ...). A
  probe runs unchanged under 0.0.0.0.14 too (`run_job` in the parent).

The result holds `<job id>|<key>` arrays, `<job id>|error` (the one-line
exception) for a job that raised, and `meta|spikingjelly`, `meta|torch`.
This module imports neither torch nor SpikingJelly at import time.
"""
from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from .catalog import RECORDS, Case, Record

__all__ = ["SJ2_VERSION", "INSTALL_ARGS", "EXTRA_RECORDS", "PROBES", "case_job", "probe_job",
           "run_job", "run_batch", "main"]

SJ2_VERSION = "2.0.0"
#: `pip install --target DIR` arguments that install SpikingJelly 2.0.0 apart
INSTALL_ARGS = ("--no-deps", "--upgrade", f"spikingjelly=={SJ2_VERSION}", "loguru")
_SEP = "|"


# ----------------------------------------------------------------------------
# network cases spelled the same in 0.0.0.0.14 and 2.0 (activation_based)
# ----------------------------------------------------------------------------
def ab_functional(torch, case: Case):
    """activation_based `multi_step_forward` (Linear + IF stepped over T),
    `seq_to_ann_forward` (Conv + BN on the folded sequence) or
    `chunk_multi_step_forward` (a multi-step LIF fed chunks of 2 steps)."""
    from .networks import NetSpec, _sj
    neuron, layer = _sj("ab", "neuron"), _sj("ab", "layer")
    helper = case.config["helper"]
    if helper == "multi_step_forward":
        net = torch.nn.Sequential(torch.nn.Linear(8, 5), neuron.IFNode(v_threshold=0.5))
        return NetSpec(net, (4, 2, 8), forward=helper, low=0.0, high=2.0, fan_in=8)
    if helper == "seq_to_ann_forward":
        net = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3, bias=False), torch.nn.BatchNorm2d(3))
        return NetSpec(net, (4, 2, 2, 5, 5), forward=helper, low=-1.0, high=1.0, fan_in=18)
    net = torch.nn.Sequential(layer.Linear(8, 5, step_mode="m"),
                              neuron.LIFNode(tau=3.0, step_mode="m"))
    return NetSpec(net, (4, 2, 8), forward="chunk", low=0.0, high=2.0, fan_in=8)


def ab_step_containers(torch, case: Case):
    """activation_based MultiStepContainer and SeqToANNContainer around
    single-step layers and neurons (the catalog's `ab_containers` also holds a
    StepModeContainer, whose signature changed in 2.0)."""
    from .networks import NetSpec, _sj
    neuron, layer = _sj("ab", "neuron"), _sj("ab", "layer")
    net = torch.nn.Sequential(
        layer.SeqToANNContainer(torch.nn.Linear(8, 6)),
        layer.MultiStepContainer(neuron.LIFNode(tau=3.0, decay_input=False, v_reset=-0.2)),
        layer.SeqToANNContainer(torch.nn.Linear(6, 6), torch.nn.ReLU()),
        layer.MultiStepContainer(neuron.ParametricLIFNode(init_tau=3.0)),
        layer.SeqToANNContainer(torch.nn.Linear(6, 4)),
        neuron.IFNode(step_mode="m", v_reset=None))
    return NetSpec(net, (4, 2, 8), low=0.0, high=2.0, fan_in=8)


def _extra(name, configs, fan_in):
    return Record(name=f"net.{name}", family="network (AB)", kind="network",
                  sj=f"{__name__}.{name}", refsnn="refsnn.interop.from_torch",
                  configs=configs, step_modes=("m",), backends=("numpy",),
                  training=(True, False), forward_rtol=(("float32", 1e-5), ("float64", 1e-12)),
                  options=(("T", 4), ("fan_in", fan_in)))


#: network records for the 2.0 comparison that the main catalog does not hold
EXTRA_RECORDS = [
    _extra("ab_functional", (dict(helper="multi_step_forward"),
                             dict(helper="seq_to_ann_forward"), dict(helper="chunk")), 18),
    _extra("ab_step_containers", (dict(),), 8),
]


def _all_records() -> list:
    return list(RECORDS) + EXTRA_RECORDS


# ----------------------------------------------------------------------------
# jobs
# ----------------------------------------------------------------------------
def case_job(case: Case) -> dict:
    """The job that computes `case`'s SpikingJelly half."""
    # record names are not unique (one record per step-mode family): send its index too
    return {"id": case.id, "case": dict(record=case.record.name,
                                        record_index=_all_records().index(case.record),
                                        config_index=case.config_index,
                                        step_mode=case.step_mode, dtype=case.dtype,
                                        training=case.training, example=case.example)}


def probe_job(name: str, **args) -> dict:
    """The job that runs probe `name` (see `PROBES`) with keyword `args`."""
    if name not in PROBES:
        raise KeyError(f"sj2_driver: no probe named {name!r}; known: {sorted(PROBES)}")
    key = ",".join(f"{k}={v}" for k, v in sorted(args.items()))
    return {"id": f"probe:{name}({key})", "probe": name, "args": args}


def _case(spec: dict) -> Case:
    rec = _all_records()[spec["record_index"]]
    if rec.name != spec["record"]:
        raise ValueError(f"sj2_driver: record {spec['record_index']} is {rec.name!r}, not "
                         f"{spec['record']!r} (parent and child see different catalogs)")
    return Case(rec, spec["config_index"], spec["step_mode"], None, spec["dtype"],
                spec["training"], spec["example"])


def _numpy(t) -> np.ndarray:
    return np.array(t.detach().numpy(), copy=True)


def _sj_neuron(case: Case):
    """The catalog neuron `case` built in the imported SpikingJelly, without
    `backend` (2.0 has none; 0.0.0.0.14 defaults to 'torch')."""
    import torch

    from .drivers import _import, _kwargs
    kw = _kwargs(case, "sj")
    kw["step_mode"] = case.step_mode
    if case.step_mode == "m":
        kw["store_v_seq"] = True
    m = _import(case.record.sj)(**kw)
    m.to(getattr(torch, case.dtype))
    m.train(case.training)
    return m


def _run_neuron(case: Case) -> dict:
    """Spikes, post-reset potentials and the gradients of
    `sum(spikes*g_s) + sum(v_seq*g_v)`, as the catalog's NeuronDriver."""
    import torch

    from .drivers import NeuronDriver, _output_key, _v_key
    data = NeuronDriver.make_inputs(case)
    m = _sj_neuron(case)
    out = {f"state:{k}": _numpy(v) for k, v in m.state_dict().items()}
    x = torch.from_numpy(data["x"].copy()).requires_grad_(case.training)
    if case.step_mode == "m":
        spikes = m(x)
        v_seq = m.v_seq
    else:
        outs, vs = [], []
        for t in range(x.shape[0]):
            outs.append(m(x[t]))
            vs.append(m.v)
        spikes, v_seq = torch.stack(outs), torch.stack(vs)
    out[_output_key(case)] = _numpy(spikes)
    out[_v_key(case)] = _numpy(v_seq)
    if case.training:
        loss = (spikes * torch.from_numpy(data["g_spikes"])).sum() + \
            (v_seq * torch.from_numpy(data["g_v"])).sum()
        loss.backward()
        out["grad:x"] = _numpy(x.grad)
        for name, p in m.named_parameters():
            out[f"grad:{name}"] = _numpy(p.grad)
    return out


def _run_case(spec: dict) -> dict:
    from . import drivers, networks  # noqa: F401 - importing them registers the drivers
    from .runner import DRIVERS
    case = _case(spec)
    if case.record.kind == "neuron":
        return _run_neuron(case)
    driver = DRIVERS[case.record.kind]
    out = driver.reference(case, driver.make_inputs(case))
    return {k: np.asarray(v) for k, v in out.items() if not k.startswith("diag:")}


# ----------------------------------------------------------------------------
# probes: behaviours that are not a catalog case; each runs under either version
# ----------------------------------------------------------------------------
def _probe_eval_output(cls: str = "LIFNode") -> dict:
    """A neuron in eval mode fed `[2, 3]` values 0.6 and 1.2 that require grad:
    whether the output requires grad, and the output."""
    import torch
    from spikingjelly.activation_based import neuron
    n = getattr(neuron, cls)()
    n.eval()
    x = torch.tensor([[0.6, 1.2, 0.6], [1.2, 0.6, 1.2]], requires_grad=True)
    s = n(x)
    return {"requires_grad": np.array(s.requires_grad), "spikes": _numpy(s)}


def _probe_batch_change(first: int = 1, second: int = 2, step_mode: str = "s") -> dict:
    """An IFNode fed values 0.4 of batch `first` then `second` (shape `[N, 3]`,
    or `[2, N, 3]` in step mode 'm') without a reset: the second output and
    the state afterwards."""
    import torch
    from spikingjelly.activation_based import neuron
    n = neuron.IFNode(step_mode=step_mode)
    lead = (2,) if step_mode == "m" else ()
    n(torch.full(lead + (first, 3), 0.4))
    s = n(torch.full(lead + (second, 3), 0.4))
    return {"spikes": _numpy(s), "v": _numpy(n.v)}


def _probe_set_step_mode_container() -> dict:
    """`set_step_mode(net, 'm')` on Sequential(Linear, MultiStepContainer(IF),
    SeqToANNContainer(Linear), LIF): the step modes of the two neurons
    afterwards (1 for 'm', 0 for 's')."""
    import torch
    from spikingjelly.activation_based import functional, layer, neuron
    msc = layer.MultiStepContainer(neuron.IFNode())
    outer = neuron.LIFNode()
    net = torch.nn.Sequential(layer.Linear(3, 3), msc,
                              layer.SeqToANNContainer(torch.nn.Linear(3, 3)), outer)
    functional.set_step_mode(net, "m")
    return {"outer_neuron": np.array(outer.step_mode == "m"),
            "container_child": np.array(msc[0].step_mode == "m")}


def _probe_store_v_seq_single_step(steps: int = 3) -> dict:
    """`LIFNode(store_v_seq=True)` in step mode 's' fed `steps` inputs of shape
    `[2, 3]`: `v_seq` afterwards (an empty array when it is None)."""
    import torch
    from spikingjelly.activation_based import neuron
    n = neuron.LIFNode(store_v_seq=True)
    for t in range(steps):
        n(torch.full((2, 3), 0.4 * (t + 1)))
    v_seq = n.v_seq
    return {"v_seq": np.zeros((0,), np.float32) if v_seq is None else _numpy(v_seq)}


def _probe_step_mode_container_positional() -> dict:
    """`StepModeContainer(False, Linear(3, 2))`, 0.0.0.0.14's spelling, in step
    mode 'm' on `[T=2, N=1, 3]` ones: its output."""
    import torch
    from spikingjelly.activation_based import layer
    torch.manual_seed(0)
    c = layer.StepModeContainer(False, torch.nn.Linear(3, 2))
    c.step_mode = "m"
    return {"out": _numpy(c(torch.ones(2, 1, 3)))}


def _probe_signature(path: str) -> dict:
    """The parameter names of `spikingjelly.activation_based.<path>` (a class's
    `__init__` or a function), in order; `exists` False when it is absent."""
    import importlib
    module, _, name = f"spikingjelly.activation_based.{path}".rpartition(".")
    obj = getattr(importlib.import_module(module), name, None)
    if obj is None:
        return {"exists": np.array(False)}
    target = obj.__init__ if inspect.isclass(obj) else obj
    names = [p for p in inspect.signature(target).parameters if p != "self"]
    return {"exists": np.array(True), "parameters": np.array(names)}


PROBES = {
    "eval_output": _probe_eval_output,
    "batch_change": _probe_batch_change,
    "set_step_mode_container": _probe_set_step_mode_container,
    "store_v_seq_single_step": _probe_store_v_seq_single_step,
    "step_mode_container_positional": _probe_step_mode_container_positional,
    "signature": _probe_signature,
}


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".replace("\n", " ")[:500]


def run_job(job: dict) -> dict:
    """Run one job with the SpikingJelly this process imports: `{key: array}`,
    or `{"error": one-line message}` when it raised."""
    try:
        with np.errstate(all="ignore"):
            if "case" in job:
                return _run_case(job["case"])
            return PROBES[job["probe"]](**job.get("args", {}))
    except Exception as exc:  # noqa: BLE001 - recorded for the parent to judge
        return {"error": np.array(_one_line(exc))}


# ----------------------------------------------------------------------------
# parent side
# ----------------------------------------------------------------------------
def run_batch(jobs: list, sj2_path, timeout: float = 300.0) -> dict:
    """Run `jobs` under SpikingJelly 2.0 (installed in `sj2_path`) in one child
    process: `{job id: {key: array}}`, plus `"meta"` (versions). Raises
    RuntimeError, with the child's stderr, when the child fails as a whole."""
    sj2_path = Path(sj2_path).resolve()
    repo_root = Path(__file__).resolve().parents[2]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(sj2_path), str(repo_root)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.setdefault("OMP_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory(prefix="refsnn-sj2-") as tmp:
        request, result = Path(tmp) / "request.json", Path(tmp) / "result.npz"
        request.write_text(json.dumps(jobs))
        proc = subprocess.run([sys.executable, "-m", "refsnn.conformance.sj2_driver",
                               str(request), str(result)], env=env, capture_output=True,
                              text=True, timeout=timeout)
        if proc.returncode != 0 or not result.exists():
            raise RuntimeError(f"sj2_driver: the SpikingJelly {SJ2_VERSION} child process "
                               f"exited with {proc.returncode}:\n{proc.stderr[-4000:]}")
        out: dict = {}
        with np.load(result, allow_pickle=False) as npz:
            for name in npz.files:
                job_id, _, key = name.rpartition(_SEP)
                out.setdefault(job_id, {})[key] = npz[name]
    return out


# ----------------------------------------------------------------------------
# child side
# ----------------------------------------------------------------------------
def main(argv=None) -> int:
    """Child entry point: `REQUEST.json RESULT.npz`; exit 2 on bad usage or
    when the SpikingJelly first on the path is not 2.0.0."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m refsnn.conformance.sj2_driver REQUEST.json RESULT.npz",
              file=sys.stderr)
        return 2
    from importlib.metadata import version

    import spikingjelly
    import torch
    found = version("spikingjelly")
    if found != SJ2_VERSION:
        print(f"sj2_driver: expected SpikingJelly {SJ2_VERSION} first on PYTHONPATH, found "
              f"{found} at {spikingjelly.__file__}", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    jobs = json.loads(Path(args[0]).read_text())
    arrays = {f"meta{_SEP}spikingjelly": np.array(found),
              f"meta{_SEP}torch": np.array(torch.__version__)}
    for job in jobs:
        for key, value in run_job(job).items():
            arrays[f"{job['id']}{_SEP}{key}"] = np.asarray(value)
    np.savez(args[1], **arrays)
    return 0


if __name__ == "__main__":
    sys.exit(main())
