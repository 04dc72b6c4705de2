"""Program building: each (device, source, options) is built once per process,
and each kernel object is created once per program.

Build options are the bit-exactness rules of the SpikingJelly reference (N11):
correctly rounded float division and square root, no fast-math option of any
kind; every kernel source starts with `#pragma OPENCL FP_CONTRACT OFF` so that
`a*b + c` is never fused into one rounding.
"""
from __future__ import annotations

import warnings
from importlib import resources

from .device import Runtime, import_pyopencl

__all__ = ["BUILD_OPTIONS", "KernelBuildError", "kernel_source", "build", "kernel"]

BUILD_OPTIONS = ("-cl-fp32-correctly-rounded-divide-sqrt",)
CONTRACT_OFF = "#pragma OPENCL FP_CONTRACT OFF"


class KernelBuildError(RuntimeError):
    """An OpenCL program failed to build; the message holds the compiler log."""


def kernel_source(name: str) -> str:
    """The text of the packaged kernel file `refsnn/opencl/<name>`."""
    return resources.files(__package__).joinpath(name).read_text()


_PROGRAMS: dict = {}
_KERNELS: dict = {}


def build(rt: Runtime, source: str):
    """The built `pyopencl.Program` for `source` on `rt`'s device (variants are
    chosen by `#define`s inside the source, so the options never change)."""
    if CONTRACT_OFF not in source:
        raise ValueError(f"kernel source must contain '{CONTRACT_OFF}' (bit-exact float rules)")
    options = BUILD_OPTIONS
    key = (rt.device.int_ptr, source, options)
    if key not in _PROGRAMS:
        cl = import_pyopencl()
        try:
            with warnings.catch_warnings():   # its log is checked below instead
                warnings.simplefilter("ignore", cl.CompilerWarning)
                program = cl.Program(rt.context, source).build(options=list(options))
        except cl.RuntimeError as err:
            raise KernelBuildError(
                f"OpenCL program failed to build on {rt.name} with options {' '.join(options)}; "
                f"compiler log:\n{err}") from None
        _warn_about_log(program.get_build_info(rt.device, cl.program_build_info.LOG), rt.name)
        _PROGRAMS[key] = program
    return _PROGRAMS[key]


def _warn_about_log(log: str, device: str) -> None:
    """A warning with the compiler's warnings, except clang's note that a
    vector wider than the CPU's registers passed by value "changes the ABI"
    (all functions of a program are static and inlined, so no ABI is crossed)."""
    notes = [line for line in log.splitlines()
             if "warning:" in line and "changes the ABI" not in line]
    if notes:
        warnings.warn(f"OpenCL compiler warnings on {device}:\n" + "\n".join(notes),
                      RuntimeWarning, stacklevel=3)


def kernel(program, name: str):
    """The `pyopencl.Kernel` `name` of `program`, created once and reused."""
    key = (program.int_ptr, name)
    if key not in _KERNELS:
        _KERNELS[key] = getattr(program, name)
    return _KERNELS[key]
