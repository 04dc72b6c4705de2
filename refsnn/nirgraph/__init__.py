"""NIR (Neuromorphic Intermediate Representation) import and export.

- `from_nir(graph_or_path, dt, reset=None, integration='euler', step_mode='m')`:
  a refsnn `NIRNetwork` running any NIR graph made of Input, Output, Affine,
  Linear, Scale, Conv1d, Conv2d, Flatten, SumPool2d, AvgPool2d, Delay,
  Threshold, I, LI, IF, LIF, CubaLI, CubaLIF nodes (skip connections and
  recurrent edges included) under the discretisation rules of docs/nir.md.
- `to_nir(module, dt, input_shape=None)`: a refsnn (or, through
  `interop.from_torch`, SpikingJelly) network as a `nir.NIRGraph`, with the
  reset convention in each neuron node's `metadata`.

The `nir` package (and h5py) is imported only when these functions run:
`pip install 'refsnn[nir]'`.
"""
from .dynamics import (CurrentLeakyIntegrateAndFire, CurrentLeakyIntegrator, DelayNode,
                       IntegrateAndFire, Integrator, LeakyIntegrateAndFire, LeakyIntegrator,
                       ThresholdNode)
from .exporter import to_nir
from .graph import NIRNetwork
from .importer import SUPPORTED_TYPES, from_nir

__all__ = ["from_nir", "to_nir", "NIRNetwork", "SUPPORTED_TYPES", "Integrator",
           "LeakyIntegrator", "IntegrateAndFire", "LeakyIntegrateAndFire",
           "CurrentLeakyIntegrator", "CurrentLeakyIntegrateAndFire", "ThresholdNode",
           "DelayNode"]
