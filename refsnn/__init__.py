"""refsnn: a readable NumPy reference engine for spiking neural networks.

`import refsnn as rs` gives the tensor API (`rs.tensor`, `rs.zeros`, `rs.no_grad`, ...)
and the submodules `rs.layers`, `rs.neurons`, `rs.surrogate`, `rs.functional`,
`rs.containers`, `rs.optim`, `rs.testing`. Neither torch nor pyopencl is imported here.
"""
__version__ = "0.1.0"

from .autograd import (Tensor, Function, no_grad, enable_grad, is_grad_enabled, tensor,
                       as_tensor, zeros, ones, zeros_like, ones_like, full, rand, randn,
                       manual_seed, stack, cat, split, where, maximum, minimum)
from . import (module, ops, layers, surrogate, neurons, containers, functional, optim,
               testing, interop, models, checkpoints)
from .module import Module, Parameter, MemoryModule
