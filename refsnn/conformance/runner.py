"""Run one conformance case in SpikingJelly / PyTorch and in refsnn, and compare.

Every driver is split in two halves that see the same NumPy inputs:
`reference(case, inputs)` runs SpikingJelly (or torch) and `candidate(case,
inputs)` runs refsnn. Each returns a dict of NumPy arrays whose keys say how
they are compared:

- `spikes`: bit for bit; differences are counted as spike flips and reported
  by `refsnn.comparisons.spike_report` (expected: SpikingJelly, actual:
  refsnn): the first flip, SpikingJelly's membrane margin `h - v_threshold`
  there (from the optional `diag:h` of the reference), and whether each
  neuron's first flip is rounding-level or a real mismatch;
- `exact:<name>`: bit for bit (any NaN equals any NaN, -0.0 differs from 0.0);
- `close:<name>`: normwise relative error within the case's forward tolerance
  (GEMM, convolution, reductions and transcendentals are not reproducible
  bit for bit);
- `grad:<name>`: normwise relative error within the case's gradient tolerance;
- `diag:<name>`: diagnostics only, not compared.

An exception in the reference half makes the case an "SJ error", one in the
refsnn half a "refsnn error". torch and SpikingJelly are imported inside the
functions that need them.
"""
from __future__ import annotations

import math
import time
import traceback
from dataclasses import dataclass

import numpy as np

from ..comparisons import spike_report
from . import compare
from .catalog import FUSED_BACKENDS, Case

__all__ = ["CaseResult", "run_case", "register_driver", "DRIVERS"]


@dataclass
class CaseResult:
    """Outcome of one case.

    `outcome` is what happened: 'pass', 'mismatch', 'sj_error', 'refsnn_error'.
    `status` is how it counts, given the case's known SpikingJelly defect:
    the outcome itself, 'known_defect' (the defect showed as expected) or
    'fixed_upstream' (a listed defect no longer shows).
    """
    case_id: str
    record: str
    family: str
    outcome: str
    status: str
    spike_flips: int = 0
    max_forward_ulp: int | None = None
    max_forward_error: float | None = None
    max_grad_error: float | None = None
    grad_tolerance: float | None = None
    message: str = ""
    defect: str | None = None
    seconds: float = 0.0


def register_driver(kind: str, driver) -> None:
    """Make records of `kind` runnable. A driver has `make_inputs(case) -> dict`,
    `reference(case, inputs) -> dict`, `candidate(case, inputs, reference) ->
    dict`, `steps(case) -> int` and optionally `fan_in(case) -> int` (both
    scale the tolerances) and `error_axis` (see `compare.relative_error`)."""
    DRIVERS[kind] = driver


DRIVERS: dict = {}


# ----------------------------------------------------------------------------
# comparison and classification
# ----------------------------------------------------------------------------
#: gradients are scaled by at least this fraction of the case's largest gradient
GRAD_FLOOR = 1e-3


def _finite_max(a) -> float:
    a = np.abs(np.asarray(a, dtype=np.float64))
    a = a[np.isfinite(a)]
    return float(a.max()) if a.size else 0.0


def _compare(case: Case, ref: dict, got: dict, result: CaseResult, steps: int,
             fan_in: int, axis=None) -> list:
    """Fill `result`'s figures; return the list of failure messages. `axis`:
    the axes along which relative errors of sequence-shaped values are scaled
    (see `compare.relative_error`); other values (parameter gradients) are
    scaled as a whole, and every gradient by at least `GRAD_FLOOR` times the
    case's largest gradient."""
    problems = []
    ref_shape = np.shape(ref.get("spikes", ref.get("exact:y")))
    grad_floor = GRAD_FLOOR * max([_finite_max(v) for k, v in ref.items() if k.startswith("grad:")],
                                  default=0.0)
    for key, expected in ref.items():
        if key.startswith("diag:"):
            continue
        if key not in got:
            problems.append(f"refsnn produced no '{key}'")
            continue
        actual = np.asarray(got[key])
        expected = np.asarray(expected)
        if actual.shape != expected.shape:
            problems.append(f"{key}: shape {actual.shape} != SpikingJelly {expected.shape}")
            continue
        if actual.dtype != expected.dtype:
            problems.append(f"{key}: dtype {actual.dtype} != SpikingJelly {expected.dtype}")
            continue
        name = key.split(":", 1)[-1]
        if key == "spikes":
            flips = int((~compare.bit_equal(actual, expected)).sum())
            result.spike_flips += flips
            if flips:
                problems.append(_spike_problem(case, actual, expected, ref.get("diag:h")))
        elif key.startswith("exact:"):
            ulp = compare.max_ulp(actual, expected)
            result.max_forward_ulp = max(result.max_forward_ulp or 0, ulp)
            if ulp:
                div = compare.first_divergence(actual, expected)
                problems.append(f"{name}: not bit-identical, up to {ulp} ulp off; first "
                                f"difference at t={div.t}, index={div.index}: SpikingJelly "
                                f"{div.expected!r}, refsnn {div.actual!r}")
        elif key.startswith("close:"):
            err = compare.relative_error(
                actual, expected, axis=axis if actual.shape == ref_shape else None)
            tol = case.forward_tolerance(steps, fan_in)
            result.max_forward_error = max(result.max_forward_error or 0.0, err)
            if not err <= tol:
                problems.append(f"{name}: relative error {err:.3g} > {tol:.3g}")
        elif key.startswith("grad:"):
            err = compare.relative_error(
                actual, expected, axis=axis if actual.shape == ref_shape else None,
                same_nonfinite=case.backend not in FUSED_BACKENDS, floor=grad_floor)
            tol = case.grad_tolerance(steps, fan_in)
            result.grad_tolerance = tol
            result.max_grad_error = max(result.max_grad_error or 0.0, err)
            if not err <= tol:
                problems.append(f"gradient of {name}: relative error {err:.3g} > {tol:.3g}")
    return problems


def _spike_problem(case: Case, actual: np.ndarray, expected: np.ndarray, h) -> str:
    """One line on spikes `[T, N, *]` that differ bitwise: the `spike_report`
    (with SpikingJelly's potential after charge `h`, when recorded, for the
    margins), or the signed zeros that differ where no spike flipped."""
    h = h if h is not None and np.shape(h) == actual.shape else None
    report = spike_report(actual, expected, h_seq=h,
                          v_threshold=case.config.get("v_threshold", 1.0))
    if report is None:
        return "spikes: no spike flipped, but signed zeros differ (-0.0 against 0.0)"
    return "spikes (expected: SpikingJelly, actual: refsnn): " + \
        "; ".join(str(report).splitlines())


def _short_error(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip().replace("\n", " ")
    return text if len(text) <= 300 else text[:297] + "..."


def _classify(result: CaseResult, case: Case) -> None:
    defect = case.defect
    result.status = result.outcome
    if defect is None:
        return
    result.defect = defect.key
    if result.outcome == defect.expect:
        result.status = "known_defect"
        result.message = f"{defect.reason} [{result.message}]"
    elif result.outcome == "pass":
        result.status = "fixed_upstream"
        result.message = (f"listed SpikingJelly defect '{defect.key}' no longer shows "
                          f"({defect.reason})")


def run_case(case: Case, data: dict | None = None) -> CaseResult:
    """Run `case` in both frameworks (on `data`, or the record's own inputs)
    and compare. Never raises for a failing case."""
    start = time.perf_counter()
    rec = case.record
    result = CaseResult(case.id, rec.name, rec.family, "pass", "pass")
    from . import drivers, networks  # noqa: F401 - importing them registers the drivers
    driver = DRIVERS[rec.kind]
    try:
        data = driver.make_inputs(case) if data is None else data
    except Exception as exc:  # noqa: BLE001 - report, never crash the run
        result.outcome, result.message = "refsnn_error", f"building inputs: {_short_error(exc)}"
    else:
        try:
            with np.errstate(all="ignore"):
                ref = driver.reference(case, data)
        except Exception as exc:  # noqa: BLE001
            result.outcome, result.message = "sj_error", _short_error(exc)
        else:
            try:
                with np.errstate(all="ignore"):
                    got = driver.candidate(case, data, ref)
            except Exception as exc:  # noqa: BLE001
                result.outcome = "refsnn_error"
                frames = traceback.extract_tb(exc.__traceback__)
                where = f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""
                result.message = _short_error(exc) + where
            else:
                fan_in = driver.fan_in(case) if hasattr(driver, "fan_in") else 1
                problems = _compare(case, ref, got, result, driver.steps(case), fan_in,
                                    getattr(driver, "error_axis", None))
                if problems:
                    result.outcome = "mismatch"
                    result.message = "; ".join(problems)
    _classify(result, case)
    result.seconds = time.perf_counter() - start
    if result.max_grad_error is not None and math.isinf(result.max_grad_error):
        result.max_grad_error = float("inf")
    return result
