"""Golden cases: JSON-described components with `.npy` inputs and refsnn's
outputs, to test another implementation (CUDA, Triton, FPGA, a compiler,
another framework) against refsnn. The format is specified in
docs/golden-format.md; this package writes, reads, validates and checks it.

A *case* is one component (`neuron`, `surrogate` or `network`) with a JSON
`config`, a dtype and named arrays, each with a *role*:
- `input` (`x_seq: [T, N, *]`, `v_init: [N, *]`, `w_init`, surrogate `x: [K]`),
  `parameter` (`param.<name>`), `upstream` (the loss weights `grad_spike_seq`,
  `grad_v_seq`, `grad_y`): what an implementation receives;
- `output` (`spike_seq`, `v_seq`, `h_seq`, `y`) and `gradient` (`grad_x_seq`,
  `grad_v_init`, `grad_param.<name>`, ...): what it must reproduce. The
  gradients are those of `loss = sum(spike_seq * grad_spike_seq) +
  sum(v_seq * grad_v_seq)` (`sum(y * grad_y)` for a surrogate).

Calling convention of an implementation under test:
`impl(manifest: dict, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]`;
`arrays` holds the input, parameter and upstream arrays; the result holds
outputs and gradients by name (`spike_seq`, or `y` for a surrogate, is
required; whatever else is returned is checked). Raise NotImplementedError to
decline a case.

Entry points: `default_cases()`, `reference_outputs(case)`,
`export_bundle(directory)`, `read_bundle(directory)`, `check_bundle(directory,
impl)`, `compare_outputs(...)`, `assert_outputs_match(...)`; the refsnn
implementation of the calling convention is `reference_impl`.

Modules, one concept each:
- `schema`: the format's vocabulary (schema, roles, conventions) and the
  validation of a manifest; `BundleError`;
- `configs`: refsnn modules built from a case's JSON config;
- `catalog`: `Case`, how each kind of case draws its inputs, `default_cases`;
- `outputs`: a case's outputs and gradients in refsnn (`reference_impl`) and
  in SpikingJelly;
- `compare`: an implementation's outputs against the expected ones;
- `bundle`: writing a bundle to disk and reading it back validated;
- `check`: loading `--impl` and replaying a bundle's cases through it.
"""
from .bundle import BundleCase, VerificationError, export_bundle, read_bundle, read_case
from .catalog import (Case, default_cases, network_case, neuron_case, output_entries,
                      surrogate_case, threshold_inputs)
from .check import CaseResult, ImplError, check_bundle, check_case, load_impl
from .compare import assert_outputs_match, compare_outputs
from .configs import (network_from_config, neuron_from_config, neuron_state_names,
                      surrogate_from_config)
from .outputs import (reference_impl, reference_outputs, spikingjelly_outputs,
                      spikingjelly_version)
from .schema import (COMPONENTS, CONVENTIONS, DTYPES, ROLES, SCHEMA, SCHEMA_VERSION,
                     BundleError)

__all__ = [
    "SCHEMA", "SCHEMA_VERSION", "CONVENTIONS", "Case", "BundleError", "CaseResult",
    "surrogate_from_config", "neuron_from_config", "network_from_config",
    "neuron_state_names", "threshold_inputs", "neuron_case", "surrogate_case",
    "network_case", "default_cases", "reference_outputs", "reference_impl",
    "spikingjelly_outputs", "output_entries", "compare_outputs", "assert_outputs_match",
    "export_bundle", "read_case", "read_bundle", "load_impl", "check_case", "check_bundle",
    "COMPONENTS", "DTYPES", "ROLES", "BundleCase", "VerificationError", "ImplError",
    "spikingjelly_version",
]
