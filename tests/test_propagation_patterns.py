"""The propagation-pattern tutorial (examples/propagation_patterns.py) and the
step-by-step vs layer-by-layer equivalence of a conv + BN + LIF network."""
import numpy as np
import pytest

import refsnn as rs
from refsnn import functional, layers, neurons
from refsnn.containers import SeqToANNContainer, Sequential
from examples_loader import load_example


@pytest.fixture(scope="module")
def example():
    return load_example("propagation_patterns")


# --- the tutorial -------------------------------------------------------------------
def test_example_if_node_loop_equals_multi_step_container(example):
    loop, container = example.single_step_vs_multi_step(T=8, neuron_num=4, seed=0)
    assert loop.shape == (8, 4) and 0 < loop.mean() < 1
    np.testing.assert_array_equal(loop, container)


def test_example_seq_to_ann_container_shape(example):
    assert example.seq_to_ann_shape(16, 8) == (16, 8, 3)


def test_example_wrapping_layers_adds_a_key_level(example):
    keys_step, keys_layer = example.wrapped_layer_keys()
    assert keys_step == ["0.weight", "1.weight", "1.bias", "1.running_mean",
                         "1.running_var", "1.num_batches_tracked"]
    assert keys_layer == ["0.0.weight", "0.1.weight", "0.1.bias", "0.1.running_mean",
                          "0.1.running_var", "0.1.num_batches_tracked"]


def test_example_wrapped_forward_nets_share_keys_and_eval_outputs(example):
    keys, spikes = example.wrapped_forward_nets(T=4, N=2, seed=0)
    assert keys["NetStepByStep"] == ["conv.weight", "bn.weight", "bn.bias", "bn.running_mean",
                                     "bn.running_var", "bn.num_batches_tracked"]
    assert len(set(map(tuple, keys.values()))) == 1
    reference = spikes["NetStepByStep"]
    assert reference.shape == (4, 2, 16, 8, 8)
    for s in spikes.values():
        np.testing.assert_array_equal(s, reference)


def test_example_main_prints_every_claim(example, capsys):
    example.main()
    out = capsys.readouterr().out
    assert "multi step if_node output spikes" in out
    assert "(16, 8, 3)" in out and "0.0.weight" in out
    assert "all claims of the propagation-pattern tutorial hold" in out


# --- conv + BN + LIF: step by step vs layer by layer --------------------------------
T, N, C_IN, C_OUT, H = 4, 3, 2, 4, 5


def _twin_nets(seed=0):
    """A step-by-step Sequential(conv, bn, LIF) and its layer-by-layer twin
    Sequential(SeqToANNContainer(conv, bn), LIF in step mode 'm') with the same
    weights and non-trivial BN statistics."""
    rs.manual_seed(seed)
    step = Sequential(layers.Conv2d(C_IN, C_OUT, 3, padding=1, bias=False),
                      layers.BatchNorm2d(C_OUT), neurons.LIFNode(tau=2.0))
    layer = Sequential(SeqToANNContainer(layers.Conv2d(C_IN, C_OUT, 3, padding=1, bias=False),
                                         layers.BatchNorm2d(C_OUT)),
                       neurons.LIFNode(tau=2.0, step_mode="m"))
    state = step.state_dict()
    g = np.random.default_rng(seed)
    state["1.weight"] = g.uniform(0.5, 1.5, C_OUT).astype(np.float32)
    state["1.bias"] = g.uniform(0.0, 0.5, C_OUT).astype(np.float32)
    state["1.running_mean"] = g.uniform(-0.2, 0.2, C_OUT).astype(np.float32)
    state["1.running_var"] = g.uniform(0.2, 0.6, C_OUT).astype(np.float32)
    step.load_state_dict(state)
    layer.load_state_dict({("0." + k if k.startswith(("0.", "1.")) else k): v
                           for k, v in state.items()})
    return step, layer


def _x_seq(seed=1):
    return np.random.default_rng(seed).random((T, N, C_IN, H, H)).astype(np.float32) * 2


def test_step_by_step_equals_layer_by_layer_in_eval_mode_values_and_input_grads():
    """BN in eval mode (running statistics) makes the two patterns compute the
    same function. The LIF nodes stay in training mode: `activation_based`
    IF/LIF return graph-free outputs in eval mode (reference §7.4), so there
    would be no input gradient to compare."""
    step, layer = _twin_nets()
    step.eval()
    layer.eval()
    step[2].train()
    layer[1].train()
    x, upstream = _x_seq(), np.random.default_rng(2).normal(size=(T, N, C_OUT, H, H))

    x_step = rs.tensor(x, requires_grad=True)
    y_step = rs.stack([step(x_step[t]) for t in range(T)])
    (y_step * rs.tensor(upstream.astype(np.float32))).sum().backward()

    x_layer = rs.tensor(x, requires_grad=True)
    y_layer = layer(x_layer)
    (y_layer * rs.tensor(upstream.astype(np.float32))).sum().backward()

    assert y_layer.shape == (T, N, C_OUT, H, H) and 0 < y_step.data.mean() < 1
    np.testing.assert_array_equal(y_layer.data, y_step.data)
    assert np.abs(x_step.grad.data).max() > 0
    np.testing.assert_allclose(x_layer.grad.data, x_step.grad.data, rtol=1e-5, atol=1e-6)


def test_step_by_step_equals_layer_by_layer_in_full_eval_mode():
    step, layer = _twin_nets()
    step.eval()
    layer.eval()
    x = rs.tensor(_x_seq(seed=3))
    y_step = rs.stack([step(x[t]) for t in range(T)])
    y_layer = layer(x)
    assert not y_layer.requires_grad and 0 < y_step.data.mean() < 1
    np.testing.assert_array_equal(y_layer.data, y_step.data)


def test_train_mode_batch_norm_statistics_differ_between_patterns():
    """SpikingJelly issues #157/#619: in training, BN in the step-by-step loop
    normalises each step over N, the folded layer-by-layer BN over T*N; the
    running statistics and num_batches_tracked differ accordingly."""
    step, layer = _twin_nets()
    conv, bn_step = step[0], step[1]
    bn_layer = layer[0][1]
    rm0 = bn_step.running_mean.data.astype(np.float64)
    rv0 = bn_step.running_var.data.astype(np.float64)
    x = rs.tensor(_x_seq())
    with rs.no_grad():
        conv_out = np.stack([conv(x[t]).data for t in range(T)]).astype(np.float64)
        y_step = np.stack([bn_step(conv(x[t])).data for t in range(T)])
        y_layer = functional.seq_to_ann_forward(x, layer[0]).data

    # per-step normalisation: each step's channel means equal the BN bias;
    # the folded normalisation only does so over all T steps together
    bias = bn_step.bias.data
    step_means = y_step.mean(axis=(1, 3, 4))
    np.testing.assert_allclose(step_means, np.broadcast_to(bias, step_means.shape), atol=1e-5)
    np.testing.assert_allclose(y_layer.mean(axis=(0, 1, 3, 4)), bias, atol=1e-5)
    assert np.abs(y_layer.mean(axis=(1, 3, 4)) - bias).max() > 1e-2
    assert np.abs(y_layer - y_step).max() > 1e-2

    assert int(bn_step.num_batches_tracked.data) == T
    assert int(bn_layer.num_batches_tracked.data) == 1

    # independent running statistics (momentum 0.1, unbiased variance)
    momentum, count = 0.1, N * H * H
    rm, rv = rm0.copy(), rv0.copy()
    for t in range(T):
        mean = conv_out[t].mean(axis=(0, 2, 3))
        var = conv_out[t].var(axis=(0, 2, 3)) * count / (count - 1)
        rm, rv = (1 - momentum) * rm + momentum * mean, (1 - momentum) * rv + momentum * var
    all_count = T * count
    mean_all = conv_out.mean(axis=(0, 1, 3, 4))
    var_all = conv_out.var(axis=(0, 1, 3, 4)) * all_count / (all_count - 1)
    np.testing.assert_allclose(bn_step.running_mean.data, rm, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(bn_step.running_var.data, rv, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(bn_layer.running_mean.data,
                               (1 - momentum) * rm0 + momentum * mean_all, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(bn_layer.running_var.data,
                               (1 - momentum) * rv0 + momentum * var_all, rtol=1e-4, atol=1e-6)
    assert np.abs(bn_step.running_mean.data - bn_layer.running_mean.data).max() > 1e-3
