"""SpikingJelly's "Propagation Pattern" tutorial, end to end in refsnn.

1. Single-step vs multi-step: an IF neuron run step by step gives the same
   spikes as the same neuron wrapped in `MultiStepContainer`.
2. Layer-by-layer: `SeqToANNContainer(Linear(4, 2), Linear(2, 3))` maps
   `[T=16, N=8, 4]` to `[16, 8, 3]` by folding time into the batch.
3. Wrapping layers changes `state_dict` keys (`0.weight` becomes `0.0.weight`).
4. Wrapping the forward instead (`seq_to_ann_forward`, `multi_step_forward`)
   keeps the keys: `NetStepByStep`, `NetLayerByLayer1` and `NetLayerByLayer2`
   share keys, load each other's weights and, in eval mode, give the same
   spikes. (In train mode batch norm normalises over N per step in the
   step-by-step net and over T*N in the layer-by-layer nets, so they differ.)

Run: `python examples/propagation_patterns.py`. Every claim is asserted.
"""
from __future__ import annotations

import numpy as np

import refsnn as rs
from refsnn import functional, layers, neurons
from refsnn.containers import MultiStepContainer, SeqToANNContainer, Sequential
from refsnn.module import Module


# --- 1. single-step and multi-step ---------------------------------------------------
def single_step_vs_multi_step(T: int = 8, neuron_num: int = 4, seed: int = 0):
    """Spikes `[T, neuron_num]` of an IFNode looped over time and of the same
    node inside `MultiStepContainer`; returns both."""
    rs.manual_seed(seed)
    x = rs.rand(T, neuron_num) * 2
    if_node = neurons.IFNode()
    step_by_step = []
    for t in range(T):
        step_by_step.append(if_node(x[t]))
        print(f"if_node output spikes at t={t}", step_by_step[-1].data)
    functional.reset_net(if_node)

    ms_if_node = MultiStepContainer(if_node)
    multi_step = ms_if_node(x)
    print("multi step if_node output spikes\n", multi_step.data)
    functional.reset_net(ms_if_node)

    step_by_step = np.stack([s.data for s in step_by_step])
    assert np.array_equal(step_by_step, multi_step.data), "single-step loop != MultiStepContainer"
    return step_by_step, multi_step.data


# --- 2. layer-by-layer for stateless layers ---------------------------------------
def seq_to_ann_shape(T: int = 16, batch_size: int = 8):
    """Output shape of `SeqToANNContainer(Linear(4, 2), Linear(2, 3))` on `[T, N, 4]`."""
    with rs.no_grad():
        x = rs.rand(T, batch_size, 4)
        fc = SeqToANNContainer(layers.Linear(4, 2), layers.Linear(2, 3))
        shape = tuple(fc(x).shape)
    print(shape)
    assert shape == (T, batch_size, 3)
    return shape


# --- 3. wrapping layers changes state_dict keys ---------------------------------
STEP_BY_STEP_KEYS = ["0.weight", "1.weight", "1.bias", "1.running_mean", "1.running_var",
                     "1.num_batches_tracked"]


def wrapped_layer_keys():
    """state_dict keys of the tutorial's step-by-step and layer-by-layer Sequentials."""
    net_step_by_step = Sequential(
        layers.Conv2d(3, 16, kernel_size=3, padding=1, bias=False),
        layers.BatchNorm2d(16),
        neurons.IFNode())
    net_layer_by_layer = Sequential(
        SeqToANNContainer(
            layers.Conv2d(3, 16, kernel_size=3, padding=1, bias=False),
            layers.BatchNorm2d(16)),
        neurons.MultiStepIFNode())
    keys_step = list(net_step_by_step.state_dict())
    keys_layer = list(net_layer_by_layer.state_dict())
    print("net_step_by_step.state_dict:", keys_step)
    print("net_layer_by_layer.state_dict:", keys_layer)
    assert keys_step == STEP_BY_STEP_KEYS
    assert keys_layer == ["0.0.weight"] + ["0.1." + k[2:] for k in STEP_BY_STEP_KEYS[1:]]
    return keys_step, keys_layer


# --- 4. wrapping the forward keeps the keys -------------------------------------
class NetStepByStep(Module):
    """conv -> bn -> IF, one step per call: `x: [N, 3, H, W]` -> `[N, 16, H, W]`."""

    def __init__(self):
        super().__init__()
        self.conv = layers.Conv2d(3, 16, kernel_size=3, padding=1, bias=False)
        self.bn = layers.BatchNorm2d(16)
        self.sn = neurons.IFNode()

    def forward(self, x):
        return self.sn(self.bn(self.conv(x)))


class NetLayerByLayer1(NetStepByStep):
    """The same modules, layer by layer: `x_seq: [T, N, 3, H, W]` -> `[T, N, 16, H, W]`."""

    def forward(self, x_seq):
        x_seq = functional.seq_to_ann_forward(x_seq, [self.conv, self.bn])
        return functional.multi_step_forward(x_seq, self.sn)


class NetLayerByLayer2(NetStepByStep):
    """Layer by layer with a multi-step neuron in place of the single-step one."""

    def __init__(self):
        super().__init__()
        del self.sn
        self.sn = neurons.MultiStepIFNode()

    def forward(self, x_seq):
        x_seq = functional.seq_to_ann_forward(x_seq, [self.conv, self.bn])
        return self.sn(x_seq)


def run_step_by_step(net: Module, x_seq):
    """Loop a single-step net over `x_seq: [T, *]` and stack the outputs."""
    return rs.stack([net(x_seq[t]) for t in range(x_seq.shape[0])])


def wrapped_forward_nets(T: int = 4, N: int = 2, seed: int = 0):
    """Keys of the three nets, and their eval-mode spikes on one input after
    loading NetStepByStep's weights (with non-trivial BN statistics) into the
    other two. Returns `(keys, {name: spikes [T, N, 16, 8, 8]})`."""
    rs.manual_seed(seed)
    nets = {"NetStepByStep": NetStepByStep(), "NetLayerByLayer1": NetLayerByLayer1(),
            "NetLayerByLayer2": NetLayerByLayer2()}
    keys = {name: list(net.state_dict()) for name, net in nets.items()}
    for name, k in keys.items():
        print(f"{name}.state_dict:", k)
    assert keys["NetStepByStep"] == keys["NetLayerByLayer1"] == keys["NetLayerByLayer2"]

    source = nets["NetStepByStep"].state_dict()
    g = np.random.default_rng(seed)
    source["bn.weight"] = g.uniform(0.5, 1.5, 16).astype(np.float32)
    source["bn.bias"] = g.uniform(-0.2, 0.2, 16).astype(np.float32)
    source["bn.running_mean"] = g.uniform(-0.3, 0.3, 16).astype(np.float32)
    source["bn.running_var"] = g.uniform(0.1, 0.5, 16).astype(np.float32)
    for net in nets.values():
        net.load_state_dict(source)
        net.eval()

    x_seq = rs.rand(T, N, 3, 8, 8)
    with rs.no_grad():
        spikes = {"NetStepByStep": run_step_by_step(nets["NetStepByStep"], x_seq).data,
                  "NetLayerByLayer1": nets["NetLayerByLayer1"](x_seq).data,
                  "NetLayerByLayer2": nets["NetLayerByLayer2"](x_seq).data}
    for name, s in spikes.items():
        print(f"{name}: output {s.shape}, firing rate {s.mean():.4f}")
    reference = spikes["NetStepByStep"]
    assert 0 < reference.mean() < 1, "the example input should make some neurons fire"
    for name, s in spikes.items():
        assert np.array_equal(s, reference), f"{name} differs from NetStepByStep in eval mode"
    return keys, spikes


def main() -> None:
    print("== single-step vs multi-step ==")
    single_step_vs_multi_step()
    print("\n== SeqToANNContainer ==")
    seq_to_ann_shape()
    print("\n== wrapping layers changes the keys ==")
    wrapped_layer_keys()
    print("\n== wrapping the forward keeps the keys ==")
    wrapped_forward_nets()
    print("\nall claims of the propagation-pattern tutorial hold")


if __name__ == "__main__":
    main()
