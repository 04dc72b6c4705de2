"""refsnn: a readable NumPy reference engine for spiking neural networks."""
from .autograd import (Tensor, Function, no_grad, enable_grad, is_grad_enabled, tensor,
                       as_tensor, zeros, ones, zeros_like, ones_like, full, rand, randn,
                       manual_seed, stack, cat, where, maximum, minimum)

__version__ = "0.1.0"
