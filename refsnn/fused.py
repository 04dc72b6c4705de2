"""The fused multi-step neuron op: a whole `[T, N, *]` loop as ONE autograd node.

This is the twin of SpikingJelly's `cupy` backend. The forward runs the
torch-exact per-step formulas of `refsnn.neuron_dynamics` (so spikes and
potentials are bit-identical to the composed path and to SpikingJelly's torch
backend); the backward runs the BPTT recurrence in closed form instead of
replaying a per-step tape.

Backend interface
-----------------
A fused backend is any object with these three methods; `backend='numpy-fused'`
is `NUMPY_FUSED` below, `backend='opencl'` is provided by `refsnn.opencl`
(`get_backend('opencl')` imports `refsnn.opencl` and calls its
`fused_backend()`, which returns such an object).

    supports(spec) -> str | None
        None if the backend can run `spec`, else a one-line reason.

    forward(spec, x_seq, v0, k) -> (spike_seq, v_seq, h_seq)
        x_seq: [T, M] C-contiguous array of dtype spec.dtype (M = N*...)
        v0:    [M] membrane potential before step 0 (same dtype)
        k:     0-dim array of spec.dtype holding sigmoid(w) for kind 'PLIF',
               else None
        spike_seq: [T, M] spec.dtype, 0./1. (heaviside(h - v_threshold))
        v_seq:     [T, M] potential after reset at each step (v_seq[-1] is the
                   new state)
        h_seq:     [T, M] potential after charge, before reset
        Values must equal, bit for bit, the per-step formulas of
        `neuron_dynamics` evaluated in spec.dtype (see the OpenCL build flags
        in the SpikingJelly reference, N11).

    backward(spec, saved, grad_spike_seq, grad_v_seq) -> (grad_x_seq, grad_v0, grad_k)
        saved: `Saved` with the arrays that `saved_fields(spec)` names (the
               others are None); all [T, M] / [M] / 0-dim as above.
        grad_spike_seq, grad_v_seq: [T, M] arrays, or None where no gradient
               reached that output (treat as zeros).
        returns grad_x_seq [T, M], grad_v0 [M], grad_k (0-dim, 'PLIF' only,
               else None).
        The gradient is the composed path's autograd gradient (SpikingJelly's
        torch backend), up to rounding. Per neuron, reverse t, with
        psi_t = surrogate derivative at (h_t - v_threshold) and s_t the spike
        (recomputed as h_t - v_threshold >= 0):
            R_t  = 1 - s_t (hard) or 1 (soft)
                   + (v_reset - h_t) * psi_t (hard) or - v_threshold * psi_t (soft),
                   that last term only when not detach_reset
            gv_t = grad_v_seq[t] + gh_{t+1} * dh_{t+1}/dv_t     (gh_T = 0)
            gh_t = gv_t * R_t + grad_spike_seq[t] * psi_t
            grad_x_seq[t] = gh_t * dh_t/dx_t
            grad_v0       = gh_0 * dh_0/dv0
        with dh/dv, dh/dx (and dh/dk for PLIF, summed over t and M into grad_k)
        as listed in `neuron_dynamics`.

`FusedNeuron` below wraps a backend into one autograd `Function`.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

__all__ = ["NeuronSpec", "Saved", "saved_fields", "get_backend", "register_backend",
           "FUSED_KINDS"]

#: neuron kinds a fused backend may implement
FUSED_KINDS = ("IF", "LIF", "PLIF", "QIF", "EIF")


@dataclass(frozen=True)
class NeuronSpec:
    """Everything a fused kernel needs to know about a neuron layer, as plain
    hashable values (an OpenCL backend can cache programs by it).

    kind: one of FUSED_KINDS.
    v_threshold, v_reset: Python floats; v_reset None means soft reset.
    detach_reset: the reset does not pass gradient to the spike.
    decay_input: LIF/PLIF input decay (ignored by other kinds).
    tau: LIF/QIF/EIF time constant (a Python float; division by tau is a true
        division in the forward, as in PyTorch).
    v_rest, v_c, a0: QIF (v_rest also EIF); delta_T, theta_rh: EIF.
    surrogate: the class name in `refsnn.surrogate` ('Sigmoid', 'ATan', ...);
    surrogate_params: ((name, value), ...) as that class's constructor takes
        them, e.g. (('alpha', 4.0),). `surrogate_params` never includes
        `spiking`: a fused backend only runs spiking surrogates.
    dtype: 'float32' or 'float64'.
    """

    kind: str
    v_threshold: float
    v_reset: float | None
    detach_reset: bool
    surrogate: str
    surrogate_params: tuple
    dtype: str
    decay_input: bool = True
    tau: float | None = None
    v_rest: float | None = None
    v_c: float | None = None
    a0: float | None = None
    delta_T: float | None = None
    theta_rh: float | None = None

    @property
    def hard_reset(self) -> bool:
        return self.v_reset is not None


class Saved(NamedTuple):
    """Arrays the forward keeps for the backward (None where unused).

    h_seq: [T, M] post-charge potentials (every kind);
    v_seq: [T, M] post-reset potentials (kinds whose dh/dv or dh/dk depends on
        the pre-charge potential: PLIF, QIF, EIF); v0: [M] (same kinds);
    x_seq: [T, M] (PLIF with decay_input, for dh/dk = x - (v - v_reset));
    k: 0-dim (PLIF).
    """

    h_seq: np.ndarray
    v_seq: np.ndarray | None = None
    v0: np.ndarray | None = None
    x_seq: np.ndarray | None = None
    k: np.ndarray | None = None


def saved_fields(spec: NeuronSpec) -> tuple:
    """Names of the `Saved` fields the backward of `spec` needs."""
    if spec.kind in ("IF", "LIF"):
        return ("h_seq",)
    if spec.kind == "PLIF":
        return ("h_seq", "v_seq", "v0", "x_seq", "k") if spec.decay_input \
            else ("h_seq", "v_seq", "v0", "k")
    return ("h_seq", "v_seq", "v0")


# ----------------------------------------------------------------------------
# backend registry
# ----------------------------------------------------------------------------
_BACKENDS: dict = {}
_LAZY_BACKENDS = {"opencl": "refsnn.opencl"}


def register_backend(name: str, backend) -> None:
    """Make `backend` (an object with supports/forward/backward) available to
    neurons as `backend=name`."""
    _BACKENDS[name] = backend


def get_backend(name: str):
    """The fused backend registered as `name` ('numpy-fused', 'opencl')."""
    if name not in _BACKENDS and name in _LAZY_BACKENDS:
        module = importlib.import_module(_LAZY_BACKENDS[name])
        register_backend(name, module.fused_backend())
    try:
        return _BACKENDS[name]
    except KeyError:
        raise ValueError(f"unknown fused backend {name!r}; known: "
                         f"{sorted(set(_BACKENDS) | set(_LAZY_BACKENDS))}") from None
