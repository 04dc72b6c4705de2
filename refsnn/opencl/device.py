"""OpenCL device selection and the per-device runtime (context, queue, memory pool).

Which device refsnn uses, first match wins:
1. the `device` argument (a `pyopencl.Device`, or a selector string as below);
2. the environment variable `REFSNN_OPENCL_DEVICE`;
3. pyopencl's own `PYOPENCL_CTX`;
4. the first GPU of any platform, else the first accelerator, else the first
   device of any type.

A selector string is `PLATFORM:DEVICE`, each part an index or a
case-insensitive substring of the name ("0:1", "nvidia:a100"); a lone index is
a platform ("1", its first device); a lone word matches "platform / device"
names ("pocl", "a100").

pyopencl is imported inside the functions here, never at import time, so that
`import refsnn` works without it.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field

__all__ = ["OpenCLUnavailable", "import_pyopencl", "list_devices", "select_device",
           "runtime", "Runtime"]

ENV_DEVICE = "REFSNN_OPENCL_DEVICE"
INSTALL_HINT = "pyopencl is not installed; install the OpenCL extra: pip install refsnn[opencl]"


class OpenCLUnavailable(RuntimeError):
    """No usable OpenCL device (or no pyopencl)."""


def import_pyopencl():
    """The `pyopencl` module, or `OpenCLUnavailable` with the one-line install hint."""
    try:
        import pyopencl
    except ImportError:
        raise OpenCLUnavailable(INSTALL_HINT) from None
    return pyopencl


def list_devices() -> list:
    """[(platform, [devices])] for every platform pyopencl sees; platforms whose
    device query fails are listed with no devices."""
    cl = import_pyopencl()
    try:
        platforms = cl.get_platforms()
    except cl.Error:  # the ICD loader found no platform at all
        return []
    listing = []
    for platform in platforms:
        try:
            devices = platform.get_devices()
        except cl.Error:
            devices = []
        listing.append((platform, devices))
    return listing


def _describe_platforms(listing) -> str:
    if not listing:
        return "no OpenCL platforms were found (is an ICD such as PoCL installed?)"
    parts = [f"{p.name!r} ({len(ds)} device{'s' if len(ds) != 1 else ''})" for p, ds in listing]
    return "platforms seen: " + ", ".join(parts)


def _pick(items, part: str, what: str, names):
    part = part.strip()
    if part.isdigit():
        index = int(part)
        if index < len(items):
            return items[index]
        raise OpenCLUnavailable(f"{what} index {index} is out of range (there are {len(items)})")
    matches = [item for item, name in zip(items, names) if part.lower() in name.lower()]
    if not matches:
        raise OpenCLUnavailable(f"no {what} matches {part!r}; {what}s: {list(names)}")
    return matches[0]


def _from_selector(selector: str, listing, source: str):
    platforms = [p for p, _ in listing]
    try:
        if ":" not in selector and not selector.strip().isdigit():
            # one substring: a device whose "platform / device" name contains it
            named = [(f"{p.name} / {d.name}", d) for p, ds in listing for d in ds]
            return _pick([d for _, d in named], selector, "device", [n for n, _ in named])
        platform_part, _, device_part = selector.partition(":")
        platform = _pick(platforms, platform_part or "0", "platform", [p.name for p in platforms])
        devices = next(ds for p, ds in listing if p is platform)
        if not devices:
            raise OpenCLUnavailable(f"platform {platform.name!r} has no devices")
        return _pick(devices, device_part or "0", "device", [d.name for d in devices])
    except OpenCLUnavailable as err:
        raise OpenCLUnavailable(f"{source}={selector!r}: {err}; {_describe_platforms(listing)}") from None


def select_device(device=None):
    """The `pyopencl.Device` refsnn would use (see the module docstring)."""
    cl = import_pyopencl()
    if isinstance(device, cl.Device):
        return device
    listing = list_devices()
    if device is not None:
        return _from_selector(str(device), listing, "device")
    for variable in (ENV_DEVICE, "PYOPENCL_CTX"):
        if os.environ.get(variable):
            return _from_selector(os.environ[variable], listing, variable)
    devices = [d for _, ds in listing for d in ds]
    if not devices:
        raise OpenCLUnavailable(f"no OpenCL device found; {_describe_platforms(listing)}")
    for wanted in (cl.device_type.GPU, cl.device_type.ACCELERATOR):
        for d in devices:
            if d.type & wanted:
                return d
    return devices[0]


@dataclass
class Runtime:
    """One device's context, in-order profiling queue and buffer pool, plus the
    facts the kernels depend on."""

    device: object
    context: object
    queue: object
    pool: object
    is_cpu: bool
    has_fp64: bool
    denormals: dict = field(default_factory=dict)  # dtype name -> kept (bool)
    _warned: set = field(default_factory=set)

    @property
    def name(self) -> str:
        return f"{self.device.platform.name.strip()} / {self.device.name.strip()}"

    def check_dtype(self, dtype: str) -> None:
        """Raise if the device cannot run `dtype`; warn (once) if it flushes
        `dtype` subnormals, which breaks bit equality with the numpy path."""
        if dtype == "float64" and not self.has_fp64:
            raise TypeError(f"OpenCL device {self.name} has no cl_khr_fp64: float64 neurons "
                            "cannot run there; use float32 or backend='numpy'")
        if not self.denormals.get(dtype, True) and dtype not in self._warned:
            self._warned.add(dtype)
            warnings.warn(
                f"OpenCL device {self.name} flushes {dtype} denormals to zero (no CL_FP_DENORM): "
                "results for subnormal potentials will differ from the numpy path",
                RuntimeWarning, stacklevel=3)


def _denormals_kept(device) -> dict:
    cl = import_pyopencl()
    kept = {"float32": bool(device.single_fp_config & cl.device_fp_config.DENORM)}
    if "cl_khr_fp64" in device.extensions:
        kept["float64"] = bool(device.double_fp_config & cl.device_fp_config.DENORM)
    return kept


_RUNTIMES: dict = {}


def runtime(device=None) -> Runtime:
    """The `Runtime` of the selected device, created once per device per process."""
    cl = import_pyopencl()
    dev = select_device(device)
    key = (dev.platform.int_ptr, dev.int_ptr)
    if key not in _RUNTIMES:
        from pyopencl.tools import ImmediateAllocator, MemoryPool
        context = cl.Context([dev])
        queue = cl.CommandQueue(context, dev, properties=cl.command_queue_properties.PROFILING_ENABLE)
        _RUNTIMES[key] = Runtime(
            device=dev, context=context, queue=queue,
            pool=MemoryPool(ImmediateAllocator(queue)),
            is_cpu=bool(dev.type & cl.device_type.CPU),
            has_fp64="cl_khr_fp64" in dev.extensions,
            denormals=_denormals_kept(dev))
    return _RUNTIMES[key]
