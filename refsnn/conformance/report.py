"""Summaries of conformance results: a plain-text table, Markdown and JSON.

Input: a list of `CaseResult`s (see `runner.py`). Families are reported in the
order they first appear.
"""
from __future__ import annotations

import json
import math
import platform
from collections import OrderedDict
from dataclasses import asdict
from pathlib import Path

__all__ = ["summarize", "format_table", "to_markdown", "to_json", "write_reports",
           "FAILING_STATUSES"]

# statuses that make `refsnn conformance` exit 1
FAILING_STATUSES = ("mismatch", "refsnn_error", "sj_error", "fixed_upstream")

_COLUMNS = ("family", "cases", "passed", "known SJ defects", "SJ errors", "failed",
            "spike flips", "max value err", "max grad err")


def summarize(results) -> "OrderedDict[str, dict]":
    """Per family: counts per status, total spike flips, and the largest
    normwise relative errors of compared values (layers, optimizers,
    transcendental primitives) and of gradients,
    known SpikingJelly defects left out of the figures."""
    rows: OrderedDict[str, dict] = OrderedDict()
    for r in results:
        row = rows.setdefault(r.family, dict(cases=0, passed=0, known_defect=0, sj_error=0,
                                             failed=0, spike_flips=0, max_forward_error=None,
                                             max_grad_error=None))
        row["cases"] += 1
        if r.status == "pass":
            row["passed"] += 1
        elif r.status == "known_defect":
            row["known_defect"] += 1
        elif r.status == "sj_error":
            row["sj_error"] += 1
        else:
            row["failed"] += 1
        if r.status == "known_defect":
            continue  # its differences are SpikingJelly's, not refsnn's
        row["spike_flips"] += r.spike_flips
        for key in ("max_forward_error", "max_grad_error"):
            value = getattr(r, key)
            if value is not None:
                row[key] = value if row[key] is None else max(row[key], value)
    return rows


def _fmt_err(e) -> str:
    if e is None:
        return "-"
    if math.isinf(e):
        return "inf"
    return "0" if e == 0 else f"{e:.1e}"


def _table_rows(results):
    summary = summarize(results)
    rows = [[fam, s["cases"], s["passed"], s["known_defect"], s["sj_error"], s["failed"],
             s["spike_flips"], _fmt_err(s["max_forward_error"]), _fmt_err(s["max_grad_error"])]
            for fam, s in summary.items()]
    total = [sum(r[i] for r in rows) for i in range(1, 7)]
    worst = []
    for key in ("max_forward_error", "max_grad_error"):
        errs = [s[key] for s in summary.values() if s[key] is not None]
        worst.append(_fmt_err(max(errs) if errs else None))
    rows.append(["total", *total, *worst])
    return [[str(c) for c in r] for r in rows]


def format_table(results) -> str:
    """A fixed-width text table, one line per family plus a total."""
    rows = [list(_COLUMNS)] + _table_rows(results)
    widths = [max(len(r[i]) for r in rows) for i in range(len(_COLUMNS))]
    lines = []
    for k, r in enumerate(rows):
        cells = [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])]
        lines.append("  ".join(cells))
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _problem_lines(results, markdown: bool):
    out = []
    for r in results:
        if r.status == "pass":
            continue
        label = {"known_defect": "known SpikingJelly defect", "sj_error": "SJ error",
                 "mismatch": "MISMATCH", "refsnn_error": "refsnn error",
                 "fixed_upstream": "defect no longer reproduces (update the catalog)"}[r.status]
        msg = r.message.replace("\n", " ")
        out.append(f"- `{r.case_id}`: **{label}**: {msg}" if markdown
                   else f"{r.case_id}: {label}: {msg}")
    return out


def to_markdown(results, meta: dict) -> str:
    """The Markdown report: environment, summary table, then every case that
    did not simply pass (known SpikingJelly defects included)."""
    head = ["# refsnn conformance report", ""]
    head += [f"- {k}: `{v}`" for k, v in meta.items()]
    head += ["", "## Summary", "", "| " + " | ".join(_COLUMNS) + " |",
             "|" + "---|" * len(_COLUMNS)]
    head += ["| " + " | ".join(r) + " |" for r in _table_rows(results)]
    problems = _problem_lines(results, markdown=True)
    head += ["", "## Cases that did not pass", ""] + (problems or ["None."])
    head += ["", "Value and gradient errors are normwise relative, "
             "`max|refsnn - SJ| / max|SJ|`; spikes and membrane potentials are compared "
             "bit for bit unless the case's record allows ulps (see "
             "`refsnn/conformance/catalog.py`).", ""]
    return "\n".join(head)


def to_json(results, meta: dict) -> str:
    def clean(d):
        return {k: (None if isinstance(v, float) and math.isinf(v) else v) for k, v in d.items()}
    payload = {"meta": meta, "summary": summarize(results),
               "cases": [clean(asdict(r)) for r in results]}
    return json.dumps(payload, indent=1, default=str)


def environment(extra: dict | None = None) -> dict:
    """Versions that decide the ulps: Python, NumPy, torch, SpikingJelly."""
    import numpy as np
    meta = {"python": platform.python_version(), "numpy": np.__version__,
            "platform": platform.platform()}
    try:
        import torch
        meta["torch"] = torch.__version__
    except ImportError:
        pass
    try:
        from importlib.metadata import version
        meta["spikingjelly"] = version("spikingjelly")
    except Exception:  # noqa: BLE001 - metadata missing is not an error here
        pass
    meta.update(extra or {})
    return meta


def write_reports(results, directory: Path, meta: dict) -> tuple[Path, Path]:
    """Write `conformance.md` and `conformance.json` into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    md, js = directory / "conformance.md", directory / "conformance.json"
    md.write_text(to_markdown(results, meta))
    js.write_text(to_json(results, meta))
    return md, js
