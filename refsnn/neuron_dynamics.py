"""Pure per-step neuron formulas, written once for every path.

Each function maps one step's operands to its result, using Python operators
(`+ - * /`, unary `-`) and the `ops` namespace of `refsnn.mathops` for anything
else. The same function therefore runs on autograd `Tensor`s (the composed
path, `ops=TENSOR`), on NumPy arrays (`ops=NUMPY`, and the fused NumPy backend,
which traces it into in-place ufunc calls) and through the OpenCL C emitter.

Operand order and grouping are SpikingJelly 0.0.0.0.14's torch backend, so
float32 results are bit-identical to it (reference sections 2.1-2.3):
- Python-float sub-expressions (`1. - 1. / tau`) are folded in double by Python
  before they meet an operand, then rounded once to the operand's dtype;
- `t / tau` is a true division by f32(tau), never a multiplication by 1/tau.

Shapes: every operand is `[M]` (one step of a layer, any shape really) or a
0-dim parameter (`k`); floats are the neuron's hyper-parameters.

Notation: `x` input of the step, `v` potential before charge, `h` potential
after charge (before reset), `s` spike, `s_d` the spike used by the reset
(detached when `detach_reset`).
"""
from __future__ import annotations

__all__ = [
    "if_charge", "lif_charge", "plif_charge", "qif_charge", "eif_charge",
    "izhikevich_charge", "izhikevich_adaptation", "izhikevich_reset", "klif_charge",
    "general_charge",
    "reset_is_zero", "fire_input", "hard_reset", "soft_reset", "reset", "reset_jacobian",
    "if_jacobian", "lif_jacobian", "plif_jacobian", "qif_jacobian", "eif_jacobian",
    "izhikevich_jacobian", "izhikevich_adaptation_jacobian",
]


# ----------------------------------------------------------------------------
# charge: h = f(x, v)
# ----------------------------------------------------------------------------
def if_charge(x, v):
    """IF: `h = v + x`."""
    return v + x


def reset_is_zero(v_reset) -> bool:
    """SpikingJelly's `v_reset is None or v_reset == 0.` branch test."""
    return v_reset is None or v_reset == 0.


def lif_charge(x, v, tau: float, decay_input: bool, v_reset, eval_form: bool = False):
    """LIF, with SpikingJelly's four forms chosen by `decay_input` and whether
    `v_reset` is None/0.

    `eval_form=True` gives the `activation_based` eval (TorchScript) form, which
    differs only for hard reset without input decay: it uses
    `v - (v - v_reset) / tau + x` even when `v_reset == 0.`.
    """
    if decay_input:
        if reset_is_zero(v_reset):
            return v + (x - v) / tau
        return v + (x - (v - v_reset)) / tau
    if reset_is_zero(v_reset) and not (eval_form and v_reset is not None):
        return v * (1. - 1. / tau) + x
    return v - (v - v_reset) / tau + x


def plif_charge(x, v, k, decay_input: bool, v_reset):
    """Parametric LIF with decay `k = sigmoid(w)` (a 0-dim operand)."""
    if decay_input:
        if reset_is_zero(v_reset):
            return v + (x - v) * k
        return v + (x - (v - v_reset)) * k
    if reset_is_zero(v_reset):
        return v * (1. - k) + x
    return v - (v - v_reset) * k + x


def qif_charge(x, v, tau: float, v_rest: float, v_c: float, a0: float):
    """QIF: `h = v + (x + a0 * (v - v_rest) * (v - v_c)) / tau`."""
    return v + (x + a0 * (v - v_rest) * (v - v_c)) / tau


def eif_charge(x, v, tau: float, v_rest: float, delta_T: float, theta_rh: float, ops):
    """EIF: `h = v + (x + v_rest - v + delta_T * exp((v - theta_rh) / delta_T)) / tau`."""
    return v + (x + v_rest - v + delta_T * ops.exp((v - theta_rh) / delta_T)) / tau


def izhikevich_charge(x, v, w, tau: float, v_rest: float, v_c: float, a0: float):
    """Izhikevich: `h = v + (x + a0 * (v - v_rest) * (v - v_c) - w) / tau`, with
    `w` the adaptation state of the previous step."""
    return v + (x + a0 * (v - v_rest) * (v - v_c) - w) / tau


def izhikevich_adaptation(w, h, tau_w: float, a: float, v_rest: float):
    """Adaptation after charge (sees `h`): `w + 1/tau_w * (a * (h - v_rest) - w)`.
    The spike term `b * s` is added by the reset."""
    return w + 1. / tau_w * (a * (h - v_rest) - w)


def klif_charge(x, v, k, tau: float, decay_input: bool, v_reset, relu):
    """KLIF: LIF's general-`v_reset` form (no `v_reset == 0.` branch), then
    `relu(k * h)` (`relu`: e.g. `Tensor.relu`). Soft reset (`v_reset=None`)
    charges as if `v_reset = 0.`."""
    r = 0. if v_reset is None else v_reset
    h = v + (x - (v - r)) / tau if decay_input else v - (v - r) / tau + x
    return relu(k * h)


def general_charge(x, v, a, b, c):
    """GeneralNode: `h = a * v + b * x + c`."""
    return a * v + b * x + c


# ----------------------------------------------------------------------------
# fire and reset
# ----------------------------------------------------------------------------
def fire_input(h, v_threshold: float):
    """What the surrogate (or heaviside) sees: `h - v_threshold`."""
    return h - v_threshold


def hard_reset(h, s_d, v_reset: float):
    """`(1. - s_d) * h + s_d * v_reset`."""
    return (1. - s_d) * h + s_d * v_reset


def soft_reset(h, s_d, v_threshold: float):
    """`h - s_d * v_threshold`."""
    return h - s_d * v_threshold


def reset(h, s_d, v_threshold: float, v_reset):
    """Hard reset to `v_reset`, or soft reset (subtract `v_threshold`) when
    `v_reset` is None."""
    if v_reset is None:
        return soft_reset(h, s_d, v_threshold)
    return hard_reset(h, s_d, v_reset)


def reset_jacobian(over, h, psi, v_threshold: float, v_reset, detach_reset: bool, ops,
                   spike_kept_in_v_reset: bool = False):
    """dv/dh through the reset, the spike path included unless `detach_reset`:
    hard `(1 - s) + (v_reset - h) * psi`, soft `1 - v_threshold * psi`, with
    `s = heaviside(over)`, `over = h - v_threshold` and `psi` = ds/dh (the
    surrogate derivative). `spike_kept_in_v_reset`: the hard reset's
    `s * v_reset` term uses the undetached spike (Izhikevich), so a detached
    hard reset still gives `(1 - s) + v_reset * psi`. Detached soft reset: the
    Python float 1."""
    if v_reset is not None:
        jac = 1. - ops.heaviside(over)
        if not detach_reset:
            jac = jac + (v_reset - h) * psi
        elif spike_kept_in_v_reset:
            jac = jac + v_reset * psi
        return jac
    if detach_reset:
        return 1.
    return 1. - v_threshold * psi


# ----------------------------------------------------------------------------
# local derivatives of the charge, for closed-form BPTT (fused backends)
# Each returns (dh/dv, dh/dx) and, for PLIF, dh/dk, as Python floats or operands.
# `v` is the potential before the charge.
# ----------------------------------------------------------------------------
def if_jacobian():
    return 1., 1.


def lif_jacobian(tau: float, decay_input: bool):
    return 1. - 1. / tau, (1. / tau if decay_input else 1.)


def plif_jacobian(x, v, k, decay_input: bool, v_reset):
    """(dh/dv, dh/dx, dh/dk); `x` is only read when `decay_input`."""
    r = 0. if reset_is_zero(v_reset) else v_reset
    dv = 1. - k
    if decay_input:
        return dv, k, (x - v if r == 0. else x - (v - r))
    return dv, 1., (-v if r == 0. else -(v - r))


def qif_jacobian(v, tau: float, v_rest: float, v_c: float, a0: float):
    return 1. + a0 * ((v - v_rest) + (v - v_c)) / tau, 1. / tau


def eif_jacobian(v, tau: float, delta_T: float, theta_rh: float, ops):
    return 1. + (ops.exp((v - theta_rh) / delta_T) - 1.) / tau, 1. / tau


def izhikevich_jacobian(v, tau: float, v_rest: float, v_c: float, a0: float):
    """(dh/dv, dh/dx) of the Izhikevich charge (dh/dw: the next function)."""
    return qif_jacobian(v, tau, v_rest, v_c, a0)


def izhikevich_adaptation_jacobian(psi, tau: float, tau_w: float, a: float, b: float):
    """The terms of the adaptation state w: (dh/dw, dw'/dh, dw'/dw), with `w`
    the state before the step, `w'` the one after it
    (`w + 1/tau_w * (a * (h - v_rest) - w) + b * s`) and `psi` = ds/dh; the
    `b * s` term keeps the spike's gradient even with `detach_reset`."""
    return -1. / tau, 1. / tau_w * a + b * psi, 1. - 1. / tau_w


def izhikevich_reset(h, w, s, s_d, v_threshold: float, v_reset, b: float):
    """Izhikevich reset of (v, w), as SpikingJelly's `activation_based` writes it:
    hard `(1. - s_d) * h + s * v_reset`, soft `h - s_d * v_threshold`, and
    `w + b * s`. The `s * v_reset` and `b * s` terms use the undetached spike,
    so they keep a gradient even with `detach_reset`."""
    v = h - s_d * v_threshold if v_reset is None else (1. - s_d) * h + s * v_reset
    return v, w + b * s
