"""Golden bundles on disk: writing them (`export_bundle`, verified against
SpikingJelly when it is installed) and reading them back validated
(`read_case`, `read_bundle`): manifest.json checked field by field, .npy
files read with allow_pickle=False and checked against their manifest entry.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .catalog import Case, default_cases
from .compare import compare_outputs
from .outputs import reference_outputs, spikingjelly_outputs, spikingjelly_version
from .schema import SCHEMA, SCHEMA_VERSION, BundleError, check_schema, one_line, \
    validate_manifest

__all__ = ["VerificationError", "export_bundle", "BundleCase", "read_case", "read_bundle"]


# ----------------------------------------------------------------------------
# writing
# ----------------------------------------------------------------------------
class VerificationError(Exception):
    """refsnn and SpikingJelly disagree on some cases at export; `failures`
    lists `(case name, message)`."""

    def __init__(self, failures: list):
        self.failures = failures
        super().__init__(f"{len(failures)} case(s) differ from SpikingJelly: "
                         + ", ".join(n for n, _ in failures))


def _verify_against_spikingjelly(case: Case, expected: dict) -> tuple:
    """(check dict for the manifest, failure message or None) of refsnn's
    `expected` against SpikingJelly on `case`."""
    try:
        sj = spikingjelly_outputs(case)
    except Exception as e:  # noqa: BLE001 - report, do not crash the export
        return None, f"SpikingJelly raised {type(e).__name__}: {one_line(e)}"
    results = compare_outputs(case.manifest(expected), case.inputs, sj, expected)
    bad = [f"{n}: {msg}" for n, ok, msg in results if ok is False]
    check = {n: (msg if ok else "not produced by SpikingJelly") for n, ok, msg in results}
    return check, ("; ".join(bad) if bad else None)


def _write_npy(path: Path, array: np.ndarray) -> None:
    """Save `array` little-endian and C-ordered, never pickled."""
    array = np.asarray(array)
    np.save(path, array.astype(array.dtype.newbyteorder("<"), order="C"), allow_pickle=False)


def export_bundle(directory, cases=None, verify: bool = True, force: bool = False) -> dict:
    """Write `cases` (default: `default_cases()`) as a golden bundle in
    `directory`: one folder per case with manifest.json and .npy files, and an
    index.json listing the cases.

    verify: when torch and SpikingJelly import, run every case in SpikingJelly
      first and record its version and the comparison in each manifest
      (otherwise `spikingjelly_version` is null). A disagreement raises
      VerificationError and writes nothing.
    force: write into a non-empty directory (files of the same name are replaced).
    Returns `{"cases": n, "spikingjelly_version": version or None}`.
    """
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise BundleError(f"{directory}: exists and is not a directory")
    if directory.exists() and any(directory.iterdir()) and not force:
        raise BundleError(f"{directory}: directory is not empty; choose a new one or pass "
                          f"--force to write over it")
    cases = default_cases() if cases is None else list(cases)
    names = [c.name for c in cases]
    if len(set(names)) != len(names):
        raise ValueError("export_bundle: case names must be unique")
    sj_version = spikingjelly_version() if verify else None
    written, failures = [], []
    for case in cases:
        expected = reference_outputs(case)
        sj = None
        if sj_version is not None:
            check, problem = _verify_against_spikingjelly(case, expected)
            if problem is not None:
                failures.append((case.name, problem))
            sj = {"version": sj_version, "check": check}
        written.append((case, expected, case.manifest(expected, sj)))
    if failures:
        raise VerificationError(failures)
    directory.mkdir(parents=True, exist_ok=True)
    for case, expected, manifest in written:
        folder = directory / case.name
        folder.mkdir(exist_ok=True)
        for name, array in {**case.inputs, **expected}.items():
            _write_npy(folder / manifest["arrays"][name]["file"], array)
        (folder / "manifest.json").write_text(json.dumps(manifest, indent=1, allow_nan=False)
                                              + "\n")
    from .. import __version__
    index = {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "refsnn_version": __version__,
             "spikingjelly_version": sj_version, "cases": names}
    (directory / "index.json").write_text(json.dumps(index, indent=1) + "\n")
    return {"cases": len(cases), "spikingjelly_version": sj_version}


# ----------------------------------------------------------------------------
# reading and validating (never unpickles)
# ----------------------------------------------------------------------------
@dataclass
class BundleCase:
    """A case read from disk: its manifest, the arrays an implementation
    receives (`inputs`) and the ones it must reproduce (`expected`)."""
    path: Path
    manifest: dict
    inputs: dict
    expected: dict


def _read_json(path: Path) -> dict:
    """The JSON object in `path` (manifest.json, index.json), or BundleError."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise BundleError(f"{path}: file missing") from None
    except (OSError, UnicodeDecodeError) as e:
        raise BundleError(f"{path}: cannot be read: {one_line(e)}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise BundleError(f"{path}: invalid JSON: {e.msg} (line {e.lineno}, column {e.colno})") \
            from None
    if not isinstance(data, dict):
        raise BundleError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def _read_npy(path: Path, entry: dict) -> np.ndarray:
    """Read one .npy file without unpickling; check dtype and shape against
    its manifest entry."""
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise BundleError(f"{path}: file missing (listed in manifest.json)") from None
    except OSError as e:
        raise BundleError(f"{path}: cannot be read: {one_line(e)}") from None
    with f:
        try:
            version = np.lib.format.read_magic(f)
            if version not in ((1, 0), (2, 0)):
                raise BundleError(f"{path}: .npy format version {version[0]}.{version[1]} is "
                                  f"not supported (1.0 or 2.0)")
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                np.lib.format.read_array_header_2_0
            shape, _, dtype = read_header(f)
        except (ValueError, EOFError, OSError, SyntaxError) as e:
            raise BundleError(f"{path}: not a valid .npy file ({one_line(e)})") from None
        if dtype.hasobject:
            raise BundleError(f"{path}: holds a pickled object array (dtype {dtype}); golden "
                              f"files are read with allow_pickle=False")
        f.seek(0)
        try:
            array = np.lib.format.read_array(f, allow_pickle=False)
        except (ValueError, EOFError, OSError) as e:
            raise BundleError(f"{path}: truncated or corrupted .npy data ({one_line(e)})") \
                from None
        if f.read(1):
            raise BundleError(f"{path}: corrupted .npy file (extra bytes after the array data)")
    expected_dtype = np.dtype(entry["dtype"]).newbyteorder("<")
    if array.dtype != expected_dtype:
        raise BundleError(f"{path}: dtype {array.dtype.str} but manifest.json says "
                          f"{entry['dtype']} (little-endian {expected_dtype.str})")
    if list(array.shape) != list(entry["shape"]):
        raise BundleError(f"{path}: shape {list(array.shape)} but manifest.json says "
                          f"{entry['shape']}")
    return array


def read_case(folder) -> BundleCase:
    """Read and validate one case folder; raises BundleError (one line naming
    the file or field) on anything missing, malformed or inconsistent."""
    folder = Path(folder)
    path = folder / "manifest.json"
    manifest = _read_json(path)
    validate_manifest(path, manifest)
    inputs, expected = {}, {}
    for name, entry in manifest["arrays"].items():
        array = _read_npy(folder / entry["file"], entry)
        (expected if entry["role"] in ("output", "gradient") else inputs)[name] = array
    return BundleCase(folder, manifest, inputs, expected)


def read_bundle(directory, select: str | None = None) -> list:
    """Read and validate every case of a bundle (a directory with index.json,
    or a single case folder with manifest.json); `select` keeps the cases
    whose name contains it. Raises BundleError on the first invalid file."""
    directory = Path(directory)
    if not directory.is_dir():
        raise BundleError(f"{directory}: no such directory")
    index_path = directory / "index.json"
    if not index_path.exists() and (directory / "manifest.json").exists():
        names = [None]
    else:
        if not index_path.exists():
            raise BundleError(f"{index_path}: file missing (not a golden bundle; write one "
                              f"with `refsnn golden export DIR`)")
        index = _read_json(index_path)
        check_schema(index_path, index)
        names = index.get("cases")
        if not isinstance(names, list) or not names or \
                not all(isinstance(n, str) and n and n == os.path.basename(n) for n in names):
            raise BundleError(f"{index_path}: field 'cases' must be a non-empty list of "
                              f"case folder names")
    cases = []
    for name in names:
        if select and name and select not in name:
            continue
        case = read_case(directory if name is None else directory / name)
        if name is not None and case.manifest["name"] != name:
            raise BundleError(f"{directory / name / 'manifest.json'}: field 'name' is "
                              f"{case.manifest['name']!r}, but the folder is {name!r}")
        cases.append(case)
    if not cases:
        raise BundleError(f"{directory}: no case matches --select {select!r}")
    return cases


