"""`refsnn conformance`: run the built-in catalog against the installed
SpikingJelly and PyTorch, print a summary table, write Markdown and JSON reports.

Exit codes: 0 every case conforms (known SpikingJelly defects included),
1 a mismatch, a refsnn error, an unexpected SpikingJelly error, or a listed
defect that no longer shows; 2 bad usage, an unwritable report directory, or
torch / SpikingJelly missing.
"""
from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

INSTALL_COMMAND = "pip install torch==2.13.0 && pip install --no-deps spikingjelly==0.0.0.0.14"
EXPECTED_SPIKINGJELLY = "0.0.0.0.14"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="refsnn conformance",
        description="Run every catalog case in SpikingJelly/PyTorch and in refsnn on the "
                    "same inputs, weights and states, and compare spikes, membrane "
                    "potentials and gradients.")
    p.add_argument("--report", metavar="DIR", default="reports/conformance",
                   help="directory for conformance.md and conformance.json "
                        "(default: %(default)s)")
    p.add_argument("--backend", action="append", metavar="NAME",
                   help="refsnn neuron backend to run: numpy, numpy-fused, opencl "
                        "(repeatable; default: every available one)")
    p.add_argument("--dtype", action="append", choices=("float32", "float64"),
                   help="dtype to run (repeatable; default: both)")
    p.add_argument("--filter", metavar="REGEX",
                   help="run only cases whose family or id matches REGEX "
                        "(e.g. 'ab\\.LIF', 'surrogate', 'float64')")
    p.add_argument("--examples", type=int, default=1, metavar="N",
                   help="random input sequences per configuration (default: %(default)s)")
    p.add_argument("--list", action="store_true", help="list the selected cases and exit")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return p


def _check_report_dir(directory: Path) -> str | None:
    """None if reports can be written into `directory`, else the reason."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / ".refsnn-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        return f"{e.strerror or e} ({directory})"
    return None


def _check_reference() -> str | None:
    """None if torch and SpikingJelly import, else a one-line reason."""
    try:
        import torch  # noqa: F401
    except ImportError as e:
        return f"PyTorch is not installed ({e})"
    try:
        import spikingjelly.activation_based.neuron  # noqa: F401
        import spikingjelly.clock_driven.neuron  # noqa: F401
    except ImportError as e:
        return f"SpikingJelly is not importable ({e})"
    return None


class Progress:
    """A one-line progress bar on stderr (rewritten in place on a terminal,
    one line per 10 % otherwise)."""

    def __init__(self, total: int, enabled: bool, stream=None):
        self.total, self.enabled = total, enabled and total > 0
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.start = time.perf_counter()
        self.last_decile = -1

    def update(self, done: int, failures: int, label: str) -> None:
        if not self.enabled:
            return
        frac = done / self.total
        elapsed = time.perf_counter() - self.start
        bar = "#" * int(30 * frac) + "." * (30 - int(30 * frac))
        line = f"[{bar}] {done}/{self.total} {elapsed:5.1f}s failures={failures}"
        if self.tty:
            self.stream.write("\r" + (line + " " + label)[:110].ljust(110))
            if done == self.total:
                self.stream.write("\n")
            self.stream.flush()
        elif int(frac * 10) > self.last_decile or done == self.total:
            self.last_decile = int(frac * 10)
            self.stream.write(line + "\n")
            self.stream.flush()


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    if args.examples < 1:
        print("refsnn conformance: --examples must be at least 1", file=sys.stderr)
        return 2
    try:
        pattern = re.compile(args.filter) if args.filter else None
    except re.error as e:
        print(f"refsnn conformance: bad --filter regex {args.filter!r}: {e}", file=sys.stderr)
        return 2

    report_dir = Path(args.report)
    if not args.list:
        reason = _check_report_dir(report_dir)
        if reason:
            print(f"refsnn conformance: cannot write reports to {report_dir}: {reason}",
                  file=sys.stderr)
            return 2
    reason = _check_reference()
    if reason:
        print(f"refsnn conformance: {reason}. Install the reference with:\n  {INSTALL_COMMAND}",
              file=sys.stderr)
        return 2

    import logging
    from importlib.metadata import version

    import torch
    torch.set_num_threads(1)  # tiny tensors: threads cost more than they give
    # SpikingJelly logs warnings (containers holding single-step modules) on the root logger
    logging.getLogger().setLevel(logging.ERROR)
    sj_version = version("spikingjelly")
    if sj_version != EXPECTED_SPIKINGJELLY:
        print(f"refsnn conformance: warning: the catalog targets SpikingJelly "
              f"{EXPECTED_SPIKINGJELLY}, found {sj_version}", file=sys.stderr)

    from . import catalog, drivers, report, runner
    available = drivers.available_backends()
    backends = tuple(args.backend) if args.backend else available
    unknown = [b for b in backends if b not in catalog.NEURON_BACKENDS]
    if unknown:
        print(f"refsnn conformance: unknown backend(s) {unknown}; choose from "
              f"{catalog.NEURON_BACKENDS}", file=sys.stderr)
        return 2
    missing = [b for b in backends if b not in available]
    if missing:
        print(f"refsnn conformance: backend(s) {missing} not available here "
              f"(available: {available})", file=sys.stderr)
        return 2
    dtypes = tuple(args.dtype) if args.dtype else catalog.DTYPES
    cases = catalog.all_cases(backends=backends, dtypes=dtypes, examples=args.examples,
                              select=(lambda c: bool(pattern.search(
                                  f"{c.record.family} {c.id}"))) if pattern else None)
    if args.list:
        for c in cases:
            print(c.id)
        return 0
    if not cases:
        print("refsnn conformance: no case matches the selection", file=sys.stderr)
        return 2

    print(f"refsnn conformance: {len(cases)} cases, backends {', '.join(backends)}, "
          f"dtypes {', '.join(dtypes)}, SpikingJelly {sj_version}, torch {torch.__version__}",
          file=sys.stderr)
    progress = Progress(len(cases), enabled=not args.quiet)
    results, failures = [], 0
    start = time.perf_counter()
    for i, case in enumerate(cases, 1):
        result = runner.run_case(case)
        results.append(result)
        failures += result.status in report.FAILING_STATUSES
        progress.update(i, failures, case.id)
    seconds = time.perf_counter() - start

    print(report.format_table(results))
    meta = report.environment({"backends": ", ".join(backends), "dtypes": ", ".join(dtypes),
                               "filter": args.filter or "", "examples": args.examples,
                               "cases": len(results), "seconds": round(seconds, 1)})
    md, js = report.write_reports(results, report_dir, meta)
    bad = [r for r in results if r.status in report.FAILING_STATUSES]
    for r in bad[:20]:
        print(f"FAIL {r.case_id}: {r.status}: {r.message[:400]}")
    if len(bad) > 20:
        print(f"... and {len(bad) - 20} more (see {md})")
    print(f"{len(results) - len(bad)}/{len(results)} cases conform in {seconds:.1f}s; "
          f"reports: {md}, {js}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
