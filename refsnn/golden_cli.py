"""`refsnn golden export DIR` and `refsnn golden check DIR --impl module:function`.

Exit codes: 0 all good; 1 a case failed (or SpikingJelly disagreed at export,
or the implementation declined every case); 2 bad usage or a bad bundle file
(one line naming the file or field on stderr).
"""
from __future__ import annotations

import argparse
import sys

from . import golden

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line and exit status 2."""

    def error(self, message):
        raise _UsageError(f"{self.prog}: {message}")


class _UsageError(Exception):
    pass


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="refsnn golden",
                     description="Write golden cases (refsnn's outputs for fixed inputs) or "
                                 "check an implementation against them. Format: "
                                 "docs/golden-format.md.")
    sub = parser.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    export = sub.add_parser("export", help="write the default catalog of cases into DIR")
    export.add_argument("directory", metavar="DIR")
    export.add_argument("--no-verify", action="store_true",
                        help="do not run SpikingJelly even when it is installed "
                             "(spikingjelly_version is then null)")
    export.add_argument("--force", action="store_true", help="write into a non-empty DIR")
    export.add_argument("--select", metavar="TEXT", help="only cases whose name contains TEXT")
    check = sub.add_parser("check", help="replay the cases of DIR against an implementation")
    check.add_argument("directory", metavar="DIR")
    check.add_argument("--impl", metavar="MODULE:FUNCTION",
                       default="refsnn.golden:reference_impl",
                       help="the implementation: 'package.module:function' or "
                            "'path/file.py:function', called as function(manifest, arrays) -> "
                            "dict of arrays (default: refsnn itself)")
    check.add_argument("--select", metavar="TEXT", help="only cases whose name contains TEXT")
    check.add_argument("--exact", action="store_true",
                       help="require bitwise-equal potentials and gradients")
    check.add_argument("--allow-rounding-flips", action="store_true",
                       help="accept spike flips whose potential was within a few ulp of the "
                            "threshold (and their later flips in the same neuron)")
    check.add_argument("--ulps", type=float, default=16.0,
                       help="tolerance per time step and summed term, in ulps (default 16)")
    return parser


def _export(args) -> int:
    cases = golden.default_cases()
    if args.select:
        cases = [c for c in cases if args.select in c.name]
        if not cases:
            raise golden.BundleError(f"no default case matches --select {args.select!r}")
    try:
        info = golden.export_bundle(args.directory, cases, verify=not args.no_verify,
                                    force=args.force)
    except golden.VerificationError as e:
        print(f"refsnn golden export: {e}; nothing written", file=sys.stderr)
        for name, problem in e.failures:
            print(f"  {name}: {problem}", file=sys.stderr)
        return 1
    sj = info["spikingjelly_version"]
    how = f"each verified against SpikingJelly {sj}" if sj else (
        "not verified against SpikingJelly (not requested)" if args.no_verify else
        "not verified: torch and SpikingJelly are not importable (spikingjelly_version: null)")
    print(f"wrote {info['cases']} golden cases to {args.directory}, {how}")
    return 0


def _check(args) -> int:
    impl = golden.load_impl(args.impl)
    results = golden.check_bundle(args.directory, impl, select=args.select, exact=args.exact,
                                  allow_rounding_flips=args.allow_rounding_flips,
                                  ulps=args.ulps)
    width = max(len(r.name) for r in results)
    for r in results:
        print(f"{r.status.upper():4}  {r.name:{width}}  {r.summary}")
        for detail in r.details:
            for line in detail.splitlines():
                print(f"      {line}")
    counts = {s: sum(r.status == s for r in results) for s in ("pass", "fail", "skip")}
    print(f"golden check of {args.impl} on {args.directory}: {len(results)} case(s), "
          f"{counts['pass']} passed, {counts['fail']} failed, {counts['skip']} declined")
    if counts["fail"]:
        return 1
    if not counts["pass"]:
        print("golden check: the implementation declined every case; nothing was checked",
              file=sys.stderr)
        return 1
    return 0


def main(argv=None) -> int:
    """Run `refsnn golden ARGS`; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = _parser().parse_args(argv)
        if args.action is None:
            _parser().print_help()
            return 2
        return _export(args) if args.action == "export" else _check(args)
    except (_UsageError, golden.BundleError, golden.ImplError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
