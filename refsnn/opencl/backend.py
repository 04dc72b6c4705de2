"""`backend='opencl'`: the fused multi-step neuron op (`refsnn.fused`) on an
OpenCL device.

One kernel launch per layer and direction covers all T steps. The forward
keeps `h_seq` (and, for PLIF/QIF/EIF/Izhikevich, `v_seq`, `v0` and `x_seq`) on the device
for the backward: its `h_seq` result is a `DeviceSequence`, which the fused
autograd op saves and hands back. Each call copies its inputs to the device
once and its results back once; on CPU devices, which share host memory, the
buffers wrap the NumPy arrays and nothing is copied. `last_timings` has the
transfer and kernel times of the last call.

Inputs follow the fused backend contract: `x_seq` [T, M], `v0` [M] (and
Izhikevich's `w0` [M]) of `spec.dtype`. A non-contiguous array is copied once
to a contiguous one; an array of another dtype is refused (TypeError), never
silently converted.
"""
from __future__ import annotations

import os
from functools import lru_cache

import numpy as np

from .. import fused
from .device import import_pyopencl, runtime
from .kernels import Layout, formulas, has_w, neuron_program
from .programs import build, kernel
from ..result_pool import ResultPool

__all__ = ["OpenCLFusedBackend", "DeviceSequence", "LAYOUTS"]

LAYOUTS = ("chunked", "per-neuron")
ENV_LAYOUT = "REFSNN_OPENCL_LAYOUT"
PER_NEURON_GROUP = 128   # work-group size of the per-neuron layout
CHUNK_ROW_BYTES = 4096   # the chunked layout's longest run per row: one page


#: host result arrays are reused once free (on shared host memory the kernels
#: would otherwise spend as long on page faults as on their work); at most this
#: many bytes are kept, `refsnn.opencl.backend._host_results.clear()` drops them
HOST_POOL_BYTES = 1 << 30
_host_results = ResultPool(HOST_POOL_BYTES)
_host_empty = _host_results.empty


class DeviceSequence:
    """A forward's `h_seq` [T, M] left on the device, with the other device
    buffers its backward reads. `np.asarray(seq)` copies it to the host."""

    def __init__(self, backend, shape, dtype, h_seq, v_seq=None, v0=None, x_seq=None):
        self.backend, self.shape, self.dtype = backend, shape, np.dtype(dtype)
        self.buffers = {"h_seq": h_seq, "v_seq": v_seq, "v0": v0, "x_seq": x_seq}

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __array__(self, dtype=None, copy=None):
        cl = import_pyopencl()
        host = np.empty(self.shape, self.dtype)
        cl.enqueue_copy(self.backend.runtime.queue, host, self.buffers["h_seq"])
        return host if dtype is None else host.astype(dtype)

    def __repr__(self):
        return f"DeviceSequence(shape={self.shape}, dtype={self.dtype})"


@lru_cache(maxsize=256)
def _formulas(spec):
    return formulas(spec)


def _slots(values, dtype):
    """16 parameter values rounded once to `dtype`, as an OpenCL real16 argument."""
    from pyopencl import cltypes
    lanes = np.zeros(16, np.float64)
    lanes[:len(values)] = values
    vec = cltypes.float16 if dtype == np.float32 else cltypes.double16
    return lanes.astype(dtype).view(vec).reshape(())


class OpenCLFusedBackend:
    """The fused neuron backend on one OpenCL device (see `refsnn.fused` for the
    contract of `supports`, `forward` and `backward`).

    device: a `pyopencl.Device` or a selector string (see `refsnn.opencl.device`);
        None picks the default device.
    layout: 'chunked' (CPU devices: CHUNK neurons per work-item as vectors) or
        'per-neuron' (GPUs: one work-item per neuron); None chooses by device
        type, unless `REFSNN_OPENCL_LAYOUT` names one.
    share_host_memory: wrap the NumPy arrays as buffers instead of copying
        them; None: on CPU devices.
    """

    def __init__(self, device=None, layout=None, share_host_memory=None):
        layout = layout or os.environ.get(ENV_LAYOUT) or None
        if layout is not None and layout not in LAYOUTS:
            raise ValueError(f"opencl backend: layout must be one of {LAYOUTS}, got {layout!r}")
        self._device, self._layout, self._runtime = device, layout, None
        self._share = share_host_memory
        self.last_timings: dict = {}

    @property
    def runtime(self):
        if self._runtime is None:
            self._runtime = runtime(self._device)
        return self._runtime

    @property
    def share_host_memory(self) -> bool:
        return self.runtime.is_cpu if self._share is None else bool(self._share)

    @property
    def layout(self) -> str:
        return self._layout or ("chunked" if self.runtime.is_cpu else "per-neuron")

    def _width(self, dtype) -> int:
        """Lanes of the chunked layout's vectors: twice the device's preferred
        width. The backward's surrogate derivative (often an `exp` call) is a
        long dependency chain, and two vector registers per value give the CPU
        two independent chains (measured on PoCL/Zen 3: backward 10% faster,
        forward unchanged)."""
        dev = self.runtime.device
        width = (dev.preferred_vector_width_float if dtype == np.float32
                 else dev.preferred_vector_width_double)
        return min(16, 2 * width) if width in (2, 4, 8, 16) else 8

    # -- the fused backend contract -------------------------------------------
    def supports(self, spec) -> str | None:
        if spec.kind not in fused.FUSED_KINDS:
            return f"kind {spec.kind!r} is not fused (fused kinds: {', '.join(fused.FUSED_KINDS)})"
        try:
            rt = self.runtime
            rt.check_dtype(spec.dtype)
            _formulas(spec)
        except (RuntimeError, TypeError, ValueError) as err:
            return str(err)
        return None

    def forward(self, spec, x_seq, v0, k, *extra0):
        """x_seq [T, M], v0 [M], k (PLIF: 0-dim sigmoid(w)), and Izhikevich's w0
        [M] -> spike_seq [T, M], v_seq [T, M] (host arrays), h_seq (a
        `DeviceSequence`), and Izhikevich's w_seq [T, M]."""
        rt, dtype = self.runtime, np.dtype(spec.dtype)
        rt.check_dtype(spec.dtype)
        x_seq = _checked("x_seq", x_seq, dtype, 2)
        T, M = x_seq.shape
        v0 = _checked("v0", v0, dtype, 1, (M,))
        extra0 = fused.check_extra_states(spec, extra0, "opencl forward")
        w0 = _checked("w0", extra0[0], dtype, 1, (M,)) if extra0 else None
        if T == 0 or M == 0:
            empty = np.empty((T, M), dtype)
            return (empty, empty.copy(), empty.copy(), *(empty.copy() for _ in extra0))
        f = _formulas(spec)
        program, (vf,) = neuron_program("forward", spec, f, self._layout_of(dtype))
        knl = kernel(build(rt, program.source), f"forward_{self.layout.replace('-', '_')}")
        io = _Transfers(rt, self.share_host_memory)
        x_buf, v0_buf = io.input(x_seq), io.input(v0)
        w0_buf = None if w0 is None else io.input(w0)
        spike_seq, s_buf = io.output((T, M), dtype)
        v_seq, v_buf = io.output((T, M), dtype)
        w_seq, w_buf = io.output((T, M), dtype) if w0 is not None else (None, None)
        h_buf = rt.pool.allocate(x_seq.nbytes)
        global_size, local_size, chunk = self._geometry(M, dtype)
        run = knl(rt.queue, global_size, local_size, x_buf, v0_buf, w0_buf, s_buf, v_buf, w_buf,
                  h_buf, np.int32(T), np.int32(M), *chunk, _scalar(k, dtype),
                  _slots(f.values["step"], dtype), np.int32(vf))
        io.finish()
        self._record(io, run)
        needs = fused.saved_fields(spec)
        h_seq = DeviceSequence(self, (T, M), dtype, h_buf,
                               v_seq=v_buf if "v_seq" in needs else None,
                               v0=v0_buf if "v0" in needs else None,
                               x_seq=x_buf if "x_seq" in needs else None)
        return (spike_seq, v_seq, h_seq) + ((w_seq,) if w0 is not None else ())

    def backward(self, spec, saved, grad_spike_seq, grad_v_seq, *grad_extra_seqs):
        """The BPTT recurrence of `refsnn.fused` -> grad_x_seq [T, M], grad_v0 [M],
        grad_k (0-dim, PLIF; else None), and Izhikevich's grad_w0 [M]."""
        rt, dtype = self.runtime, np.dtype(spec.dtype)
        T, M = saved.h_seq.shape
        grad_extra_seqs = fused.check_extra_states(spec, grad_extra_seqs, "opencl backward")
        if T == 0 or M == 0:
            grad_k = np.zeros((), dtype) if spec.kind == "PLIF" else None
            return (np.zeros((T, M), dtype), np.zeros(M, dtype), grad_k,
                    *(np.zeros(M, dtype) for _ in grad_extra_seqs))
        f = _formulas(spec)
        program, ids = neuron_program("backward", spec, f, self._layout_of(dtype))
        knl = kernel(build(rt, program.source), f"backward_{self.layout.replace('-', '_')}")
        io = _Transfers(rt, self.share_host_memory)

        def upload(name, array, shape):
            return None if array is None else io.input(_checked(name, np.asarray(array), dtype,
                                                                len(shape), shape))

        kept = saved.h_seq.buffers if isinstance(saved.h_seq, DeviceSequence) \
            and saved.h_seq.backend is self else None
        needs = fused.saved_fields(spec)
        device_saved = {}
        for name, shape in (("h_seq", (T, M)), ("v_seq", (T, M)), ("v0", (M,)), ("x_seq", (T, M))):
            if name not in needs:
                device_saved[name] = None
            elif kept is not None:
                device_saved[name] = kept[name]
            else:
                device_saved[name] = upload(name, getattr(saved, name), shape)
        gs_stride = np.int32(M)
        if _broadcast_over_time(grad_spike_seq, (T, M)):   # e.g. the gradient of a sum
            row, gs_stride = grad_spike_seq[0], np.int32(0)
            if row.strides[0] == 0 and row.dtype == dtype:  # one value for all: fill a row
                row = _host_empty((M,), dtype)
                row.fill(grad_spike_seq[0, 0])
            gs_buf = upload("grad_spike_seq", row, (M,))
        else:
            gs_buf = upload("grad_spike_seq", grad_spike_seq, (T, M))
        gv_buf = upload("grad_v_seq", grad_v_seq, (T, M))
        gw_buf = upload("grad_w_seq", grad_extra_seqs[0], (T, M)) if grad_extra_seqs else None
        grad_x, gx_buf = io.output((T, M), dtype)
        grad_v0, gv0_buf = io.output((M,), dtype)
        grad_w0, gw0_buf = io.output((M,), dtype) if has_w(spec) else (None, None)
        global_size, local_size, chunk = self._geometry(M, dtype)
        partials, kp_buf = None, None
        if spec.kind == "PLIF":  # one partial sum per work-item that has neurons
            partials, kp_buf = io.output((-(-M // int(chunk[0])) if chunk else M,), dtype)
        run = knl(rt.queue, global_size, local_size, device_saved["h_seq"], device_saved["v_seq"],
                  device_saved["v0"], device_saved["x_seq"], gs_buf, gv_buf, gw_buf, gx_buf,
                  gv0_buf, gw0_buf, kp_buf, np.int32(T), np.int32(M), *chunk, gs_stride,
                  _scalar(saved.k, dtype),
                  *(_slots(f.values.get(b, ()), dtype)
                    for b in ("over", "psi", "rjac", "jac", "wjac")),
                  _ids(ids))
        io.finish()
        self._record(io, run)
        grad_k = None  # fixed-order partial sums, then one float64 sum: deterministic
        if partials is not None:
            grad_k = np.asarray(np.sum(partials, dtype=np.float64), dtype)
        return (grad_x, grad_v0, grad_k) + ((grad_w0,) if has_w(spec) else ())

    # -- helpers --------------------------------------------------------------
    def _layout_of(self, dtype) -> Layout:
        """The kernels' `Layout`; chunks run up to CHUNK_ROW_BYTES per row."""
        if self.layout != "chunked":
            return Layout(self.layout)
        width = self._width(dtype)
        return Layout("chunked", width, max(1, CHUNK_ROW_BYTES // (width * dtype.itemsize)))

    def _geometry(self, M: int, dtype):
        """(global size, local size, (chunk,) or ()) of a launch over M neurons.
        Chunks are as long as NVEC allows, but short enough to give every
        compute unit at least two work-items. On a CPU device each chunk is a
        work-group of its own: the driver hands work-groups to its threads, and
        a group size left to it can be the whole launch (977 chunks, a prime,
        ran on one PoCL thread at half the speed)."""
        if self.layout == "chunked":
            layout = self._layout_of(dtype)
            width, nvec = layout.width, layout.nvec
            per_item = -(-M // (2 * self.runtime.device.max_compute_units))
            chunk = width * min(nvec, max(1, -(-per_item // width)))
            local = (1,) if self.runtime.is_cpu else None
            return (-(-M // chunk),), local, (np.int32(chunk),)
        g = PER_NEURON_GROUP
        return (-(-M // g) * g,), (g,), ()

    def _record(self, io, run):
        def seconds(events):
            return sum((e.profile.end - e.profile.start) * 1e-9 for e in events)
        self.last_timings = {"to_device_s": seconds(io.to_device), "kernel_s": seconds([run]),
                             "to_host_s": seconds(io.to_host)}


class _Transfers:
    """One call's host<->device traffic: each input goes to the device once and
    each output comes back once. With `zero_copy` (CPU devices) the buffers
    wrap the host arrays themselves (USE_HOST_PTR), so nothing is copied and
    mapping an output after the kernel is what makes its values visible."""

    def __init__(self, rt, zero_copy: bool):
        self.rt, self.zero_copy = rt, zero_copy
        self.to_device, self.to_host, self._outputs = [], [], []

    def input(self, array):
        """A device buffer holding `array` (C-contiguous)."""
        cl = import_pyopencl()
        mf = cl.mem_flags
        if self.zero_copy:
            return cl.Buffer(self.rt.context, mf.READ_ONLY | mf.USE_HOST_PTR, hostbuf=array)
        buf = self.rt.pool.allocate(array.nbytes)
        self.to_device.append(cl.enqueue_copy(self.rt.queue, buf, array, is_blocking=False))
        return buf

    def output(self, shape, dtype):
        """(host array, device buffer) for a result that `finish` brings back."""
        cl = import_pyopencl()
        host = _host_empty(shape, dtype)
        if self.zero_copy:
            buf = cl.Buffer(self.rt.context, cl.mem_flags.WRITE_ONLY | cl.mem_flags.USE_HOST_PTR,
                            hostbuf=host)
        else:
            buf = self.rt.pool.allocate(host.nbytes)
        self._outputs.append((host, buf))
        return host, buf

    def finish(self) -> None:
        """Bring every output back to its host array and wait for it."""
        cl = import_pyopencl()
        q = self.rt.queue
        maps = []
        for host, buf in self._outputs:
            if self.zero_copy:
                mapped, event = cl.enqueue_map_buffer(q, buf, cl.map_flags.READ, 0, host.shape,
                                                      host.dtype, is_blocking=False)
                maps.append(mapped)
            else:
                event = cl.enqueue_copy(q, host, buf, is_blocking=False)
            self.to_host.append(event)
        cl.wait_for_events(self.to_host)
        for mapped in maps:
            mapped.base.release(q)


def _ids(ids):
    """The variant indices of the backward bodies as the kernel's int8 argument."""
    from pyopencl import cltypes
    lanes = np.zeros(8, np.int32)
    lanes[:len(ids)] = ids
    return lanes.view(cltypes.int8).reshape(())



def _broadcast_over_time(array, shape) -> bool:
    """Whether `array` is a [T, M] ndarray whose rows are all one row in memory
    (stride 0 over T), which the backward then reads once instead of T times."""
    return (isinstance(array, np.ndarray) and array.shape == tuple(shape) and shape[0] > 0
            and array.strides[0] == 0)


def _scalar(k, dtype):
    return dtype.type(0) if k is None else dtype.type(np.asarray(k).reshape(()))


def _checked(name, array, dtype, ndim, shape=None):
    """`array` as a C-contiguous ndarray of `dtype` (one copy if it was not
    contiguous); TypeError / ValueError naming the argument otherwise."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"opencl neuron backend: {name} must be a numpy array, got {type(array).__name__}")
    if array.dtype != dtype:
        raise TypeError(f"opencl neuron backend: {name} has dtype {array.dtype}, expected {dtype} "
                        "(the neuron's dtype; convert the input first)")
    if array.ndim != ndim or (shape is not None and array.shape != tuple(shape)):
        want = tuple(shape) if shape is not None else f"{ndim} dims"
        raise ValueError(f"opencl neuron backend: {name} has shape {array.shape}, expected {want}")
    return np.ascontiguousarray(array)
