"""Running one neuron module, refsnn's or SpikingJelly's, over a time-major
sequence the same way in both frameworks (used by the conformance drivers and
by `refsnn.golden`). Framework-free: the caller passes its `stack`."""
from __future__ import annotations

__all__ = ["run_neuron"]


def run_neuron(neuron, x_seq, multi_step: bool, stack) -> tuple:
    """`(spike_seq, v_seq)`, both `[T, N, *]`, of `neuron` on `x_seq: [T, N, *]`:
    one multi-step call (the neuron records `v_seq`), or a loop over t
    whose spikes and potentials `stack` (`refsnn.stack`, `torch.stack`) joins."""
    if multi_step:
        return neuron(x_seq), neuron.v_seq
    spikes, potentials = [], []
    for t in range(x_seq.shape[0]):
        spikes.append(neuron(x_seq[t]))
        potentials.append(neuron.v)
    return stack(spikes), stack(potentials)
