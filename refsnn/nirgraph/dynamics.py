"""Discrete-time dynamics of NIR's stateful nodes: I, LI, IF, LIF, CubaLI,
CubaLIF, Threshold and Delay, as refsnn modules (docs/nir.md has the formulas).

Each module keeps the node's continuous NIR parameters (`nir_params`, arrays
as given) for export, and turns them once, in float64, into the coefficients
of one time step of length `dt`:

- 'euler': `v += dt/tau * (v_leak - v + r*I)`, grouped as SpikingJelly's LIF
  charge (`neuron_dynamics.lif_charge`, `k = tau/dt`):
  `v + (r*I - (v - v_leak)) / k`, or, when `r == k` everywhere (input not
  decayed), `v - (v - v_leak) / k + I`; with `v_leak == 0` the forms
  `v + (x - v) / k` and `v * (1 - 1/k) + I`.
- 'exact' (zero-order hold: the input is constant over each step):
  `v_leak + (v - v_leak) * a + b * I` with `a = exp(-dt/tau)`,
  `b = r * (1 - exp(-dt/tau))`.

A coefficient equal over all neurons is used as a Python float, so it is
rounded into the input's dtype by the op (as SpikingJelly's hyper-parameters
are); otherwise it is an array in the input's dtype. This is what makes a
uniform NIR LIF under 'euler' bit-identical to `refsnn.neurons.LIFNode`.

Spikes: `surrogate_function(h - v_threshold)` (heaviside `h >= v_threshold`
forward). Reset: 'hard' `(1 - s) * h + s * v_reset`, 'soft'
`h - s * v_threshold` (`neuron_dynamics.reset`).

Shapes: one step `x: [N, *shape] -> [N, *shape]`; `x_seq: [T, N, *shape]` in
step mode 'm' (a loop over T). Parameters have the node's `shape` (or are
size 1).
"""
from __future__ import annotations

import numpy as np

from .. import neuron_dynamics as nd
from ..autograd import Tensor, as_tensor
from ..containers import StepModule
from ..module import MemoryModule

__all__ = ["Leak", "NIRNode", "Integrator", "LeakyIntegrator", "IntegrateAndFire",
           "LeakyIntegrateAndFire", "CurrentLeakyIntegrator",
           "CurrentLeakyIntegrateAndFire", "ThresholdNode", "DelayNode"]

INTEGRATIONS = ("euler", "exact")
RESETS = ("hard", "soft")


def _f64(value) -> np.ndarray:
    return np.asarray(value, dtype=np.float64)


def operand(values: np.ndarray, like: Tensor):
    """`values` as an operand of an op on `like`: a Python float when all
    elements agree, else an array in `like`'s dtype."""
    flat = values.reshape(-1)
    if flat.size and np.all(flat == flat[0]):
        return float(flat[0])
    return Tensor(values.astype(like.dtype))


class Leak:
    """One step of `tau dv/dt = v_leak - v + gain * u` (float64 coefficients).

    `__call__(u, v)` -> the potential after the step; `u`, `v`: `[N, *shape]`."""

    def __init__(self, tau, gain, v_leak, dt: float, integration: str):
        tau, gain, v_leak = _f64(tau), _f64(gain), _f64(v_leak)
        self.integration = integration
        self.v_leak = None if not np.any(v_leak) else v_leak
        if integration == "euler":
            self.k = tau / dt
            self.c = 1. - 1. / self.k
            self.input_decayed = not np.array_equal(np.broadcast_to(gain, self.k.shape),
                                                    self.k)
            self.gain = gain if self.input_decayed and np.any(gain != 1.) else None
        else:
            self.a = np.exp(-dt / tau)
            self.b = -gain * np.expm1(-dt / tau)

    def __call__(self, u: Tensor, v: Tensor) -> Tensor:
        leak = None if self.v_leak is None else operand(self.v_leak, u)
        if self.integration == "exact":
            a, b = operand(self.a, u), operand(self.b, u)
            if leak is None:
                return v * a + b * u
            return leak + (v - leak) * a + b * u
        k = operand(self.k, u)
        if not self.input_decayed:
            if leak is None:
                return v * operand(self.c, u) + u
            return v - (v - leak) / k + u
        x = u if self.gain is None else operand(self.gain, u) * u
        if leak is None:
            return v + (x - v) / k
        return v + (x - (v - leak)) / k


class NIRNode(StepModule, MemoryModule):
    """Base of the stateful NIR nodes: memories start as `None` and become
    Tensors shaped like the step input on the first step (`reset()` goes
    back). `nir_type` names the NIR class; `nir_params` hold its parameters."""

    nir_type = ""

    def __init__(self, nir_params: dict, step_mode: str = "s", metadata=None):
        super().__init__()
        self.nir_params = {k: np.array(v, copy=True) for k, v in nir_params.items()}
        self.metadata = dict(metadata or {})
        self.step_mode = step_mode

    def _state(self, name: str, x: Tensor, start) -> Tensor:
        value = getattr(self, name)
        if value is None:
            return Tensor(np.array(np.broadcast_to(_f64(start), x.shape), dtype=x.dtype))
        if tuple(value.shape) != tuple(x.shape):
            raise ValueError(
                f"{type(self).__name__}: the state {name} has shape {tuple(value.shape)} "
                f"but the input step has shape {tuple(x.shape)}; call "
                f"functional.reset_net(net) before feeding a new batch or input shape")
        return value

    def extra_repr(self) -> str:
        return f"nir_type={self.nir_type}, step_mode={self.step_mode}"


class _Spiking:
    """Fire and reset shared by IF, LIF and CubaLIF."""

    def _init_spiking(self, reset: str, surrogate_function, detach_reset: bool) -> None:
        if reset not in RESETS:
            raise ValueError(f"{type(self).__name__}: reset must be one of {RESETS}, "
                             f"got {reset!r}")
        self.reset_mode = reset
        self.surrogate_function = surrogate_function
        self.detach_reset = detach_reset

    def _fire_and_reset(self, h: Tensor) -> Tensor:
        threshold = operand(_f64(self.nir_params["v_threshold"]), h)
        spike = self.surrogate_function(nd.fire_input(h, threshold))
        s_d = spike.detach() if self.detach_reset else spike
        v_reset = None if self.reset_mode == "soft" else \
            operand(_f64(self.nir_params["v_reset"]), h)
        self.v = nd.reset(h, s_d, threshold, v_reset)
        return spike

    def extra_repr(self) -> str:
        return super().extra_repr() + f", reset={self.reset_mode}"


class Integrator(NIRNode):
    """NIR `I`: `dv/dt = r*I`, one step `v + (dt*r) * I` (`v + I` when
    `dt*r == 1`, as `IFNode`); the same under both integrations. Output `v`,
    starting at 0."""

    nir_type = "I"

    def __init__(self, r, dt: float, step_mode: str = "s", metadata=None):
        super().__init__({"r": r}, step_mode, metadata)
        self.register_memory("v", None)
        gain = dt * _f64(r)
        self.gain = None if np.all(gain == 1.) else gain

    def _charge(self, x: Tensor, start) -> Tensor:
        v = self._state("v", x, start)
        return nd.if_charge(x, v) if self.gain is None else v + operand(self.gain, x) * x

    def single_step_forward(self, x) -> Tensor:
        x = as_tensor(x)
        self.v = self._charge(x, 0.)
        return self.v


class IntegrateAndFire(_Spiking, Integrator):
    """NIR `IF`: `Integrator`'s charge, then fire and reset; `v` starts at
    `v_reset`."""

    nir_type = "IF"

    def __init__(self, r, v_threshold, v_reset, dt: float, reset: str = "hard",
                 surrogate_function=None, detach_reset: bool = False, step_mode: str = "s",
                 metadata=None):
        super().__init__(r, dt, step_mode, metadata)
        self.nir_params.update(v_threshold=np.array(v_threshold), v_reset=np.array(v_reset))
        self._init_spiking(reset, surrogate_function, detach_reset)

    def single_step_forward(self, x) -> Tensor:
        x = as_tensor(x)
        return self._fire_and_reset(self._charge(x, self.nir_params["v_reset"]))


class LeakyIntegrator(NIRNode):
    """NIR `LI`: `tau dv/dt = v_leak - v + r*I` (`Leak`); output `v`, starting
    at `v_leak`."""

    nir_type = "LI"

    def __init__(self, tau, r, v_leak, dt: float, integration: str = "euler",
                 step_mode: str = "s", metadata=None):
        super().__init__({"tau": tau, "r": r, "v_leak": v_leak}, step_mode, metadata)
        self.register_memory("v", None)
        self.integration = integration
        self.leak = Leak(tau, r, v_leak, dt, integration)

    def _charge(self, x: Tensor) -> Tensor:
        return self.leak(x, self._state("v", x, self.nir_params["v_leak"]))

    def single_step_forward(self, x) -> Tensor:
        self.v = self._charge(as_tensor(x))
        return self.v


class LeakyIntegrateAndFire(_Spiking, LeakyIntegrator):
    """NIR `LIF`: `LeakyIntegrator`'s charge, then fire and reset."""

    nir_type = "LIF"

    def __init__(self, tau, r, v_leak, v_threshold, v_reset, dt: float,
                 integration: str = "euler", reset: str = "hard", surrogate_function=None,
                 detach_reset: bool = False, step_mode: str = "s", metadata=None):
        super().__init__(tau, r, v_leak, dt, integration, step_mode, metadata)
        self.nir_params.update(v_threshold=np.array(v_threshold), v_reset=np.array(v_reset))
        self._init_spiking(reset, surrogate_function, detach_reset)

    def single_step_forward(self, x) -> Tensor:
        return self._fire_and_reset(self._charge(as_tensor(x)))


def _relative_expm1(z: np.ndarray) -> np.ndarray:
    """`expm1(z) / z`, 1 at z = 0."""
    safe = np.where(z == 0., 1., z)
    return np.where(z == 0., 1., np.expm1(safe) / safe)


class CurrentLeakyIntegrator(NIRNode):
    """NIR `CubaLI`: a synaptic current `tau_syn dI/dt = -I + w_in*S` driving
    `tau_mem dv/dt = v_leak - v + r*I`; output `v`. `I` starts at 0, `v` at
    `v_leak`.

    'euler': `I` steps first (`Leak` with `v_leak = 0`), and the membrane step
    uses the new `I` (as snnTorch's Synaptic). 'exact': the coupled linear
    system is solved over the step with `S` held: `I' = I*a_s + w_in*(1-a_s)*S`,
    `v' = v_leak + (v - v_leak)*a_m + c_I*I + c_S*S` with the old `I`,
    `c_I = r*dt/tau_mem * a_m * expm1(d)/d`, `d = dt/tau_mem - dt/tau_syn`,
    `c_S = r*w_in*(1 - a_m) - c_I*w_in`."""

    nir_type = "CubaLI"

    def __init__(self, tau_syn, tau_mem, r, v_leak, w_in, dt: float,
                 integration: str = "euler", step_mode: str = "s", metadata=None):
        super().__init__({"tau_syn": tau_syn, "tau_mem": tau_mem, "r": r, "v_leak": v_leak,
                          "w_in": w_in}, step_mode, metadata)
        self.register_memory("i", None)
        self.register_memory("v", None)
        self.integration = integration
        self.synapse = Leak(tau_syn, w_in, 0., dt, integration)
        if integration == "euler":
            self.membrane = Leak(tau_mem, r, v_leak, dt, integration)
            return
        tau_syn, tau_mem, r, w_in = _f64(tau_syn), _f64(tau_mem), _f64(r), _f64(w_in)
        v_leak = _f64(v_leak)
        self.a_m = np.exp(-dt / tau_mem)
        self.c_i = r * (dt / tau_mem) * self.a_m * _relative_expm1(dt / tau_mem - dt / tau_syn)
        self.c_s = r * w_in * -np.expm1(-dt / tau_mem) - self.c_i * w_in
        self.v_leak = None if not np.any(v_leak) else v_leak

    def _charge(self, s: Tensor) -> Tensor:
        i = self._state("i", s, 0.)
        v = self._state("v", s, self.nir_params["v_leak"])
        self.i = self.synapse(s, i)
        if self.integration == "euler":
            return self.membrane(self.i, v)
        a_m, c_i, c_s = (operand(c, s) for c in (self.a_m, self.c_i, self.c_s))
        if self.v_leak is None:
            return v * a_m + c_i * i + c_s * s
        leak = operand(self.v_leak, s)
        return leak + (v - leak) * a_m + c_i * i + c_s * s

    def single_step_forward(self, x) -> Tensor:
        self.v = self._charge(as_tensor(x))
        return self.v


class CurrentLeakyIntegrateAndFire(_Spiking, CurrentLeakyIntegrator):
    """NIR `CubaLIF`: `CurrentLeakyIntegrator`'s charge, then fire and reset of
    `v` (the current `I` is not reset)."""

    nir_type = "CubaLIF"

    def __init__(self, tau_syn, tau_mem, r, v_leak, v_threshold, v_reset, w_in, dt: float,
                 integration: str = "euler", reset: str = "hard", surrogate_function=None,
                 detach_reset: bool = False, step_mode: str = "s", metadata=None):
        super().__init__(tau_syn, tau_mem, r, v_leak, w_in, dt, integration, step_mode,
                         metadata)
        self.nir_params.update(v_threshold=np.array(v_threshold), v_reset=np.array(v_reset))
        self._init_spiking(reset, surrogate_function, detach_reset)

    def single_step_forward(self, x) -> Tensor:
        return self._fire_and_reset(self._charge(as_tensor(x)))


class ThresholdNode(NIRNode):
    """NIR `Threshold`: `surrogate_function(x - threshold)`; stateless."""

    nir_type = "Threshold"

    def __init__(self, threshold, surrogate_function=None, step_mode: str = "s",
                 metadata=None):
        super().__init__({"threshold": threshold}, step_mode, metadata)
        self.surrogate_function = surrogate_function

    def single_step_forward(self, x) -> Tensor:
        x = as_tensor(x)
        return self.surrogate_function(x - operand(_f64(self.nir_params["threshold"]), x))


class DelayNode(NIRNode):
    """NIR `Delay`: `y(t) = x(t - delay)`, `delay / dt` whole steps per element
    (0 before the first input arrives). Memory `history`: the last
    `max(steps)` inputs, oldest first."""

    nir_type = "Delay"

    def __init__(self, delay, steps: np.ndarray, step_mode: str = "s", metadata=None):
        super().__init__({"delay": delay}, step_mode, metadata)
        self.steps = np.asarray(steps, dtype=np.int64)
        self.register_memory("history", None)

    def single_step_forward(self, x) -> Tensor:
        x = as_tensor(x)
        depth = int(self.steps.max(initial=0))
        history = list(self.history or [])
        out = None
        for d in np.unique(self.steps):
            past = x if d == 0 else (history[-d] if d <= len(history) else None)
            if past is None:
                continue
            if np.all(self.steps == d):
                out = past
                break
            mask = Tensor(np.broadcast_to(self.steps == d, x.shape[1:]).astype(x.dtype))
            out = past * mask if out is None else out + past * mask
        if depth:
            self.history = (history + [x])[-depth:]
        return out if out is not None else Tensor(np.zeros(x.shape, x.dtype))
