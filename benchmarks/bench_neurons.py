"""Multi-step LIF training step (forward + backward) on [T, N] input: refsnn's
composed ('numpy') and fused ('numpy-fused') paths against SpikingJelly's torch
backend (`activation_based` LIFNode(step_mode='m') and `clock_driven`
MultiStepLIFNode), measured in the same run, torch on 2 threads.

    python benchmarks/bench_neurons.py [--n 100000] [--steps 8 32] [--reps 2]

Prints the best time of each and the speed-up of refsnn over each SpikingJelly
form (> 1 means refsnn is faster). Needs torch and spikingjelly.
"""
import argparse
import time

import numpy as np

import refsnn as rs
from refsnn import neurons


def best_times(steps: dict, reps: int) -> dict:
    """Best time of each step; runs are interleaved so that load from other
    processes hits all alike. Two warm-up calls each (TorchScript profiles
    the first calls)."""
    for step in steps.values():
        step()
        step()
    best = dict.fromkeys(steps, float("inf"))
    for _ in range(reps):
        for name, step in steps.items():
            t0 = time.perf_counter()
            step()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def refsnn_step(x: np.ndarray, backend: str):
    node = neurons.LIFNode(step_mode="m", backend=backend)

    def step():
        node.reset()
        xt = rs.tensor(x, requires_grad=True)
        node(xt).sum().backward()
    return step


def torch_step(x: np.ndarray, make):
    import torch
    node = make()
    xs = torch.from_numpy(x)

    def step():
        node.reset()
        xt = xs.clone().requires_grad_(True)
        node(xt).sum().backward()
    return step


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="neurons N")
    parser.add_argument("--steps", type=int, nargs="+", default=[8, 32], help="values of T")
    parser.add_argument("--reps", type=int, default=2)
    args = parser.parse_args()

    import torch
    from spikingjelly.activation_based import neuron as ab
    from spikingjelly.clock_driven import neuron as cd
    torch.set_num_threads(2)

    for T in args.steps:
        x = (np.random.default_rng(0).random((T, args.n)) * 1.5).astype(np.float32)
        t = best_times({
            "SJ activation_based LIFNode('m')": torch_step(x, lambda: ab.LIFNode(step_mode="m")),
            "SJ clock_driven MultiStepLIFNode": torch_step(x, cd.MultiStepLIFNode),
            "refsnn numpy (composed)": refsnn_step(x, "numpy"),
            "refsnn numpy-fused": refsnn_step(x, "numpy-fused"),
        }, args.reps)
        print(f"\nLIF forward+backward, T={T}, N={args.n}, float32 (best of {args.reps})")
        for name, seconds in t.items():
            print(f"  {name:34s} {seconds * 1e3:9.1f} ms")
        for ours in ("refsnn numpy (composed)", "refsnn numpy-fused"):
            for ref in ("SJ activation_based LIFNode('m')", "SJ clock_driven MultiStepLIFNode"):
                print(f"  {ours} vs {ref}: {t[ref] / t[ours]:.2f}x")


if __name__ == "__main__":
    main()
