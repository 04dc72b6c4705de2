"""The `refsnn` command: `conformance` (the main job), `devices`, `golden`, `bench`.

Exit codes: 0 all good, 1 a mismatch or failed check, 2 bad usage, input or
environment (with a one-line reason).
"""
from __future__ import annotations

import argparse
import importlib
import sys

from . import __version__

# subcommand -> (module with `main(argv) -> int`, one-line help)
SUBCOMMANDS = {
    "conformance": ("refsnn.conformance.cli", "compare refsnn with the installed SpikingJelly and write a report"),
    "devices": ("refsnn.opencl.devices_report", "list OpenCL platforms and devices"),
    "golden": ("refsnn.golden_cli", "export golden bundles or check an implementation against them"),
    "bench": ("refsnn.bench.cli", "time refsnn's backends against SpikingJelly and torch"),
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="refsnn", description="refsnn: a NumPy reference engine for spiking neural networks.")
    parser.add_argument("--version", action="version", version=f"refsnn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in SUBCOMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = _parser()
    if not argv or argv[0] not in SUBCOMMANDS:
        args = parser.parse_args(argv)  # handles --help / --version / bad names
        parser.print_help()
        return 0 if args.command is None else 2
    module = importlib.import_module(SUBCOMMANDS[argv[0]][0])
    return int(module.main(argv[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
