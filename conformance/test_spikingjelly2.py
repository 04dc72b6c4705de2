"""SpikingJelly 2.0.0 as a second conformance target.

refsnn follows SpikingJelly 0.0.0.0.14 (the installed reference). 2.0.0 is
installed apart in `build/sj2` (this module installs it when it is missing)
and runs in one child process per session (`refsnn.conformance.sj2_driver`),
on the same catalog cases: activation_based neurons in step modes 's' and
'm', the surrogates both versions have, and the activation_based networks
(containers, `multi_step_forward`, `seq_to_ann_forward`), plus probes of
behaviour that is not a case.

Each case asserts one of two things:
- 2.0 agrees with 0.0.0.0.14: forward values bit for bit; gradients (whose
  summation order changed in 2.0) within the case's tolerance of refsnn's;
- 2.0 changed behaviour (a `Change` below, documented in
  docs/spikingjelly-differences.md, section "SpikingJelly 2.0.0"): the
  difference is pinned at its measured size, so a change on either side
  flips the test.
"""
from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("spikingjelly.activation_based")

import refsnn as rs  # noqa: E402
from refsnn import functional as rs_functional, neurons as rs_neurons  # noqa: E402
from refsnn.conformance import catalog, compare, runner, sj2_driver  # noqa: E402
from refsnn.conformance.catalog import Case, Sg  # noqa: E402

SJ2_DIR = Path(__file__).resolve().parents[1] / "build" / "sj2"
NEURONS = ("IFNode", "LIFNode", "ParametricLIFNode", "QIFNode", "EIFNode", "IzhikevichNode",
           "KLIFNode", "LIAFNode")


def _selected(case: Case) -> bool:
    rec = case.record
    if rec.kind == "neuron":
        return rec.name in {f"ab.{n}" for n in NEURONS}
    if rec.kind == "surrogate":
        return rec.api == "ab"
    return rec.kind == "network" and rec.name.startswith("net.ab_")


CASES = [c for c in catalog.all_cases(backends=("numpy",)) if _selected(c)] + \
    [c for rec in sj2_driver.EXTRA_RECORDS for c in catalog.expand(rec)]


# ----------------------------------------------------------------------------
# what changed in 2.0 (docs/spikingjelly-differences.md, "SpikingJelly 2.0.0")
# ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Change:
    """A behaviour of SpikingJelly 2.0 that differs from 0.0.0.0.14.

    `key`: the anchor in docs/spikingjelly-differences.md; `when(case)`: the
    cases it shows in; `kind`:
    - 'rounding': the outputs whose key ends with one of `outputs` differ
      from 0.0.0.0.14's by rounding only, at most `bound[dtype]` (normwise,
      per neuron trajectory); everything else keeps its bits;
    - 'slope': the gradients are those of refsnn's 2.0 flavour
      (`consistent_slope=True`), not 0.0.0.0.14's;
    - 'fixed': a listed 0.0.0.0.14 defect is gone: 2.0 computes what refsnn
      computes;
    - 'sj2_error': 2.0 raises, with `message` in the error.
    """
    key: str
    kind: str
    when: Callable[[Case], bool]
    outputs: tuple = ()
    bound: tuple = (("float32", 2.0 ** -21), ("float64", 2.0 ** -50))
    message: str = ""

    def applies(self, case: Case) -> bool:
        return bool(self.when(case))


def _cfg(case, name, default=None):
    return case.config.get(name, default)


def _uses_plrelu(case: Case) -> bool:
    sf = _cfg(case, "surrogate_function")
    return (isinstance(sf, Sg) and sf.name == "PiecewiseLeakyReLU") or (
        case.record.name == "ab.PiecewiseLeakyReLU" and _cfg(case, "spiking", True))


# 0.0.0.0.14 defects (catalog.DEFECTS) that 2.0 no longer has
FIXED_IN_SJ2 = ("ab-nonzerosignlogabs-backward", "ab-klif-soft-reset", "ab-liaf-construction",
                "logtailedrelu-primitive-nan", "ab-logtailedrelu-float64-alpha",
                "piecewiseleakyrelu-slope", "ab-set-step-mode-container")

CHANGES = (
    Change("sj2-lif-no-decay-charge", "rounding",
           lambda c: c.record.name in ("ab.LIFNode", "ab.ParametricLIFNode")
           and _cfg(c, "decay_input") is False
           # 0.0.0.0.14's eval LIF with V_r = 0 already uses 2.0's form
           and (_cfg(c, "v_reset") is None or (_cfg(c, "v_reset") == 0.0 and c.training)),
           outputs=("v_seq",)),
    Change("sj2-izhikevich-adaptation", "rounding",
           lambda c: c.record.name == "ab.IzhikevichNode"
           and any(_cfg(c, k) for k in ("a", "b", "w_rest")), outputs=("v_seq",)),
    Change("sj2-primitive-gradients", "rounding",
           lambda c: c.record.name in ("ab.Sigmoid", "ab.SoftSign") and not _cfg(c, "spiking"),
           outputs=("grad:x",)),
    Change("sj2-piecewiseleakyrelu-slope", "slope",
           lambda c: c.training and _uses_plrelu(c)),
    Change("sj2-fixed-defects", "fixed",
           lambda c: c.defect is not None and c.defect.key in FIXED_IN_SJ2),
    Change("sj2-signatures", "sj2_error",
           lambda c: c.record.name == "net.ab_containers",
           message="cannot assign 'str' as child module 'step_mode'"),
)


def _changes(case: Case, kind: str | None = None) -> list:
    return [ch for ch in CHANGES if ch.applies(case) and kind in (None, ch.kind)]


# ----------------------------------------------------------------------------
# SpikingJelly 2.0 in a child process
# ----------------------------------------------------------------------------
BATCH_CHANGES = ((1, 2), (2, 1), (2, 4))
PROBE_JOBS = (
    [sj2_driver.probe_job("eval_output", cls=c) for c in NEURONS if c != "LIAFNode"]
    + [sj2_driver.probe_job("batch_change", first=f, second=s, step_mode=m)
       for f, s in BATCH_CHANGES for m in ("s", "m")]
    + [sj2_driver.probe_job(name) for name in ("set_step_mode_container",
                                               "store_v_seq_single_step",
                                               "step_mode_container_positional")]
    + [sj2_driver.probe_job("signature", path=p) for p in (
        "neuron.LIFNode", "surrogate.LeakyKReLU", "layer.StepModeContainer",
        "functional.set_backend")])


def _installed(target: Path) -> bool:
    return (target / f"spikingjelly-{sj2_driver.SJ2_VERSION}.dist-info").is_dir()


@pytest.fixture(scope="session")
def sj2_dir() -> Path:
    """`build/sj2` with SpikingJelly 2.0.0, installed with pip when missing.
    A failed install fails the run in CI and skips these tests elsewhere."""
    if not _installed(SJ2_DIR):
        cmd = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check",
               "--target", str(SJ2_DIR), *sj2_driver.INSTALL_ARGS]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
            failure = None if proc.returncode == 0 else proc.stderr.strip()[-2000:]
        except (OSError, subprocess.TimeoutExpired) as exc:
            failure = f"{type(exc).__name__}: {exc}"
        if failure is not None or not _installed(SJ2_DIR):
            reason = (f"could not install SpikingJelly {sj2_driver.SJ2_VERSION} into "
                      f"{SJ2_DIR} ({' '.join(cmd)}): {failure or 'no dist-info afterwards'}")
            if os.environ.get("CI"):
                pytest.fail(reason)
            pytest.skip(reason)
    return SJ2_DIR


@pytest.fixture(scope="session")
def sj2(sj2_dir) -> dict:
    """Every case's and probe's SpikingJelly 2.0 outputs, one child process."""
    results = sj2_driver.run_batch([sj2_driver.case_job(c) for c in CASES] + PROBE_JOBS,
                                   sj2_dir)
    assert str(results["meta"]["spikingjelly"]) == sj2_driver.SJ2_VERSION
    return results


# ----------------------------------------------------------------------------
# the three sides of a case: SpikingJelly 0.0.0.0.14 (in this process), 2.0, refsnn
# ----------------------------------------------------------------------------
@dataclass
class Sides:
    case: Case
    data: dict
    old: dict | None      # 0.0.0.0.14, None when it raised
    old_error: str | None
    new: dict             # 2.0 (state:* keys removed)
    new_state: dict
    ours: dict | None     # refsnn

    @property
    def driver(self):
        return runner.DRIVERS[self.case.record.kind]

    def tolerance(self, key: str) -> float:
        steps = self.driver.steps(self.case)
        fan_in = self.driver.fan_in(self.case) if hasattr(self.driver, "fan_in") else 1
        return (self.case.grad_tolerance(steps, fan_in) if key.startswith("grad:")
                else self.case.forward_tolerance(steps, fan_in))


_SIDES: dict = {}


def _sides(case: Case, results: dict) -> Sides:
    """The case run in all three (cached: the summary tests below reuse them)."""
    if case.id not in _SIDES:
        _SIDES[case.id] = _run_sides(case, results)
    return _SIDES[case.id]


def _run_sides(case: Case, results: dict) -> Sides:
    from refsnn.conformance import drivers, networks  # noqa: F401 - registers the drivers
    new = dict(results[case.id])
    state = {k.split(":", 1)[1]: new.pop(k) for k in list(new) if k.startswith("state:")}
    driver = runner.DRIVERS[case.record.kind]
    data = driver.make_inputs(case)
    old, old_error = None, None
    try:
        with np.errstate(all="ignore"):
            old = driver.reference(case, data)
    except Exception as exc:  # noqa: BLE001 - a listed 0.0.0.0.14 defect
        old_error = f"{type(exc).__name__}: {exc}"
    ours = None
    if "error" not in new or old is not None:
        ours = _candidate(case, data, old if old is not None else {"diag:state_dict": state})
    return Sides(case, data, old, old_error, new, state, ours)


def _candidate(case: Case, data: dict, reference: dict) -> dict:
    with np.errstate(all="ignore"):
        return runner.DRIVERS[case.record.kind].candidate(case, data, reference)


def _finite_max(a) -> float:
    a = np.abs(np.asarray(a, dtype=np.float64))
    return float(a[np.isfinite(a)].max(initial=0.0))


def _seq_shape(values: dict):
    return np.shape(values.get("spikes", values.get("exact:y")))


def _differences(case: Case, expected: dict, actual: dict, tolerance, keys=None) -> dict:
    """`{key: message}` for the compared keys of `expected` (default: all but
    `diag:`) where `actual` does not conform, as the catalog runner judges:
    spikes and `exact:` bit for bit, `close:` and `grad:` within
    `tolerance(key)` (gradients scaled by at least `runner.GRAD_FLOOR` of
    the largest one; non-finite gradients must sit at the same places)."""
    found = {}
    axis = getattr(runner.DRIVERS[case.record.kind], "error_axis", None)
    grad_floor = runner.GRAD_FLOOR * max(
        [_finite_max(v) for k, v in expected.items() if k.startswith("grad:")], default=0.0)
    for key in keys if keys is not None else [k for k in expected if not k.startswith("diag:")]:
        if key not in actual:
            found[key] = "missing"
            continue
        e, a = np.asarray(expected[key]), np.asarray(actual[key])
        if a.shape != e.shape or a.dtype != e.dtype:
            found[key] = f"shape/dtype {a.shape}/{a.dtype} != {e.shape}/{e.dtype}"
            continue
        if key == "spikes" or key.startswith("exact:"):
            n = int((~compare.bit_equal(a, e)).sum())
            if n:
                found[key] = f"{n} element(s) differ, up to {compare.max_ulp(a, e)} ulp"
            continue
        err = compare.relative_error(a, e, same_nonfinite=False, floor=grad_floor
                                     if key.startswith("grad:") else 0.0,
                                     axis=axis if e.shape == _seq_shape(expected) else None)
        if not err <= tolerance(key):
            found[key] = f"relative error {err:.3g} > {tolerance(key):.3g}"
    return found


def _bit_differences(expected: dict, actual: dict, keys) -> dict:
    return {k: int((~compare.bit_equal(actual[k], expected[k])).sum()) for k in keys
            if (~compare.bit_equal(actual[k], expected[k])).any()}


def _forward_keys(values: dict) -> list:
    return [k for k in values if not k.startswith(("grad:", "diag:"))]


def _grad_keys(values: dict) -> list:
    return [k for k in values if k.startswith("grad:")]


def _sj2_flavour(case: Case) -> Case:
    """`case` with refsnn's PiecewiseLeakyReLU in its 2.0 form
    (`consistent_slope=True`)."""
    if case.record.kind == "surrogate":
        rec = dataclasses.replace(case.record, options=case.record.options + (
            ("refsnn_kwargs", {"consistent_slope": True}),))
        return dataclasses.replace(case, record=rec)
    config = dict(case.config)
    sf = config["surrogate_function"]
    config["surrogate_function"] = catalog.sg(sf.name, **dict(sf.kwargs), consistent_slope=True)
    return dataclasses.replace(case, config_override=tuple(config.items()))


# ----------------------------------------------------------------------------
# every case
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES])
def test_case_against_spikingjelly2(case, sj2):
    s = _sides(case, sj2)
    errors = _changes(case, "sj2_error")
    if errors:
        got = str(s.new.get("error", "no error"))
        assert errors[0].message in got, f"expected 2.0 to raise ({errors[0].key}), got: {got}"
        return
    assert "error" not in s.new, f"SpikingJelly 2.0 raised: {s.new.get('error')}"

    if _changes(case, "fixed"):
        # refsnn implements what 0.0.0.0.14 meant; 2.0 now computes it, 0.0.0.0.14 did not
        problems = _differences(case, s.new, s.ours, s.tolerance)
        assert not problems, f"refsnn vs SpikingJelly 2.0: {problems}"
        if s.old is not None:
            assert _differences(case, s.old, s.ours, s.tolerance), \
                f"0.0.0.0.14 no longer shows defect {case.defect.key}"
        return
    assert s.old is not None, f"SpikingJelly 0.0.0.0.14 raised: {s.old_error}"

    if s.new_state:  # parameters (PLIF w, KLIF k) start from the same bits
        problems = _bit_differences(s.old["diag:state_dict"], s.new_state, s.new_state)
        assert not problems, f"initial parameters differ: {problems}"

    # 2.0 == 0.0.0.0.14 bit for bit: forward values, and the gradients of
    # surrogates (a neuron's gradients changed their summation order, below)
    same_bits = set(_forward_keys(s.new))
    if case.record.kind == "surrogate" and not _changes(case, "slope"):
        same_bits |= set(_grad_keys(s.new))
    for change in _changes(case, "rounding"):
        rounded = {k for k in same_bits if k.endswith(change.outputs)}
        same_bits -= rounded
        for key in rounded:
            err = compare.relative_error(s.new[key], s.old[key], axis=0)
            assert err <= dict(change.bound)[case.dtype], f"{change.key}: {key} off by {err:.3g}"
    problems = _bit_differences(s.old, s.new, same_bits)
    assert not problems, f"2.0 differs from 0.0.0.0.14 (elements): {problems}"

    # gradients: within tolerance of refsnn, or of refsnn's 2.0 flavour
    if _changes(case, "slope"):
        problems = _differences(case, s.new, _candidate(_sj2_flavour(case), s.data, s.old),
                                s.tolerance, _grad_keys(s.new))
        assert not problems, f"refsnn (consistent_slope=True) vs 2.0: {problems}"
        err = compare.relative_error(s.new["grad:x"], s.ours["grad:x"], axis=0,
                                     same_nonfinite=False)
        assert err > 0.1, f"2.0's PiecewiseLeakyReLU gradient is 0.0.0.0.14's again ({err:.3g})"
    else:
        problems = _differences(case, s.new, s.ours, s.tolerance, _grad_keys(s.new))
        assert not problems, f"refsnn vs SpikingJelly 2.0 gradients: {problems}"


# ----------------------------------------------------------------------------
# each change shows, at its measured size
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("change", [ch for ch in CHANGES if ch.kind == "rounding"],
                         ids=lambda ch: ch.key)
def test_rounding_change_shows(change, sj2):
    """The per-case tests bound a 'rounding' change; here it must show: in at
    least half of its cases (measured: 38 of 40 LIF/PLIF, 6 of 8
    Izhikevich, 6 of 8 primitives) the outputs differ from 0.0.0.0.14's."""
    cases = [c for c in CASES if change.applies(c)]
    differing = []
    for case in cases:
        s = _sides(case, sj2)
        if _bit_differences(s.old, s.new, [k for k in s.new if k.endswith(change.outputs)]):
            differing.append(case.id)
    print(f"{change.key}: {len(differing)} of {len(cases)} cases differ")
    assert len(differing) >= len(cases) / 2, \
        f"{change.key}: only {len(differing)} of {len(cases)} cases differ from 0.0.0.0.14"


FUSED_OP_SURROGATES = ("Sigmoid", "ATan", "PiecewiseQuadratic", "PiecewiseExp", "SoftSign",
                       "Erf")


def _gradient_figures(cases, sj2) -> tuple:
    """(fraction of gradient elements whose bits differ between 2.0 and refsnn,
    largest relative error per trajectory) over `cases`' finite gradients."""
    differ = total = 0
    worst = 0.0
    for case in cases:
        s = _sides(case, sj2)
        for key in _grad_keys(s.new):
            b, r = s.new[key], s.ours[key]
            finite = np.isfinite(b) & np.isfinite(r)
            differ += int((~compare.bit_equal(b, r) & finite).sum())
            total += int(finite.sum())
            if key == "grad:x":
                worst = max(worst, compare.relative_error(np.where(finite, b, 0),
                                                          np.where(finite, r, 0), axis=0))
    return differ / max(total, 1), worst


@pytest.mark.parametrize("dtype, path, bound", [
    ("float32", "fused", 2.0 ** -21), ("float64", "autograd", 2.0 ** -50),
    ("float32", "autograd", 2.0 ** -21)])
def test_gradient_order_changed(dtype, path, bound, sj2):
    """IF/LIF/PLIF gradients: 2.0 computes them with a hand-written reverse
    recurrence in float32 with its built-in surrogates ('fused'), and by
    autograd through a new Python step otherwise ('autograd'); either way the
    summation order is not 0.0.0.0.14's, which refsnn follows: the bits of
    many gradients differ, each by rounding only."""
    def selected(c):
        sf = _cfg(c, "surrogate_function")
        fused = isinstance(sf, Sg) and sf.name in FUSED_OP_SURROGATES and dtype == "float32"
        return (c.record.name in ("ab.IFNode", "ab.LIFNode", "ab.ParametricLIFNode")
                and c.training and c.dtype == dtype and (path == "fused") == fused
                and not _changes(c, "slope"))
    cases = [c for c in CASES if selected(c)]
    fraction, worst = _gradient_figures(cases, sj2)
    print(f"{dtype} {path}: {len(cases)} cases, {fraction:.0%} of gradient elements differ, "
          f"largest relative error {worst:.3g}")
    assert cases and fraction > 0.05, fraction
    assert worst <= bound, worst


def test_overflowing_gradient_kind(sj2):
    """Where a neuron's gradient overflows (a QIF trajectory fed 1e30), 2.0's is
    NaN where 0.0.0.0.14's and refsnn's are +-inf; the positions agree (the
    per-case tests accept any non-finite value at those positions)."""
    kinds_differ = set()
    for c in CASES:
        if c.record.kind != "neuron" or not c.training:
            continue
        s = _sides(c, sj2)
        for key in _grad_keys(s.new):
            new, ours = s.new[key], s.ours[key]
            off = ~np.isfinite(ours)
            assert np.array_equal(off, ~np.isfinite(new)), (c.id, key)
            if not np.array_equal(new[off], ours[off], equal_nan=True):
                assert np.isnan(new[off]).all() and np.isinf(ours[off]).any(), (c.id, key)
                kinds_differ.add(c.record.name)
    assert kinds_differ == {"ab.QIFNode"}, kinds_differ


def test_sj2_single_step_loop_equals_multi_step(sj2):
    """In 2.0 the single-step loop and the multi-step call of a neuron give the
    same values (signed zeros aside), gradients included: both run the same
    step. Only PLIF's `w` gradient, summed over the steps in another order,
    differs by rounding."""
    by_key = {}
    for c in CASES:
        if c.record.kind == "neuron":
            by_key.setdefault((c.record.name, c.config_index, c.dtype, c.training),
                              {})[c.step_mode] = sj2[c.id]
    unequal = []
    for key, modes in by_key.items():
        s, m = modes["s"], modes["m"]
        assert set(s) == set(m), key
        for k in s:
            same = (compare.relative_error(s[k], m[k]) <= 2.0 ** -21 if k == "grad:w"
                    else np.array_equal(s[k], m[k], equal_nan=True))
            if not same:
                unequal.append((key, k))
    assert not unequal, unequal


# ----------------------------------------------------------------------------
# probes: behaviour that is not a case
# ----------------------------------------------------------------------------
def _probe(sj2, name, **args) -> tuple:
    """(0.0.0.0.14's answer, run here; 2.0's answer) to probe `name`."""
    job = sj2_driver.probe_job(name, **args)
    return sj2_driver.run_job(job), sj2[job["id"]]


@pytest.mark.parametrize("cls", [n for n in NEURONS if n != "LIAFNode"])
def test_eval_output_requires_grad(cls, sj2):
    """0.0.0.0.14's eval-mode IF and LIF skip the surrogate (the output carries
    no gradient), as refsnn's; 2.0 always goes through it. Spikes agree."""
    old, new = _probe(sj2, "eval_output", cls=cls)
    ours = getattr(rs_neurons, cls)()
    ours.eval()
    x = rs.tensor(np.array([[0.6, 1.2, 0.6], [1.2, 0.6, 1.2]], np.float32), requires_grad=True)
    y = ours(x)
    bypass = cls in ("IFNode", "LIFNode")
    assert bool(old["requires_grad"]) is (not bypass)
    assert y.requires_grad is (not bypass)
    assert bool(new["requires_grad"]) is True
    assert compare.bit_equal(new["spikes"], old["spikes"]).all()
    assert compare.bit_equal(new["spikes"], y.data).all()


@pytest.mark.parametrize("step_mode", ["s", "m"])
@pytest.mark.parametrize("first, second", BATCH_CHANGES)
def test_batch_change_without_reset(first, second, step_mode, sj2):
    """A neuron whose state has another batch size than the input: 2.0
    re-initialises the state (as if reset); 0.0.0.0.14 broadcasts a batch of
    one against the other, or raises; refsnn raises a ValueError."""
    old, new = _probe(sj2, "batch_change", first=first, second=second, step_mode=step_mode)
    lead = (2,) if step_mode == "m" else ()
    fresh = rs_neurons.IFNode(step_mode=step_mode)
    fresh_spikes = fresh(rs.tensor(np.full(lead + (second, 3), 0.4, np.float32)))
    assert compare.bit_equal(new["spikes"], fresh_spikes.data).all()
    assert compare.bit_equal(new["v"], fresh.v.data).all()
    if 1 in (first, second):
        assert old["v"].shape == (max(first, second), 3)  # broadcast
        assert not compare.bit_equal(old["v"][:1], new["v"][:1]).all()
    else:
        assert "RuntimeError" in str(old["error"])
    ours = rs_neurons.IFNode(step_mode=step_mode)
    ours(rs.tensor(np.full(lead + (first, 3), 0.4, np.float32)))
    with pytest.raises(ValueError):
        ours(rs.tensor(np.full(lead + (second, 3), 0.4, np.float32)))


def test_set_step_mode_stops_at_containers(sj2):
    """2.0's `set_step_mode` leaves a MultiStepContainer's child in 's', as
    refsnn's; 0.0.0.0.14 switches it to 'm' (defect ab-set-step-mode-container)."""
    old, new = _probe(sj2, "set_step_mode_container")
    from refsnn import containers, layers
    msc = containers.MultiStepContainer(rs_neurons.IFNode())
    outer = rs_neurons.LIFNode()
    net = containers.Sequential(layers.Linear(3, 3), msc,
                                containers.SeqToANNContainer(layers.Linear(3, 3)), outer)
    rs_functional.set_step_mode(net, "m")
    assert (bool(old["outer_neuron"]), bool(old["container_child"])) == (True, True)
    assert (bool(new["outer_neuron"]), bool(new["container_child"])) == (True, False)
    assert (outer.step_mode, msc[0].step_mode) == ("m", "s")


def test_store_v_seq_in_single_step_mode(sj2):
    """`store_v_seq=True` in step mode 's': 2.0 appends each step's `v`;
    0.0.0.0.14 (and refsnn) keep `v_seq` None."""
    old, new = _probe(sj2, "store_v_seq_single_step")
    ours = rs_neurons.LIFNode(store_v_seq=True)
    vs = []
    for t in range(3):
        ours(rs.tensor(np.full((2, 3), 0.4 * (t + 1), np.float32)))
        vs.append(ours.v.data)
    assert old["v_seq"].size == 0 and ours.v_seq is None
    assert compare.bit_equal(new["v_seq"], np.stack(vs)).all()


def test_step_mode_container_positional_arguments(sj2):
    """`StepModeContainer(stateful, *modules)` became `(stateful, step_mode='s',
    *modules)`: 0.0.0.0.14's spelling raises in 2.0 (refsnn keeps 0.0.0.0.14's)."""
    old, new = _probe(sj2, "step_mode_container_positional")
    assert "out" in old and old["out"].shape == (2, 1, 2)
    assert "cannot assign 'str' as child module 'step_mode'" in str(new["error"])


@pytest.mark.parametrize("path, refsnn_path", [
    ("neuron.LIFNode", None), ("surrogate.LeakyKReLU", "surrogate.LeakyKReLU"),
    ("layer.StepModeContainer", None), ("functional.set_backend", "functional.set_backend")])
def test_signatures(path, refsnn_path, sj2):
    """Constructor and function signatures that changed: neurons lost
    `backend`, LeakyKReLU's `spiking` moved last, StepModeContainer got a
    positional `step_mode`, `functional.set_backend` is gone. refsnn keeps
    0.0.0.0.14's spelling."""
    old, new = _probe(sj2, "signature", path=path)
    before = list(old["parameters"])
    expected = {
        "neuron.LIFNode": [p for p in before if p != "backend"],
        "surrogate.LeakyKReLU": ["leak", "k", "spiking"],
        "layer.StepModeContainer": ["stateful", "step_mode", "args"],
        "functional.set_backend": None,
    }[path]
    if expected is None:
        assert not bool(new["exists"])
    else:
        assert list(new["parameters"]) == expected != before
    if refsnn_path is not None:
        import importlib
        import inspect
        module, _, name = f"refsnn.{refsnn_path}".rpartition(".")
        obj = getattr(importlib.import_module(module), name)
        target = obj.__init__ if inspect.isclass(obj) else obj
        ours = [p for p in inspect.signature(target).parameters if p != "self"]
        assert ours[:len(before)] == before


def test_changes_are_documented():
    """Every change has its section in docs/spikingjelly-differences.md."""
    doc = (Path(__file__).resolve().parents[1] / "docs" / "spikingjelly-differences.md").read_text()
    headings = {line[4:].strip() for line in doc.splitlines() if line.startswith("### ")}
    keys = {ch.key for ch in CHANGES} | {"sj2-gradient-order", "sj2-overflow-gradient-nan",
                                         "sj2-eval-keeps-graph", "sj2-batch-change",
                                         "sj2-store-v-seq-single-step"}
    assert keys <= headings, keys - headings
    assert set(FIXED_IN_SJ2) <= headings, set(FIXED_IN_SJ2) - headings
