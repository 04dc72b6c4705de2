"""Spiking neurons: SpikingJelly 0.0.0.0.14's neuron classes, same names,
arguments, defaults, memories and reprs.

Two flavours, matching SpikingJelly's two APIs:
- `IFNode`, `LIFNode`, `ParametricLIFNode`, `QIFNode`, `EIFNode`,
  `IzhikevichNode`, `KLIFNode`, `LIAFNode`, `GeneralNode` follow
  `activation_based`: `step_mode='s'|'m'`, `backend`, `store_v_seq`;
  `v_threshold` and `v_reset` are plain attributes (a `reset()` keeps a changed
  threshold); IF and LIF in eval mode run SpikingJelly's graph-free eval path
  (spikes `h >= v_threshold`, no autograd graph, and LIF's eval charge form).
- `MultiStepIFNode`, `MultiStepLIFNode`, `MultiStepParametricLIFNode`,
  `MultiStepEIFNode`, `MultiStepGeneralNode` follow `clock_driven`: always
  multi-step, `v_threshold` and `v_reset` are memories (restored by `reset()`),
  `v_seq` (post-reset potentials `[T, N, *]`) is always recorded, eval mode
  runs the training formulas, and the repr ends with `backend=`.
A `clock_driven` single-step neuron (`clock_driven.neuron.LIFNode`) computes
what the `activation_based` class in step mode 's' computes; only its
threshold-as-memory behaviour is not mirrored.

Memory model: `v` starts as the Python float `v_reset` (0. for soft reset),
becomes a Tensor shaped like the input on the first step, and goes back to the
float on `reset()` (`functional.reset_net`). Memories are not in `state_dict()`;
parameters are (`w` of ParametricLIFNode, `k` of KLIFNode).

Backends (`backend=`; SpikingJelly's names are accepted as aliases:
'torch' -> 'numpy', 'cupy' -> 'numpy-fused'):
- 'numpy' (default): each step composed from autograd ops in SpikingJelly's
  operation order (`neuron_dynamics`), so float32 spikes and potentials are
  bit-identical to SpikingJelly's torch backend, and gradients follow
  `clock_driven`'s autograd accumulation order (multi-step outputs are joined
  as `cat` of per-step `unsqueeze`s, as `clock_driven` does).
- 'numpy-fused' and 'opencl' (step mode 'm', IF/LIF/PLIF/QIF/EIF/Izhikevich): the whole
  sequence as one op with a closed-form backward (`refsnn.fused`); same
  forward bits, gradients equal up to rounding.

Shapes: single step `x: [N, *] -> spike [N, *]`; multi-step
`x_seq: [T, N, *] -> spike_seq [T, N, *]`.

Differences from SpikingJelly 0.0.0.0.14 (evident intent implemented instead):
- A state `v` whose shape differs from the input's raises a ValueError telling
  to call `functional.reset_net`; SpikingJelly silently broadcasts a
  broadcastable batch change (state [1, 3], input [2, 3]).
- A multi-step input with fewer than 2 dims raises ValueError
  (`activation_based` treats a 1-D input as T scalar steps, `clock_driven`
  asserts).
- `GeneralNode`/`MultiStepGeneralNode` work (SpikingJelly's constructors set
  the buffers `a`, `b`, `c` to None or fail); `a`, `b`, `c` are buffers.
- `LIAFNode` works in both step modes (`activation_based` fails at
  construction; its eval multi-step path would return spikes, not `y`).
- `KLIFNode` with soft reset (`v_reset=None`) charges as if `v_reset=0.`
  (SpikingJelly raises a TorchScript error).
- `AdaptiveBaseNode` (`clock_driven`, broken: `super.__init__`) is
  `AdaptBaseNode`.
- `clock_driven` QIF keeps `v` a Python float on the first step, so its first
  step can differ from this (= `activation_based`) by 1 ulp; `clock_driven`
  EIF starts from a 0-dim float32 `v` even for float64 input.
"""
from __future__ import annotations

import math

import numpy as np

from . import fused
from . import neuron_dynamics as nd
from .autograd import Tensor, as_tensor, cat, no_grad
from .containers import StepModule
from .mathops import NUMPY, TENSOR
from .module import MemoryModule, Parameter
from .surrogate import Sigmoid

__all__ = [
    "BaseNode", "AdaptBaseNode", "AdaptiveBaseNode", "IFNode", "LIFNode",
    "ParametricLIFNode", "QIFNode", "EIFNode", "IzhikevichNode", "KLIFNode", "LIAFNode",
    "GeneralNode", "MultiStepIFNode", "MultiStepLIFNode", "MultiStepParametricLIFNode",
    "MultiStepEIFNode", "MultiStepGeneralNode",
]

#: SpikingJelly backend names accepted for porting
BACKEND_ALIASES = {"torch": "numpy", "cupy": "numpy-fused"}
FUSED_BACKENDS = ("numpy-fused", "opencl")


# ----------------------------------------------------------------------------
# argument checks (SpikingJelly asserts; the messages say what is wrong)
# ----------------------------------------------------------------------------
def _describe(value) -> str:
    return f"{value!r} ({type(value).__name__})"


def _check(condition: bool, owner: str, message: str) -> None:
    if not condition:
        raise AssertionError(f"{owner}: {message}")


def _check_float(owner: str, name: str, value) -> None:
    _check(isinstance(value, float), owner, f"{name} must be a float, got {_describe(value)}")


def _check_tau(owner: str, name: str, value) -> None:
    _check(isinstance(value, float) and value > 1., owner,
           f"{name} must be a float > 1, got {_describe(value)}")


# ----------------------------------------------------------------------------
# the base class
# ----------------------------------------------------------------------------
class BaseNode(StepModule, MemoryModule):
    """Base of the differentiable spiking neurons (`activation_based.neuron.BaseNode`).

    A step: `neuronal_charge(x)` sets `self.v` to the charged potential `h`;
    `neuronal_fire()` returns `surrogate_function(h - v_threshold)`;
    `neuronal_reset(spike)` resets `self.v`. Subclasses define
    `neuronal_charge`, as in SpikingJelly (a custom neuron ports unchanged).
    """

    #: kind name for the fused backends (None: composed path only)
    fused_kind = None
    #: IF/LIF of activation_based: eval mode runs a graph-free path
    graph_free_eval = False
    #: clock_driven flavour: thresholds are memories, always multi-step
    clock_driven = False

    def __init__(self, v_threshold: float = 1., v_reset: float = 0.,
                 surrogate_function=Sigmoid(), detach_reset: bool = False,
                 step_mode: str = "s", backend: str = "numpy", store_v_seq: bool = False):
        owner = type(self).__name__
        _check(isinstance(v_reset, float) or v_reset is None, owner,
               f"v_reset must be a float or None, got {_describe(v_reset)}")
        _check_float(owner, "v_threshold", v_threshold)
        _check(isinstance(detach_reset, bool), owner,
               f"detach_reset must be a bool, got {_describe(detach_reset)}")
        super().__init__()
        self.register_memory("v", 0. if v_reset is None else v_reset)
        if self.clock_driven:
            self.register_memory("v_threshold", v_threshold)
            self.register_memory("v_reset", v_reset)
        else:
            self.v_threshold = v_threshold
            self.v_reset = v_reset
        self.detach_reset = detach_reset
        self.surrogate_function = surrogate_function
        self.step_mode = step_mode
        self.backend = backend
        self.store_v_seq = store_v_seq

    # --- configuration ------------------------------------------------------------
    @property
    def store_v_seq(self) -> bool:
        return self._store_v_seq

    @store_v_seq.setter
    def store_v_seq(self, value: bool) -> None:
        object.__setattr__(self, "_store_v_seq", value)
        if value and "v_seq" not in self._memories:
            self.register_memory("v_seq", None)

    @property
    def supported_backends(self) -> tuple:
        """Backends usable in the current step mode."""
        if self.step_mode == "m" and self.fused_kind is not None:
            return ("numpy",) + FUSED_BACKENDS
        return ("numpy",)

    @property
    def backend(self) -> str:
        return self._backend

    @backend.setter
    def backend(self, value: str) -> None:
        name = BACKEND_ALIASES.get(value, value)
        if name not in self.supported_backends:
            raise NotImplementedError(
                f"{type(self).__name__}: backend {value!r} is not supported in step_mode "
                f"{self.step_mode!r}; supported: {self.supported_backends}")
        if name in FUSED_BACKENDS:
            fused.get_backend(name)     # fails here if its library is missing
        object.__setattr__(self, "_backend", name)

    def extra_repr(self) -> str:
        base = (f"v_threshold={self.v_threshold}, v_reset={self.v_reset}, "
                f"detach_reset={self.detach_reset}")
        if self.clock_driven:
            return base + self._params_repr() + f", backend={self.backend}"
        return base + f", step_mode={self.step_mode}, backend={self.backend}" + self._params_repr()

    def _params_repr(self) -> str:
        """The class's own hyper-parameters for the repr, e.g. ', tau=2.0'."""
        return ""

    # --- state ------------------------------------------------------------------------
    def v_float_to_tensor(self, x: Tensor) -> None:
        """Turn the float `v` (fresh or reset) into a Tensor shaped like `x`."""
        if isinstance(self.v, float):
            self.v = Tensor(np.full(x.shape, self.v, dtype=x.dtype))

    def _check_state(self, shape: tuple, names=("v",)) -> None:
        for name in names:
            value = getattr(self, name)
            if isinstance(value, Tensor) and tuple(value.shape) != tuple(shape):
                raise ValueError(
                    f"{type(self).__name__}: the state {name} has shape {tuple(value.shape)} "
                    f"but the input step has shape {tuple(shape)}. State is kept between "
                    f"calls; call functional.reset_net(net) (or this module's reset()) "
                    f"before feeding a new batch or input shape")

    # --- one step -----------------------------------------------------------------------
    def neuronal_charge(self, x: Tensor) -> None:
        raise NotImplementedError(f"{type(self).__name__} must define neuronal_charge(x)")

    def neuronal_fire(self) -> Tensor:
        return self.surrogate_function(nd.fire_input(self.v, self.v_threshold))

    def neuronal_reset(self, spike: Tensor) -> None:
        spike_d = spike.detach() if self.detach_reset else spike
        self.v = nd.reset(self.v, spike_d, self.v_threshold, self.v_reset)

    def single_step_forward(self, x) -> Tensor:
        """x: [N, *] -> spike [N, *]; charge, fire, reset."""
        x = as_tensor(x)
        self._check_state(x.shape)
        self.v_float_to_tensor(x)
        self.neuronal_charge(x)
        spike = self.neuronal_fire()
        self.neuronal_reset(spike)
        return spike

    # --- a sequence ---------------------------------------------------------------------
    def _check_sequence(self, x_seq: Tensor) -> None:
        if x_seq.ndim < 2:
            raise ValueError(
                f"{type(self).__name__}: multi-step input must be x_seq: [T, N, *] with at "
                f"least 2 dims, got shape {tuple(x_seq.shape)}")

    def multi_step_forward(self, x_seq) -> Tensor:
        """x_seq: [T, N, *] -> spike_seq [T, N, *]; also `v_seq` if recorded."""
        x_seq = as_tensor(x_seq)
        self._check_sequence(x_seq)
        if self.backend in FUSED_BACKENDS and not (self.graph_free_eval and not self.training):
            return self._fused_forward(x_seq)
        y_seq, v_seq = [], []
        for t in range(x_seq.shape[0]):
            y_seq.append(self.single_step_forward(x_seq[t]).unsqueeze(0))
            if self.store_v_seq:
                v_seq.append(self.v.unsqueeze(0))
        if self.store_v_seq:
            self.v_seq = cat(v_seq)
        return cat(y_seq)

    # --- the fused path ---------------------------------------------------------------
    def _fused_params(self) -> dict:
        """Hyper-parameters of `fused.NeuronSpec` for this class."""
        return {}

    def _fused_decay(self):
        """PLIF's 0-dim decay Tensor, or None."""
        return None

    def _fused_forward(self, x_seq: Tensor) -> Tensor:
        if x_seq.dtype.kind != "f":
            raise TypeError(f"{type(self).__name__}: backend {self.backend!r} needs a "
                            f"floating-point x_seq, got {x_seq.dtype}")
        sg = self.surrogate_function
        if not getattr(sg, "spiking", False) or not hasattr(sg, "formula_params"):
            raise NotImplementedError(
                f"{type(self).__name__}: backend {self.backend!r} runs refsnn.surrogate "
                f"surrogates in spiking mode only, got {sg!r}; use backend='numpy'")
        spec = fused.NeuronSpec(
            kind=self.fused_kind, v_threshold=self.v_threshold, v_reset=self.v_reset,
            detach_reset=self.detach_reset, surrogate=type(sg).__name__,
            surrogate_params=tuple(sg.formula_params().items()), dtype=x_seq.dtype.name,
            **self._fused_params())
        backend = fused.get_backend(self.backend)
        reason = backend.supports(spec)
        if reason is not None:
            raise NotImplementedError(f"{type(self).__name__}: backend {self.backend!r} "
                                      f"cannot run this neuron: {reason}")
        step_shape = tuple(x_seq.shape[1:])
        self._check_state(step_shape, spec.states)
        states = []
        for name in spec.states:       # v, and Izhikevich's w
            value = getattr(self, name)
            if isinstance(value, float):
                value = Tensor(np.full(step_shape, value, dtype=x_seq.dtype))
                setattr(self, name, value)
            states.append(value if value.dtype == x_seq.dtype else value.to(x_seq.dtype))
        spike_seq, *seqs = fused.fused_multi_step(spec, backend, x_seq, states[0],
                                                  self._fused_decay(), *states[1:])
        for name, seq in zip(spec.states, seqs):
            setattr(self, name, seq[-1].clone())
        if self.store_v_seq:
            self.v_seq = seqs[0]
        return spike_seq


class _GraphFreeEval:
    """`activation_based` IF/LIF in eval mode: spikes are `h >= v_threshold`,
    nothing is recorded on the tape (outputs never require grad), and LIF
    uses its eval charge form."""

    graph_free_eval = True

    def single_step_forward(self, x) -> Tensor:
        if self.training or not self.graph_free_eval:
            return super().single_step_forward(x)
        x = as_tensor(x)
        self._check_state(x.shape)
        with no_grad():
            self.v_float_to_tensor(x)
            h = self._eval_charge(x.data, self.v.data)
            spike = NUMPY.ge(h, self.v_threshold)
            self.v = Tensor(nd.reset(h, spike, self.v_threshold, self.v_reset))
        return Tensor(spike)


# ----------------------------------------------------------------------------
# integrate-and-fire family
# ----------------------------------------------------------------------------
class IFNode(_GraphFreeEval, BaseNode):
    """Integrate-and-fire: `h = v + x`."""

    fused_kind = "IF"

    def __init__(self, v_threshold: float = 1., v_reset: float = 0.,
                 surrogate_function=Sigmoid(), detach_reset: bool = False,
                 step_mode: str = "s", backend: str = "numpy", store_v_seq: bool = False,
                 *, cupy_fp32_inference: bool = False):
        """`cupy_fp32_inference` (clock_driven; a CUDA-only inference kernel) is
        accepted and has no effect, as on a CPU in SpikingJelly."""
        super().__init__(v_threshold, v_reset, surrogate_function, detach_reset,
                         step_mode, backend, store_v_seq)

    def neuronal_charge(self, x: Tensor) -> None:
        self.v = nd.if_charge(x, self.v)

    def _eval_charge(self, x, v):
        return nd.if_charge(x, v)


class LIFNode(_GraphFreeEval, BaseNode):
    """Leaky integrate-and-fire, decay `1/tau`:
    `h = v + (x - (v - v_reset)) / tau` (decay_input) or
    `h = v - (v - v_reset) / tau + x`, in SpikingJelly's four exact forms."""

    fused_kind = "LIF"

    def __init__(self, tau: float = 2., decay_input: bool = True, v_threshold: float = 1.,
                 v_reset: float = 0., surrogate_function=Sigmoid(),
                 detach_reset: bool = False, step_mode: str = "s", backend: str = "numpy",
                 store_v_seq: bool = False, *, cupy_fp32_inference: bool = False):
        _check_tau(type(self).__name__, "tau", tau)
        super().__init__(v_threshold, v_reset, surrogate_function, detach_reset,
                         step_mode, backend, store_v_seq)
        self.tau = tau
        self.decay_input = decay_input

    def _params_repr(self) -> str:
        return f", tau={self.tau}"

    def neuronal_charge(self, x: Tensor) -> None:
        self.v = nd.lif_charge(x, self.v, self.tau, self.decay_input, self.v_reset)

    def _eval_charge(self, x, v):
        return nd.lif_charge(x, v, self.tau, self.decay_input, self.v_reset, eval_form=True)

    def _fused_params(self) -> dict:
        return {"tau": self.tau, "decay_input": self.decay_input}


class ParametricLIFNode(BaseNode):
    """LIF with a learnable decay `k = sigmoid(w)`; `w` is a 0-dim float32
    parameter initialised to `-ln(init_tau - 1)` (-0.0 for init_tau=2).
    `k` is recomputed from `w` at every step, as in SpikingJelly."""

    fused_kind = "PLIF"

    def __init__(self, init_tau: float = 2.0, decay_input: bool = True,
                 v_threshold: float = 1., v_reset: float = 0., surrogate_function=Sigmoid(),
                 detach_reset: bool = False, step_mode: str = "s", backend: str = "numpy",
                 store_v_seq: bool = False):
        _check_tau(type(self).__name__, "init_tau", init_tau)
        super().__init__(v_threshold, v_reset, surrogate_function, detach_reset,
                         step_mode, backend, store_v_seq)
        self.decay_input = decay_input
        self.w = Parameter(np.asarray(-math.log(init_tau - 1.), dtype=np.float32))

    def _params_repr(self) -> str:
        w = self.w.data
        tau = np.asarray(1., w.dtype) / NUMPY.sigmoid(w)
        return f", tau={float(tau)}"

    def neuronal_charge(self, x: Tensor) -> None:
        self.v = nd.plif_charge(x, self.v, self.w.sigmoid(), self.decay_input, self.v_reset)

    def _fused_params(self) -> dict:
        return {"decay_input": self.decay_input}

    def _fused_decay(self):
        return self.w.sigmoid()      # in w's dtype: `1. - k` rounds there, as in PyTorch


class QIFNode(BaseNode):
    """Quadratic integrate-and-fire:
    `h = v + (x + a0 * (v - v_rest) * (v - v_c)) / tau`."""

    fused_kind = "QIF"

    def __init__(self, tau: float = 2., v_c: float = 0.8, a0: float = 1.,
                 v_threshold: float = 1., v_rest: float = 0., v_reset: float = -0.1,
                 surrogate_function=Sigmoid(), detach_reset: bool = False,
                 step_mode: str = "s", backend: str = "numpy", store_v_seq: bool = False):
        owner = type(self).__name__
        _check_tau(owner, "tau", tau)
        _check_reset_below(owner, v_threshold, v_rest, v_reset)
        _check(a0 > 0, owner, f"a0 must be > 0, got {a0!r}")
        super().__init__(v_threshold, v_reset, surrogate_function, detach_reset,
                         step_mode, backend, store_v_seq)
        self.tau, self.v_c, self.v_rest, self.a0 = tau, v_c, v_rest, a0

    def _params_repr(self) -> str:
        return f", tau={self.tau}, v_c={self.v_c}, a0={self.a0}, v_rest={self.v_rest}"

    def neuronal_charge(self, x: Tensor) -> None:
        self.v = nd.qif_charge(x, self.v, self.tau, self.v_rest, self.v_c, self.a0)

    def _fused_params(self) -> dict:
        return {"tau": self.tau, "v_rest": self.v_rest, "v_c": self.v_c, "a0": self.a0}


def _check_reset_below(owner: str, v_threshold, v_rest, v_reset) -> None:
    """QIF/EIF: with hard reset, v_threshold > v_reset and v_rest >= v_reset."""
    if v_reset is not None:
        _check(v_threshold > v_reset, owner,
               f"v_threshold ({v_threshold}) must be larger than v_reset ({v_reset})")
        _check(v_rest >= v_reset, owner,
               f"v_rest ({v_rest}) must not be smaller than v_reset ({v_reset})")


class EIFNode(BaseNode):
    """Exponential integrate-and-fire:
    `h = v + (x + v_rest - v + delta_T * exp((v - theta_rh) / delta_T)) / tau`."""

    fused_kind = "EIF"

    def __init__(self, tau: float = 2., delta_T: float = 1., theta_rh: float = .8,
                 v_threshold: float = 1., v_rest: float = 0., v_reset: float = -0.1,
                 surrogate_function=Sigmoid(), detach_reset: bool = False,
                 step_mode: str = "s", backend: str = "numpy", store_v_seq: bool = False):
        owner = type(self).__name__
        _check_tau(owner, "tau", tau)
        _check_reset_below(owner, v_threshold, v_rest, v_reset)
        _check(delta_T > 0, owner, f"delta_T must be > 0, got {delta_T!r}")
        super().__init__(v_threshold, v_reset, surrogate_function, detach_reset,
                         step_mode, backend, store_v_seq)
        self.tau, self.delta_T, self.v_rest, self.theta_rh = tau, delta_T, v_rest, theta_rh

    def _params_repr(self) -> str:
        return f", tau={self.tau}, delta_T={self.delta_T}, theta_rh={self.theta_rh}"

    def neuronal_charge(self, x: Tensor) -> None:
        self.v = nd.eif_charge(x, self.v, self.tau, self.v_rest, self.delta_T,
                               self.theta_rh, TENSOR)

    def _fused_params(self) -> dict:
        return {"tau": self.tau, "v_rest": self.v_rest, "delta_T": self.delta_T,
                "theta_rh": self.theta_rh}


# ----------------------------------------------------------------------------
# adaptive neurons
# ----------------------------------------------------------------------------
class AdaptBaseNode(BaseNode):
    """Base of neurons with an adaptation current `w` (a memory, starting as the
    float `w_rest`). A step: charge (using the previous `w`), adaptation
    `w <- w + 1/tau_w * (a * (h - v_rest) - w)`, fire, reset of `v` and
    `w <- w + b * spike`."""

    def __init__(self, v_threshold: float = 1., v_reset: float = 0., v_rest: float = 0.,
                 w_rest: float = 0., tau_w: float = 2., a: float = 0., b: float = 0.,
                 surrogate_function=Sigmoid(), detach_reset: bool = False,
                 step_mode: str = "s", backend: str = "numpy", store_v_seq: bool = False):
        owner = type(self).__name__
        for name, value in (("w_rest", w_rest), ("v_rest", v_rest), ("tau_w", tau_w),
                            ("a", a), ("b", b)):
            _check_float(owner, name, value)
        super().__init__(v_threshold, v_reset, surrogate_function, detach_reset,
                         step_mode, backend, store_v_seq)
        self.register_memory("w", w_rest)
        self.w_rest, self.v_rest, self.tau_w, self.a, self.b = w_rest, v_rest, tau_w, a, b

    def _params_repr(self) -> str:
        return (f", v_rest={self.v_rest}, w_rest={self.w_rest}, tau_w={self.tau_w}, "
                f"a={self.a}, b={self.b}")

    def w_float_to_tensor(self, x: Tensor) -> None:
        if isinstance(self.w, float):
            self.w = Tensor(np.full(x.shape, self.w, dtype=x.dtype))

    def neuronal_adaptation(self) -> None:
        self.w = nd.izhikevich_adaptation(self.w, self.v, self.tau_w, self.a, self.v_rest)

    def neuronal_reset(self, spike: Tensor) -> None:
        spike_d = spike.detach() if self.detach_reset else spike
        self.v, self.w = nd.izhikevich_reset(self.v, self.w, spike, spike_d,
                                             self.v_threshold, self.v_reset, self.b)

    def single_step_forward(self, x) -> Tensor:
        x = as_tensor(x)
        self._check_state(x.shape, ("v", "w"))
        self.v_float_to_tensor(x)
        self.w_float_to_tensor(x)
        self.neuronal_charge(x)
        self.neuronal_adaptation()
        spike = self.neuronal_fire()
        self.neuronal_reset(spike)
        return spike


#: `clock_driven.neuron.AdaptiveBaseNode` cannot be constructed in SpikingJelly
#: 0.0.0.0.14; its intent is `AdaptBaseNode`.
AdaptiveBaseNode = AdaptBaseNode


class IzhikevichNode(AdaptBaseNode):
    """Izhikevich: `h = v + (x + a0 * (v - v_rest) * (v - v_c) - w) / tau`,
    with adaptation `w` (see AdaptBaseNode)."""

    fused_kind = "Izhikevich"

    def __init__(self, tau: float = 2., v_c: float = 0.8, a0: float = 1.,
                 v_threshold: float = 1., v_reset: float = 0., v_rest: float = -0.1,
                 w_rest: float = 0., tau_w: float = 2., a: float = 0., b: float = 0.,
                 surrogate_function=Sigmoid(), detach_reset: bool = False,
                 step_mode: str = "s", backend: str = "numpy", store_v_seq: bool = False):
        owner = type(self).__name__
        _check_tau(owner, "tau", tau)
        _check(a0 > 0, owner, f"a0 must be > 0, got {a0!r}")
        super().__init__(v_threshold, v_reset, v_rest, w_rest, tau_w, a, b,
                         surrogate_function, detach_reset, step_mode, backend, store_v_seq)
        self.tau, self.v_c, self.a0 = tau, v_c, a0

    def _params_repr(self) -> str:
        return super()._params_repr() + f", tau={self.tau}, v_c={self.v_c}, a0={self.a0}"

    def neuronal_charge(self, x: Tensor) -> None:
        self.v = nd.izhikevich_charge(x, self.v, self.w, self.tau, self.v_rest, self.v_c,
                                      self.a0)

    def _fused_params(self) -> dict:
        return {"tau": self.tau, "v_rest": self.v_rest, "v_c": self.v_c, "a0": self.a0,
                "tau_w": self.tau_w, "a": self.a, "b": self.b}


# ----------------------------------------------------------------------------
# other neurons
# ----------------------------------------------------------------------------
class KLIFNode(BaseNode):
    """KLIF: LIF (general `v_reset` form) followed by `relu(k * h)`, with a
    learnable 0-dim `k` (float32, 1.). `scale_reset=True` divides by `k` in the
    reset: soft `(h - s*v_threshold) / k`, hard `(1 - s) * (h / k) + s * v_reset`."""

    def __init__(self, scale_reset: bool = False, tau: float = 2., decay_input: bool = True,
                 v_threshold: float = 1., v_reset: float = 0., surrogate_function=Sigmoid(),
                 detach_reset: bool = False, step_mode: str = "s", backend: str = "numpy",
                 store_v_seq: bool = False):
        _check_tau(type(self).__name__, "tau", tau)
        super().__init__(v_threshold, v_reset, surrogate_function, detach_reset,
                         step_mode, backend, store_v_seq)
        self.scale_reset = scale_reset
        self.tau = tau
        self.decay_input = decay_input
        self.k = Parameter(np.asarray(1., dtype=np.float32))

    def neuronal_charge(self, x: Tensor) -> None:
        self.v = nd.klif_charge(x, self.v, self.k, self.tau, self.decay_input, self.v_reset,
                                Tensor.relu)

    def neuronal_reset(self, spike: Tensor) -> None:
        if not self.scale_reset:
            return super().neuronal_reset(spike)
        spike_d = spike.detach() if self.detach_reset else spike
        if self.v_reset is None:
            self.v = nd.soft_reset(self.v, spike_d, self.v_threshold) / self.k
        else:
            self.v = nd.hard_reset(self.v / self.k, spike_d, self.v_reset)


class LIAFNode(LIFNode):
    """Leaky integrate-and-analog-fire: a LIF neuron that outputs
    `y = act(h - v_threshold)` (`threshold_related`) or `act(h)`, computed after
    the charge, instead of the spike; fire and reset run as in LIF."""

    graph_free_eval = False

    def __init__(self, act, threshold_related: bool, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.act = act
        self.threshold_related = threshold_related

    @property
    def supported_backends(self) -> tuple:
        return ("numpy",)

    def single_step_forward(self, x) -> Tensor:
        x = as_tensor(x)
        self._check_state(x.shape)
        self.v_float_to_tensor(x)
        self.neuronal_charge(x)
        y = self.act(nd.fire_input(self.v, self.v_threshold) if self.threshold_related
                     else self.v)
        self.neuronal_reset(self.neuronal_fire())
        return y


class GeneralNode(BaseNode):
    """`h = a * v + b * x + c`, with `a`, `b`, `c` buffers (0-dim float32 for
    Python floats, or the given arrays)."""

    def __init__(self, a, b, c=0., v_threshold: float = 1., v_reset: float = 0.,
                 surrogate_function=Sigmoid(), detach_reset: bool = False,
                 step_mode: str = "s", backend: str = "numpy", store_v_seq: bool = False):
        super().__init__(v_threshold, v_reset, surrogate_function, detach_reset,
                         step_mode, backend, store_v_seq)
        for name, value in (("a", a), ("b", b), ("c", c)):
            self.register_buffer(name, as_tensor(value).detach())

    def neuronal_charge(self, x: Tensor) -> None:
        self.v = nd.general_charge(x, self.v, self.a, self.b, self.c)


# ----------------------------------------------------------------------------
# clock_driven multi-step classes
# ----------------------------------------------------------------------------
class _ClockDrivenMultiStep:
    """`clock_driven` MultiStep*Node behaviour: multi-step only, thresholds are
    memories, `v_seq` always recorded, training formulas in eval mode too."""

    clock_driven = True
    graph_free_eval = False

    def supported_step_mode(self) -> tuple:
        return ("m",)

    def _cd_init(self, lava_s_cale) -> None:
        self.lava_s_cale = lava_s_cale      # SpikingJelly's Lava exchange scale; unused


class MultiStepIFNode(_ClockDrivenMultiStep, IFNode):
    def __init__(self, v_threshold: float = 1., v_reset: float = 0.,
                 surrogate_function=Sigmoid(), detach_reset: bool = False,
                 backend: str = "numpy", lava_s_cale: int = 1 << 6):
        super().__init__(v_threshold, v_reset, surrogate_function, detach_reset,
                         step_mode="m", backend=backend, store_v_seq=True)
        self._cd_init(lava_s_cale)


class MultiStepLIFNode(_ClockDrivenMultiStep, LIFNode):
    def __init__(self, tau: float = 2., decay_input: bool = True, v_threshold: float = 1.,
                 v_reset: float = 0., surrogate_function=Sigmoid(),
                 detach_reset: bool = False, backend: str = "numpy",
                 lava_s_cale: int = 1 << 6):
        super().__init__(tau, decay_input, v_threshold, v_reset, surrogate_function,
                         detach_reset, step_mode="m", backend=backend, store_v_seq=True)
        self._cd_init(lava_s_cale)


class MultiStepParametricLIFNode(_ClockDrivenMultiStep, ParametricLIFNode):
    def __init__(self, init_tau: float = 2.0, decay_input: bool = True,
                 v_threshold: float = 1., v_reset: float = 0., surrogate_function=Sigmoid(),
                 detach_reset: bool = False, backend: str = "numpy"):
        super().__init__(init_tau, decay_input, v_threshold, v_reset, surrogate_function,
                         detach_reset, step_mode="m", backend=backend, store_v_seq=True)


class MultiStepEIFNode(_ClockDrivenMultiStep, EIFNode):
    def __init__(self, tau: float = 2., delta_T: float = 1., theta_rh: float = .8,
                 v_threshold: float = 1., v_rest: float = 0., v_reset: float = -0.1,
                 surrogate_function=Sigmoid(), detach_reset: bool = False,
                 backend: str = "numpy"):
        super().__init__(tau, delta_T, theta_rh, v_threshold, v_rest, v_reset,
                         surrogate_function, detach_reset, step_mode="m", backend=backend,
                         store_v_seq=True)


class MultiStepGeneralNode(_ClockDrivenMultiStep, GeneralNode):
    def __init__(self, a, b, c, v_threshold: float = 1., v_reset: float = 0.,
                 surrogate_function=Sigmoid(), detach_reset: bool = False,
                 backend: str = "numpy"):
        super().__init__(a, b, c, v_threshold, v_reset, surrogate_function, detach_reset,
                         step_mode="m", backend=backend, store_v_seq=True)
