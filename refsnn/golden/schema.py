"""The golden format's vocabulary and the validation of a manifest.json
(docs/golden-format.md): schema name and version, components, dtypes, array
roles, the conventions every case assumes, and `BundleError`, raised with one
line naming the file and field."""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["SCHEMA", "SCHEMA_VERSION", "COMPONENTS", "DTYPES", "ROLES", "CONVENTIONS",
           "BundleError", "one_line", "check_schema", "validate_manifest"]

SCHEMA = "refsnn.golden"
SCHEMA_VERSION = 1
COMPONENTS = ("neuron", "surrogate", "network")
DTYPES = ("float32", "float64")
ROLES = ("input", "parameter", "upstream", "output", "gradient")

#: what every case assumes; written into each manifest
CONVENTIONS = {
    "layout": "time-major: x_seq and every *_seq array is [T, N, *]; states are [N, *]",
    "step_order": "charge, then fire, then reset, all within step t",
    "threshold": "spike = 1 where h - v_threshold >= 0 (so h == v_threshold fires, "
                 "-0.0 fires, NaN does not)",
    "reset": "v_reset null: soft reset v = h - spike * v_threshold; else hard reset "
             "v = (1 - spike) * h + spike * v_reset; the spike resets the same step",
    "h_seq": "potential after charge, before reset",
    "v_seq": "potential after reset (v_seq[T-1] is the final state)",
    "loss": "sum(spike_seq * grad_spike_seq) + sum(v_seq * grad_v_seq); "
            "surrogate: sum(y * grad_y)",
    "surrogate_gradient": "d spike / d h is the surrogate's derivative at h - v_threshold",
    "float_params": "hyper-parameters are JSON doubles; an implementation rounds each once "
                    "to the case dtype where it meets an array (PyTorch's rule)",
}


class BundleError(Exception):
    """A golden file that cannot be read or is invalid. The message is one
    line naming the file and field."""


def one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text if len(text) <= 300 else text[:297] + "..."


def check_schema(path: Path, data: dict) -> None:
    """`data` (a manifest or index.json) declares this schema and version."""
    if data.get("schema") != SCHEMA:
        raise BundleError(f"{path}: field 'schema' must be {SCHEMA!r}, got {data.get('schema')!r}")
    version = data.get("schema_version")
    if "schema_version" not in data:
        raise BundleError(f"{path}: missing field 'schema_version'")
    if version != SCHEMA_VERSION or isinstance(version, bool):
        raise BundleError(f"{path}: unknown schema_version {version!r} (this refsnn reads "
                          f"version {SCHEMA_VERSION})")


_MANIFEST_FIELDS = {"name": str, "component": str, "config": dict, "dtype": str,
                    "conventions": dict, "refsnn_version": str,
                    "spikingjelly_version": (str, type(None)), "arrays": dict}

#: per component: (required config fields, required arrays by role)
_COMPONENT_RULES = {
    "neuron": (("class", "kwargs", "surrogate"),
               {"x_seq": "input", "v_init": "input", "spike_seq": "output"}),
    "surrogate": (("class",), {"x": "input", "y": "output"}),
    "network": (("pattern", "layers"), {"x_seq": "input", "spike_seq": "output"}),
}


def _is_count(value, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def validate_manifest(path: Path, manifest: dict) -> None:
    """Raise BundleError (one line naming `path` and the field) unless
    `manifest` is complete and consistent: fields and types, component, dtype, every
    array entry, the arrays each component requires, and agreeing shapes."""
    check_schema(path, manifest)
    for key, kind in _MANIFEST_FIELDS.items():
        if key not in manifest:
            raise BundleError(f"{path}: missing field '{key}'")
        if not isinstance(manifest[key], kind):
            raise BundleError(f"{path}: field '{key}' has type "
                              f"{type(manifest[key]).__name__}")
    if manifest["component"] not in COMPONENTS:
        raise BundleError(f"{path}: field 'component' is {manifest['component']!r}, expected one of "
                          f"{', '.join(COMPONENTS)}")
    if manifest["dtype"] not in DTYPES:
        raise BundleError(f"{path}: field 'dtype' is {manifest['dtype']!r}, expected one of "
                          f"{', '.join(DTYPES)}")
    config_fields, required = _COMPONENT_RULES[manifest["component"]]
    for key in config_fields:
        if key not in manifest["config"]:
            raise BundleError(f"{path}: missing field 'config.{key}'")
    for name, entry in manifest["arrays"].items():
        where = f"{path}: arrays.{name}"
        if not isinstance(entry, dict):
            raise BundleError(f"{where}: expected an object")
        for key in ("file", "role", "dtype", "shape"):
            if key not in entry:
                raise BundleError(f"{where}: missing field '{key}'")
        file = entry["file"]
        if not isinstance(file, str) or not file.endswith(".npy") or file.startswith(".") \
                or file != os.path.basename(file):
            raise BundleError(f"{where}.file: must be a plain file name ending in .npy, "
                              f"got {file!r}")
        if entry["role"] not in ROLES:
            raise BundleError(f"{where}.role: {entry['role']!r} is not one of {', '.join(ROLES)}")
        if entry["dtype"] != manifest["dtype"]:
            raise BundleError(f"{where}.dtype: {entry['dtype']!r} differs from the case dtype "
                              f"{manifest['dtype']!r}")
        shape = entry["shape"]
        if not isinstance(shape, list) or not all(_is_count(s, 0) for s in shape):
            raise BundleError(f"{where}.shape: expected a list of non-negative integers, "
                              f"got {shape!r}")
        if entry["role"] in ("output", "gradient") and not _is_count(entry.get("steps"), 1):
            raise BundleError(f"{where}.steps: expected an integer >= 1, got "
                              f"{entry.get('steps')!r}")
        if entry["role"] == "gradient" and not _is_count(entry.get("fan_in"), 1):
            raise BundleError(f"{where}.fan_in: expected an integer >= 1, got "
                              f"{entry.get('fan_in')!r}")
    for name, role in required.items():
        if name not in manifest["arrays"]:
            raise BundleError(f"{path}: missing field 'arrays.{name}'")
        if manifest["arrays"][name]["role"] != role:
            raise BundleError(f"{path}: arrays.{name}.role must be {role!r}")
    _validate_shapes(path, manifest)


def _validate_shapes(path: Path, manifest: dict) -> None:
    """Shapes that must agree: a gradient and what it differentiates, an
    upstream weight and its output, a neuron's sequences and states."""
    arrays = {n: tuple(e["shape"]) for n, e in manifest["arrays"].items()}
    pairs = []
    for name in arrays:
        if name.startswith("grad_"):
            base = name[len("grad_"):]
            pairs.append((name, base))
    if manifest["component"] == "neuron":
        pairs += [(n, "x_seq") for n in ("spike_seq", "v_seq", "h_seq")]
    if manifest["component"] == "surrogate":
        pairs.append(("y", "x"))
    for a, b in pairs:
        if a in arrays and b in arrays and arrays[a] != arrays[b]:
            raise BundleError(f"{path}: arrays.{a}.shape {list(arrays[a])} differs from "
                              f"arrays.{b}.shape {list(arrays[b])}")
    x = arrays.get("x_seq", ())
    if manifest["component"] in ("neuron", "network") and len(x) < 2:
        raise BundleError(f"{path}: arrays.x_seq.shape {list(x)} must be [T, N, *]")
    if manifest["component"] == "neuron":
        for name in arrays:
            if name.endswith("_init") and arrays[name] != x[1:]:
                raise BundleError(f"{path}: arrays.{name}.shape {list(arrays[name])} must be "
                                  f"x_seq's step shape {list(x[1:])}")
    if manifest["component"] == "network" and arrays["spike_seq"][:2] != x[:2]:
        raise BundleError(f"{path}: arrays.spike_seq.shape {list(arrays['spike_seq'])} must "
                          f"start with x_seq's [T, N] = {list(x[:2])}")


