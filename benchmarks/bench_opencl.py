"""OpenCL fused LIF vs SpikingJelly's torch backend, and vs the device's bandwidth.

    python benchmarks/bench_opencl.py [--T 32] [--N 1000000] [--repeat 3]

Prints, all measured in this run:
- SpikingJelly 0.0.0.0.14 `LIFNode(step_mode='m', backend='torch')` (torch
  with 2 threads), forward + backward of `spikes.sum()`, float32;
- refsnn `LIFNode(step_mode='m', backend='opencl')`, the same, end to end
  (host arrays in and out), and its parts: kernels, and host<->device copies;
- the practical bandwidth limit: GB/s of a single-pass OpenCL kernel that
  reads one array and writes two, and the neuron kernels' GB/s as a share of
  it (forward reads x and writes spikes, v_seq, h_seq; backward reads h_seq
  and grad_spike and writes grad_x);
- the first call's latency in fresh processes, with the pyopencl and PoCL
  caches off (cold) and on (warm, after one run has filled them).
Best of `--repeat` timings after one warm-up call.
"""
from __future__ import annotations

import argparse
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
"""

FIRST_CALL = """
import time, numpy as np
t0 = time.perf_counter()
from refsnn import fused
from refsnn.opencl import fused_backend
backend = fused_backend()
backend.runtime
t1 = time.perf_counter()
spec = fused.NeuronSpec(kind="LIF", v_threshold=1.0, v_reset=0.0, detach_reset=False,
                        surrogate="Sigmoid", surrogate_params=(("alpha", 4.0),), dtype="float32",
                        tau=2.0)
backend.forward(spec, np.ones((32, 1000), np.float32), np.zeros(1000, np.float32), None)
t2 = time.perf_counter()
print(f"{t1 - t0:.3f} {t2 - t1:.3f}")
"""


def best(fn, repeat):
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def spikingjelly_seconds(x, repeat):
    import torch
    from spikingjelly.activation_based import functional, neuron
    torch.set_num_threads(2)
    node = neuron.LIFNode(step_mode="m", backend="torch")
    x_seq = torch.from_numpy(x).requires_grad_(True)

    def step():
        functional.reset_net(node)
        x_seq.grad = None
        node(x_seq).sum().backward()
    return best(step, repeat)


def refsnn_seconds(x, repeat):
    import refsnn as rs
    from refsnn import functional, fused, neurons
    node = neurons.LIFNode(step_mode="m", backend="opencl")
    backend = fused.get_backend("opencl")
    parts = {}

    def step():
        functional.reset_net(node)
        x_seq = rs.tensor(x, requires_grad=True)
        spikes = node(x_seq)
        forward = dict(backend.last_timings)
        spikes.sum().backward()
        backward = dict(backend.last_timings)
        for name in forward:
            parts[name] = (forward[name], backward[name])
    total = best(step, repeat)
    return total, parts, backend


def stream_gbps(backend, nbytes, repeat):
    import pyopencl as cl
    from refsnn.opencl import programs
    rt = backend.runtime
    knl = programs.kernel(programs.build(rt, STREAM_SOURCE), "read1_write2")
    bufs = [rt.pool.allocate(nbytes) for _ in range(3)]
    cl.enqueue_fill_buffer(rt.queue, bufs[0], np.float32(0.5), 0, nbytes).wait()
    seconds = []
    for _ in range(repeat + 1):
        event = knl(rt.queue, (nbytes // 32,), None, *bufs)
        event.wait()
        seconds.append((event.profile.end - event.profile.start) * 1e-9)
    return 3 * nbytes / min(seconds[1:]) / 1e9


def first_call(cold: bool):
    env = dict(os.environ, PYTHONPATH=ROOT)
    if cold:
        env.update(PYOPENCL_NO_CACHE="1", POCL_KERNEL_CACHE="0")
    out = subprocess.run([sys.executable, "-c", FIRST_CALL], env=env, capture_output=True,
                         text=True, check=True).stdout.split()
    return float(out[0]), float(out[1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--T", type=int, default=32)
    parser.add_argument("--N", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    x = np.random.default_rng(0).uniform(0.0, 1.5, (args.T, args.N)).astype(np.float32)
    mb = x.nbytes / 2**20

    sj = spikingjelly_seconds(x, args.repeat)
    total, parts, backend = refsnn_seconds(x, args.repeat)
    stream = stream_gbps(backend, x.nbytes, args.repeat)
    fwd_kernel, bwd_kernel = parts["kernel_s"]
    copies = sum(parts["to_device_s"]) + sum(parts["to_host_s"])
    fwd_gbps = 4 * x.nbytes / fwd_kernel / 1e9
    bwd_gbps = 3 * x.nbytes / bwd_kernel / 1e9
    both_gbps = 7 * x.nbytes / (fwd_kernel + bwd_kernel) / 1e9

    print(f"LIF forward+backward, float32, T={args.T}, N={args.N} ({mb:.0f} MiB per [T, N] array), "
          f"device: {backend.runtime.name}, layout: {backend.layout}")
    print(f"  SpikingJelly torch backend (2 threads): {sj * 1e3:8.1f} ms")
    print(f"  refsnn opencl, end to end:              {total * 1e3:8.1f} ms   "
          f"-> {sj / total:5.1f}x faster")
    print(f"    kernels: forward {fwd_kernel * 1e3:.1f} ms, backward {bwd_kernel * 1e3:.1f} ms   "
          f"-> {sj / (fwd_kernel + bwd_kernel):5.1f}x faster than SpikingJelly")
    print(f"    host<->device copies: {copies * 1e3:.1f} ms (to device {sum(parts['to_device_s']) * 1e3:.1f}, "
          f"to host {sum(parts['to_host_s']) * 1e3:.1f})")
    print(f"  bandwidth: read-1/write-2 stream kernel {stream:.1f} GB/s; neuron kernels: forward "
          f"{fwd_gbps:.1f} GB/s ({fwd_gbps / stream:.0%}), backward {bwd_gbps:.1f} GB/s "
          f"({bwd_gbps / stream:.0%}), both {both_gbps:.1f} GB/s ({both_gbps / stream:.0%})")
    cold = first_call(cold=True)
    first_call(cold=False)  # fills the caches
    warm = first_call(cold=False)
    print(f"  first call (fresh process; import + context, then the first forward): "
          f"cold caches {cold[0]:.2f} s + {cold[1]:.2f} s, warm caches {warm[0]:.2f} s + {warm[1]:.3f} s")


if __name__ == "__main__":
    main()
