"""`refsnn bench`: refsnn's backends timed against SpikingJelly's torch backend
(and conv2d/linear against torch), interleaved in one process.

- `cases`: the catalog of named cases and their candidates;
- `runner`: interleaved timing, medians, peak memory, bandwidth, progress bar;
- `report`: the goals, JSON / Markdown / PNG output;
- `cli`: the command (`main(argv) -> int`).
"""
from .cases import BenchError, Candidate, Case, Environment, catalog, select
from .runner import Row, measure_bandwidth, run_cases, time_case

__all__ = ["BenchError", "Candidate", "Case", "Environment", "catalog", "select", "Row",
           "measure_bandwidth", "run_cases", "time_case"]
