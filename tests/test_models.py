"""refsnn.models: SpikingJelly's builder names and arguments, torchvision's
state_dict layout, and the step-by-step and layer-by-layer versions of one
network computing the same function from the same weights.

Inputs are tiny (T=2, N=2, 32x32); resnet50 is built only for its keys.
Comparisons with SpikingJelly itself are in conformance/test_models_conformance.py.
"""
import numpy as np
import pytest

import refsnn as rs
from refsnn import functional, layers, models, neurons, surrogate
from refsnn.models import sew_resnet
from refsnn.neurons import BaseNode

T, N, HW = 2, 2, 32
BN = ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]


# ----------------------------------------------------------------------------
# torchvision's layouts, written out from torchvision's model definitions
# ----------------------------------------------------------------------------
def torchvision_resnet_layout(blocks, bottleneck: bool, num_classes: int = 1000):
    """[(key, shape)] of torchvision's ResNet with `blocks` per stage."""
    def conv(prefix, c_out, c_in, k):
        return [(f"{prefix}.weight", (c_out, c_in, k, k))]

    def bn(prefix, c):
        return [(f"{prefix}.{name}", () if name == "num_batches_tracked" else (c,))
                for name in BN]

    layout = conv("conv1", 64, 3, 7) + bn("bn1", 64)
    expansion = 4 if bottleneck else 1
    inplanes = 64
    for stage, (planes, count) in enumerate(zip((64, 128, 256, 512), blocks), start=1):
        for b in range(count):
            p = f"layer{stage}.{b}"
            if bottleneck:
                layout += conv(f"{p}.conv1", planes, inplanes, 1) + bn(f"{p}.bn1", planes)
                layout += conv(f"{p}.conv2", planes, planes, 3) + bn(f"{p}.bn2", planes)
                layout += (conv(f"{p}.conv3", planes * 4, planes, 1)
                           + bn(f"{p}.bn3", planes * 4))
            else:
                layout += conv(f"{p}.conv1", planes, inplanes, 3) + bn(f"{p}.bn1", planes)
                layout += conv(f"{p}.conv2", planes, planes, 3) + bn(f"{p}.bn2", planes)
            if b == 0 and (stage > 1 or inplanes != planes * expansion):
                layout += (conv(f"{p}.downsample.0", planes * expansion, inplanes, 1)
                           + bn(f"{p}.downsample.1", planes * expansion))
            inplanes = planes * expansion
    return layout + [("fc.weight", (num_classes, 512 * expansion)), ("fc.bias", (num_classes,))]


def torchvision_vgg11_bn_layout(num_classes: int = 1000):
    """[(key, shape)] of torchvision's vgg11_bn: conv, bn, relu per layer."""
    convs = [(0, 64, 3), (4, 128, 64), (8, 256, 128), (11, 256, 256), (15, 512, 256),
             (18, 512, 512), (22, 512, 512), (25, 512, 512)]
    layout = []
    for i, c_out, c_in in convs:
        layout += [(f"features.{i}.weight", (c_out, c_in, 3, 3)), (f"features.{i}.bias", (c_out,))]
        layout += [(f"features.{i + 1}.{name}", () if name == "num_batches_tracked" else (c_out,))
                   for name in BN]
    for i, (n_out, n_in) in zip((0, 3, 6), ((4096, 25088), (4096, 4096), (num_classes, 4096))):
        layout += [(f"classifier.{i}.weight", (n_out, n_in)), (f"classifier.{i}.bias", (n_out,))]
    return layout


def layout(model):
    return [(k, tuple(v.shape)) for k, v in model.state_dict().items()]


# ----------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------
def randomize_batch_norms(state, seed: int):
    """Random running statistics and affine parameters, so that eval mode
    (running statistics) is not the identity and neurons fire."""
    g = np.random.default_rng(seed)
    state = dict(state)
    for key, value in state.items():
        if key.endswith("running_mean"):
            state[key] = g.uniform(-0.2, 0.2, value.shape).astype(value.dtype)
        elif key.endswith("running_var"):
            state[key] = g.uniform(0.5, 1.5, value.shape).astype(value.dtype)
        elif key.endswith("bias") and value.ndim == 1 and not key.startswith("fc"):
            state[key] = g.uniform(0.0, 0.4, value.shape).astype(value.dtype)
    return state


def twins(single_step_builder, multi_step_builder, seed=0, dtype=np.float32, **kwargs):
    """A step-by-step model and its layer-by-layer twin, same random weights, eval mode."""
    rs.manual_seed(seed)
    step = single_step_builder(**kwargs.get("single", {}), **kwargs.get("common", {}))
    layer = multi_step_builder(T=T, **kwargs.get("multi", {}), **kwargs.get("common", {}))
    step.to(dtype)
    layer.to(dtype)
    step.load_state_dict(randomize_batch_norms(step.state_dict(), seed))
    layer.load_state_dict(step.state_dict())
    return step.eval(), layer.eval()


def run_step_by_step(model, x_seq):
    """Loop a step-by-step model over time: `[T, N, ...] -> [T, N, classes]`."""
    functional.reset_net(model)
    return rs.stack([model(x_seq[t]) for t in range(x_seq.shape[0])])


def assert_same_spikes_downstream(y_layer, y_step):
    """Float32 outputs of the two patterns: the classifier runs on [T*N, ...]
    in one and [N, ...] in the other, so its sums may round differently (a few
    ulp); one spike more or less in the last stage would move an output by
    about a weight (~1e-2), far above this tolerance."""
    np.testing.assert_allclose(y_layer, y_step, rtol=0, atol=1e-5 * np.abs(y_step).max())


def images(seed=1, dtype=np.float32, shape=(T, N, 3, HW, HW)):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


@pytest.fixture(scope="module")
def resnet18_if():
    return twins(models.spiking_resnet18, models.multi_step_spiking_resnet18,
                 single={"single_step_neuron": neurons.IFNode},
                 multi={"multi_step_neuron": neurons.MultiStepIFNode})


# ----------------------------------------------------------------------------
# keys: torchvision's layout in both patterns
# ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def resnet50_layer_by_layer():
    rs.manual_seed(9)
    return models.multi_step_spiking_resnet50(multi_step_neuron=neurons.MultiStepIFNode)


def test_resnet50_keys_and_shapes_equal_torchvision_in_both_patterns(resnet50_layer_by_layer):
    expected = torchvision_resnet_layout([3, 4, 6, 3], True)
    assert layout(resnet50_layer_by_layer) == expected
    assert layout(models.spiking_resnet50(single_step_neuron=neurons.IFNode)) == expected


def test_resnet18_keys_and_shapes_equal_torchvision_in_both_patterns(resnet18_if):
    step, layer = resnet18_if
    expected = torchvision_resnet_layout([2, 2, 2, 2], False)
    assert layout(step) == expected
    assert layout(layer) == expected


def test_builders_pass_model_arguments_to_the_model_and_the_rest_to_neurons():
    model = models.multi_step_spiking_resnet18(
        T=3, multi_step_neuron=neurons.MultiStepLIFNode, num_classes=10,
        zero_init_residual=True, tau=3.0, v_threshold=0.5, surrogate_function=surrogate.ATan())
    assert model.T == 3 and model.fc.weight.shape == (10, 512)
    nodes = [m for m in model.modules() if isinstance(m, BaseNode)]
    assert len(nodes) == 1 + 2 * 8
    assert all(type(m) is neurons.MultiStepLIFNode and m.tau == 3.0 and m.v_threshold == 0.5
               and type(m.surrogate_function) is surrogate.ATan for m in nodes)
    state = model.state_dict()
    # zero_init_residual zeroes the BN closing each residual branch, and only it
    for name, value in state.items():
        if name.endswith(".bn2.weight"):
            assert not value.any(), name
        elif name.endswith("bn1.weight"):
            assert (value == 1).all(), name
    # SpikingJelly's init: N(0, 2 / (C_out * k * k)) for every convolution
    for name in ("conv1", "layer3.0.conv2", "layer4.0.downsample.0"):
        w = state[name + ".weight"].astype(np.float64)
        std = np.sqrt(2.0 / (w.shape[0] * w.shape[2] * w.shape[3]))
        assert abs(w.mean()) < 0.05 * std and abs(w.std() / std - 1) < 0.05, name


# ----------------------------------------------------------------------------
# step by step == layer by layer
# ----------------------------------------------------------------------------
def test_resnet18_step_by_step_equals_layer_by_layer_in_eval(resnet18_if):
    step, layer = resnet18_if
    x = rs.tensor(images())
    y_step = run_step_by_step(step, x)
    functional.reset_net(layer)
    y_layer = layer(x)
    assert y_layer.shape == (T, N, 1000)
    # spikes reach the classifier, and differ from step to step
    assert np.abs(y_layer.data - layer.fc.bias.data).max() > 1e-2
    assert np.abs(y_layer.data[0] - y_layer.data[1]).max() > 1e-2
    assert_same_spikes_downstream(y_layer.data, y_step.data)


def test_static_image_is_repeated_over_time(resnet18_if):
    """Layer by layer, `x: [N, C, H, W]` goes through conv1/bn1 once and is
    repeated T times: the same as feeding the image at every step."""
    step, layer = resnet18_if
    x = images(shape=(N, 3, HW, HW))
    functional.reset_net(layer)
    y_static = layer(rs.tensor(x))
    functional.reset_net(layer)
    y_repeated = layer(rs.tensor(np.stack([x] * T)))
    y_step = run_step_by_step(step, rs.tensor(np.stack([x] * T)))
    assert y_static.shape == (T, N, 1000)
    np.testing.assert_array_equal(y_static.data, y_repeated.data)
    assert_same_spikes_downstream(y_static.data, y_step.data)


def test_sew_resnet18_patterns_agree_in_values_and_gradients():
    """SEW 'IAND' blocks with parametric LIF neurons (a parameter per neuron,
    graph kept in eval): same outputs and the same gradients for the input, a
    convolution and the neurons' parameters."""
    step, layer = twins(
        models.sew_resnet18, models.multi_step_sew_resnet18, seed=4, dtype=np.float64,
        common={"cnf": "IAND", "init_tau": 1.5, "v_threshold": 0.5, "detach_reset": True},
        single={"single_step_neuron": neurons.ParametricLIFNode},
        multi={"multi_step_neuron": neurons.MultiStepParametricLIFNode})
    assert layout(step) == layout(layer)
    assert "layer2.0.downsample_sn.w" in step.state_dict()
    x = images(seed=5, dtype=np.float64, shape=(T, 1, 3, HW, HW))
    upstream = rs.tensor(np.random.default_rng(6).standard_normal((T, 1, 1000)))
    grads = []
    for model, run in ((step, run_step_by_step), (layer, lambda m, x: m(x))):
        functional.reset_net(model)
        model.zero_grad()
        x_t = rs.tensor(x, requires_grad=True)
        y = run(model, x_t)
        (y * upstream).sum().backward()
        grads.append((y.data, x_t.grad.data, model.layer1[0].conv1.weight.grad.data,
                      model.layer4[1].sn1.w.grad.data))
    (y_s, *g_s), (y_l, *g_l) = grads
    assert np.abs(y_l - step.fc.bias.data).max() > 1e-2
    np.testing.assert_allclose(y_l, y_s, rtol=1e-12, atol=1e-12)
    for a, b in zip(g_l, g_s):
        assert np.abs(b).max() > 0
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12 * np.abs(b).max())


def test_vgg11_bn_keys_and_patterns():
    """torchvision's vgg11_bn layout in both patterns, and equal eval outputs
    (the classifier weights are scaled up so that spikes get through it)."""
    rs.manual_seed(7)
    step = models.spiking_vgg11_bn(single_step_neuron=neurons.IFNode, init_weights=False)
    layer = models.multi_step_spiking_vgg11_bn(T=T, multi_step_neuron=neurons.MultiStepIFNode,
                                               init_weights=False)
    assert layout(step) == layout(layer) == torchvision_vgg11_bn_layout()
    g = np.random.default_rng(7)
    for m in step.features:
        if isinstance(m, layers.BatchNorm2d):
            m.running_mean.data = g.uniform(-0.2, 0.2, m.num_features).astype(np.float32)
            m.bias.data = g.uniform(0.0, 0.4, m.num_features).astype(np.float32)
    for i in (0, 3):
        step.classifier[i].weight.data *= 20
    layer.load_state_dict(step.state_dict())
    step.eval()
    layer.eval()
    x = rs.tensor(images(seed=8, shape=(T, 1, 3, HW, HW)))
    y_layer = layer(x)
    y_step = run_step_by_step(step, x)
    assert y_layer.shape == (T, 1, 1000)
    assert np.abs(y_layer.data - step.classifier[6].bias.data).max() > 1e-3
    assert_same_spikes_downstream(y_layer.data, y_step.data)


# ----------------------------------------------------------------------------
# SEW connections
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("cnf, expected", [
    ("ADD", [0., 1., 1., 2.]), ("AND", [0., 0., 0., 1.]), ("IAND", [0., 0., 1., 0.])])
def test_sew_function_truth_tables(cnf, expected):
    identity = rs.tensor(np.array([0., 0., 1., 1.], np.float32))
    out = rs.tensor(np.array([0., 1., 0., 1.], np.float32))
    np.testing.assert_array_equal(sew_resnet.sew_function(identity, out, cnf).data, expected)


def test_sew_function_refuses_other_connections():
    with pytest.raises(NotImplementedError, match="cnf must be one of"):
        sew_resnet.sew_function(rs.zeros(2), rs.zeros(2), "OR")


# ----------------------------------------------------------------------------
# bad input
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("builder", [models.spiking_resnet18, models.multi_step_spiking_resnet34,
                                     models.sew_resnet18, models.multi_step_spiking_vgg11,
                                     models.spiking_vgg11_bn])
def test_pretrained_true_points_to_the_checkpoint_helpers(builder):
    with pytest.raises(NotImplementedError, match="does not download.*load_torch_state_dict"):
        builder(pretrained=True)


def test_neuron_argument_is_required_and_checked():
    with pytest.raises(TypeError, match="single_step_neuron is required"):
        models.spiking_resnet18()
    with pytest.raises(TypeError, match="multi_step_neuron is required"):
        models.multi_step_spiking_vgg11(T=2)
    with pytest.raises(ValueError, match="step_mode='m'.*step-by-step"):
        models.spiking_resnet18(single_step_neuron=neurons.MultiStepIFNode)
    with pytest.raises(ValueError, match="step_mode='s'.*layer-by-layer.*pass step_mode='m'"):
        models.multi_step_sew_resnet18(T=2, cnf="ADD", multi_step_neuron=neurons.LIFNode)


def test_sew_connection_is_checked_at_construction():
    with pytest.raises(ValueError, match="cnf .* must be one of .*'ADD'.*got 'OR'"):
        models.sew_resnet18(cnf="OR", single_step_neuron=neurons.IFNode)
    with pytest.raises(ValueError, match="got None"):
        models.multi_step_sew_resnet18(T=2, multi_step_neuron=neurons.MultiStepIFNode)


def test_input_shapes_are_checked(resnet18_if):
    step, layer = resnet18_if
    with pytest.raises(ValueError, match=r"one time step x: \[N, C, H, W\].*multi_step_"):
        step(rs.tensor(images()))
    with pytest.raises(ValueError, match=r"expected x_seq: \[T, N, C, H, W\]"):
        layer(rs.tensor(images()[0, 0]))
    layer.T = None
    try:
        with pytest.raises(ValueError, match="T is None"):
            layer(rs.tensor(images()[0]))
    finally:
        layer.T = T


def test_weights_of_another_architecture_list_mismatched_keys_and_shapes(
        resnet18_if, resnet50_layer_by_layer):
    step, _ = resnet18_if
    before = step.state_dict()
    with pytest.raises(RuntimeError) as failure:
        step.load_state_dict(resnet50_layer_by_layer.state_dict())
    message = str(failure.value)
    assert "Unexpected key(s)" in message and "layer1.0.conv3.weight" in message
    assert "layer1.0.conv1.weight: checkpoint (64, 64, 1, 1) vs model (64, 64, 3, 3)" in message
    assert "fc.weight: checkpoint (1000, 2048) vs model (1000, 512)" in message
    for key, value in step.state_dict().items():       # nothing was written
        np.testing.assert_array_equal(value, before[key])
