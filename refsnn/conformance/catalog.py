"""The conformance catalog: one declarative record per component.

Like PyTorch's OpInfo, a `Record` says what a component is and how to exercise
it; the runner (`runner.py`) knows how to run each *kind* of record in
SpikingJelly / PyTorch and in refsnn and compare the two. Adding a neuron is
adding one record. The same table drives the pytest suite (`conformance/`) and
the `refsnn conformance` command.

A record expands into `Case`s: its argument configurations x step modes x
refsnn backends x dtypes x train/eval x examples (`expand`).

This module imports neither torch nor SpikingJelly.
"""
from __future__ import annotations

import itertools
import zlib
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

__all__ = ["Sg", "Act", "sg", "Defect", "Record", "Case", "RECORDS", "DEFECTS",
           "covering", "expand", "all_cases", "record", "NEURON_BACKENDS",
           "FUSED_BACKENDS", "DTYPES"]

DTYPES = ("float32", "float64")
NEURON_BACKENDS = ("numpy", "numpy-fused", "opencl")
FUSED_BACKENDS = ("numpy-fused", "opencl")  # whole-sequence kernels: step_mode 'm' only


# ----------------------------------------------------------------------------
# values that are built in each framework by name
# ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Sg:
    """A surrogate function by class name and keyword arguments, built as
    `spikingjelly.<api>.surrogate.<name>(**kw)` and `refsnn.surrogate.<name>(**kw)`."""
    name: str
    kwargs: tuple = ()

    def __str__(self):
        return f"{self.name}({', '.join(f'{k}={v!r}' for k, v in self.kwargs)})"


def sg(name: str, **kwargs) -> Sg:
    return Sg(name, tuple(sorted(kwargs.items())))


@dataclass(frozen=True)
class Act:
    """An activation module by class name: `torch.nn.<name>()` / `refsnn.layers.<name>()`."""
    name: str

    def __str__(self):
        return f"{self.name}()"


# ----------------------------------------------------------------------------
# known SpikingJelly defects
# ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Defect:
    """A known defect of SpikingJelly 0.0.0.0.14 that a case exposes.

    `key` is the anchor of its section in `docs/spikingjelly-differences.md`.
    `expect` is what the case shows while the defect exists: 'sj_error'
    (SpikingJelly raises) or 'mismatch' (SpikingJelly computes something else
    than refsnn, which implements the intended behaviour). `when(case)`
    selects the affected cases (all when None). A case that passes
    although it is listed means the defect was fixed upstream: the pytest
    suite then fails (strict xfail) so the catalog gets updated.
    """
    key: str
    reason: str
    expect: str = "sj_error"
    when: Callable[["Case"], bool] | None = None

    def applies(self, case: "Case") -> bool:
        return self.when is None or bool(self.when(case))


DEFECTS = {
    "ab-nonzerosignlogabs-backward": Defect(
        "ab-nonzerosignlogabs-backward",
        "activation_based NonzeroSignLogAbs backward passes a tuple to its TorchScript "
        "backward and raises RuntimeError",
        when=lambda case: case.config.get("spiking", True)),
    "ab-liaf-construction": Defect(
        "ab-liaf-construction",
        "activation_based LIAFNode.__init__ raises AttributeError "
        "('single_step_cupy_fp32_inference')"),
    "cd-generalnode": Defect(
        "cd-generalnode",
        "clock_driven GeneralNode stores None buffers (assigns register_buffer's return "
        "value), so forward raises TypeError"),
    "cd-multistepgeneralnode": Defect(
        "cd-multistepgeneralnode",
        "clock_driven MultiStepGeneralNode raises AssertionError at construction"),
    "ab-klif-soft-reset": Defect(
        "ab-klif-soft-reset",
        "activation_based KLIFNode with v_reset=None raises a TorchScript RuntimeError "
        "(its charge expects a float v_reset)",
        when=lambda case: case.config.get("v_reset", 0.0) is None),
    "logtailedrelu-primitive-nan": Defect(
        "logtailedrelu-primitive-nan",
        "LogTailedReLU primitive computes 0*log(x) for x<=0, which is NaN",
        expect="mismatch", when=lambda case: case.config.get("spiking") is False),
    "ab-logtailedrelu-float64-alpha": Defect(
        "ab-logtailedrelu-float64-alpha",
        "activation_based LogTailedReLU backward writes alpha with a TorchScript index_put, "
        "which rounds it to float32 even for float64 gradients",
        expect="mismatch",
        when=lambda case: case.dtype == "float64" and case.config.get("spiking", True)
        and float(np.float32(case.config.get("alpha", 0.0))) != case.config.get("alpha", 0.0)),
    "piecewiseleakyrelu-slope": Defect(
        "piecewiseleakyrelu-slope",
        "PiecewiseLeakyReLU spiking backward uses slope 1/w inside |x|<w, but its "
        "primitive's slope there is 1/(2w)", expect="mismatch"),
    "ab-set-step-mode-container": Defect(
        "ab-set-step-mode-container",
        "activation_based functional.set_step_mode also switches the children of a "
        "MultiStepContainer to 'm'; the container then feeds each of them x[t] of shape "
        "[N, C], which they treat as N time steps (wrong dynamics, no error)",
        expect="mismatch"),
}


# ----------------------------------------------------------------------------
# records and cases
# ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Record:
    """One component and how to exercise it.

    - `name`: unique, `<api>.<Class>` (`ab.LIFNode`, `cd.MultiStepIFNode`,
      `nn.Linear`, `optim.Adam`, `net.<builder>`);
    - `family`: the report row it is counted in;
    - `kind`: which runner driver runs it: 'neuron', 'surrogate', 'layer',
      'optimizer' or 'network';
    - `sj`: dotted path of the reference class (`spikingjelly.activation_based.
      neuron.LIFNode`, `torch.nn.Linear`), or of the network builder;
    - `refsnn`: dotted path of the refsnn class (`refsnn.neurons.LIFNode`);
    - `configs`: the argument space, one dict of constructor keywords per case;
    - `step_modes`: 's' (single-step calls looped over T), 'm' (one multi-step
      call); None for kinds without time;
    - `backends`: refsnn neuron backends to run (availability is detected);
    - `dtypes`, `training` (True = train mode, False = eval mode);
    - `forward_rtol`: None when forward values (spikes, potentials) must be
      bit-identical; else the allowed normwise relative error per dtype of
      values computed through transcendentals (EIF's exp), spikes staying exact;
    - `grad_rtol`: allowed normwise relative gradient error per dtype, scaled
      by the case (see `grad_tolerance`);
    - `options`: driver-specific settings (input range, shapes, ...);
    - `defects`: known SpikingJelly defects (`DEFECTS` keys) it exposes.
    """
    name: str
    family: str
    kind: str
    sj: str
    refsnn: str
    configs: tuple = ({},)
    step_modes: tuple = (None,)
    backends: tuple = (None,)
    dtypes: tuple = DTYPES
    training: tuple = (True,)
    forward_rtol: tuple | None = None
    grad_rtol: tuple = (("float32", 2e-5), ("float64", 1e-10))
    options: tuple = ()
    defects: tuple = ()

    @property
    def api(self) -> str:
        return self.name.split(".", 1)[0]

    def option(self, key, default=None):
        return dict(self.options).get(key, default)


@dataclass(frozen=True)
class Case:
    """One run: a record, one of its configs, and the run's coordinates."""
    record: Record
    config_index: int
    step_mode: str | None
    backend: str | None
    dtype: str
    training: bool
    example: int = 0
    config_override: tuple | None = field(default=None, compare=False)

    @property
    def config(self) -> dict:
        if self.config_override is not None:
            return dict(self.config_override)
        return dict(self.record.configs[self.config_index])

    @property
    def id(self) -> str:
        parts = [p for p in (self.step_mode, self.backend, self.dtype) if p]
        if not self.training:
            parts.append("eval")
        if self.example:
            parts.append(f"ex{self.example}")
        args = ",".join(f"{k}={v}" for k, v in self.config.items())
        return f"{self.record.name}[{'-'.join(parts)}|{args}]"

    @property
    def seed(self) -> int:
        """Input seed: stable across runs and independent of case order."""
        return zlib.crc32(f"{self.record.name}|{self.config_index}|{self.example}".encode())

    @property
    def defect(self) -> Defect | None:
        for key in self.record.defects:
            d = DEFECTS[key]
            if d.applies(self):
                return d
        return None

    def forward_tolerance(self, steps: int = 1, fan_in: int = 1) -> float:
        """Tolerance of `close:` forward values: the record's `forward_rtol`
        (else its gradient tolerance), scaled like `grad_tolerance`."""
        table = self.record.forward_rtol or self.record.grad_rtol
        return self._scaled(dict(table)[self.dtype], steps, fan_in)

    def grad_tolerance(self, steps: int = 1, fan_in: int = 1) -> float:
        """The record's relative tolerance for this dtype, scaled up with the
        number of time steps (error accumulates through the recurrence) and
        with the fan-in of matmul/conv reductions."""
        return self._scaled(dict(self.record.grad_rtol)[self.dtype], steps, fan_in)

    @staticmethod
    def _scaled(base: float, steps: int, fan_in: int) -> float:
        return base * max(1.0, steps / 8) * max(1.0, fan_in / 64)


def covering(full: dict, cycled: dict | None = None, base: dict | None = None) -> tuple:
    """Configurations: the full product of `full`'s axes; each product member
    also gets the i-th value (cyclically) of every axis in `cycled`, so every
    value of every axis appears without a combinatorial blow-up."""
    keys = list(full)
    out = []
    for i, combo in enumerate(itertools.product(*(full[k] for k in keys))):
        cfg = dict(base or {})
        cfg.update(zip(keys, combo))
        for k, values in (cycled or {}).items():
            cfg[k] = values[i % len(values)]
        out.append(cfg)
    return tuple(out)


def expand(rec: Record, backends=None, dtypes=None, examples: int = 1) -> list:
    """All cases of `rec`, restricted to `backends` / `dtypes` when given.
    Fused neuron backends run only in step mode 'm'."""
    cases = []
    for i in range(len(rec.configs)):
        for mode in rec.step_modes:
            for backend in rec.backends:
                if backend in FUSED_BACKENDS and mode != "m":
                    continue
                if backends is not None and backend is not None and backend not in backends:
                    continue
                for dtype in rec.dtypes:
                    if dtypes is not None and dtype not in dtypes:
                        continue
                    for training in rec.training:
                        for ex in range(examples):
                            cases.append(Case(rec, i, mode, backend, dtype, training, ex))
    return cases


def all_cases(backends=None, dtypes=None, examples: int = 1, select=None) -> list:
    """Every case of the catalog; `select(case) -> bool` filters."""
    cases = []
    for rec in RECORDS:
        for c in expand(rec, backends, dtypes, examples):
            if select is None or select(c):
                cases.append(c)
    return cases


def record(name: str) -> Record:
    for r in RECORDS:
        if r.name == name:
            return r
    raise KeyError(f"no conformance record named {name!r}")


# ----------------------------------------------------------------------------
# surrogate functions
# ----------------------------------------------------------------------------
_COMMON_SURROGATES = (
    ("Sigmoid", dict(alpha=4.0), dict(alpha=2.5)),
    ("ATan", dict(alpha=2.0), dict(alpha=3.0)),
    ("PiecewiseQuadratic", dict(alpha=1.0), dict(alpha=2.0)),
    ("PiecewiseExp", dict(alpha=1.0), dict(alpha=2.0)),
    ("SoftSign", dict(alpha=2.0), dict(alpha=0.5)),
    ("Erf", dict(alpha=2.0), dict(alpha=1.5)),
    ("NonzeroSignLogAbs", dict(alpha=1.0), dict(alpha=2.0)),
    ("PiecewiseLeakyReLU", dict(w=1.0, c=0.01), dict(w=0.5, c=0.1)),
    ("SquarewaveFourierSeries", dict(n=2, T_period=8), dict(n=4, T_period=6.0)),
    ("S2NN", dict(alpha=4.0, beta=1.0), dict(alpha=3.0, beta=0.5)),
    ("QPseudoSpike", dict(alpha=2.0), dict(alpha=3.0)),
)
_AB_ONLY_SURROGATES = (
    ("LeakyKReLU", dict(leak=0.0, k=1.0), dict(leak=0.1, k=0.5)),
    ("FakeNumericalGradient", dict(alpha=0.3), dict(alpha=0.5)),
    ("LogTailedReLU", dict(alpha=0.0), dict(alpha=0.1)),
)
_NO_PRIMITIVE = {"FakeNumericalGradient"}

# surrogates cycled through the neuron configurations (both APIs support these)
NEURON_SURROGATES = (sg("Sigmoid"), sg("ATan", alpha=3.0), sg("PiecewiseQuadratic"),
                     sg("PiecewiseExp", alpha=2.0), sg("SoftSign"), sg("Erf"),
                     sg("PiecewiseLeakyReLU", w=0.5, c=0.1), sg("S2NN"),
                     sg("QPseudoSpike", alpha=3.0), sg("SquarewaveFourierSeries"))


# primitives built from + - * / abs and comparisons only: reproducible bit for bit
EXACT_PRIMITIVES = {"PiecewiseQuadratic", "SoftSign", "PiecewiseLeakyReLU", "LeakyKReLU",
                    "QPseudoSpike"}


def _surrogate_records() -> list:
    recs = []
    for api, path, table in (("cd", "clock_driven", _COMMON_SURROGATES),
                             ("ab", "activation_based", _COMMON_SURROGATES + _AB_ONLY_SURROGATES)):
        for name, default, other in table:
            configs = [dict(default, spiking=True), dict(other, spiking=True)]
            if name not in _NO_PRIMITIVE:
                configs += [dict(default, spiking=False), dict(other, spiking=False)]
            if name == "FakeNumericalGradient":
                configs = [{k: v for k, v in c.items() if k != "spiking"} for c in configs]
            defects = []
            if api == "ab" and name == "NonzeroSignLogAbs":
                defects.append("ab-nonzerosignlogabs-backward")
            if name == "LogTailedReLU":
                defects.append("logtailedrelu-primitive-nan")
                if api == "ab":
                    defects.append("ab-logtailedrelu-float64-alpha")
            recs.append(Record(
                name=f"{api}.{name}", family=f"surrogate ({api.upper()})", kind="surrogate",
                sj=f"spikingjelly.{path}.surrogate.{name}", refsnn=f"refsnn.surrogate.{name}",
                configs=tuple(configs), defects=tuple(defects),
                # other primitives go through SLEEF's exp/atan/erfc/log/sin in torch and
                # libm's in NumPy: compared with the relative tolerance instead
                options=(("exact_primitive", name in EXACT_PRIMITIVES),)))
        # the intended PiecewiseLeakyReLU: surrogate slope = the primitive's slope 1/(2w)
        recs.append(Record(
            name=f"{api}.PiecewiseLeakyReLU(consistent_slope)", family=f"surrogate ({api.upper()})",
            kind="surrogate", sj=f"spikingjelly.{path}.surrogate.PiecewiseLeakyReLU",
            refsnn="refsnn.surrogate.PiecewiseLeakyReLU",
            configs=(dict(w=1.0, c=0.01, spiking=True), dict(w=0.5, c=0.1, spiking=True)),
            defects=("piecewiseleakyrelu-slope",),
            options=(("refsnn_kwargs", {"consistent_slope": True}),)))
    return recs


# ----------------------------------------------------------------------------
# neurons
# ----------------------------------------------------------------------------
_RESETS = (0.0, None, -0.3)


def _if_space():
    return covering(dict(v_reset=_RESETS, detach_reset=(False, True)),
                    dict(v_threshold=(1.0, 0.5, 1.25),
                         surrogate_function=NEURON_SURROGATES[:6]))


def _lif_space(tau_name="tau", taus=(2.0, 3.0, 1.7, 100.0)):
    return covering(dict(v_reset=_RESETS, decay_input=(True, False),
                         detach_reset=(False, True)),
                    {tau_name: taus, "v_threshold": (1.0, 0.75, 1.5),
                     "surrogate_function": NEURON_SURROGATES})


def _qif_space():
    return covering(dict(v_reset=(-0.1, None), detach_reset=(False, True)),
                    dict(tau=(2.0, 3.0), v_c=(0.8, 0.5), a0=(1.0, 0.5),
                         v_threshold=(1.0, 1.2), v_rest=(0.0, -0.05),
                         surrogate_function=NEURON_SURROGATES[:4]))


def _eif_space():
    return covering(dict(v_reset=(-0.1, None), detach_reset=(False, True)),
                    dict(tau=(2.0, 3.0), delta_T=(1.0, 0.5), theta_rh=(0.8, 0.6),
                         v_threshold=(1.0, 1.2), v_rest=(0.0, -0.05),
                         surrogate_function=NEURON_SURROGATES[:4]))


def _izhikevich_space():
    return covering(dict(v_reset=(0.0, None), detach_reset=(False, True)),
                    dict(tau=(2.0, 3.0), v_c=(0.8, 0.6), a0=(1.0, 0.5), v_rest=(-0.1, -0.2),
                         w_rest=(0.0, 0.05), tau_w=(2.0, 3.0), a=(0.0, 0.1), b=(0.0, 0.05),
                         surrogate_function=NEURON_SURROGATES[:4]))


def _klif_space():
    return covering(dict(scale_reset=(False, True), v_reset=(0.0, -0.2, None),
                         detach_reset=(False, True)),
                    dict(tau=(2.0, 3.0), decay_input=(True, False),
                         surrogate_function=NEURON_SURROGATES[:4]))


def _liaf_space():
    return covering(dict(threshold_related=(True, False), v_reset=(0.0, None)),
                    dict(act=(Act("ReLU"), Act("Identity")), tau=(2.0, 3.0)))


def _general_space():
    return covering(dict(v_reset=(0.0, None)), dict(a=(0.5,), b=(1.0,), c=(0.0, 0.1)))


def _neuron(api, cls, configs, family, step_modes, *, low=-0.5, high=2.5,
            training=(True,), forward_rtol=None, defects=(), fused=True, tensor_state=False):
    """A neuron record. `fused`: refsnn runs it with the fused backends too.
    `tensor_state`: start both frameworks from a tensor `v` (filled with the
    reset value) instead of SpikingJelly's Python float, for the clock_driven
    classes whose first step evaluates float-only terms in another precision
    (see the defects 'cd-qif-first-step' and 'cd-eif-float32-state', tested
    separately)."""
    path = "clock_driven" if api == "cd" else "activation_based"
    return Record(
        name=f"{api}.{cls}", family=family, kind="neuron",
        sj=f"spikingjelly.{path}.neuron.{cls}", refsnn=f"refsnn.neurons.{cls}",
        configs=configs, step_modes=step_modes,
        backends=NEURON_BACKENDS if fused else ("numpy",), training=training,
        forward_rtol=forward_rtol, defects=defects,
        options=(("low", low), ("high", high), ("shape", (8, 2, 8)),
                 ("tensor_state", tensor_state)))


def _neuron_records() -> list:
    ab, cd = "neuron (AB)", "neuron (CD)"
    both, m_only, s_only = ("s", "m"), ("m",), ("s",)
    train_eval = (True, False)
    # torch's SLEEF exp vs NumPy's exp differ by a few ulp: 16 ulp of the largest value
    eif_rtol = (("float32", 16 * 2.0 ** -23), ("float64", 16 * 2.0 ** -52))
    return [
        # activation_based: one class per neuron, step_mode 's' or 'm'
        _neuron("ab", "IFNode", _if_space(), ab, both, training=train_eval),
        _neuron("ab", "LIFNode", _lif_space(), ab, both, training=train_eval),
        _neuron("ab", "ParametricLIFNode", _lif_space("init_tau", (2.0, 3.0, 1.7, 5.0)), ab, both),
        _neuron("ab", "QIFNode", _qif_space(), ab, both, low=-0.3, high=1.0),
        _neuron("ab", "EIFNode", _eif_space(), ab, both, low=-0.3, high=1.2,
                forward_rtol=eif_rtol),
        _neuron("ab", "IzhikevichNode", _izhikevich_space(), ab, both, low=-0.3, high=1.0),
        _neuron("ab", "KLIFNode", _klif_space(), ab, both, defects=("ab-klif-soft-reset",),
                fused=False),
        _neuron("ab", "LIAFNode", _liaf_space(), ab, both, defects=("ab-liaf-construction",),
                fused=False),
        # clock_driven: single-step classes and their MultiStep* twins
        _neuron("cd", "IFNode", _if_space(), cd, s_only),
        _neuron("cd", "LIFNode", _lif_space(), cd, s_only),
        _neuron("cd", "ParametricLIFNode", _lif_space("init_tau", (2.0, 3.0, 1.7, 5.0)), cd,
                s_only),
        _neuron("cd", "QIFNode", _qif_space(), cd, s_only, low=-0.3, high=1.0,
                tensor_state=True),
        _neuron("cd", "EIFNode", _eif_space(), cd, s_only, low=-0.3, high=1.2,
                forward_rtol=eif_rtol, tensor_state=True),
        _neuron("cd", "LIAFNode", _liaf_space(), cd, s_only, fused=False),
        _neuron("cd", "GeneralNode", _general_space(), cd, s_only, defects=("cd-generalnode",),
                fused=False),
        _neuron("cd", "MultiStepIFNode", _if_space(), cd, m_only),
        _neuron("cd", "MultiStepLIFNode", _lif_space(), cd, m_only),
        _neuron("cd", "MultiStepParametricLIFNode",
                _lif_space("init_tau", (2.0, 3.0, 1.7, 5.0)), cd, m_only),
        _neuron("cd", "MultiStepEIFNode", _eif_space(), cd, m_only, low=-0.3, high=1.2,
                forward_rtol=eif_rtol, tensor_state=True),
        _neuron("cd", "MultiStepGeneralNode", _general_space(), cd, m_only,
                defects=("cd-multistepgeneralnode",), fused=False),
    ]


# ----------------------------------------------------------------------------
# optimizers
# ----------------------------------------------------------------------------
def _optimizer_records() -> list:
    sgd = covering(dict(momentum=(0.0, 0.9), weight_decay=(0.0, 1e-2)),
                   dict(lr=(0.1, 0.01, 0.05), dampening=(0.0, 0.1)), base={})
    sgd += (dict(lr=0.05, momentum=0.9, nesterov=True),
            dict(lr=0.05, momentum=0.5, nesterov=True, weight_decay=1e-3))
    adam = covering(dict(weight_decay=(0.0, 1e-2), amsgrad=(False, True)),
                    dict(lr=(1e-3, 1e-2), betas=((0.9, 0.999), (0.8, 0.99)), eps=(1e-8, 1e-6)))
    common = dict(family="optimizer", kind="optimizer", options=(("steps", 8),))
    return [Record(name="optim.SGD", sj="torch.optim.SGD", refsnn="refsnn.optim.SGD",
                   configs=sgd, **common),
            Record(name="optim.Adam", sj="torch.optim.Adam", refsnn="refsnn.optim.Adam",
                   configs=adam, **common)]


# ----------------------------------------------------------------------------
# networks (twinned with refsnn.interop.from_torch) and single torch.nn layers
# ----------------------------------------------------------------------------
_NETS = "refsnn.conformance.networks."
# GEMM / convolution / BatchNorm reductions: not bit-reproducible (N7)
_LAYER_RTOL = (("float32", 1e-5), ("float64", 1e-12))


def _network(name, family, configs, step_modes, *, training=(True, False), defects=(),
             fused=True, fan_in=1):
    return Record(name=f"net.{name}", family=family, kind="network", sj=_NETS + name,
                  refsnn="refsnn.interop.from_torch", configs=configs,
                  step_modes=step_modes, training=training, defects=defects,
                  backends=NEURON_BACKENDS if fused else ("numpy",),
                  forward_rtol=_LAYER_RTOL, options=(("T", 4), ("fan_in", fan_in)))


def _network_records() -> list:
    ab, cd = "network (AB)", "network (CD)"
    return [
        _network("ab_conv_bn_lif_linear_if", ab,
                 (dict(when="before"), dict(when="after", tau=3.0, v_reset=None),
                  dict(when="before", detach_reset=True, sequences=2),
                  dict(when="before", sequences=2, reset_between=True)), ("m",), fan_in=36),
        _network("ab_conv_bn_lif_linear_if", ab, (dict(when="loop"),), ("s",), fan_in=36),
        _network("ab_containers", ab, (dict(), dict(chunk=True)), ("m",), fused=False, fan_in=8),
        _network("ab_set_step_mode_into_container", ab, (dict(),), ("m",), fused=False,
                 defects=("ab-set-step-mode-container",), fan_in=8),
        _network("ab_dropout", ab, (dict(), {"2d": True}), ("s", "m"), fan_in=18),
        _network("cd_seq_to_ann", cd, (dict(), dict(reset_between=True)), ("m",), fan_in=36),
        _network("cd_multi_step_container", cd, (dict(),), ("s",), fan_in=8),
        _network("cd_functional", cd, (dict(helper="multi_step_forward"),
                                       dict(helper="seq_to_ann_forward")), ("s",), fan_in=18),
        _network("cd_dropout", cd, (dict(),), ("s", "m"), fan_in=8),
    ]


def _layer(cls, configs, fan_in=1, training=(True,)):
    return Record(name=f"nn.{cls}", family="layer (torch.nn)", kind="network",
                  sj=_NETS + "single_layer", refsnn=f"refsnn.layers.{cls}", configs=configs,
                  training=training, forward_rtol=_LAYER_RTOL,
                  options=(("T", 1), ("fan_in", fan_in), ("layer", f"torch.nn.{cls}")))


def _layer_records() -> list:
    img = (3, 4, 7, 7)
    return [
        _layer("Linear", (dict(args=(16, 8), shape=(5, 16)),
                          dict(args=(16, 8), bias=False, shape=(2, 3, 16)),
                          dict(args=(256, 4), shape=(6, 256))), fan_in=256),
        _layer("Conv1d", (dict(args=(4, 6, 3), shape=(3, 4, 11)),
                          dict(args=(4, 6, 3), stride=2, padding=1, dilation=2, shape=(3, 4, 11)),
                          dict(args=(4, 6, 1), groups=2, bias=False, shape=(3, 4, 11))), fan_in=12),
        _layer("Conv2d", (dict(args=(4, 6, 3), shape=img),
                          dict(args=(4, 6, 3), stride=2, padding=1, shape=img),
                          dict(args=(4, 8, (3, 2)), padding=(1, 0), dilation=(2, 1), groups=2,
                               bias=False, shape=img),
                          dict(args=(4, 6, 3), padding="same", shape=img)), fan_in=36),
        _layer("BatchNorm1d", (dict(args=(6,), shape=(8, 6)), dict(args=(4,), shape=(5, 4, 3)),
                               dict(args=(6,), momentum=None, shape=(8, 6)),
                               dict(args=(6,), affine=False, shape=(8, 6))),
               fan_in=24, training=(True, False)),
        _layer("BatchNorm2d", (dict(args=(4,), shape=img), dict(args=(4,), eps=1e-3, momentum=0.3,
                                                               shape=img)),
               fan_in=147, training=(True, False)),
        _layer("MaxPool2d", (dict(args=(2,), shape=img), dict(args=(3,), stride=2, padding=1,
                                                             shape=img),
                             dict(args=(2,), ceil_mode=True, shape=img))),
        _layer("AvgPool2d", (dict(args=(2,), shape=img),
                             dict(args=(3,), stride=2, padding=1, count_include_pad=False,
                                  shape=img),
                             dict(args=(3,), stride=2, padding=1, ceil_mode=True, shape=img)),
               fan_in=9),
        _layer("AdaptiveAvgPool2d", (dict(args=((1, 1),), shape=img), dict(args=(3,), shape=img)),
               fan_in=49),
        _layer("Flatten", (dict(shape=img), dict(start_dim=2, shape=img))),
        _layer("ReLU", (dict(shape=(4, 9)),)),
        _layer("Identity", (dict(shape=(4, 9)),)),
    ]


RECORDS: list = (_neuron_records() + _surrogate_records() + _network_records()
                 + _layer_records() + _optimizer_records())
