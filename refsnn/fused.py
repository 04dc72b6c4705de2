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

    forward(spec, x_seq, v0, k, *extra0) -> (spike_seq, v_seq, h_seq, *extra_seqs)
        x_seq: [T, M] C-contiguous array of dtype spec.dtype (M = N*...)
        v0:    [M] membrane potential before step 0 (same dtype)
        k:     0-dim array holding sigmoid(w) for kind 'PLIF' (else None), in
               w's dtype (float32): as in PyTorch, sub-expressions of k alone
               (`1. - k`) are computed in that dtype, and only then meet the
               spec.dtype operands
        extra0: one [M] array per state of `spec.states` after v, before
               step 0 (Izhikevich: the adaptation w0; other kinds: none)
        spike_seq: [T, M] spec.dtype, 0./1. (heaviside(h - v_threshold))
        v_seq:     [T, M] potential after reset at each step (v_seq[-1] is the
                   new state)
        h_seq:     [T, M] potential after charge, before reset
        extra_seqs: [T, M] each extra state after each step (Izhikevich: w_seq)
        Values must equal, bit for bit, the per-step formulas of
        `neuron_dynamics` evaluated in spec.dtype (see the OpenCL build flags
        in the SpikingJelly reference, N11).

    backward(spec, saved, grad_spike_seq, grad_v_seq, *grad_extra_seqs)
            -> (grad_x_seq, grad_v0, grad_k, *grad_extra0)
        saved: `Saved` with the arrays that `saved_fields(spec)` names (the
               others are None); all [T, M] / [M] / 0-dim as above.
        grad_spike_seq, grad_v_seq, grad_extra_seqs: [T, M] arrays, or None
               where no gradient reached that output (treat as zeros).
        returns grad_x_seq [T, M], grad_v0 [M], grad_k (0-dim, 'PLIF' only,
               else None), and one [M] gradient per extra state.
        The gradient is the composed path's autograd gradient (SpikingJelly's
        torch backend), up to rounding. Per neuron, reverse t, with
        psi_t = surrogate derivative at (h_t - v_threshold) and s_t the spike
        (recomputed as h_t - v_threshold >= 0):
            R_t  = dv_t/dh_t through the reset (`reset_jacobian`):
                   1 - s_t (hard) or 1 (soft)
                   + (v_reset - h_t) * psi_t (hard) or - v_threshold * psi_t (soft),
                   that last term only when not detach_reset
            gv_t = grad_v_seq[t] + gh_{t+1} * dh_{t+1}/dv_t     (gh_T = 0)
            gh_t = gv_t * R_t + grad_spike_seq[t] * psi_t
            grad_x_seq[t] = gh_t * dh_t/dx_t
            grad_v0       = gh_0 * dh_0/dv0
        with dh/dv, dh/dx (and dh/dk for PLIF, summed over t and M into grad_k)
        as listed in `neuron_dynamics` (`charge_jacobian`). A kind with the
        adaptation state w (Izhikevich: charge h_t(x_t, v_{t-1}, w_{t-1}), then
        w_t = w_{t-1} + 1/tau_w * (a * (h_t - v_rest) - w_{t-1}) + b * s_t)
        carries gw_t = dL/dw_t as well (`adaptation_jacobian`):
            gw_t = grad_w_seq[t] + gh_{t+1} * dh_{t+1}/dw_t
                   + gw_{t+1} * dw_{t+1}/dw_t                   (gw_T = 0)
            gh_t = gv_t * R_t + grad_spike_seq[t] * psi_t + gw_t * dw_t/dh_t
            grad_w0 = gh_0 * dh_0/dw0 + gw_0 * dw_0/dw0
        where dw_t/dh_t = a/tau_w + b * psi_t, and Izhikevich's hard reset
        `s * v_reset` term keeps the spike's gradient under detach_reset
        (R_t then has + v_reset * psi_t).

`fused_multi_step` below wraps a backend into one autograd node (plus a tap
node per state sequence, `v_seq` and `w_seq`, since a refsnn `Function` has
one output).

The NumPy backend traces the step formula (`step_formula`) once into a short
list of ufunc calls that write into preallocated buffers (`_StepProgram`), so
the forward loop allocates nothing per step; it runs the whole T loop on one
chunk of `CHUNK` neurons at a time. For IF and LIF (constant charge Jacobian)
the backward is traced too (`_backward_terms`: surrogate derivative and reset
Jacobian, per step and chunk, in place); the tracer evaluates `sigmoid` as
1 / (1 + exp(-a)) with NumPy's exp, a few ulp from scipy's expit that the
composed path uses. Other kinds (or a surrogate using ops the tracer lacks)
compute the surrogate derivative, the reset Jacobian and the charge Jacobian
for all T at once, leaving 3-4 in-place passes per step for the reverse
recurrence (4 more for the adaptation state w).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

import numpy as np

from . import neuron_dynamics as nd
from .autograd import Function, Tensor
from .mathops import NUMPY
from .result_pool import ResultPool

__all__ = ["NeuronSpec", "kind_states", "Saved", "saved_fields", "step_formula",
           "charge_jacobian", "reset_jacobian", "adaptation_jacobian", "check_extra_states",
           "get_backend", "register_backend", "fused_multi_step", "NUMPY_FUSED", "FUSED_KINDS"]

#: neuron kinds a fused backend may implement
FUSED_KINDS = ("IF", "LIF", "PLIF", "QIF", "EIF", "Izhikevich")
#: the state variables of each kind, v first (all carried across calls);
#: kinds not listed have v only
_STATES = {"Izhikevich": ("v", "w")}


@dataclass(frozen=True)
class NeuronSpec:
    """Everything a fused kernel needs to know about a neuron layer, as plain
    hashable values (an OpenCL backend can cache programs by it).

    kind: one of FUSED_KINDS.
    v_threshold, v_reset: Python floats; v_reset None means soft reset.
    detach_reset: the reset does not pass gradient to the spike.
    decay_input: LIF/PLIF input decay (ignored by other kinds).
    tau: LIF/QIF/EIF/Izhikevich time constant (a Python float; division by tau is a true
        division in the forward, as in PyTorch).
    v_rest, v_c, a0: QIF and Izhikevich (v_rest also EIF); delta_T, theta_rh:
        EIF; tau_w, a, b: Izhikevich's adaptation.
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
    tau_w: float | None = None
    a: float | None = None
    b: float | None = None

    @property
    def hard_reset(self) -> bool:
        return self.v_reset is not None

    @property
    def states(self) -> tuple:
        """`kind_states(kind)`."""
        return kind_states(self.kind)


def kind_states(kind: str) -> tuple:
    """The state variables of neuron `kind`, v first: ('v',), or ('v', 'w') for
    Izhikevich. Those after v are a backend's `extra0` / `extra_seqs`."""
    return _STATES.get(kind, ("v",))


class Saved(NamedTuple):
    """Arrays the forward keeps for the backward (None where unused).

    h_seq: [T, M] post-charge potentials (every kind);
    v_seq: [T, M] post-reset potentials (kinds whose dh/dv or dh/dk depends on
        the pre-charge potential: PLIF, QIF, EIF, Izhikevich); v0: [M] (same
        kinds);
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


# ----------------------------------------------------------------------------
# the formulas of one step, from neuron_dynamics
# ----------------------------------------------------------------------------
def step_formula(spec: NeuronSpec):
    """The forward of one step as
    `f(x, v, k, *extra, ops) -> (h, spike, v_next, *extra_next)`.

    `x`, `v`: one step's operands ([M]); `k`: PLIF's 0-dim decay (else unused);
    `extra`: the states after v (`spec.states`; Izhikevich: w);
    `ops` (keyword): a `refsnn.mathops` namespace. The spike is
    `heaviside(h - v_threshold)` (the forward of every spiking surrogate), the
    reset uses it undetached (detaching only changes gradients).
    """
    kind = spec.kind
    if kind == "Izhikevich":
        def izhikevich_step(x, v, k, w, *, ops):
            h = nd.izhikevich_charge(x, v, w, spec.tau, spec.v_rest, spec.v_c, spec.a0)
            w = nd.izhikevich_adaptation(w, h, spec.tau_w, spec.a, spec.v_rest)
            spike = ops.heaviside(nd.fire_input(h, spec.v_threshold))
            v_next, w_next = nd.izhikevich_reset(h, w, spike, spike, spec.v_threshold,
                                                 spec.v_reset, spec.b)
            return h, spike, v_next, w_next
        return izhikevich_step
    if kind == "IF":
        def charge(x, v, k, ops):
            return nd.if_charge(x, v)
    elif kind == "LIF":
        def charge(x, v, k, ops):
            return nd.lif_charge(x, v, spec.tau, spec.decay_input, spec.v_reset)
    elif kind == "PLIF":
        def charge(x, v, k, ops):
            return nd.plif_charge(x, v, k, spec.decay_input, spec.v_reset)
    elif kind == "QIF":
        def charge(x, v, k, ops):
            return nd.qif_charge(x, v, spec.tau, spec.v_rest, spec.v_c, spec.a0)
    elif kind == "EIF":
        def charge(x, v, k, ops):
            return nd.eif_charge(x, v, spec.tau, spec.v_rest, spec.delta_T, spec.theta_rh, ops)
    else:
        raise ValueError(f"fused neuron: unknown kind {kind!r}; known: {FUSED_KINDS}")

    def step(x, v, k, *, ops):
        h = charge(x, v, k, ops)
        spike = ops.heaviside(nd.fire_input(h, spec.v_threshold))
        return h, spike, nd.reset(h, spike, spec.v_threshold, spec.v_reset)

    return step


def charge_jacobian(spec: NeuronSpec, v_pre, x_seq=None, k=None, ops=NUMPY):
    """(dh/dv, dh/dx, dh/dk) of the charge, each a Python float, a 0-dim value
    or an array like `v_pre` (the potentials before each charge, [T, M]);
    dh/dk is None except for PLIF. Izhikevich's dh/dw: `adaptation_jacobian`."""
    kind = spec.kind
    if kind == "IF":
        return (*nd.if_jacobian(), None)
    if kind == "LIF":
        return (*nd.lif_jacobian(spec.tau, spec.decay_input), None)
    if kind == "PLIF":
        return nd.plif_jacobian(x_seq, v_pre, k, spec.decay_input, spec.v_reset)
    if kind == "QIF":
        return (*nd.qif_jacobian(v_pre, spec.tau, spec.v_rest, spec.v_c, spec.a0), None)
    if kind == "EIF":
        return (*nd.eif_jacobian(v_pre, spec.tau, spec.delta_T, spec.theta_rh, ops), None)
    if kind == "Izhikevich":
        return (*nd.izhikevich_jacobian(v_pre, spec.tau, spec.v_rest, spec.v_c, spec.a0), None)
    raise ValueError(f"fused neuron: unknown kind {kind!r}; known: {FUSED_KINDS}")


def check_extra_states(spec: NeuronSpec, arrays, where: str) -> tuple:
    """`arrays` (one per state of `spec.states` after v), or a ValueError
    naming `where`, the kind and the states."""
    want = len(spec.states) - 1
    if len(arrays) != want:
        raise ValueError(f"{where}: {spec.kind} takes {want} extra state array(s) "
                         f"({', '.join(spec.states[1:]) or 'none'}), got {len(arrays)}")
    return tuple(arrays)


def adaptation_jacobian(spec: NeuronSpec, psi):
    """The adaptation state's terms (dh/dw, dw'/dh, dw'/dw) for a kind with
    state w (see the module docstring), or None; `psi`: ds/dh like h."""
    if spec.states[1:] != ("w",):
        return None
    return nd.izhikevich_adaptation_jacobian(psi, spec.tau, spec.tau_w, spec.a, spec.b)


def reset_jacobian(spec: NeuronSpec, over, h, psi, ops=NUMPY):
    """dv/dh through the reset of `spec` (`neuron_dynamics.reset_jacobian`),
    from `over` = h - v_threshold, `h` and `psi` = ds/dh; the NumPy backward and
    the OpenCL kernels both use this."""
    return nd.reset_jacobian(over, h, psi, spec.v_threshold, spec.v_reset, spec.detach_reset,
                             ops, spike_kept_in_v_reset=spec.kind == "Izhikevich")


# ----------------------------------------------------------------------------
# tracing a step formula into in-place ufunc calls
# ----------------------------------------------------------------------------
class _Var:
    """A value inside a traced step formula (slot `index` of its program)."""

    __slots__ = ("program", "index")

    def __init__(self, program, index):
        self.program, self.index = program, index

    def __add__(self, o): return self.program.emit(np.add, self, o)
    def __radd__(self, o): return self.program.emit(np.add, o, self)
    def __sub__(self, o): return self.program.emit(np.subtract, self, o)
    def __rsub__(self, o): return self.program.emit(np.subtract, o, self)
    def __mul__(self, o): return self if _is_one(o) else self.program.emit(np.multiply, self, o)
    def __rmul__(self, o): return self if _is_one(o) else self.program.emit(np.multiply, o, self)
    def __truediv__(self, o): return self.program.emit(np.divide, self, o)
    def __rtruediv__(self, o): return self.program.emit(np.divide, o, self)
    def __neg__(self): return self.program.emit(np.negative, self)


def _is_one(o) -> bool:
    """A constant 1 (`1.0 * g` of a surrogate's `g=1.0`): multiplying by it is
    exact, so the trace skips that pass."""
    return type(o) in (float, int) and o == 1


class _TraceOps:
    """The part of the `mathops` protocol a neuron step uses, recording ufuncs."""

    def __init__(self, program):
        self.program = program

    def exp(self, a):
        return self.program.emit(np.exp, a)

    def heaviside(self, a):
        # written as a float 0./1. straight into the output buffer
        return self.program.emit(np.greater_equal, a, 0.0)

    def sigmoid(self, a):
        # the protocol's 1 / (1 + exp(-a)) in four in-place passes: NumPy's SIMD
        # exp makes them ~3x faster than scipy's expit (`NUMPY.sigmoid`), for a
        # few ulp of difference (<= 4 ulp from torch.sigmoid in float32)
        return self.reciprocal(1.0 + self.exp(-a))

    def reciprocal(self, a):
        return self.program.emit(np.divide, 1.0, a)


def _map_args(args, mapping):
    """Map variable operands (ints) through `mapping`; constants (floats) stay."""
    return tuple(a if type(a) is float else mapping[a] for a in args)


class _StepProgram:
    """A step formula traced once into ufunc calls that write into buffers.

    Every value of the trace lives in a slot: the inputs first, then the
    outputs (the caller's arrays, e.g. rows of the [T, M] results, written in
    place), then the values computed from 0-dim parameters and constants only
    (`uniform` inputs; computed once per sequence by `bind`), then temporaries,
    reused as soon as their value is dead.
    """

    def __init__(self, formula, inputs, uniform, n_outputs):
        self._code = []                         # (ufunc, args, result var)
        self._uniform = {i for i, name in enumerate(inputs) if name in uniform}
        self._n_vars = len(inputs)
        results = formula(*[_Var(self, i) for i in range(len(inputs))], ops=_TraceOps(self))
        if len(results) != n_outputs:
            raise ValueError(f"step formula returned {len(results)} values, expected {n_outputs}")
        self._allocate(len(inputs), [r.index for r in results])

    def emit(self, ufunc, *operands):
        var = _Var(self, self._n_vars)
        self._n_vars += 1
        args = tuple(o.index if isinstance(o, _Var) else float(o) for o in operands)
        self._code.append((ufunc, args, var.index))
        if all(type(a) is float or a in self._uniform for a in args):
            self._uniform.add(var.index)
        return var

    def _allocate(self, n_in, results):
        slot = {i: i for i in range(n_in)}
        n_fixed = n_in + len(results)
        self.copies = []                        # (source var, output slot)
        for j, var in enumerate(results):
            if var < n_in or var in slot or var in self._uniform:
                self.copies.append((var, n_in + j))
            else:
                slot[var] = n_in + j
        self.hoisted = []
        for ufunc, args, res in self._code:
            if res in self._uniform:
                slot[res] = n_fixed + len(self.hoisted)
                self.hoisted.append((ufunc, _map_args(args, slot), slot[res]))
        last_use = {}
        body = [c for c in self._code if c[2] not in self._uniform]
        for pos, (_, args, _) in enumerate(body):
            for a in args:
                if type(a) is not float:   # floats are constants, ints are variables
                    last_use[a] = pos
        first_temp = n_fixed + len(self.hoisted)
        free, self.code = [], []
        self.n_slots = first_temp
        for pos, (ufunc, args, res) in enumerate(body):
            mapped = _map_args(args, slot)
            for a in set(args):
                if type(a) is not float and last_use[a] == pos and slot[a] >= first_temp:
                    free.append(slot[a])
            if res not in slot:
                if free:
                    slot[res] = free.pop()
                else:
                    slot[res] = self.n_slots
                    self.n_slots += 1
            self.code.append((ufunc, mapped, slot[res]))
        self.copies = [(slot[var], out) for var, out in self.copies]
        self.first_temp = first_temp

    def bind(self, uniform_values: dict, shape, dtype):
        """Slots for one sequence: 0-dim parameters set (by input index), the
        uniform values computed, fresh temporaries of `shape`."""
        slots = [None] * self.n_slots
        for index, value in uniform_values.items():
            slots[index] = value
        for ufunc, args, res in self.hoisted:
            slots[res] = np.asarray(ufunc(*[a if type(a) is float else slots[a] for a in args]),
                                    dtype=dtype)
        for i in range(self.first_temp, self.n_slots):
            slots[i] = np.empty(shape, dtype)
        return slots

    def run(self, slots):
        """One step: inputs and outputs already placed in `slots`."""
        for ufunc, args, res in self.code:
            ufunc(*[a if type(a) is float else slots[a] for a in args], out=slots[res])
        for src, out in self.copies:
            np.copyto(slots[out], slots[src])


# ----------------------------------------------------------------------------
# the NumPy backend
# ----------------------------------------------------------------------------
_STEP_INPUTS = ("x", "v", "k")               # slots 0, 1, 2; then the extra states


@lru_cache(maxsize=None)
def _program(spec: NeuronSpec) -> _StepProgram:
    extra = spec.states[1:]
    return _StepProgram(step_formula(spec), _STEP_INPUTS + extra, uniform={"k"},
                        n_outputs=3 + len(extra))


def _surrogate_grad_x(spec: NeuronSpec):
    from . import surrogate
    cls = getattr(surrogate, spec.surrogate, None)
    if cls is None or not hasattr(cls, "grad_x"):
        raise ValueError(f"fused neuron: {spec.surrogate!r} is not a surrogate class "
                         f"of refsnn.surrogate")
    return cls.grad_x


class NumpyFusedBackend:
    """The fused loop on NumPy: vectorised over neurons, sequential over T."""

    def supports(self, spec: NeuronSpec):
        if spec.kind not in FUSED_KINDS:
            return f"kind {spec.kind!r} is not fused (fused kinds: {', '.join(FUSED_KINDS)})"
        try:
            _surrogate_grad_x(spec)
        except ValueError as e:
            return str(e)
        return None

    def forward(self, spec, x_seq, v0, k, *extra0):
        extra0 = check_extra_states(spec, extra0, "numpy-fused forward")
        T, M = x_seq.shape
        dtype = np.dtype(spec.dtype)
        program = _program(spec)
        spike_seq, v_seq, h_seq = (_empty((T, M), dtype) for _ in range(3))
        extra_seqs = [_empty((T, M), dtype) for _ in extra0]
        n_in = len(_STEP_INPUTS) + len(extra0)        # slots of the inputs, then outputs
        state_slots = [1] + list(range(3, n_in))
        state_seqs = [v_seq] + extra_seqs
        out_slots = list(range(n_in, n_in + 3 + len(extra0)))   # h, spike, v, extra
        out_seqs = [h_seq, spike_seq, v_seq] + extra_seqs
        with np.errstate(all="ignore"):
            for cols, slots in _chunks(program, {} if k is None else {2: k}, M, dtype):
                states = [v0[cols], *(e[cols] for e in extra0)]
                for t in range(T):
                    slots[0] = x_seq[t, cols]
                    for i, state in zip(state_slots, states):
                        slots[i] = state
                    for i, seq in zip(out_slots, out_seqs):
                        slots[i] = seq[t, cols]
                    program.run(slots)
                    states = [seq[t, cols] for seq in state_seqs]
        return (spike_seq, v_seq, h_seq, *extra_seqs)

    def backward(self, spec, saved, grad_spike_seq, grad_v_seq, *grad_extra_seqs):
        grad_extra_seqs = check_extra_states(spec, grad_extra_seqs, "numpy-fused backward")
        program = _backward_program(spec, grad_spike_seq is not None)
        if program is not None:
            return _chunked_backward(spec, program, saved.h_seq, grad_spike_seq, grad_v_seq)
        h_seq = saved.h_seq
        T, M = h_seq.shape
        dtype = h_seq.dtype
        params = dict(spec.surrogate_params)
        with np.errstate(all="ignore"):
            over = h_seq - spec.v_threshold
            psi = np.asarray(_surrogate_grad_x(spec)(over, 1.0, NUMPY, **params), dtype)
            reset_jac = reset_jacobian(spec, over, h_seq, psi)
            spike_term = None if grad_spike_seq is None else grad_spike_seq * psi
            del over
            v_pre = None
            if saved.v_seq is not None:   # potentials before each charge
                v_pre = np.concatenate([saved.v0[None], saved.v_seq[:-1]])
            k = None if saved.k is None else saved.k.astype(dtype)
            dh_dv, dh_dx, dh_dk = charge_jacobian(spec, v_pre, saved.x_seq, k)
            if spec.kind == "PLIF" and not spec.decay_input and nd.reset_is_zero(spec.v_reset):
                dh_dv = np.asarray(1. - saved.k, dtype)   # the forward's own factor `1. - k`
            adaptation = adaptation_jacobian(spec, psi)
            gh = np.empty((T, M), dtype)     # dL/dh_t, becomes grad_x_seq in place
            carry = np.zeros(M, dtype)       # dL/dv_t (post-reset), all paths
            if adaptation is not None:
                dh_dw, dw_dh, dw_dw = adaptation
                grad_w_seq, = grad_extra_seqs
                gw = np.zeros(M, dtype)      # dL/dw_t (after step t)
                term = np.empty(M, dtype)
            for t in range(T - 1, -1, -1):
                if t < T - 1:
                    np.multiply(gh[t + 1], _row(dh_dv, t + 1), out=carry)
                    if adaptation is not None:
                        np.multiply(gw, dw_dw, out=gw)
                        np.multiply(gh[t + 1], dh_dw, out=term)
                        np.add(gw, term, out=gw)
                if grad_v_seq is not None:
                    np.add(carry, grad_v_seq[t], out=carry)
                np.multiply(carry, _row(reset_jac, t), out=gh[t])
                if spike_term is not None:
                    np.add(gh[t], spike_term[t], out=gh[t])
                if adaptation is not None:
                    if grad_w_seq is not None:
                        np.add(gw, grad_w_seq[t], out=gw)
                    np.multiply(gw, _row(dw_dh, t), out=term)
                    np.add(gh[t], term, out=gh[t])
            grad_v0 = gh[0] * _row(dh_dv, 0)
            grad_extra0 = ()
            if adaptation is not None:
                grad_extra0 = (np.asarray(gh[0] * dh_dw + gw * dw_dw, dtype),)
            grad_k = None
            if dh_dk is not None:
                grad_k = np.asarray(np.sum(gh * dh_dk, dtype=dtype), dtype)
            if not (isinstance(dh_dx, float) and dh_dx == 1.):
                np.multiply(gh, dh_dx, out=gh)
        return (gh, np.asarray(grad_v0, dtype), grad_k, *grad_extra0)


def _backward_terms(spec: NeuronSpec):
    """The per-element part of the backward as a step formula:
    `f(h, grad_spike, *, ops) -> (reset_jac, grad_spike * psi)` (without
    grad_spike: `f(h, *, ops) -> (reset_jac,)`)."""
    grad_x, params = _surrogate_grad_x(spec), dict(spec.surrogate_params)

    def terms(h, *grad_spike, ops):
        over = nd.fire_input(h, spec.v_threshold)
        psi = grad_x(over, 1.0, ops, **params)
        jac = reset_jacobian(spec, over, h, psi, ops)
        return (jac, grad_spike[0] * psi) if grad_spike else (jac,)
    return terms


@lru_cache(maxsize=None)
def _backward_program(spec: NeuronSpec, with_spike_grad: bool):
    """The traced `_backward_terms` for the kinds whose charge Jacobian is
    constant (IF, LIF), or None where the general backward runs (other kinds,
    a surrogate using ops the tracer lacks, a constant reset Jacobian)."""
    if spec.kind not in ("IF", "LIF"):
        return None
    inputs = ("h", "grad_spike") if with_spike_grad else ("h",)
    try:
        return _StepProgram(_backward_terms(spec), inputs, uniform=(),
                            n_outputs=len(inputs))
    except (AttributeError, NotImplementedError, TypeError):
        return None


def _chunked_backward(spec, program, h_seq, grad_spike_seq, grad_v_seq):
    """The backward of IF/LIF (see the module docstring), chunk by chunk of
    neurons, each chunk's reverse loop over t in place in its rows of gh."""
    T, M = h_seq.shape
    dtype = h_seq.dtype
    dh_dv, dh_dx, _ = charge_jacobian(spec, None)
    gh = _empty((T, M), dtype)       # dL/dh_t, becomes grad_x_seq in place
    grad_v0 = np.empty(M, dtype)
    jac_slot, term_slot = (2, 3) if grad_spike_seq is not None else (1, None)
    # dh/dx == dh/dv (IF; LIF with decay_input and tau=2): grad_x_seq[t] is the
    # carry itself, one pass less per step
    same = dh_dx == dh_dv
    with np.errstate(all="ignore"):
        for cols, slots in _chunks(program, {}, M, dtype):
            buf = np.zeros(cols.stop - cols.start, dtype)
            carry = buf          # dL/dv_t (post-reset): buf or, when `same`, a row of gh
            jac = np.empty_like(buf)
            for t in range(T - 1, -1, -1):
                row = gh[t, cols]
                slots[0] = h_seq[t, cols]
                slots[jac_slot] = jac
                if term_slot is not None:
                    slots[1], slots[term_slot] = grad_spike_seq[t, cols], row
                program.run(slots)
                if grad_v_seq is not None:
                    carry = np.add(carry, grad_v_seq[t, cols], out=buf)
                if term_slot is not None:
                    np.multiply(carry, jac, out=jac)
                    np.add(jac, row, out=row)
                else:
                    np.multiply(carry, jac, out=row)
                if same:
                    if dh_dx != 1.:
                        np.multiply(row, dh_dx, out=row)
                    carry = row
                else:
                    carry = np.multiply(row, dh_dv, out=buf)
                    if dh_dx != 1.:
                        np.multiply(row, dh_dx, out=row)
            grad_v0[cols] = carry
    return gh, grad_v0, None


#: `[T, M]` results are reused once free (page faults of fresh memory cost as
#: much as the fused loops); at most this many bytes are kept
POOL_BYTES = 64 << 20
_results = ResultPool(POOL_BYTES)
_empty = _results.empty


#: neurons per chunk: the whole T loop runs on one chunk of neurons at a time,
#: so that its rows and the program's temporaries stay in cache; smaller chunks
#: lose more to per-ufunc-call overhead than they gain (measured at T=8..32)
CHUNK = 131072


def _chunks(program, uniform_values, M, dtype):
    """(column slice, bound slots) for each chunk of `CHUNK` of the M neurons;
    the temporaries are allocated once (and once more for a shorter last chunk)."""
    slots, bound = None, None
    for c0 in range(0, M, CHUNK):
        n = min(CHUNK, M - c0)
        if n != bound:
            slots, bound = program.bind(uniform_values, (n,), dtype), n
        yield slice(c0, c0 + n), slots


def _row(value, t):
    """Row t of a [T, M] array; a scalar or 0-dim value as it is."""
    return value[t] if np.ndim(value) == 2 else value


NUMPY_FUSED = NumpyFusedBackend()
register_backend("numpy-fused", NUMPY_FUSED)


# ----------------------------------------------------------------------------
# the autograd op
# ----------------------------------------------------------------------------
class _Link:
    """What the fused node and its state-sequence taps share: the sequences
    (`seqs`: v_seq, then the extra states'), the gradients the taps received
    (`grads`), the zero gradient a tap hands on, and whether one already did
    (`handed`)."""

    __slots__ = ("seqs", "grads", "zero", "handed")


class _FusedNeuron(Function):
    """[T, M] input -> [T, M] spikes; v_seq (and w_seq) leave through `_StateSeqTap`."""

    @staticmethod
    def forward(ctx, x_seq, v0, k, spec, backend, link, *extra0):
        x_seq, v0 = np.ascontiguousarray(x_seq), np.ascontiguousarray(v0)
        extra0 = tuple(np.ascontiguousarray(s) for s in extra0)
        spike_seq, v_seq, h_seq, *extra_seqs = backend.forward(spec, x_seq, v0, k, *extra0)
        link.seqs = (v_seq, *extra_seqs)
        link.grads, link.handed = [None] * len(link.seqs), False
        link.zero = np.broadcast_to(np.zeros((), spike_seq.dtype), spike_seq.shape)
        if any(ctx.needs_input_grad):
            have = {"h_seq": h_seq, "v_seq": v_seq, "v0": v0, "x_seq": x_seq, "k": k}
            ctx.saved = Saved(**{name: have[name] for name in saved_fields(spec)})
            ctx.spec, ctx.backend, ctx.link = spec, backend, link
        return spike_seq

    @staticmethod
    def backward(ctx, grad_spike_seq):
        link = ctx.link
        grad_seqs, link.grads, link.handed = link.grads, [None] * len(link.grads), False
        if grad_spike_seq is link.zero:       # only state sequences were used
            grad_spike_seq = None
        grad_x, grad_v0, grad_k, *grad_extra0 = ctx.backend.backward(
            ctx.spec, ctx.saved, grad_spike_seq, *grad_seqs)
        return (grad_x, grad_v0, grad_k, None, None, None, *grad_extra0)


class _StateSeqTap(Function):
    """A state sequence of the fused op (`link.seqs[index]`). It hangs off the
    spike output, so the backward reaches it before the fused node: it parks
    its gradient in the link and passes a zero (broadcast, no memory) on to the
    spikes, so that the fused node runs; a second tap passes nothing, so that
    an unused spike output still arrives as that very zero."""

    @staticmethod
    def forward(ctx, spike_seq, link, index):
        ctx.link, ctx.index = link, index
        return link.seqs[index]

    @staticmethod
    def backward(ctx, grad_seq):
        link = ctx.link
        link.grads[ctx.index] = grad_seq
        first, link.handed = not link.handed, True
        return (link.zero if first else None), None, None


def fused_multi_step(spec: NeuronSpec, backend, x_seq: Tensor, v: Tensor, k=None, *extra):
    """Run a whole sequence through `backend` as one autograd op.

    x_seq: [T, N, *]; v: [N, *] state before step 0; k: PLIF's 0-dim decay
    Tensor (sigmoid(w)) or None; extra: the states after v in `spec.states`
    ([N, *] Tensors; Izhikevich: w).
    Returns (spike_seq, v_seq, *extra_seqs), all [T, N, *]; v_seq[-1] (and
    each extra_seqs[i][-1]) is the new state.
    """
    shape = tuple(x_seq.shape)
    T, M = shape[0], int(np.prod(shape[1:], dtype=np.int64))
    check_extra_states(spec, extra, "fused_multi_step")
    link = _Link()
    spikes = _FusedNeuron.apply(x_seq.reshape(T, M), v.reshape(M), k, spec, backend, link,
                                *(e.reshape(M) for e in extra))
    seqs = [_StateSeqTap.apply(spikes, link, i).reshape(shape) for i in range(len(spec.states))]
    return (spikes.reshape(shape), *seqs)
