"""Benchmark reports: the goals of issue 7 checked against the rows, and the
rows written as JSON, Markdown and (with matplotlib) a PNG of time against N.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

__all__ = ["Goal", "GOALS", "evaluate_goals", "write_reports", "markdown"]


@dataclass(frozen=True)
class Goal:
    """A target on the speed-up of some rows.

    matches(row) picks the rows; `value(row)` is the figure held to the
    target (`at_least` or `at_most`); `best`: the goal holds when the best
    matching row meets it (the user picks the fastest backend), else every
    matching row must.
    """

    text: str
    matches: Callable
    value: Callable
    target: float
    at_least: bool = True
    best: bool = False
    unit: str = "x"


def _neuron(kind, mode, candidate, T, n_min=None, n_eq=None):
    def match(row):
        p = row["params"]
        return (row["group"] == "neuron" and p["kind"] == kind and p["mode"] == mode
                and row["candidate"] == candidate and p["T"] == T
                and (n_min is None or p["N"] >= n_min) and (n_eq is None or p["N"] == n_eq))
    return match


def _speedup(row):
    return row["speedup"]


def _time_ratio(row):
    return None if row["speedup"] is None else 1. / row["speedup"]


GOALS = (
    Goal("numpy-fused LIF forward+backward at T=32, N >= 1e5: speed-up over SJ torch",
         _neuron("lif", "fwdbwd", "numpy-fused", 32, n_min=100_000), _speedup, 4.),
    Goal("numpy-fused LIF forward+backward at T=8, N >= 1e5: speed-up over SJ torch",
         _neuron("lif", "fwdbwd", "numpy-fused", 8, n_min=100_000), _speedup, 2.),
    Goal("opencl LIF forward+backward at T=32, N=1e6: speed-up over SJ torch",
         _neuron("lif", "fwdbwd", "opencl", 32, n_eq=1_000_000), _speedup, 20.),
    Goal("opencl LIF forward+backward at T=32, N=1e6: fraction of the bandwidth bound",
         _neuron("lif", "fwdbwd", "opencl", 32, n_eq=1_000_000),
         lambda row: row["bandwidth_fraction"], 0.7, unit=""),
    Goal("conv2d forward+backward: refsnn time / torch time",
         lambda row: row["group"] == "conv" and row["params"]["op"] == "conv2d"
         and not row["is_reference"], _time_ratio, 1.5, at_least=False),
    Goal("spiking-CNN training step: refsnn time / SJ time (fastest backend)",
         lambda row: row["group"] == "scnn" and not row["is_reference"],
         _time_ratio, 1.3, at_least=False, best=True),
)


def evaluate_goals(rows: list, goals=GOALS) -> list:
    """One record per goal: the figures of the matching rows, and whether the
    goal is met (None when no matching row was measured)."""
    out = []
    for goal in goals:
        figures = [(r["case"], r["candidate"], goal.value(r)) for r in rows if goal.matches(r)]
        figures = [f for f in figures if f[2] is not None]

        def ok(v):
            return v >= goal.target if goal.at_least else v <= goal.target
        if not figures:
            met = None
        elif goal.best:
            pick = max if goal.at_least else min
            met = ok(pick(f[2] for f in figures))
        else:
            met = all(ok(f[2]) for f in figures)
        out.append({"goal": goal.text, "target": ("\u2265 " if goal.at_least else "\u2264 ")
                    + f"{goal.target:g}{goal.unit}", "met": met,
                    "figures": [{"case": c, "candidate": k, "value": v} for c, k, v in figures]})
    return out


# ----------------------------------------------------------------------------
# Markdown
# ----------------------------------------------------------------------------
def _ms(seconds):
    return "" if seconds is None else f"{seconds * 1e3:.2f}"


def _mib(n):
    return "" if n is None else f"{n / 2**20:.0f}"


def _ratio(row):
    if row["error"]:
        return "failed: " + row["error"]
    if row["speedup"] is None:
        return "reference" if row["is_reference"] else ""
    return f"{row['speedup']:.2f}x"


def markdown(report: dict) -> str:
    env = report["environment"]
    bw = report["bandwidth"]
    lines = [
        "# refsnn bench",
        "",
        f"Command: `{report['command']}`",
        "",
        f"Machine: {env['cpus']} CPUs, load average {env['load_before']} before and "
        f"{env['load_after']} after the run; torch threads {env.get('torch_threads')}; "
        f"{env.get('versions')}.",
        "Streaming bandwidth (NumPy, measured in this run): "
        + ", ".join(f"{k} {v / 1e9:.2f} GB/s" for k, v in bw.items()) + ".",
        f"Each figure: median of {report['repeats']} interleaved runs after "
        f"{report['warmup']} warm-up run(s). Speed-up = reference time / candidate time "
        f"(> 1: refsnn faster). Bandwidth bound: bytes an ideal kernel moves "
        f"(neuron rows: 8 per neuron-step forward, 24 forward+backward) at the best "
        f"measured bandwidth, divided by the candidate's time. Peak: resident memory "
        f"added during one extra run.",
        "",
    ]
    if report["interrupted"]:
        lines += ["**Interrupted (Ctrl-C): only the cases that finished are listed.**", ""]
    groups = {}
    for row in report["rows"]:
        groups.setdefault(row["group"], []).append(row)
    for group, rows in groups.items():
        lines += [f"## {group}", "",
                  "| case | candidate | median ms | min ms | speed-up | % of bw bound | peak MiB |",
                  "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
        for r in rows:
            bwf = "" if r["bandwidth_fraction"] is None else f"{100 * r['bandwidth_fraction']:.0f}"
            fastest = min(r["times_s"]) if r["times_s"] else None
            lines.append(f"| {r['case']} | {r['candidate']} | {_ms(r['median_s'])} | "
                         f"{_ms(fastest)} | {_ratio(r)} | {bwf} | {_mib(r['peak_bytes'])} |")
        lines.append("")
    lines += ["## Goals", "", "| goal | target | measured | met |", "| --- | --- | --- | --- |"]
    for g in report["goals"]:
        measured = "; ".join(f"{f['case']} {f['candidate']}: {f['value']:.2f}"
                             for f in g["figures"]) or "not measured"
        met = {True: "yes", False: "**no**", None: "-"}[g["met"]]
        lines.append(f"| {g['goal']} | {g['target']} | {measured} | {met} |")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------
# PNG
# ----------------------------------------------------------------------------
def plot_neurons(rows: list, path: Path) -> bool:
    """Time against N (log-log), one panel per neuron kind and mode, one line
    per candidate and T. False when matplotlib is missing or no neuron row
    has a time."""
    rows = [r for r in rows if r["group"] == "neuron" and r["median_s"] is not None]
    if not rows:
        return False
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    panels = sorted({(r["params"]["kind"], r["params"]["mode"]) for r in rows})
    cols = 2
    nrows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(11, 3.6 * nrows), squeeze=False)
    for ax, (kind, mode) in zip(axes.flat, panels):
        lines = {}
        for r in rows:
            p = r["params"]
            if (p["kind"], p["mode"]) == (kind, mode):
                lines.setdefault((r["candidate"], p["T"]), []).append((p["N"], r["median_s"]))
        for (candidate, T), points in sorted(lines.items()):
            points.sort()
            style = "--" if candidate.startswith("SJ") else "-"
            ax.plot([p[0] for p in points], [p[1] * 1e3 for p in points], style, marker="o",
                    label=f"{candidate} T={T}")
        ax.set(xscale="log", yscale="log", xlabel="N (neurons)", ylabel="ms",
               title=f"{kind.upper()} {'forward+backward' if mode == 'fwdbwd' else 'forward'}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write_reports(report: dict, out_dir: Path) -> list:
    """Write bench.json, bench.md, bench_neurons.png (with matplotlib) and
    profiles.md (rows with a profile) into `out_dir`; return the paths written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = [asdict(r) if not isinstance(r, dict) else r for r in report["rows"]]
    report = {**report, "rows": rows, "goals": evaluate_goals(rows)}
    written = []
    path = out_dir / "bench.json"
    path.write_text(json.dumps(report, indent=1) + "\n")
    written.append(path)
    path = out_dir / "bench.md"
    path.write_text(markdown(report))
    written.append(path)
    path = out_dir / "bench_neurons.png"
    if plot_neurons(rows, path):
        written.append(path)
    profiled = [r for r in rows if r.get("profile")]
    if profiled:
        path = out_dir / "profiles.md"
        path.write_text("# cProfile of one call per candidate (top entries by own time)\n\n"
                        + "".join(f"## {r['case']} / {r['candidate']}\n\n```\n{r['profile']}\n"
                                  f"```\n\n" for r in profiled))
        written.append(path)
    return written
