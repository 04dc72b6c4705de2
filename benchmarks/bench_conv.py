"""refsnn / PyTorch CPU time for conv2d and linear, forward + backward, float32.

Both run in this process with the same number of threads (OpenBLAS for NumPy,
torch's intra-op pool; 2 by default). Runs are interleaved after a warm-up,
who goes first alternating, so that load from other processes hits both
alike; the figure is the median of the per-pair ratios. The load average is
printed before and after: on a shared machine, rerun when it is low.
Target: conv2d ratio <= 1.5.

    python benchmarks/bench_conv.py [--repeat 15] [--threads 2]
"""
import argparse
import os
import sys
import time

if __name__ == "__main__":  # the BLAS thread count must be set before NumPy loads
    _threads = sys.argv[sys.argv.index("--threads") + 1] if "--threads" in sys.argv else "2"
    os.environ["OPENBLAS_NUM_THREADS"] = os.environ["OMP_NUM_THREADS"] = _threads

import numpy as np  # noqa: E402

import refsnn as rs  # noqa: E402
from refsnn import ops  # noqa: E402


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def _timed(run, clock) -> float:
    t0 = clock()
    run()
    return clock() - t0


def _pair_times(run_refsnn, run_torch, repeat: int, clock):
    """Medians of refsnn's and torch's times and of their per-pair ratios.
    Who runs first alternates: with several threads, the pool of whoever ran
    last still spins for a while and slows the next run down."""
    for _ in range(2):  # warm-up: allocator, BLAS threads, torch's kernels
        run_refsnn()
        run_torch()
    ours, theirs = [], []
    for k in range(repeat):
        if k % 2:
            theirs.append(_timed(run_torch, clock))
            ours.append(_timed(run_refsnn, clock))
        else:
            ours.append(_timed(run_refsnn, clock))
            theirs.append(_timed(run_torch, clock))
    ours, theirs = np.array(ours), np.array(theirs)
    return np.median(ours), np.median(theirs), np.median(ours / theirs)


def _case(name, fn_rs, fn_torch, arrays, repeat, clock):
    import torch

    rng = np.random.default_rng(0)
    grad = None

    def run_refsnn():
        nonlocal grad
        ts = [rs.tensor(a, requires_grad=True) for a in arrays]
        y = fn_rs(*ts)
        if grad is None:
            grad = rng.standard_normal(y.shape).astype(np.float32)
        y.backward(grad)

    def run_torch():
        ts = [torch.tensor(a, requires_grad=True) for a in arrays]
        fn_torch(*ts).backward(torch.from_numpy(grad))

    run_refsnn()
    t_rs, t_torch, ratio = _pair_times(run_refsnn, run_torch, repeat, clock)
    print(f"{name:58s} refsnn {t_rs * 1e3:7.2f} ms  torch {t_torch * 1e3:7.2f} ms  "
          f"ratio {ratio:.2f}")
    return ratio


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2,
                        help="threads for NumPy's BLAS and for torch (default 2)")
    args = parser.parse_args(argv)
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        print("bench_conv needs torch (pip install 'refsnn[conformance]')")
        return 2
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)

    def f32(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    # one thread: all work runs on this thread, so its CPU time is immune to
    # time slices lost to other processes; several threads: wall-clock time
    clock = time.thread_time if args.threads == 1 else time.perf_counter
    print(f"forward + backward, float32, {args.threads} thread(s), "
          f"{'thread CPU' if args.threads == 1 else 'wall-clock'} time, "
          f"median of interleaved runs; load average {_load()}")
    ratio = _case("conv2d 3x3 pad 1, [32, 16, 32, 32] -> 32 channels",
                  lambda x, w, b: ops.conv2d(x, w, b, padding=1),
                  lambda x, w, b: F.conv2d(x, w, b, padding=1),
                  [f32(32, 16, 32, 32), f32(32, 16, 3, 3), f32(32)], args.repeat, clock)
    _case("conv2d 3x3 stride 2 pad 1, [32, 32, 32, 32] -> 64",
          lambda x, w: ops.conv2d(x, w, stride=2, padding=1),
          lambda x, w: F.conv2d(x, w, stride=2, padding=1),
          [f32(32, 32, 32, 32), f32(64, 32, 3, 3)], args.repeat, clock)
    _case("linear [256, 512] -> 256",
          ops.linear, F.linear, [f32(256, 512), f32(256, 512), f32(256)], args.repeat, clock)
    _case("linear [8, 64, 784] -> 100 (time folded in)",
          ops.linear, F.linear, [f32(8, 64, 784), f32(100, 784), f32(100)], args.repeat, clock)
    print(f"conv2d target ratio <= 1.5: {'met' if ratio <= 1.5 else 'NOT met'} ({ratio:.2f}); "
          f"load average {_load()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
