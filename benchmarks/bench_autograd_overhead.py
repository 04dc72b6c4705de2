"""Python overhead per autograd op: refsnn vs NumPy and PyTorch eager, same run.

Forward: `a * b` on small float32 arrays (the op itself costs almost nothing,
so the time is the framework's bookkeeping), with requires_grad and under
no_grad. Backward: the walk over a chain of `y = y * x`, per node.

Times are this thread's CPU time (`time.thread_time`), so time slices lost to
other processes do not count; rounds are interleaved (every case once per
round) so that the remaining load (caches, shared cores) hits all cases alike,
and each figure is the best round. Target:
refsnn with grad <= 3 us/op (about 5x NumPy's own op on the reference machine).

    python benchmarks/bench_autograd_overhead.py [--rounds 30] [--shape 4 4]
"""
import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import refsnn as rs  # noqa: E402

CALLS = 500  # calls per timed batch
clock = time.thread_time
CHAIN = 200   # nodes per backward chain


def time_per_call(fn, calls: int = CALLS) -> float:
    """Seconds per call of `fn`, one batch."""
    t0 = clock()
    for _ in range(calls):
        fn()
    return (clock() - t0) / calls


def forward_cases(shape):
    """name -> zero-argument callable doing one op."""
    rng = np.random.default_rng(0)
    x, y = (rng.standard_normal(shape).astype(np.float32) for _ in range(2))
    a, b = rs.tensor(x, requires_grad=True), rs.tensor(y, requires_grad=True)

    def refsnn_no_grad():
        with rs.no_grad():
            for _ in range(CALLS):
                a * b

    cases = {"numpy": lambda: x * y, "refsnn grad": lambda: a * b}
    batch_cases = {"refsnn no_grad": refsnn_no_grad}
    try:
        import torch
    except ImportError:
        return cases, batch_cases
    torch.set_num_threads(1)
    ta, tb = torch.tensor(x, requires_grad=True), torch.tensor(y, requires_grad=True)

    def torch_no_grad():
        with torch.no_grad():
            for _ in range(CALLS):
                ta * tb

    cases["torch grad"] = lambda: ta * tb
    batch_cases["torch no_grad"] = torch_no_grad
    return cases, batch_cases


def backward_seconds_per_node(lib, shape) -> float:
    x = lib.tensor(np.random.default_rng(1).standard_normal(shape).astype(np.float32),
                   requires_grad=True)
    y = x
    for _ in range(CHAIN):
        y = y * x
    loss = y.sum()
    t0 = clock()
    loss.backward()
    return (clock() - t0) / (CHAIN + 1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--shape", type=int, nargs="+", default=[4, 4])
    args = parser.parse_args()
    shape = tuple(args.shape)
    cases, batch_cases = forward_cases(shape)
    libs = {"refsnn": rs}
    try:
        import torch
        libs["torch"] = torch
    except ImportError:
        print("torch is not installed: its rows are left out")

    best = {}
    for _ in range(args.rounds):
        for name, fn in cases.items():
            best[name] = min(best.get(name, np.inf), time_per_call(fn))
        for name, batch in batch_cases.items():
            t0 = clock()
            batch()
            best[name] = min(best.get(name, np.inf), (clock() - t0) / CALLS)
        for name, lib in libs.items():
            key = f"{name} backward/node"
            best[key] = min(best.get(key, np.inf), backward_seconds_per_node(lib, shape))

    numpy_us = best["numpy"] * 1e6
    print(f"a * b, float32 {shape}, best of {args.rounds} rounds x {CALLS} calls")
    print(f"{'case':24s} {'us/op':>8s} {'x numpy':>8s}")
    for name in ["numpy", "refsnn grad", "refsnn no_grad", "torch grad", "torch no_grad",
                 "refsnn backward/node", "torch backward/node"]:
        if name in best:
            us = best[name] * 1e6
            print(f"{name:24s} {us:8.2f} {us / numpy_us:8.2f}")
    if "torch grad" in best:
        print(f"refsnn / torch: forward with grad {best['refsnn grad'] / best['torch grad']:.2f}, "
              f"no_grad {best['refsnn no_grad'] / best['torch no_grad']:.2f}, backward/node "
              f"{best['refsnn backward/node'] / best['torch backward/node']:.2f}")
    print(f"target: refsnn grad <= 3 us/op -> {'met' if best['refsnn grad'] <= 3e-6 else 'NOT met'}")


if __name__ == "__main__":
    main()
