"""Multi-step LIF training step (forward + backward) on [T, N] input: refsnn's
composed ('numpy') and fused ('numpy-fused') paths against SpikingJelly's torch
backend, once with each SpikingJelly API (`activation_based` LIFNode('m') and
`clock_driven` MultiStepLIFNode) as the reference, measured in the same run,
torch on 2 threads.

    python benchmarks/bench_neurons.py [--n 100000] [--steps 8 32] [--reps 5] [--out DIR]

A shortcut for `refsnn bench --cases 'lif-fwdbwd-*' --n N --t T ... --reference ab|cd`
(`refsnn.bench` does the timing: interleaved runs, medians, speed-ups, where
> 1 means refsnn is faster). Needs torch and spikingjelly.
"""
import argparse
import sys

from refsnn.bench import cli


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", default="100000", help="neurons N")
    parser.add_argument("--steps", nargs="+", default=["8", "32"], help="values of T")
    parser.add_argument("--reps", default="5", help="timed runs (median reported, >= 5)")
    parser.add_argument("--out", default="bench_results/neurons", help="report folder")
    args = parser.parse_args(argv)
    for reference in ("ab", "cd"):
        print(f"reference: SpikingJelly {reference} torch backend")
        code = cli.main(["--cases", "lif-fwdbwd-*", "--n", args.n, "--t", *args.steps,
                         "--repeats", args.reps, "--backends", "numpy,numpy-fused",
                         "--reference", reference, "--out", f"{args.out}/{reference}"])
        if code:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
