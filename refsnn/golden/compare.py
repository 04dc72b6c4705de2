"""Comparing an implementation's outputs for a case with the expected ones:
spikes through `refsnn.comparisons.spike_report`, potentials and gradients
within `grad_tolerance` (or bitwise with `exact`)."""
from __future__ import annotations

import numpy as np

from ..comparisons import assert_grads_close, spike_report
from ..conformance.compare import bit_equal, relative_error
from .catalog import Case
from .configs import v_threshold
from .outputs import reference_outputs

__all__ = ["compare_outputs", "assert_outputs_match"]

#: the outputs compared as spikes (a surrogate's `y` is its heaviside)
_SPIKE_OUTPUTS = ("spike_seq", "y")
#: per-neuron sequences besides the spikes
_POTENTIAL_OUTPUTS = ("v_seq", "h_seq")


def _spike_threshold(manifest: dict) -> float:
    """The threshold the case's spikes are decided against (its last neuron's
    for a network, 0 for a surrogate)."""
    if manifest["component"] == "surrogate":
        return 0.0
    if manifest["component"] == "neuron":
        return v_threshold(manifest["config"])
    return v_threshold(manifest["config"]["layers"][-1].get("neuron", {}))


def compare_outputs(manifest: dict, inputs: dict, actual: dict, expected: dict, *,
                    exact: bool = False, allow_rounding_flips: bool = False,
                    ulps: float = 16.0) -> list:
    """Compare an implementation's outputs for a case (`manifest`, `inputs`)
    with the expected ones.

    Returns `(name, ok, message)` per expected output: ok is True, False, or
    None when `actual` lacks it (the spikes are then a failure). Spikes must
    be equal (or, with `allow_rounding_flips`, differ only by rounding-level
    flips and their cascades; those neurons then drop out of the per-neuron
    comparisons). Potentials and gradients must be close (`grad_tolerance`
    with the manifest's steps and fan_in, `ulps` per step), or bitwise equal
    with `exact`.
    """
    entries = manifest["arrays"]
    results = []
    spike_name = next(n for n in _SPIKE_OUTPUTS if n in expected)
    unflipped = None      # with allowed flips: mask [N*] of the neurons that did not flip
    for name, want in expected.items():
        entry = entries.get(name, {})
        if name not in actual or actual[name] is None:
            results.append((name, False if name == spike_name else None, "not returned"))
            continue
        got = np.asarray(actual[name])
        if got.shape != want.shape:
            results.append((name, False, f"shape {got.shape}, expected {want.shape}"))
            continue
        if name == spike_name:
            time_major = manifest["component"] != "surrogate"
            a, e = (got, want) if time_major else (got[None], want[None])
            h = expected.get("h_seq") if time_major else np.asarray(inputs["x"])[None]
            report = spike_report(a, e, h_seq=h, v_seq=expected.get("v_seq"),
                                  actual_h_seq=actual.get("h_seq") if time_major else None,
                                  v_threshold=_spike_threshold(manifest))
            if report is None:
                results.append((name, True, f"{want.size} spikes equal"))
            elif allow_rounding_flips and report.explained_by_rounding:
                flips = ~bit_equal(np.asarray(a, np.float64) + 0.0,
                                   np.asarray(e, np.float64) + 0.0)
                unflipped = ~flips.reshape(flips.shape[0], -1).any(axis=0)
                results.append((name, True, f"{report.differing} rounding-level flip(s) "
                                f"allowed in {report.neurons} neuron(s)"))
            else:
                results.append((name, False, str(report)))
            continue
        results.append((name, *_compare_values(name, got, want, entry, manifest["dtype"],
                                               exact, ulps, unflipped)))
    return results


def _compare_values(name: str, got: np.ndarray, want: np.ndarray, entry: dict, dtype: str,
                    exact: bool, ulps: float, unflipped) -> tuple:
    """`(ok, message)` for one potential or gradient `got` against `want`;
    `unflipped`: None, or the mask of neurons whose spikes agree (the others
    are left out of per-neuron values, and gradients summed over neurons are
    not compared)."""
    if unflipped is not None:
        steps_by_neurons = want.reshape(want.shape[0], -1).shape if want.ndim >= 1 else None
        per_neuron = steps_by_neurons is not None and steps_by_neurons[1] == unflipped.size \
            and name in _POTENTIAL_OUTPUTS + ("grad_x_seq",)
        if per_neuron:
            mask = np.broadcast_to(unflipped, steps_by_neurons).reshape(want.shape)
            got, want = np.where(mask, got, 0), np.where(mask, want, 0)
        elif name.endswith("_init") and want.size == unflipped.size:    # a state [N, *]
            mask = unflipped.reshape(want.shape)
            got, want = np.where(mask, got, 0), np.where(mask, want, 0)
        elif name.startswith("grad_"):
            return None, "not compared: a spike flipped, and this gradient sums over neurons"
    if exact:
        same = bit_equal(got.astype(want.dtype), want)
        if same.all():
            return True, "bitwise equal"
        first = np.unravel_index(int(np.argmax(~same)), want.shape)
        return False, (f"{int((~same).sum())} of {want.size} element(s) differ bitwise; "
                       f"first at {tuple(int(i) for i in first)}: actual "
                       f"{float(got[first]):.9g}, expected {float(want[first]):.9g}")
    steps, fan_in = int(entry.get("steps", 1)), int(entry.get("fan_in", 1))
    try:
        assert_grads_close(got, want, steps=steps, fan_in=fan_in, ulps=ulps, dtype=dtype,
                           name=name)
    except AssertionError as e:
        return False, str(e).split(": ", 1)[1]
    err = relative_error(got, want)
    return True, "bitwise equal" if bit_equal(got.astype(want.dtype), want).all() else \
        f"normwise error {err:.2g}"


def assert_outputs_match(case: Case, actual: dict, expected: dict | None = None, *,
                         exact: bool = False, allow_rounding_flips: bool = False,
                         ulps: float = 16.0) -> None:
    """Assert an implementation's `actual` outputs for `case` match refsnn's
    (`expected`, computed when not given); outputs missing from `actual` are
    not checked, except the spikes. The message lists every failing output."""
    expected = reference_outputs(case) if expected is None else expected
    manifest = case.manifest(expected)
    results = compare_outputs(manifest, case.inputs, actual, expected, exact=exact,
                              allow_rounding_flips=allow_rounding_flips, ulps=ulps)
    bad = [f"{n}: {msg}" for n, ok, msg in results if ok is False]
    if bad:
        raise AssertionError(f"case {case.name} ({case.component} "
                             f"{_describe_case(manifest)}):\n  " + "\n  ".join(bad))


def _describe_case(manifest: dict) -> str:
    """`LIFNode(tau=2.0, surrogate=Sigmoid(), step_mode=m), float32` and the like."""
    c = manifest["config"]
    if manifest["component"] == "network":
        return f"{c.get('pattern')}, {len(c.get('layers', []))} layers, {manifest['dtype']}"
    kw = ", ".join(f"{k}={v!r}" for k, v in c.get("kwargs", {}).items())
    sg = c.get("surrogate")
    sg_kw = ", ".join(f"{k}={v!r}" for k, v in (sg or {}).get("kwargs", {}).items())
    sgs = f", surrogate={sg['class']}({sg_kw})" if sg else ""
    mode = f", step_mode={c['step_mode']}" if "step_mode" in c else ""
    train = ", eval" if c.get("training", True) is False else ""
    return f"{c.get('class')}({kw}{sgs}{mode}{train}), {manifest['dtype']}"


