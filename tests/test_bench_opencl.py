"""`benchmarks/bench_opencl.py` runs end to end on a small case and prints
every figure it promises (a smoke test of the script, not a timing)."""
import importlib.util
import os
import re

import pytest

pytest.importorskip("pyopencl")
pytest.importorskip("spikingjelly")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_bench():
    spec = importlib.util.spec_from_file_location(
        "bench_opencl", os.path.join(ROOT, "benchmarks", "bench_opencl.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_opencl_prints_every_figure(capsys):
    load_bench().main(["--T", "4", "--N", "3000", "--repeat", "1"])
    out = capsys.readouterr().out
    for pattern in (r"SpikingJelly torch backend \(2 threads\): +[\d.]+ ms",
                    r"refsnn opencl, end to end: +[\d.]+ ms +-> +[\d.]+x faster",
                    r"kernels [\d.]+ ms \(forward [\d.]+, backward [\d.]+\)",
                    r"stream kernel [\d.]+ GB/s",
                    r"both [\d.]+ GB/s \(\d+%\)",
                    r"forward \+ backward, cold caches [\d.]+ s"):
        assert re.search(pattern, out), f"missing {pattern!r} in:\n{out}"
