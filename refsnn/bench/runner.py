"""Timing: interleaved runs of a case's candidates, medians, peak memory,
the machine's streaming bandwidth, and a progress bar.

A case's candidates (SpikingJelly/torch and refsnn's backends) run in the
same process, round-robin: after the warm-up, each round runs every candidate
once, starting with a different one each round, so that load from other
processes hits all of them alike. A candidate's figure is the median of its
rounds.
"""
from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Row", "Progress", "time_case", "run_cases", "peak_memory", "profile_top",
           "measure_bandwidth", "RunResult"]


@dataclass
class Row:
    """One candidate's measurement in one case.

    times_s: the timed rounds (seconds), in order; median_s their median.
    speedup: reference median / this median (> 1: faster than the reference);
        None for the reference itself or when no reference ran.
    bandwidth_fraction: the memory-traffic bound of the case (its bytes at the
        measured bandwidth) divided by median_s; None where the case defines no
        traffic.
    peak_bytes: peak resident memory above the level before one extra
        (untimed) call; None where it cannot be read.
    error: a one-line reason when the candidate failed (no times then).
    profile: cProfile's top entries of one extra call (with `profile=True`).
    """

    case: str
    group: str
    candidate: str
    is_reference: bool
    params: dict
    times_s: list = field(default_factory=list)
    median_s: float | None = None
    speedup: float | None = None
    bandwidth_fraction: float | None = None
    peak_bytes: int | None = None
    error: str | None = None
    profile: str | None = None


@dataclass
class RunResult:
    """Rows of the cases that finished, and whether Ctrl-C cut the run short."""

    rows: list
    interrupted: bool = False


# ----------------------------------------------------------------------------
# memory
# ----------------------------------------------------------------------------
def _status_kb(key: str):
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS counter (Linux >= 4.0); False if unavailable."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _trim_heap() -> None:
    """Hand freed heap memory back to the kernel (glibc `malloc_trim`), so that
    memory the next call reuses counts as newly resident."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def peak_memory(fn) -> int | None:
    """Bytes of peak resident memory `fn()` adds above the current level, from
    the kernel's counters (numpy and torch allocations alike; the heap is
    trimmed first so reused blocks count); None where the counters are not
    available (non-Linux)."""
    _trim_heap()
    if not _reset_peak():
        return None
    before = _status_kb("VmRSS")
    fn()
    peak = _status_kb("VmHWM")
    if before is None or peak is None:
        return None
    return max(0, peak - before) * 1024


def profile_top(fn, entries: int = 15) -> str:
    """cProfile's `entries` most expensive functions (by own time) of one `fn()`."""
    import cProfile
    import io
    import pstats
    profiler = cProfile.Profile()
    profiler.runcall(fn)
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(entries)
    lines = text.getvalue().strip().splitlines()
    start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
    return "\n".join([lines[0].strip()] + lines[start:])


# ----------------------------------------------------------------------------
# bandwidth
# ----------------------------------------------------------------------------
def measure_bandwidth(n_bytes: int = 64 << 20, repeats: int = 7) -> dict:
    """The machine's practical streaming bandwidth, in bytes/s, measured with
    NumPy on arrays far larger than the caches:

    copy_1t: `np.copyto(b, a)`, 2 bytes moved per byte of `a`, one thread;
    add_1t:  `np.add(a, b, out=c)`, 3 bytes per byte, one thread;
    add_2t:  the same add split over two threads (NumPy releases the GIL);
    best:    the largest of these: the bound the neuron rows are held to.
    """
    n = n_bytes // 4
    a, b, c = (np.ones(n, np.float32) for _ in range(3))
    halves = [(slice(0, n // 2)), slice(n // 2, n)]

    def add_half(s):
        np.add(a[s], b[s], out=c[s])

    def median_rate(fn, moved):
        fn()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return moved / float(np.median(times))

    with ThreadPoolExecutor(2) as pool:
        rates = {
            "copy_1t": median_rate(lambda: np.copyto(b, a), 2 * a.nbytes),
            "add_1t": median_rate(lambda: np.add(a, b, out=c), 3 * a.nbytes),
            "add_2t": median_rate(lambda: list(pool.map(add_half, halves)), 3 * a.nbytes),
        }
    rates["best"] = max(rates.values())
    return rates


# ----------------------------------------------------------------------------
# progress
# ----------------------------------------------------------------------------
class Progress:
    """A one-line progress bar on `stream` (redrawn in place on a terminal,
    silent otherwise), and one summary line per finished case on `out`."""

    def __init__(self, total: int, stream=None, out=None, width: int = 28):
        self.total, self.done, self.width = max(total, 1), 0, width
        self.stream = sys.stderr if stream is None else stream
        self.out = sys.stdout if out is None else out
        self.live = hasattr(self.stream, "isatty") and self.stream.isatty()

    def step(self, label: str) -> None:
        self.done += 1
        if self.live:
            filled = self.width * self.done // self.total
            bar = "#" * filled + "." * (self.width - filled)
            self.stream.write(f"\r[{bar}] {self.done}/{self.total} {label[:60]:60s}")
            self.stream.flush()

    def case_done(self, line: str) -> None:
        if self.live:
            self.stream.write("\r" + " " * (self.width + 75) + "\r")
        print(line, file=self.out, flush=True)

    def close(self) -> None:
        if self.live:
            self.stream.write("\n")
            self.stream.flush()


# ----------------------------------------------------------------------------
# timing
# ----------------------------------------------------------------------------
def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def time_case(case, candidates: list, repeats: int, warmup: int, bandwidth: float | None,
              progress: Progress, measure_memory: bool = True, profile: bool = False) -> list:
    """Rows for one case: `candidates` is a list of `Candidate`s (see
    `cases.Candidate`), the reference first. A candidate that raises (other
    than KeyboardInterrupt) gets a row with its error and drops out. Memory
    and profile come from extra calls after the timed rounds."""
    rows = [Row(case.name, case.group, c.label, c.is_reference, dict(case.params))
            for c in candidates]
    live = list(range(len(candidates)))

    def call(i, label):
        try:
            candidates[i].run()
        except (KeyboardInterrupt, MemoryError):
            raise
        except Exception as exc:   # a broken candidate must not stop the others
            rows[i].error = _one_line(exc)
            live.remove(i)
        progress.step(f"{case.name}: {candidates[i].label} {label}")

    for _ in range(warmup):
        for i in list(live):
            call(i, "warm-up")
    for r in range(repeats):
        order = live[r % len(live):] + live[:r % len(live)] if live else []
        for i in order:
            if i not in live:
                continue
            t0 = time.perf_counter()
            call(i, f"{r + 1}/{repeats}")
            elapsed = time.perf_counter() - t0
            if i in live:
                rows[i].times_s.append(elapsed)
    for i in live:
        rows[i].median_s = float(np.median(rows[i].times_s)) if rows[i].times_s else None
        if measure_memory:
            rows[i].peak_bytes = peak_memory(candidates[i].run)
        if profile:
            rows[i].profile = profile_top(candidates[i].run)
    ref = next((r for r in rows if r.is_reference and r.median_s), None)
    for row in rows:
        if row.median_s is None:
            continue
        if ref is not None and row is not ref:
            row.speedup = ref.median_s / row.median_s
        if case.traffic_bytes and bandwidth:
            row.bandwidth_fraction = case.traffic_bytes / bandwidth / row.median_s
    return rows


def summary_line(case, rows: list) -> str:
    """`name  SJ torch 12.3 ms | numpy-fused 1.2 ms (10.1x) | ...`"""
    parts = []
    for row in rows:
        if row.error:
            parts.append(f"{row.candidate} failed ({row.error})")
            continue
        text = f"{row.candidate} {row.median_s * 1e3:.1f} ms"
        if row.speedup is not None:
            text += f" ({row.speedup:.2f}x)"
        if row.bandwidth_fraction is not None and not row.is_reference:
            text += f" [{100 * row.bandwidth_fraction:.0f}% bw]"
        parts.append(text)
    return f"{case.name:28s} " + " | ".join(parts)


def run_cases(cases: list, repeats: int, warmup: int, bandwidth: float | None,
              progress: Progress | None = None, measure_memory: bool = True,
              profile: bool = False) -> RunResult:
    """Time `cases` one after the other. Ctrl-C stops the run and returns the
    rows of the cases that finished, with `interrupted=True`."""
    if progress is None:
        progress = Progress(sum((warmup + repeats) * c.n_candidates() for c in cases))
    result = RunResult(rows=[])
    try:
        for case in cases:
            candidates = case.candidates()
            try:
                rows = time_case(case, candidates, repeats, warmup, bandwidth, progress,
                                 measure_memory, profile)
            finally:
                del candidates   # free the case's inputs before the next one
            result.rows.extend(rows)
            progress.case_done(summary_line(case, rows))
    except KeyboardInterrupt:
        result.interrupted = True
    finally:
        progress.close()
    return result
