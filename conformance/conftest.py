"""Conformance suite setup: the suite needs torch and SpikingJelly (CI installs
both; without them every module here is skipped by `importorskip`)."""
try:
    import torch
except ImportError:  # the test modules skip themselves
    torch = None

if torch is not None:
    # the cases use tiny tensors: intra-op threads cost more than they give
    torch.set_num_threads(1)
