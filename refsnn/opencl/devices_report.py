"""`refsnn devices`: the OpenCL platforms and devices, and which one refsnn uses."""
from __future__ import annotations

import sys

from .device import OpenCLUnavailable, import_pyopencl, list_devices, select_device

__all__ = ["print_devices", "main"]


def _describe(device, cl) -> str:
    kinds = ("CPU", "GPU", "ACCELERATOR", "CUSTOM")
    kind = "/".join(k for k in kinds if device.type & getattr(cl.device_type, k)) or "other"
    fp64 = "yes" if "cl_khr_fp64" in device.extensions else "no"
    denorm = "kept" if device.single_fp_config & cl.device_fp_config.DENORM else "FLUSHED"
    return (f"{device.name.strip()} [{kind}] {device.max_compute_units} compute units, "
            f"{device.global_mem_size / 2**30:.1f} GiB, fp64: {fp64}, float32 denormals: {denorm}")


def print_devices(stream=None) -> int:
    """Write every platform and device to `stream` (stdout by default), the one
    refsnn would use marked with `*`. Returns 0, or 2 when no device is usable."""
    stream = sys.stdout if stream is None else stream
    try:
        cl = import_pyopencl()
        listing = list_devices()
    except OpenCLUnavailable as err:
        print(f"refsnn devices: {err}", file=stream)
        return 2
    try:
        chosen, problem = select_device(), None
    except OpenCLUnavailable as err:
        chosen, problem = None, str(err)
    if not listing:
        print("no OpenCL platforms found", file=stream)
    for p_index, (platform, devices) in enumerate(listing):
        print(f"platform {p_index}: {platform.name.strip()} ({platform.version.strip()})", file=stream)
        if not devices:
            print("    (no devices)", file=stream)
        for d_index, device in enumerate(devices):
            mark = "*" if chosen is not None and device.int_ptr == chosen.int_ptr else " "
            print(f"  {mark} {p_index}:{d_index}  {_describe(device, cl)}", file=stream)
    if problem:
        print(f"no device selected: {problem}", file=stream)
        return 2
    print("* = the device refsnn uses (choose with REFSNN_OPENCL_DEVICE=PLATFORM:DEVICE, "
          "an index or a name substring)", file=stream)
    return 0


def main(argv=()) -> int:
    """Entry point of `refsnn devices` (takes no arguments)."""
    if argv:
        print(f"refsnn devices: unexpected arguments {' '.join(argv)}", file=sys.stderr)
        return 2
    return print_devices(sys.stdout)
