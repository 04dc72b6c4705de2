"""Conformance of refsnn with SpikingJelly 0.0.0.0.14 and PyTorch.

- `catalog`: the declarative table of components (one `Record` each) and the
  `Case`s they expand into; torch-free;
- `runner`: runs a case in both frameworks and compares (`run_case`);
- `report`: text table, Markdown and JSON summaries;
- `cli`: the `refsnn conformance` command.

`import refsnn.conformance` does not import torch or SpikingJelly; the runner
imports them when a case runs.
"""
from .catalog import RECORDS, Case, Record, all_cases, expand, record

__all__ = ["RECORDS", "Case", "Record", "all_cases", "expand", "record"]
