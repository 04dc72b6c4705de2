"""OpenCL kernels for refsnn: the fused multi-step neuron op on any OpenCL device.

- `device`: which device (argument, `REFSNN_OPENCL_DEVICE`, `PYOPENCL_CTX`, or
  the first GPU), one context / queue / memory pool per device;
- `programs`: programs built once per process and cached by (device, source,
  options), kernel objects reused; bit-exact build rules;
- `codegen`: the OpenCL C emitter of the `refsnn.mathops` formulas;
- `kernels`: the neuron kernel sources generated from those formulas, with the
  `.cl` templates next to this file;
- `backend`: `backend='opencl'` for multi-step neurons (`fused_backend()`);
- `devices_report`: the `refsnn devices` command.

Importing this package does not import pyopencl; the first use does, and
without it raises one line naming the extra: `pip install refsnn[opencl]`.
"""
from __future__ import annotations

__all__ = ["fused_backend"]

_BACKEND = None


def fused_backend():
    """The process-wide OpenCL fused neuron backend (default device and layout),
    as `refsnn.fused.get_backend('opencl')` expects."""
    global _BACKEND
    if _BACKEND is None:
        from .backend import OpenCLFusedBackend
        _BACKEND = OpenCLFusedBackend()
    return _BACKEND
