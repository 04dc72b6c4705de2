"""Checking an implementation against a bundle: loading `--impl
module:function`, replaying each case through it and judging its outputs
(`CaseResult`: pass, fail or skip, with one line per failing output)."""
from __future__ import annotations

import copy
import importlib
import importlib.util
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .bundle import BundleCase, read_bundle
from .compare import compare_outputs
from .schema import one_line

__all__ = ["ImplError", "load_impl", "CaseResult", "check_case", "check_bundle"]


@dataclass
class CaseResult:
    """The outcome of one case: status 'pass', 'fail' or 'skip', a one-line
    summary, and detail lines (one per failing or unchecked output)."""
    name: str
    status: str
    summary: str
    details: list = field(default_factory=list)


class ImplError(Exception):
    """`--impl module:function` cannot be loaded; the message is one line."""


def load_impl(spec: str):
    """The function named by 'package.module:function' or 'path/to/file.py:function'
    (the current directory is importable)."""
    module_name, sep, func_name = spec.rpartition(":")
    if not sep or not module_name or not func_name:
        raise ImplError(f"--impl {spec!r}: expected 'module:function' or 'file.py:function'")
    try:
        if module_name.endswith(".py"):
            file = Path(module_name)
            if not file.is_file():
                raise ImplError(f"--impl {spec!r}: file {module_name} not found")
            file_spec = importlib.util.spec_from_file_location(file.stem, file)
            module = importlib.util.module_from_spec(file_spec)
            file_spec.loader.exec_module(module)
        else:
            if os.getcwd() not in sys.path and "" not in sys.path:
                sys.path.insert(0, os.getcwd())
            module = importlib.import_module(module_name)
    except ImplError:
        raise
    except Exception as e:  # noqa: BLE001 - any import failure is the user's to fix
        raise ImplError(f"--impl {spec!r}: cannot import {module_name!r}: "
                        f"{type(e).__name__}: {one_line(e)}") from None
    func = getattr(module, func_name, None)
    if func is None:
        raise ImplError(f"--impl {spec!r}: module {module_name!r} has no attribute {func_name!r}")
    if not callable(func):
        raise ImplError(f"--impl {spec!r}: {func_name!r} is not callable")
    return func


def check_case(case: BundleCase, impl, *, exact: bool = False,
               allow_rounding_flips: bool = False, ulps: float = 16.0) -> CaseResult:
    """Run `impl` on one case and compare its outputs. An implementation that
    raises NotImplementedError declines (status 'skip'); any other exception,
    a non-dict result or a value that is not a numeric array is a failure."""
    name = case.manifest["name"]
    try:
        actual = impl(copy.deepcopy(case.manifest), {k: v.copy() for k, v in case.inputs.items()})
    except NotImplementedError as e:
        reason = one_line(e) or "NotImplementedError"
        return CaseResult(name, "skip", f"declined by the implementation ({reason})")
    except Exception as e:  # noqa: BLE001 - an implementation's crash is a failed case
        return CaseResult(name, "fail", f"the implementation raised {type(e).__name__}: "
                                        f"{one_line(e)}")
    if not isinstance(actual, dict):
        return CaseResult(name, "fail", f"the implementation returned "
                                        f"{type(actual).__name__}, expected a dict of arrays")
    arrays = {}
    for key, value in actual.items():
        if value is None:       # the same as not returned
            continue
        try:
            arr = np.asarray(value)
        except Exception as e:  # noqa: BLE001
            return CaseResult(name, "fail", f"output {key!r} is not an array: {one_line(e)}")
        if arr.dtype.kind not in "biuf":
            return CaseResult(name, "fail", f"output {key!r} has dtype {arr.dtype}, expected "
                                            f"a numeric array")
        arrays[key] = arr
    results = compare_outputs(case.manifest, case.inputs, arrays, case.expected, exact=exact,
                              allow_rounding_flips=allow_rounding_flips, ulps=ulps)
    failed = [(n, msg) for n, ok, msg in results if ok is False]
    missing = [n for n, ok, _ in results if ok is None]
    checked = [n for n, ok, _ in results if ok]
    details = [f"{n}: {msg}" for n, msg in failed]
    summary = f"{len(checked)} of {len(results)} outputs match"
    if missing:
        summary += f"; not checked: {', '.join(missing)}"
    if failed:
        return CaseResult(name, "fail", f"{len(failed)} output(s) differ: "
                          + ", ".join(n for n, _ in failed), details)
    return CaseResult(name, "pass", summary)


def check_bundle(directory, impl, *, select: str | None = None, exact: bool = False,
                 allow_rounding_flips: bool = False, ulps: float = 16.0) -> list:
    """Read and validate the bundle (BundleError on a bad file, before
    anything runs), then `check_case` every case; returns the CaseResults."""
    cases = read_bundle(directory, select)
    return [check_case(c, impl, exact=exact, allow_rounding_flips=allow_rounding_flips,
                       ulps=ulps) for c in cases]
