"""OpenCL fused LIF vs SpikingJelly's torch backend, and vs the device's bandwidth.

    python benchmarks/bench_opencl.py [--T 32] [--N 1000000] [--repeat 3]

Prints, all measured in this run:
- SpikingJelly 0.0.0.0.14 `LIFNode(step_mode='m', backend='torch')` (torch
  with 2 threads), forward + backward of `spikes.sum()`, float32;
- refsnn `LIFNode(step_mode='m', backend='opencl')`, the same, end to end
  (NumPy arrays in and out), and its parts: the two kernel launches and the
  host<->device transfers (none on a CPU device, where buffers wrap the NumPy
  arrays and the kernels write fresh host memory directly);
- the practical bandwidth limit: GB/s of a single-pass OpenCL kernel that
  reads one array and writes two (the fastest of five launch geometries,
  `STREAM_GEOMETRIES`), and the neuron kernels' GB/s on device
  buffers as a share of it (forward reads x and writes spikes, v_seq, h_seq;
  backward reads h_seq and grad_spike and writes grad_x);
- the first call's latency in fresh processes (the first forward, and the
  first forward + backward), with the pyopencl and PoCL caches off (cold)
  and on (warm, after one run has filled them), as wall time and as the
  process's CPU time (what it would be on an idle machine), each the best of
  `--repeat` processes.
End to end: the best of `--repeat` rounds after one warm-up call, each round
timing one SpikingJelly call and one refsnn call; the bandwidth figures are
the best of 2 x `--repeat` interleaved rounds.
"""
from __future__ import annotations

import argparse
import functools
import os
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

STREAM_SOURCE = """#pragma OPENCL FP_CONTRACT OFF
__kernel void read1_write2(__global const float *x, __global float *a, __global float *b)
{
    const size_t i = get_global_id(0);
    const float8 v = vload8(i, x);
    vstore8(v, i, a);
    vstore8(v + 1.0f, i, b);
}

__kernel void read1_write2_runs(__global const float *x, __global float *a, __global float *b,
                                const int run)
{
    const size_t first = get_global_id(0) * run;
    for (size_t i = first; i < first + run; ++i) {
        const float8 v = vload8(i, x);
        vstore8(v, i, a);
        vstore8(v + 1.0f, i, b);
    }
}
"""
# (kernel, local size, float8 vectors per work-item): one vector per
# work-item in groups the driver picks or of 64 / 256, and runs of 4 KiB and
# 64 KiB per work-item in groups of one; each covers the whole groups that fit
# in a [T, N] array, and the fastest (in GB/s) is the practical limit
STREAM_GEOMETRIES = (("read1_write2", None, 1), ("read1_write2", 64, 1), ("read1_write2", 256, 1),
                     ("read1_write2_runs", 1, 128), ("read1_write2_runs", 1, 2048))

FIRST_CALL = """
import os, time, numpy as np
cpu = lambda: sum(os.times()[:2])
t0 = time.perf_counter()
from refsnn import fused
from refsnn.opencl import fused_backend
backend = fused_backend()
backend.runtime
t1, c1 = time.perf_counter(), cpu()
spec = fused.NeuronSpec(kind="LIF", v_threshold=1.0, v_reset=0.0, detach_reset=False,
                        surrogate="Sigmoid", surrogate_params=(("alpha", 4.0),), dtype="float32",
                        tau=2.0)
x, v0 = np.ones((32, 1000), np.float32), np.zeros(1000, np.float32)
spikes, v_seq, h_seq = backend.forward(spec, x, v0, None)
t2, c2 = time.perf_counter(), cpu()
backend.backward(spec, fused.Saved(h_seq=h_seq), np.ones_like(x), None)
t3, c3 = time.perf_counter(), cpu()
print(f"{t1 - t0:.3f} {t2 - t1:.3f} {c2 - c1:.3f} {t3 - t1:.3f} {c3 - c1:.3f}")
"""


def spikingjelly_step(x):
    """One forward + backward of SpikingJelly's LIF on `x` (torch, 2 threads)."""
    import torch
    from spikingjelly.activation_based import functional, neuron
    torch.set_num_threads(2)
    node = neuron.LIFNode(step_mode="m", backend="torch")
    x_seq = torch.from_numpy(x).requires_grad_(True)

    def step():
        functional.reset_net(node)
        x_seq.grad = None
        node(x_seq).sum().backward()
    return step


def refsnn_step(x):
    """(step, backend): one forward + backward of refsnn's LIF on `x` with the
    opencl backend; the step returns the backend's kernel and transfer
    timings of its forward and of its backward."""
    import refsnn as rs
    from refsnn import functional, fused, neurons
    node = neurons.LIFNode(step_mode="m", backend="opencl")
    backend = fused.get_backend("opencl")
    x_seq = rs.tensor(x, requires_grad=True)   # made once, as SpikingJelly's

    def step():
        functional.reset_net(node)
        x_seq.grad = None
        spikes = node(x_seq)
        forward = dict(backend.last_timings)
        spikes.sum().backward()
        return {name: (forward[name], backend.last_timings[name]) for name in forward}
    return step, backend


def end_to_end(x, rounds):
    """Best seconds of SpikingJelly and of refsnn over `rounds` rounds, each
    timing one call of both (after one warm-up call of each), so that both
    meet the same machine conditions; also refsnn's kernel/transfer timings
    of its best call, and its backend."""
    sj_step, (rs_step, backend) = spikingjelly_step(x), refsnn_step(x)
    sj_step(), rs_step()
    sj, rs_best = float("inf"), (float("inf"), None)
    for _ in range(rounds):
        start = time.perf_counter()
        sj_step()
        sj = min(sj, time.perf_counter() - start)
        start = time.perf_counter()
        parts = rs_step()
        rs_best = min(rs_best, (time.perf_counter() - start, parts), key=lambda run: run[0])
    return sj, rs_best[0], rs_best[1], backend


def device_gbps(backend, x, rounds):
    """GB/s of the read-1/write-2 stream kernel and of the LIF forward and
    backward kernels, all on (warm) device buffers. Every round launches each
    stream geometry and both neuron kernels once, so that all of them meet the
    same machine conditions; each keeps its best time over the rounds."""
    import pyopencl as cl
    from refsnn import fused
    from refsnn.opencl import kernels, programs
    from refsnn.opencl.backend import _ids, _slots
    rt, (T, M), nbytes, dtype = backend.runtime, x.shape, x.nbytes, np.dtype(np.float32)
    bufs = [rt.pool.allocate(nbytes) for _ in range(4)]
    v0, grad_v0 = rt.pool.allocate(M * 4), rt.pool.allocate(M * 4)
    cl.enqueue_copy(rt.queue, bufs[0], x)
    cl.enqueue_copy(rt.queue, bufs[1], np.ones_like(x))
    cl.enqueue_fill_buffer(rt.queue, v0, np.float32(0), 0, M * 4).wait()
    launches, stream_bytes = {}, {}
    stream_program = programs.build(rt, STREAM_SOURCE)
    for name, local, run in STREAM_GEOMETRIES:
        knl = programs.kernel(stream_program, name)
        extra = (np.int32(run),) if run > 1 else ()
        items = nbytes // 32 // run // (local or 1) * (local or 1)   # whole groups
        if items == 0:
            continue
        key = ("stream", name, local, run)
        stream_bytes[key] = 3 * 32 * run * items
        launches[key] = functools.partial(knl, rt.queue, (items,), local and (local,), *bufs[:3],
                                          *extra)
    spec = fused.NeuronSpec(kind="LIF", v_threshold=1.0, v_reset=0.0, detach_reset=False,
                            surrogate="Sigmoid", surrogate_params=(("alpha", 4.0),),
                            dtype="float32", tau=2.0)
    f, suffix = kernels.formulas(spec), backend.layout.replace("-", "_")
    prog, (vf,) = kernels.neuron_program("forward", spec, f, backend._layout_of(dtype))
    size, local, chunk = backend._geometry(M, dtype)
    launches["forward"] = functools.partial(
        programs.kernel(programs.build(rt, prog.source), f"forward_{suffix}"), rt.queue, size,
        local, bufs[0], v0, None, bufs[1], bufs[2], None, bufs[3], np.int32(T), np.int32(M),
        *chunk, np.float32(0), _slots(f.values["step"], dtype), np.int32(vf))
    prog, ids = kernels.neuron_program("backward", spec, f, backend._layout_of(dtype))
    size, local, chunk = backend._geometry(M, dtype)
    slots = [_slots(f.values.get(b, ()), dtype) for b in ("over", "psi", "rjac", "jac", "wjac")]
    launches["backward"] = functools.partial(
        programs.kernel(programs.build(rt, prog.source), f"backward_{suffix}"), rt.queue, size,
        local, bufs[3], None, v0, None, bufs[1], None, None, bufs[2], grad_v0, None, None,
        np.int32(T), np.int32(M), *chunk, np.int32(M), np.float32(0), *slots, _ids(ids))
    best = dict.fromkeys(launches, float("inf"))
    for round_ in range(rounds + 1):          # round 0 warms up
        for key, launch in launches.items():
            event = launch()
            event.wait()
            if round_:
                best[key] = min(best[key], (event.profile.end - event.profile.start) * 1e-9)
    t_fwd, t_bwd = best["forward"], best["backward"]
    return {"stream": max(stream_bytes[key] / best[key] for key in stream_bytes) / 1e9,
            "forward": 4 * nbytes / t_fwd / 1e9,
            "backward": 3 * nbytes / t_bwd / 1e9, "both": 7 * nbytes / (t_fwd + t_bwd) / 1e9}


def first_call(cold: bool):
    env = dict(os.environ, PYTHONPATH=ROOT)
    if cold:
        env.update(PYOPENCL_NO_CACHE="1", POCL_KERNEL_CACHE="0")
    out = subprocess.run([sys.executable, "-c", FIRST_CALL], env=env, capture_output=True,
                         text=True, check=True).stdout.split()
    return tuple(float(v) for v in out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--T", type=int, default=32)
    parser.add_argument("--N", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    x = np.random.default_rng(0).uniform(0.0, 1.5, (args.T, args.N)).astype(np.float32)
    mb = x.nbytes / 2**20

    sj, total, parts, backend = end_to_end(x, args.repeat)
    gbps = device_gbps(backend, x, 2 * args.repeat)
    fwd_kernel, bwd_kernel = parts["kernel_s"]
    to_device, to_host = sum(parts["to_device_s"]), sum(parts["to_host_s"])

    print(f"LIF forward+backward, float32, T={args.T}, N={args.N} ({mb:.0f} MiB per [T, N] array), "
          f"device: {backend.runtime.name}, layout: {backend.layout}, "
          f"{'shared host memory' if backend.share_host_memory else 'copies'}")
    print(f"  SpikingJelly torch backend (2 threads): {sj * 1e3:8.1f} ms")
    print(f"  refsnn opencl, end to end:              {total * 1e3:8.1f} ms   "
          f"-> {sj / total:5.1f}x faster")
    print(f"    kernels {(fwd_kernel + bwd_kernel) * 1e3:.1f} ms (forward {fwd_kernel * 1e3:.1f}, "
          f"backward {bwd_kernel * 1e3:.1f}); host<->device transfers {(to_device + to_host) * 1e3:.1f} ms "
          f"(to device {to_device * 1e3:.1f}, to host {to_host * 1e3:.1f})")
    print(f"  bandwidth on device buffers: read-1/write-2 stream kernel {gbps['stream']:.1f} GB/s; "
          f"neuron kernels: forward {gbps['forward']:.1f} GB/s ({gbps['forward'] / gbps['stream']:.0%}), "
          f"backward {gbps['backward']:.1f} GB/s ({gbps['backward'] / gbps['stream']:.0%}), "
          f"both {gbps['both']:.1f} GB/s ({gbps['both'] / gbps['stream']:.0%})")
    cold = [min(runs) for runs in zip(*(first_call(cold=True) for _ in range(args.repeat)))]
    first_call(cold=False)  # fills the caches
    warm = [min(runs) for runs in zip(*(first_call(cold=False) for _ in range(args.repeat)))]
    print(f"  first call in a fresh process (after import + context: cold {cold[0]:.2f} s, "
          f"warm {warm[0]:.2f} s): forward, cold caches {cold[1]:.2f} s (CPU {cold[2]:.2f} s), "
          f"warm caches {warm[1]:.3f} s (CPU {warm[2]:.3f} s); forward + backward, cold caches "
          f"{cold[3]:.2f} s (CPU {cold[4]:.2f} s), warm caches {warm[3]:.3f} s (CPU {warm[4]:.3f} s)")


if __name__ == "__main__":
    main()
