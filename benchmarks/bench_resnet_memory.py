"""Peak memory and time of one forward + backward of the layer-by-layer spiking
ResNet-18 (`multi_step_spiking_resnet18`, MultiStepIFNode, ATan surrogate) at
T=4, N=2, 64x64, float32, training mode.

Memory is measured twice:
- `tracemalloc` peak above the baseline (model built, input made): every
  NumPy buffer the step allocates (activations saved for backward,
  temporaries, gradients), which is what "bounded memory" is about;
- the process's peak resident set size (`resource.getrusage`), which also
  holds the interpreter, libraries and the model.
Time is the median of `--repeat` untraced runs (tracemalloc slows NumPy
calls). With torch and SpikingJelly installed, SpikingJelly's
`multi_step_spiking_resnet18` runs the same step in the same process,
interleaved with refsnn's, for a time ratio (its memory is not traced: torch
allocates outside Python's allocator).

    python benchmarks/bench_resnet_memory.py [--T 4] [--N 2] [--size 64] [--repeat 3]
                                             [--no-compare]
"""
import argparse
import resource
import sys
import time
import tracemalloc

import numpy as np

from refsnn.bench.cases import _importable, resnet18_refsnn_step, resnet18_spikingjelly_step

MIB = 1 << 20


def measure(T: int = 4, N: int = 2, size: int = 64, repeat: int = 3,
            compare: bool = True) -> dict:
    """Figures for refsnn's multi-step ResNet-18 on `[T, N, 3, size, size]`
    (and SpikingJelly's time when `compare` and it is installed)."""
    model, step = resnet18_refsnn_step(T, N, size)
    sj_step = None
    if compare and _importable("torch") and _importable("spikingjelly"):
        sj_step = resnet18_spikingjelly_step(T, N, size)
    step()                                    # warm-up; allocates the gradients
    if sj_step is not None:
        sj_step()
    ours, theirs = [], []
    for _ in range(repeat):                   # interleaved: load hits both alike
        t0 = time.perf_counter()
        step()
        t1 = time.perf_counter()
        if sj_step is not None:
            sj_step()
            theirs.append(time.perf_counter() - t1)
        ours.append(t1 - t0)

    tracemalloc.start()
    baseline = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    step()
    peak = tracemalloc.get_traced_memory()[1] - baseline
    tracemalloc.stop()
    result = {"T": T, "N": N, "size": size,
              "params_mib": sum(p.data.nbytes for p in model.parameters()) / MIB,
              "step_peak_mib": peak / MIB, "rss_peak_mib": _rss_peak_bytes() / MIB,
              "time_s": float(np.median(ours))}
    if theirs:
        result["spikingjelly_time_s"] = float(np.median(theirs))
        result["ratio"] = float(np.median(np.array(ours) / np.array(theirs)))
    return result


def _rss_peak_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024      # Linux reports KiB


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--T", type=int, default=4)
    parser.add_argument("--N", type=int, default=2)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-compare", action="store_true",
                        help="skip SpikingJelly even when it is installed")
    args = parser.parse_args(argv)
    r = measure(args.T, args.N, args.size, args.repeat, compare=not args.no_compare)
    print(f"multi_step_spiking_resnet18 T={r['T']} N={r['N']} {r['size']}x{r['size']} "
          f"float32, forward + backward")
    print(f"  parameters            {r['params_mib']:8.1f} MiB")
    print(f"  step peak (traced)    {r['step_peak_mib']:8.1f} MiB above the built model")
    print(f"  process peak RSS      {r['rss_peak_mib']:8.1f} MiB")
    print(f"  time                  {r['time_s']:8.2f} s")
    if "ratio" in r:
        print(f"  SpikingJelly time     {r['spikingjelly_time_s']:8.2f} s   (median ratio "
              f"refsnn/SpikingJelly {r['ratio']:.2f}, interleaved runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
