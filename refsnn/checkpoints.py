"""Weights in and out of files, never unpickling anything.

- `.npz`: `save_npz(path, state)` / `load_npz(path)`, one `.npy` member per key,
  written and read with `allow_pickle=False`.
- safetensors: `save_safetensors(path, state, metadata=None)` /
  `load_safetensors(path)` (and `dumps_safetensors` / `loads_safetensors` on
  bytes), written here from the format's specification
  (https://github.com/huggingface/safetensors#format): an 8-byte little-endian
  header length N, N bytes of JSON `{name: {"dtype", "shape", "data_offsets":
  [begin, end]}, "__metadata__": {str: str}}` padded with spaces, then the
  tensors' little-endian C-order bytes, back to back with no holes.
- PyTorch: `load_torch_state_dict(module, state_dict_or_path)`; a path is read
  with `torch.load(..., weights_only=True)`, which refuses arbitrary pickles.
- `load_checkpoint(module, path)`: any of the three, by file suffix.
- `convert_keys(state, target)`: rename keys between layouts that differ only
  by container levels, e.g. `Sequential(SeqToANNContainer(conv, bn), sn)`
  (`0.0.weight`, `0.1.weight`, ...) and `Sequential(conv, bn, sn)`
  (`0.weight`, `1.weight`, ...).

`state` arguments accept a `Module` (its `state_dict()`) or a mapping from
names to arrays, refsnn Tensors or PyTorch tensors. Loaders return an
`OrderedDict` of name -> `np.ndarray`, in the order the file stores them.
"""
from __future__ import annotations

import io
import json
import os
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np

from .autograd import Tensor
from .module import IncompatibleKeys, Module

__all__ = ["save_npz", "load_npz", "save_safetensors", "load_safetensors",
           "dumps_safetensors", "loads_safetensors", "safetensors_metadata",
           "load_torch_state_dict", "load_checkpoint", "convert_keys", "CheckpointError"]


class CheckpointError(ValueError):
    """A checkpoint file that cannot or must not be read (pickled content,
    malformed format, unsupported dtype)."""


_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_PROTOCOL = b"\x80"
_NPY_MAGIC = b"\x93NUMPY"


# ----------------------------------------------------------------------------
# state -> arrays
# ----------------------------------------------------------------------------
def _to_array(key: str, value) -> np.ndarray:
    if isinstance(value, Tensor):
        return value.data
    if hasattr(value, "detach") and hasattr(value, "numpy"):     # a torch tensor
        value = value.detach().cpu()
        if str(value.dtype) == "torch.bfloat16":
            value = value.float()
        return value.numpy()
    array = np.asarray(value)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"checkpoint: value of '{key}' has dtype {array.dtype}; only bool, "
                        f"integer and floating arrays can be stored")
    return array


def state_arrays(state) -> "OrderedDict[str, np.ndarray]":
    """`state` (a Module or a mapping of arrays / Tensors / torch tensors) as an
    ordered name -> `np.ndarray` mapping."""
    if isinstance(state, Module):
        return state.state_dict()
    if not hasattr(state, "items"):
        raise TypeError(f"checkpoint: expected a Module or a mapping of names to arrays, "
                        f"got {type(state).__name__}")
    arrays = OrderedDict()
    for key, value in state.items():
        if not isinstance(key, str):
            raise TypeError(f"checkpoint: keys must be strings, got {key!r}")
        arrays[key] = _to_array(key, value)
    return arrays


def _refuse_pickle(path, head: bytes, reader: str) -> None:
    """Raise for files that hold pickles: PyTorch's `torch.save` output (a zip
    with `data.pkl`, or a bare pickle in the legacy format)."""
    if head.startswith(_PICKLE_PROTOCOL):
        raise CheckpointError(
            f"{reader}: '{path}' is a pickle (for example a legacy torch.save file); refsnn "
            f"never unpickles checkpoints. Load it with refsnn.checkpoints."
            f"load_torch_state_dict(module, path) (torch.load with weights_only=True) or "
            f"convert it to .npz / .safetensors")
    if head.startswith(_ZIP_MAGIC) and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            pickles = [n for n in archive.namelist() if n.endswith(".pkl")]
        if pickles:
            raise CheckpointError(
                f"{reader}: '{path}' is a PyTorch checkpoint (torch.save zip holding "
                f"{pickles[0]}); refsnn never unpickles checkpoints. Load it with "
                f"refsnn.checkpoints.load_torch_state_dict(module, path) (torch.load with "
                f"weights_only=True) or convert it to .npz / .safetensors")


def _head(path, n: int = 8) -> bytes:
    with open(path, "rb") as f:
        return f.read(n)


# ----------------------------------------------------------------------------
# .npz
# ----------------------------------------------------------------------------
def save_npz(path, state, compressed: bool = False) -> None:
    """Write `state` to `path` (used as given: no suffix is added) as an `.npz`
    archive, one `<key>.npy` member per entry, in `state`'s order. Refuses
    object arrays, so the file never holds a pickle."""
    arrays = state_arrays(state)
    compression = zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", compression=compression, allowZip64=True) as archive:
        for key, array in arrays.items():
            with archive.open(key + ".npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, array, allow_pickle=False)


def load_npz(path) -> "OrderedDict[str, np.ndarray]":
    """Read an `.npz` archive written by `save_npz` or `np.savez`.

    Refused with `CheckpointError`: object arrays (which `np.savez` pickles),
    members that are not `.npy` arrays, PyTorch `torch.save` files and any
    other pickle. Nothing is ever unpickled (`allow_pickle=False`).
    """
    head = _head(path)
    _refuse_pickle(path, head, "load_npz")
    if head.startswith(_NPY_MAGIC):
        raise CheckpointError(f"load_npz: '{path}' is a single .npy array, not an .npz "
                              f"archive of named arrays")
    if not head.startswith(_ZIP_MAGIC):
        raise CheckpointError(f"load_npz: '{path}' is not an .npz (zip) archive")
    try:
        with zipfile.ZipFile(path) as archive:
            others = [n for n in archive.namelist() if not n.endswith(".npy")]
    except zipfile.BadZipFile as e:
        raise CheckpointError(f"load_npz: '{path}' is a damaged zip archive: {e}") from None
    if others:
        raise CheckpointError(f"load_npz: '{path}' holds members that are not .npy arrays: "
                              f"{others[:5]}")
    arrays = OrderedDict()
    with np.load(path, allow_pickle=False) as archive:
        for key in archive.files:
            try:
                arrays[key] = archive[key]
            except ValueError as e:
                raise CheckpointError(
                    f"load_npz: '{path}' entry '{key}' is an object array, stored as a "
                    f"pickle; refsnn never unpickles checkpoints ({e})") from None
    return arrays


# ----------------------------------------------------------------------------
# safetensors
# ----------------------------------------------------------------------------
#: safetensors dtype names and their little-endian NumPy dtypes
_ST_DTYPES = {
    "F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"),
    "I64": np.dtype("<i8"), "I32": np.dtype("<i4"), "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"), "U64": np.dtype("<u8"), "U32": np.dtype("<u4"),
    "U16": np.dtype("<u2"), "U8": np.dtype("u1"), "BOOL": np.dtype("?"),
}
_ST_NAMES = {dtype: name for name, dtype in _ST_DTYPES.items()}
#: bfloat16 has no NumPy dtype: it is read as float32 (exactly: its bits are
#: the upper half of a float32)
_BF16 = "BF16"
#: the reference implementation's limit on the header size
_MAX_HEADER = 100_000_000


def _st_name(key: str, array: np.ndarray) -> str:
    name = _ST_NAMES.get(array.dtype.newbyteorder("<"))
    if name is None:
        raise TypeError(f"save_safetensors: '{key}' has dtype {array.dtype}, which "
                        f"safetensors cannot store (supported: {sorted(_ST_DTYPES)})")
    return name


def _write_safetensors(out, arrays: "OrderedDict[str, np.ndarray]", metadata) -> None:
    header = OrderedDict()
    if metadata:
        bad = {k: v for k, v in metadata.items()
               if not (isinstance(k, str) and isinstance(v, str))}
        if bad:
            raise TypeError(f"save_safetensors: metadata must map strings to strings, "
                            f"got {bad}")
        header["__metadata__"] = dict(metadata)
    offset = 0
    for key, array in arrays.items():
        if key == "__metadata__":
            raise ValueError("save_safetensors: '__metadata__' is reserved and cannot name "
                             "a tensor")
        header[key] = {"dtype": _st_name(key, array), "shape": list(array.shape),
                       "data_offsets": [offset, offset + array.nbytes]}
        offset += array.nbytes
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-(8 + len(text)) % 8)       # align the data to 8 bytes
    out.write(len(text).to_bytes(8, "little"))
    out.write(text)
    for array in arrays.values():
        little = array.astype(array.dtype.newbyteorder("<"), copy=False)
        out.write(little.tobytes(order="C"))


def dumps_safetensors(state, metadata: dict | None = None) -> bytes:
    """`state` serialised in the safetensors format, tensors in `state`'s order."""
    out = io.BytesIO()
    _write_safetensors(out, state_arrays(state), metadata)
    return out.getvalue()


def save_safetensors(path, state, metadata: dict | None = None) -> None:
    """Write `state` (and optional string-to-string `metadata`) to a
    `.safetensors` file, tensors in `state`'s order."""
    arrays = state_arrays(state)
    with open(path, "wb") as out:
        _write_safetensors(out, arrays, metadata)


def _parse_header(data: bytes, where: str):
    """(entries sorted by offset, metadata, start of the byte buffer)."""
    if len(data) < 8:
        raise CheckpointError(f"{where}: {len(data)} bytes is too short for a safetensors "
                              f"file (an 8-byte header length comes first)")
    n = int.from_bytes(data[:8], "little")
    if n > min(len(data) - 8, _MAX_HEADER):
        raise CheckpointError(f"{where}: header length {n} exceeds the "
                              f"{len(data) - 8} bytes after it; not a safetensors file")
    text = data[8:8 + n]
    if not text.startswith(b"{"):
        raise CheckpointError(f"{where}: the header must be a JSON object starting with '{{'")

    def no_duplicates(pairs):
        keys = [k for k, _ in pairs]
        if len(set(keys)) != len(keys):
            raise CheckpointError(f"{where}: duplicate keys in the header")
        return OrderedDict(pairs)

    try:
        header = json.loads(text.decode("utf-8"), object_pairs_hook=no_duplicates)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{where}: the header is not valid UTF-8 JSON: {e}") from None
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise CheckpointError(f"{where}: __metadata__ must map strings to strings")
    entries = []
    for key, info in header.items():
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            raise CheckpointError(f"{where}: entry '{key}' must have exactly dtype, shape "
                                  f"and data_offsets, got {info!r}")
        dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if dtype not in _ST_DTYPES and dtype != _BF16:
            raise CheckpointError(f"{where}: entry '{key}' has dtype {dtype!r}, which refsnn "
                                  f"cannot read (supported: {sorted(_ST_DTYPES) + [_BF16]})")
        if not (isinstance(shape, list)
                and all(isinstance(s, int) and s >= 0 for s in shape)):
            raise CheckpointError(f"{where}: entry '{key}' has an invalid shape {shape!r}")
        if not (isinstance(offsets, list) and len(offsets) == 2
                and all(isinstance(o, int) for o in offsets) and 0 <= offsets[0] <= offsets[1]):
            raise CheckpointError(f"{where}: entry '{key}' has invalid data_offsets "
                                  f"{offsets!r}")
        itemsize = 2 if dtype == _BF16 else _ST_DTYPES[dtype].itemsize
        nbytes = itemsize * int(np.prod(shape, dtype=np.int64))
        if offsets[1] - offsets[0] != nbytes:
            raise CheckpointError(f"{where}: entry '{key}' ({dtype} {shape}) needs {nbytes} "
                                  f"bytes but data_offsets {offsets} span "
                                  f"{offsets[1] - offsets[0]}")
        entries.append((offsets[0], offsets[1], key, dtype, tuple(shape)))
    entries.sort()
    end = 0
    for begin, stop, key, _, _ in entries:
        if begin != end:
            raise CheckpointError(f"{where}: entry '{key}' starts at byte {begin} of the data "
                                  f"but the previous tensor ends at {end} (tensors must be "
                                  f"back to back, without holes or overlaps)")
        end = stop
    if 8 + n + end != len(data):
        raise CheckpointError(f"{where}: the tensors cover {end} bytes but the data holds "
                              f"{len(data) - 8 - n}")
    return entries, metadata, 8 + n


def _decode(data: bytes, start: int, dtype: str, shape: tuple) -> np.ndarray:
    count = int(np.prod(shape, dtype=np.int64))
    if dtype == _BF16:
        bits = np.frombuffer(data, np.dtype("<u2"), count, start).astype(np.uint32) << 16
        return bits.view(np.float32).reshape(shape)
    raw = np.frombuffer(data, _ST_DTYPES[dtype], count, start)
    return raw.astype(raw.dtype.newbyteorder("="), copy=True).reshape(shape)


def loads_safetensors(data: bytes, where: str = "loads_safetensors") \
        -> "OrderedDict[str, np.ndarray]":
    """Tensors of a safetensors byte string, in the order of their data.
    BF16 tensors come back as float32 (exact)."""
    entries, _, base = _parse_header(data, where)
    return OrderedDict((key, _decode(data, base + begin, dtype, shape))
                       for begin, _, key, dtype, shape in entries)


def _read_safetensors(path) -> bytes:
    head = _head(path)
    _refuse_pickle(path, head, "load_safetensors")
    return Path(path).read_bytes()


def load_safetensors(path) -> "OrderedDict[str, np.ndarray]":
    """Read a `.safetensors` file: every tensor, checked against the format
    (header, dtypes, shapes, offsets covering the data exactly). Pickled files
    (`torch.save` output) are refused with `CheckpointError`."""
    return loads_safetensors(_read_safetensors(path), f"load_safetensors: '{path}'")


def safetensors_metadata(path) -> dict:
    """The `__metadata__` string map of a `.safetensors` file ({} if none)."""
    return _parse_header(_read_safetensors(path), f"safetensors_metadata: '{path}'")[1]


# ----------------------------------------------------------------------------
# PyTorch state_dicts, and any file by suffix
# ----------------------------------------------------------------------------
def _torch_load(path):
    try:
        import torch
    except ImportError:
        raise ImportError("load_torch_state_dict: reading a PyTorch file needs torch "
                          "(pip install 'refsnn[conformance]')") from None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises UnpicklingError / RuntimeError
        raise CheckpointError(f"load_torch_state_dict: torch.load('{path}', "
                              f"weights_only=True) refused the file (it holds objects other "
                              f"than tensors and plain containers, or is not a PyTorch "
                              f"file): {e}") from None


def load_torch_state_dict(module: Module, state_dict, strict: bool = True) -> IncompatibleKeys:
    """Load a PyTorch `state_dict` (a mapping of tensors, or the path of a file
    `torch.save`d from one) into `module`.

    A file is read with `torch.load(weights_only=True)`; a training checkpoint
    holding the weights under 'state_dict' or 'model' is unwrapped. bfloat16
    tensors become float32 before loading. Errors as `Module.load_state_dict`:
    strict mode lists missing and unexpected keys and shape mismatches.
    """
    if isinstance(state_dict, (str, os.PathLike)):
        state_dict = _torch_load(state_dict)
        if isinstance(state_dict, dict):
            for wrapper in ("state_dict", "model"):
                if isinstance(state_dict.get(wrapper), dict):
                    state_dict = state_dict[wrapper]
                    break
    return module.load_state_dict(state_arrays(state_dict), strict=strict)


_SUFFIX_LOADERS = {".npz": "npz", ".safetensors": "safetensors", ".pt": "torch",
                   ".pth": "torch", ".bin": "torch"}


def load_checkpoint(module: Module, path, strict: bool = True) -> IncompatibleKeys:
    """Load the weights in `path` into `module`, chosen by suffix: `.npz`
    (`load_npz`), `.safetensors` (`load_safetensors`), `.pt`/`.pth`/`.bin`
    (`load_torch_state_dict`, needs torch)."""
    kind = _SUFFIX_LOADERS.get(Path(path).suffix.lower())
    if kind is None:
        raise CheckpointError(f"load_checkpoint: cannot tell the format of '{path}' from its "
                              f"suffix; expected one of {sorted(_SUFFIX_LOADERS)}")
    if kind == "torch":
        return load_torch_state_dict(module, path, strict=strict)
    arrays = load_npz(path) if kind == "npz" else load_safetensors(path)
    return module.load_state_dict(arrays, strict=strict)


# ----------------------------------------------------------------------------
# wrapped <-> unwrapped key layouts
# ----------------------------------------------------------------------------
def _leaf(key: str) -> str:
    return key.rsplit(".", 1)[-1]


def _keys_and_shapes(layout, what: str):
    """(keys, {key: shape} or None) of a Module, a mapping or a list of keys."""
    if isinstance(layout, Module):
        state = OrderedDict(layout._state_items())
        return list(state), {k: tuple(t.shape) for k, t in state.items()}
    if hasattr(layout, "items"):
        arrays = state_arrays(layout)
        return list(arrays), {k: tuple(a.shape) for k, a in arrays.items()}
    if isinstance(layout, (list, tuple)) and all(isinstance(k, str) for k in layout):
        return list(layout), None
    raise TypeError(f"convert_keys: {what} must be a Module, a state_dict or a list of keys, "
                    f"got {type(layout).__name__}")


def convert_keys(state, target, source=None) -> "OrderedDict[str, np.ndarray]":
    """Rename the keys of `state` to the key layout of `target`.

    For layouts that differ only by container levels, e.g. weights saved from
    `Sequential(SeqToANNContainer(conv, bn), MultiStepIFNode())` (`0.0.weight`,
    `0.1.weight`, ...) loaded into `Sequential(conv, bn, IFNode())` (`0.weight`,
    `1.weight`, ...), or a network saved inside `MultiStepContainer(net)`
    (prefix `0.`). Containers never reorder parameters, so the i-th key of the
    source layout is renamed to the i-th key of `target`'s.

    state:  a Module or a mapping of arrays (the checkpoint).
    target: the layout wanted: a Module (shapes are checked too), a state_dict,
            or a list of keys in state_dict order.
    source: the checkpoint's layout, in state_dict order (a Module, state_dict
            or key list). Default: `state`'s own order, which `save_npz`,
            `save_safetensors` and `state_dict()` preserve; pass it for files
            whose writer sorted the keys.

    Each pair must agree on the last key component (`weight`, `running_mean`,
    ...) and, where known, on the shape; otherwise ValueError lists the pairs
    that disagree. Returns a new OrderedDict in `target`'s order.
    """
    arrays = state_arrays(state)
    target_keys, target_shapes = _keys_and_shapes(target, "target")
    source_keys = list(arrays) if source is None else _keys_and_shapes(source, "source")[0]
    missing = [k for k in source_keys if k not in arrays]
    if missing or len(source_keys) != len(arrays):
        extra = [k for k in arrays if k not in set(source_keys)]
        raise ValueError(f"convert_keys: the source layout does not match the checkpoint: "
                         f"keys missing from the checkpoint {missing[:5]}, checkpoint keys "
                         f"not in the source layout {extra[:5]}")
    if len(source_keys) != len(target_keys):
        raise ValueError(
            f"convert_keys: the checkpoint has {len(source_keys)} entries but the target "
            f"layout has {len(target_keys)}; layouts that differ only by container levels "
            f"have the same entries. Checkpoint keys: {source_keys[:8]}...; target keys: "
            f"{target_keys[:8]}...")
    problems = []
    for old, new in zip(source_keys, target_keys):
        if _leaf(old) != _leaf(new):
            problems.append(f"'{old}' -> '{new}' (different names)")
        elif target_shapes is not None and tuple(arrays[old].shape) != target_shapes[new]:
            problems.append(f"'{old}' {tuple(arrays[old].shape)} -> '{new}' "
                            f"{target_shapes[new]} (different shapes)")
    if problems:
        raise ValueError("convert_keys: the layouts do not pair up entry by entry:\n  "
                         + "\n  ".join(problems[:20]))
    return OrderedDict((new, arrays[old]) for old, new in zip(source_keys, target_keys))
