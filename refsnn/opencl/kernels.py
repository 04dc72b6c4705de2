"""Kernel sources for the fused neuron, generated from the Python formulas.

For a `NeuronSpec`, `formulas(spec)` runs the formulas of one step through the
C emitter (`codegen.CEmitter`) with every float hyper-parameter wrapped in a
`Param`, giving these function bodies:

- `step`  the forward step `fused.step_formula(spec)`: charge, fire, reset
          (and, for a kind with the adaptation state w, its update in `*w`);
- `over`  `neuron_dynamics.fire_input`: h - v_threshold;
- `psi`   the surrogate derivative `grad_x(over, 1.0, ...)`;
- `rjac`  the reset Jacobian dv/dh (`fused.reset_jacobian`, which the NumPy
          backward uses too);
- `jac`   the charge Jacobian `fused.charge_jacobian`: dh/dv, dh/dx, dh/dk;
- `wjac`  (kinds with state w only) `fused.adaptation_jacobian`: dh/dw,
          dw'/dh, dw'/dw;

plus the parameter values of each. The bodies do not depend on the parameter
values (those travel as kernel arguments), only on the structure: kind,
`decay_input`, whether `v_reset` is None / 0 / other, `detach_reset`, and the
surrogate class.

A program holds the forward and the backward kernel and, per body kind, a
*table* of bodies with a dispatcher that switches on the table index at run
time. `catalog_program` tabulates every structure of a kind with one
surrogate, so one program per (kind, surrogate, dtype, layout) serves every
reset and decay (a table of all surrogates would put a switch over their
derivatives in the backward's innermost loop, which cost it about a tenth of
its time); a spec whose bodies are missing from the tables (a
value-dependent formula, e.g. QPseudoSpike with alpha != 2, whose pow is then
general) gets a program of its own.
"""
from __future__ import annotations

import dataclasses
import inspect
from functools import lru_cache

import numpy as np

from .. import fused
from .. import neuron_dynamics as nd
from .. import surrogate as surrogates
from .codegen import CEmitter, Param
from .programs import CONTRACT_OFF, kernel_source

__all__ = ["Formulas", "formulas", "surrogate_class", "Layout", "Program", "neuron_program"]

# body kind -> (C parameters, how the body reads its real16 parameter slots);
# `step`'s `w` is the adaptation state (in and out), untouched by kinds without it
SIGNATURES = {
    "step": (("$V x", "$V v", "$V *w", "const real k", "const real16 *P", "$V *h_out",
              "$V *s_out"), "(*P)"),
    "over": (("$V h", "const real16 *P"), "(*P)"),
    "psi": (("$V over", "const real16 *P"), "(*P)"),
    "rjac": (("$V over", "$V h", "$V psi", "const real16 *P"), "(*P)"),
    "jac": (("$V x", "$V v", "const real k", "const real16 *P", "$V *dx_out", "$V *dk_out"), "(*P)"),
    "wjac": (("$V psi", "const real16 *P", "$V *dh_dw_out", "$V *dw_dw_out"), "(*P)"),
}
_SURROGATE_BASES = (surrogates.SurrogateFunctionBase, surrogates.MultiArgsSurrogateFunctionBase)
FORWARD_BODIES = ("step",)
BACKWARD_BODIES = ("over", "psi", "rjac", "jac", "wjac")   # wjac: kinds with state w


def has_w(spec_or_kind) -> bool:
    """Whether the kind carries the adaptation state w (Izhikevich)."""
    return fused.kind_states(getattr(spec_or_kind, "kind", spec_or_kind))[1:] == ("w",)


def surrogate_class(name: str):
    """The class `refsnn.surrogate.<name>` (a spiking surrogate with `grad_x`)."""
    cls = getattr(surrogates, name, None)
    if not (inspect.isclass(cls) and issubclass(cls, _SURROGATE_BASES)):
        raise ValueError(f"opencl neuron: unknown surrogate {name!r}")
    return cls


def _params(values: dict) -> dict:
    """Float values as `Param`s (ints, bools and None stay: they shape the formula)."""
    return {name: Param(v) if type(v) is float else v for name, v in values.items()}


@dataclasses.dataclass(frozen=True)
class Formulas:
    """The generated bodies of one spec (`bodies[kind]`, type-generic text) and
    their parameter values (`values[kind]`, doubles)."""

    bodies: dict
    values: dict


def formulas(spec) -> Formulas:
    """The five formula bodies of `spec` (see the module docstring)."""
    pspec = dataclasses.replace(spec, **_params(
        {f.name: getattr(spec, f.name) for f in dataclasses.fields(spec)}))
    sg_params = _params(dict(spec.surrogate_params))
    grad_x = surrogate_class(spec.surrogate).grad_x
    emitters = {}

    def emit(kind, build):
        em = CEmitter(SIGNATURES[kind][1])
        build(em)
        emitters[kind] = em

    def step(em):
        extra = [em.input("(*w)")] if has_w(spec) else []
        h, s, v_next, *extra_next = fused.step_formula(pspec)(
            em.input("x"), em.input("v"), em.input("k"), *extra, ops=em)
        em.finish(v_next, [("h_out", h), ("s_out", s)] + [("w", w) for w in extra_next])

    def jac(em):
        dv, dx, dk = fused.charge_jacobian(pspec, em.input("v"), em.input("x"), em.input("k"), em)
        em.finish(dv, [("dx_out", dx), ("dk_out", 0.0 if dk is None else dk)])

    emit("step", step)
    emit("over", lambda em: em.finish(nd.fire_input(em.input("h"), pspec.v_threshold)))
    emit("psi", lambda em: em.finish(grad_x(em.input("over"), 1.0, em, **sg_params)))
    emit("rjac", lambda em: em.finish(fused.reset_jacobian(
        pspec, em.input("over"), em.input("h"), em.input("psi"), em)))
    emit("jac", jac)
    if has_w(spec):
        def wjac(em):
            dh_dw, dw_dh, dw_dw = fused.adaptation_jacobian(pspec, em.input("psi"))
            em.finish(dw_dh, [("dh_dw_out", dh_dw), ("dw_dw_out", dw_dw)])
        emit("wjac", wjac)
    return Formulas(bodies={k: em.body("$V") for k, em in emitters.items()},
                    values={k: em.param_values for k, em in emitters.items()})


# ----------------------------------------------------------------------------
# programs: tables of bodies behind run-time dispatchers
# ----------------------------------------------------------------------------
def _arg_names(kind: str) -> list:
    return [decl.split()[-1].lstrip("*") for decl in SIGNATURES[kind][0]]


@dataclasses.dataclass(frozen=True)
class Layout:
    """How work-items map to neurons. 'per-neuron': one work-item per neuron,
    scalar code only. 'chunked': one work-item per run of neurons processed as
    `realW` vectors of `width` lanes, at most `nvec` vectors per run."""

    name: str
    width: int = 1
    nvec: int = 0

    @property
    def form(self) -> tuple:
        """(suffix, C type) of the form the formulas are rendered in: vectors
        for the chunked layout (a chunk's last partial vector goes through
        them too), scalars for the per-neuron one."""
        return ("v", "realW") if self.name == "chunked" else ("s", "real")


def _render_table(kind: str, bodies, layout: Layout) -> str:
    """`kind_<sfx><i>` for every body in the layout's form (sfx `s`: scalar,
    `v`: vector), and the dispatcher `kind_<sfx>` taking the variant index
    first."""
    out, names = [], ", ".join(_arg_names(kind))
    sfx, vtype = layout.form
    decls = ", ".join(d.replace("$V", vtype) for d in SIGNATURES[kind][0])
    for i, body in enumerate(bodies):
        out.append(f"static inline {vtype} {kind}_{sfx}{i}({decls})\n{{\n"
                   f"{body.replace('$V', vtype)}\n}}\n")
    cases = "".join(f"    case {i}: return {kind}_{sfx}{i}({names});\n"
                    for i in range(1, len(bodies)))
    out.append(f"static inline {vtype} {kind}_{sfx}(const int variant, {decls})\n{{\n"
               f"    switch (variant) {{\n{cases}"
               f"    default: return {kind}_{sfx}0({names});\n    }}\n}}\n")
    return "\n".join(out)


def _header(dtype: str, layout: Layout, neuron_kind: str) -> str:
    real = {"float32": "float", "float64": "double"}[dtype]
    lines = [CONTRACT_OFF]
    if dtype == "float64":
        lines.append("#pragma OPENCL EXTENSION cl_khr_fp64 : enable")
    lines += [f"typedef {real} real;", f"typedef {real}16 real16;",
              "#define PASTE(a, b) a##b", "#define XPASTE(a, b) PASTE(a, b)"]
    lines += [f"#define {name}" for name in _saved_defines(neuron_kind)]
    if layout.name == "chunked":
        width, size = layout.width, np.dtype(dtype).itemsize
        lanes = [f"(a).s{i:x}" for i in range(width)]
        hsum = lanes[0]
        for lane in lanes[1:]:
            hsum = f"({hsum} + {lane})"
        lines += [
            "#define CHUNKED", f"typedef {real}{width} realW;",
            # vectors at any element offset: an element-aligned vector type, so
            # that loads and stores are inline unaligned moves, not vloadN calls
            f"typedef {real}{width} __attribute__((aligned({size}))) realW_unaligned;",
            f"#define W {width}", f"#define NVEC {layout.nvec}",
            "#define VLOAD(p) (*(const __global realW_unaligned *)(p))",
            "#define VSTORE(value, p) (*(__global realW_unaligned *)(p) = (value))",
            f"#define HSUM(a) {hsum}"]
    else:
        lines.append("#define PER_NEURON")
    return "\n".join(lines) + "\n"


def _saved_defines(kind: str) -> tuple:
    """The `#define`s that compile in the optional reads of `kind`'s kernels
    (without them, those branches are not in the loops at all): HAS_W, the
    adaptation state w (loads, stores, wjac); V_PRE, the saved potentials
    v_seq and v0; X_SEQ, the saved inputs; HAS_K, PLIF's decay and dL/dk."""
    saved = set()
    for decay_input in (True, False):
        saved.update(fused.saved_fields(dataclasses.replace(
            catalog_specs(kind, "float32")[0], decay_input=decay_input)))
    flags = {"HAS_W": has_w(kind), "V_PRE": "v_seq" in saved, "X_SEQ": "x_seq" in saved,
             "HAS_K": "k" in saved}
    return tuple(name for name, on in flags.items() if on)


@dataclasses.dataclass(frozen=True)
class Program:
    """The source of a program (both directions' kernels) and its tables
    (`index[body kind][body text]` = the variant index to pass)."""

    source: str
    index: dict

    def variants(self, f: Formulas, kinds) -> tuple | None:
        """The variant index of each body of `f`, or None if one is missing."""
        try:
            return tuple(self.index[kind][f.bodies[kind]] for kind in kinds)
        except KeyError:
            return None


def _program(neuron_kind: str, tables: dict, dtype: str, layout: Layout) -> Program:
    """Both directions' kernels over `tables` (one build, one compiler start:
    PoCL spends about 0.3 s on every program however small, and 0.7 s more on
    its first)."""
    sfx, vtype = layout.form
    parts = [_header(dtype, layout, neuron_kind)]
    if layout.name == "chunked":
        parts.append(kernel_source("chunk_lanes.cl"))
    parts += [_render_table(kind, bodies, layout) for kind, bodies in tables.items()]
    parts.append(f"#define V {vtype}\n#define SFX {sfx}\n"
                 f"{kernel_source('neuron_backward_step.cl')}\n#undef V\n#undef SFX\n")
    parts += [kernel_source("neuron_forward.cl"), kernel_source("neuron_backward.cl")]
    index = {kind: {body: i for i, body in enumerate(bodies)} for kind, bodies in tables.items()}
    return Program("\n".join(parts), index)


def _body_kinds(direction: str, neuron_kind: str) -> tuple:
    if direction == "forward":
        return FORWARD_BODIES
    return BACKWARD_BODIES if has_w(neuron_kind) else BACKWARD_BODIES[:-1]


def _all_body_kinds(neuron_kind: str) -> tuple:
    return _body_kinds("forward", neuron_kind) + _body_kinds("backward", neuron_kind)


def catalog_specs(kind: str, dtype: str, surrogate: str = "Sigmoid") -> list:
    """Specs covering every structure of `kind` with `surrogate` at its
    defaults: both `decay_input`s (LIF, PLIF), `v_reset` None / 0 / other, both
    `detach_reset`s. Hyper-parameter values are arbitrary (they are slots)."""
    params = tuple(surrogate_class(surrogate)().formula_params().items())
    base = fused.NeuronSpec(kind=kind, v_threshold=1.0, v_reset=0.0, detach_reset=False,
                            surrogate=surrogate, surrogate_params=params, dtype=dtype,
                            tau=2.0, v_rest=0.0, v_c=0.8, a0=1.0, delta_T=1.0, theta_rh=0.8,
                            tau_w=2.0, a=0.1, b=0.05)
    decays = (True, False) if kind in ("LIF", "PLIF") else (True,)
    return [dataclasses.replace(base, decay_input=d, v_reset=r, detach_reset=det)
            for d in decays for r in (None, 0.0, -0.5) for det in (False, True)]


SURROGATE_NAMES = tuple(
    name for name in surrogates.__all__
    if inspect.isclass(getattr(surrogates, name))
    and issubclass(getattr(surrogates, name), _SURROGATE_BASES)
    and getattr(surrogates, name) not in _SURROGATE_BASES)


@lru_cache(maxsize=None)
def catalog_program(kind: str, dtype: str, layout: Layout, surrogate: str = "Sigmoid") -> Program:
    """The program of every structure of `kind` with `surrogate` (see
    `catalog_specs`), both directions."""
    tables = {k: [] for k in _all_body_kinds(kind)}
    for spec in catalog_specs(kind, dtype, surrogate):
        f = formulas(spec)
        for k, bodies in tables.items():
            if f.bodies[k] not in bodies:
                bodies.append(f.bodies[k])
    return _program(kind, tables, dtype, layout)


def neuron_program(direction: str, spec, f: Formulas, layout: Layout):
    """(Program, variant indices of `direction`'s bodies) running `spec` (whose
    formulas are `f`) in `direction` ('forward' or 'backward') with `layout`."""
    program = catalog_program(spec.kind, spec.dtype, layout, spec.surrogate)
    if program.variants(f, _all_body_kinds(spec.kind)) is None:
        # a structure outside the catalog: a program of its own
        program = _program(spec.kind, {k: [f.bodies[k]] for k in _all_body_kinds(spec.kind)},
                           spec.dtype, layout)
    return program, program.variants(f, _body_kinds(direction, spec.kind))
