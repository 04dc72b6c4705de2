"""`refsnn bench`: time refsnn's backends against SpikingJelly's torch backend
(and conv2d/linear against torch) in one process, interleaved.

    refsnn bench [--cases NAME|GLOB ...] [--quick] [--repeats 5] [--warmup 1]
                 [--out DIR] [--list] [--t T ...] [--n N ...]
                 [--backends numpy,numpy-fused,opencl] [--reference cd|ab] [--profile]

Writes DIR/bench.json, DIR/bench.md, with matplotlib DIR/bench_neurons.png, and
with --profile DIR/profiles.md.
Exit codes: 0 done, 2 bad usage or input (before any timing), 130 interrupted
by Ctrl-C (the rows finished so far are written).
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path

from . import cases as cases_mod
from .cases import BenchError, Environment
from .report import write_reports
from .runner import Progress, measure_bandwidth, run_cases

MIN_REPEATS = 5


def _size(text: str) -> int:
    """'1e5', '100000' or '100_000' -> 100000; anything else is an error."""
    try:
        value = float(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r} is not a number") from None
    if not value.is_integer() or value < 1 or value > 2**40:
        raise argparse.ArgumentTypeError(f"size {text!r} must be a whole number >= 1")
    return int(value)


def _names(values) -> list:
    """Patterns given as several arguments and/or comma-separated."""
    return [p for v in values or () for p in v.split(",") if p]


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise BenchError(f"refsnn bench: {message}")


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="refsnn bench", description=__doc__.splitlines()[0])
    p.add_argument("--cases", nargs="+", metavar="NAME",
                   help="case names or globs (e.g. 'lif-fwdbwd-*' 'conv2d-*'); default: all")
    p.add_argument("--quick", action="store_true",
                   help="small sizes (seconds, for tests); allows --repeats below 5")
    p.add_argument("--repeats", type=int, default=MIN_REPEATS,
                   help=f"timed runs per candidate, median reported (>= {MIN_REPEATS})")
    p.add_argument("--warmup", type=int, default=1, help="untimed runs per candidate first")
    p.add_argument("--out", type=Path, default=Path("bench_results"), help="output folder")
    p.add_argument("--list", action="store_true", help="list the cases and exit")
    p.add_argument("--t", type=_size, nargs="+", metavar="T",
                   help="neuron cases: values of T (default 8 32 128)")
    p.add_argument("--n", type=_size, nargs="+", metavar="N",
                   help="neuron cases: values of N (default 1e3 1e4 1e5 1e6)")
    p.add_argument("--backends", help="refsnn backends to time, comma-separated "
                                      "(default: every usable one)")
    p.add_argument("--profile", action="store_true",
                   help="also profile one extra call of each candidate (cProfile top "
                        "entries, in DIR/profiles.md)")
    p.add_argument("--reference", default="cd", choices=("cd", "ab"),
                   help="SpikingJelly API of the reference neurons (default cd: "
                        "clock_driven MultiStep*Node, the faster of the two here)")
    return p


def _environment_info() -> dict:
    import platform

    import numpy as np
    info = {"cpus": os.cpu_count(), "python": platform.python_version(),
            "load_before": _load(), "versions": f"numpy {np.__version__}"}
    try:
        import torch
        torch.set_num_threads(2)
        info["torch_threads"] = torch.get_num_threads()
        info["versions"] += f", torch {torch.__version__}"
        from importlib.metadata import version
        info["versions"] += f", spikingjelly {version('spikingjelly')}"
    except Exception:
        pass
    return info


def _load() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = parser().parse_args(argv)
    except SystemExit as exc:   # --help
        return int(exc.code or 0)
    except BenchError as exc:
        print(exc, file=sys.stderr)
        return 2
    try:
        if args.repeats < 1 or (args.repeats < MIN_REPEATS and not args.quick):
            raise BenchError(f"refsnn bench: --repeats must be >= {MIN_REPEATS} "
                             f"(>= 1 with --quick), got {args.repeats}")
        if args.warmup < 0:
            raise BenchError(f"refsnn bench: --warmup must be >= 0, got {args.warmup}")
        backends = _names([args.backends]) if args.backends else None
        env = Environment.detect(backends, args.reference)
        catalog = cases_mod.catalog(env, args.quick, args.t, args.n)
        chosen = cases_mod.select(catalog, _names(args.cases))
        if args.list:
            for case in chosen:
                print(f"{case.name:28s} {case.description}  [{', '.join(case.labels)}]")
            return 0
        cases_mod.check_sizes(chosen)
    except BenchError as exc:
        print(exc, file=sys.stderr)
        return 2
    if not (env.have_torch and env.have_spikingjelly):
        print("refsnn bench: torch/spikingjelly not installed, so no reference timings "
              "(pip install 'refsnn[conformance]' spikingjelly)", file=sys.stderr)

    info = _environment_info()
    report = {"command": "refsnn bench " + shlex.join(argv), "environment": info,
              "repeats": args.repeats, "warmup": args.warmup, "bandwidth": {},
              "interrupted": False, "rows": []}
    started = time.perf_counter()
    try:
        report["bandwidth"] = measure_bandwidth(16 << 20 if args.quick else 64 << 20)
        result = run_cases(chosen, args.repeats, args.warmup, report["bandwidth"]["best"],
                           Progress(sum((args.warmup + args.repeats) * c.n_candidates()
                                        for c in chosen)), profile=args.profile)
        report["rows"], report["interrupted"] = result.rows, result.interrupted
    except KeyboardInterrupt:
        report["interrupted"] = True
    info["load_after"] = _load()
    info["seconds"] = round(time.perf_counter() - started, 1)
    for path in write_reports(report, args.out):
        print(f"wrote {path}")
    if report["interrupted"]:
        print("refsnn bench: interrupted; the report holds the cases that finished",
              file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
