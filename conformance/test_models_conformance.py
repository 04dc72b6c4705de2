"""refsnn.models against SpikingJelly 0.0.0.0.14's `clock_driven.model`, run
for real with the same weights and inputs.

- Keys and shapes: SpikingJelly's model code is torchvision's ResNet/VGG code
  with neurons for ReLUs, and its neurons hold no parameters, so its
  `state_dict` layout is torchvision's; refsnn's must be the same in both
  propagation patterns. (torchvision cannot be installed beside torch 2.13.0;
  SpikingJelly imports it only for `load_state_dict_from_url`, which a stand-in
  module provides while SpikingJelly's model modules are imported.)
- Values and gradients: `multi_step_spiking_resnet18` (and SEW, and the
  step-by-step models looped over T) give the outputs and the input and
  parameter gradients of SpikingJelly's, in float64 to rounding and in
  float32 within a tolerance for the different summation order of
  convolutions. Inputs are tiny: T=2, N<=2, 32x32.
- With ReLU for the neuron, the models are torchvision's ANNs: ANN weights load
  and give the ANN's outputs.
"""
import inspect
import sys
import types

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("spikingjelly")

import refsnn as rs  # noqa: E402
from refsnn import checkpoints, functional, layers, models, neurons, surrogate  # noqa: E402

from spikingjelly.clock_driven import functional as sj_functional  # noqa: E402
from spikingjelly.clock_driven import neuron as sj_neuron  # noqa: E402
from spikingjelly.clock_driven import surrogate as sj_surrogate  # noqa: E402

T, N, HW = 2, 2, 32


def _import_spikingjelly_models():
    """SpikingJelly's model modules, importing a stand-in for the one
    torchvision function they use (downloads) when torchvision is missing."""
    stand_in = {}
    try:
        import torchvision  # noqa: F401
    except ImportError:
        def load_state_dict_from_url(*args, **kwargs):
            raise RuntimeError("no downloads in the conformance suite")

        for name in ("torchvision", "torchvision.models", "torchvision.models.utils"):
            stand_in[name] = types.ModuleType(name)
        stand_in["torchvision.models.utils"].load_state_dict_from_url = \
            load_state_dict_from_url
        sys.modules.update(stand_in)
    try:
        from spikingjelly.clock_driven.model import sew_resnet, spiking_resnet, spiking_vgg
    finally:
        for name in stand_in:
            sys.modules.pop(name, None)
    return {"spiking_resnet": spiking_resnet, "sew_resnet": sew_resnet,
            "spiking_vgg": spiking_vgg}


SJ = _import_spikingjelly_models()


def sj_builder(name: str):
    module = "sew_resnet" if "sew" in name else "spiking_vgg" if "vgg" in name \
        else "spiking_resnet"
    return getattr(SJ[module], name)


def layout_of(state):
    return [(k, tuple(v.shape)) for k, v in state.items()]


# ----------------------------------------------------------------------------
# names and signatures
# ----------------------------------------------------------------------------
def signature(fn):
    return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]


@pytest.mark.parametrize("module", sorted(SJ))
def test_builders_and_classes_have_spikingjellys_names_and_signatures(module):
    """Every builder and model class of SpikingJelly's module exists in
    refsnn.models with the same parameters, kinds and defaults."""
    from refsnn.models import sew_resnet, spiking_resnet, spiking_vgg
    ours = {"spiking_resnet": spiking_resnet, "sew_resnet": sew_resnet,
            "spiking_vgg": spiking_vgg}[module]
    names = [n for n in SJ[module].__all__ if not n.startswith("_")]
    assert len(names) >= 18
    for name in names:
        theirs, mine = getattr(SJ[module], name), getattr(ours, name)
        if inspect.isclass(theirs):
            theirs, mine = theirs.__init__, mine.__init__
        assert signature(mine) == signature(theirs), name
        if not name[0].isupper():
            assert getattr(models, name) is getattr(ours, name), name
    for block in ("BasicBlock", "MultiStepBasicBlock", "Bottleneck", "MultiStepBottleneck"):
        if hasattr(SJ[module], block):
            assert signature(getattr(ours, block).__init__) == \
                signature(getattr(SJ[module], block).__init__), block


# ----------------------------------------------------------------------------
# keys and shapes
# ----------------------------------------------------------------------------
def sj_layout(name: str, multi_step: bool, **kwargs):
    """SpikingJelly's model built on torch's meta device: keys and shapes
    without memory or initialisation cost."""
    with torch.device("meta"):
        if multi_step:
            model = sj_builder("multi_step_" + name)(
                multi_step_neuron=sj_neuron.MultiStepIFNode, **kwargs)
        else:
            model = sj_builder(name)(single_step_neuron=sj_neuron.IFNode, **kwargs)
    return layout_of(model.state_dict())


def rs_layout(name: str, multi_step: bool, **kwargs):
    if multi_step:
        model = getattr(models, "multi_step_" + name)(
            multi_step_neuron=neurons.MultiStepIFNode, **kwargs)
    else:
        model = getattr(models, name)(single_step_neuron=neurons.IFNode, **kwargs)
    return layout_of(model.state_dict())


@pytest.mark.parametrize("name, multi_step, kwargs", [
    ("spiking_resnet18", False, {}), ("spiking_resnet18", True, {}),
    ("spiking_resnet34", False, {}), ("spiking_resnet50", True, {}),
    ("spiking_resnext50_32x4d", True, {}), ("spiking_wide_resnet50_2", False, {}),
    ("sew_resnet18", False, {"cnf": "ADD"}), ("sew_resnet18", True, {"cnf": "IAND"}),
    ("spiking_vgg11", True, {"init_weights": False}),
    ("spiking_vgg11_bn", False, {"init_weights": False}),
], ids=lambda v: v if isinstance(v, str) else None)
def test_keys_and_shapes_equal_spikingjelly(name, multi_step, kwargs):
    """(tests/test_models.py shows that both patterns share keys for resnet18,
    resnet50, sew_resnet18 and vgg11_bn.)"""
    assert rs_layout(name, multi_step, **kwargs) == sj_layout(name, multi_step, **kwargs)


# ----------------------------------------------------------------------------
# values and gradients
# ----------------------------------------------------------------------------
def randomize_batch_norms(sj_model, seed: int) -> None:
    """Non-trivial running statistics and shifts, so that eval mode is not the
    identity and neurons fire in every stage."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in sj_model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2, generator=g)
                m.running_var.uniform_(0.5, 1.5, generator=g)
                m.bias.uniform_(0.0, 0.4, generator=g)


def twin(sj_model, ours, dtype, mode: str):
    """Load SpikingJelly's weights into refsnn's model; same dtype and mode."""
    sj_model.to(torch.float64 if dtype == np.float64 else torch.float32)
    ours.to(dtype)
    checkpoints.load_torch_state_dict(ours, sj_model.state_dict())
    getattr(sj_model, mode)()
    getattr(ours, mode)()
    return sj_model, ours


def run_both(sj_model, ours, x, step_by_step: bool, params=("conv1.weight",
                                                             "layer4.1.conv2.weight")):
    """Outputs, input gradient and parameter gradients of both models for
    `loss = sum(y * upstream)`; a step-by-step model is looped over T."""
    upstream = np.random.default_rng(11).standard_normal(
        (T, x.shape[-4], 1000)).astype(x.dtype)
    results = []
    for lib, model in (("sj", sj_model), ("rs", ours)):
        tensor = torch.tensor if lib == "sj" else rs.tensor
        (sj_functional if lib == "sj" else functional).reset_net(model)
        model.zero_grad()
        x_t = tensor(x, requires_grad=True)
        if step_by_step:
            stack = torch.stack if lib == "sj" else rs.stack
            y = stack([model(x_t[t]) for t in range(T)])
        else:
            y = model(x_t)
        (y * tensor(upstream)).sum().backward()
        named = dict(model.named_parameters())
        grads = [np.asarray(named[p].grad.detach().numpy() if lib == "sj"
                            else named[p].grad.data) for p in params]
        out = y.detach().numpy() if lib == "sj" else y.data
        results.append((out, (x_t.grad.numpy() if lib == "sj" else x_t.grad.data), grads))
    return results


def assert_match(results, dtype, name=""):
    (y_sj, gx_sj, gp_sj), (y_rs, gx_rs, gp_rs) = results
    rel = 1e-10 if dtype == np.float64 else 2e-5
    assert y_rs.shape == y_sj.shape
    np.testing.assert_allclose(y_rs, y_sj, rtol=0, atol=rel * np.abs(y_sj).max(),
                               err_msg=f"{name} outputs")
    for label, a, b in [("input grad", gx_rs, gx_sj)] + [
            (f"param grad {i}", a, b) for i, (a, b) in enumerate(zip(gp_rs, gp_sj))]:
        assert np.abs(b).max() > 0, f"{name} {label} is zero"
        np.testing.assert_allclose(a, b, rtol=0, atol=10 * rel * np.abs(b).max(),
                                   err_msg=f"{name} {label}")


def images(dtype, shape=(T, N, 3, HW, HW), seed=1):
    return (np.random.default_rng(seed).standard_normal(shape) * 1.5).astype(dtype)


NEURONS = {
    "IF-ATan-detach": (sj_neuron.MultiStepIFNode, neurons.MultiStepIFNode,
                       lambda sg: {"surrogate_function": sg.ATan(), "detach_reset": True}),
    "LIF": (sj_neuron.MultiStepLIFNode, neurons.MultiStepLIFNode,
            lambda sg: {"tau": 2.0, "v_threshold": 0.5}),
}


@pytest.mark.parametrize("neuron, dtype, mode, static", [
    ("IF-ATan-detach", np.float64, "train", False),
    ("IF-ATan-detach", np.float64, "eval", False),
    ("LIF", np.float32, "train", False),
    ("LIF", np.float64, "eval", True),
], ids=["IF-f64-train", "IF-f64-eval", "LIF-f32-train", "LIF-f64-eval-static-image"])
def test_multi_step_spiking_resnet18_matches_spikingjelly(neuron, dtype, mode, static):
    sj_cls, rs_cls, kwargs = NEURONS[neuron]
    torch.manual_seed(0)
    sj_model = SJ["spiking_resnet"].multi_step_spiking_resnet18(
        T=T, multi_step_neuron=sj_cls, **kwargs(sj_surrogate))
    randomize_batch_norms(sj_model, 0)
    ours = models.multi_step_spiking_resnet18(T=T, multi_step_neuron=rs_cls,
                                              **kwargs(surrogate))
    sj_model, ours = twin(sj_model, ours, dtype, mode)
    x = images(dtype, shape=(N, 3, HW, HW) if static else (T, N, 3, HW, HW))
    results = run_both(sj_model, ours, x, step_by_step=False)
    assert np.abs(results[0][0] - ours.fc.bias.data).max() > 1e-3    # spikes reach fc
    assert_match(results, dtype, neuron)


@pytest.mark.parametrize("cnf", ["ADD", "IAND"])
def test_multi_step_sew_resnet18_matches_spikingjelly(cnf):
    torch.manual_seed(1)
    sj_model = SJ["sew_resnet"].multi_step_sew_resnet18(
        T=T, cnf=cnf, multi_step_neuron=sj_neuron.MultiStepIFNode, detach_reset=True)
    randomize_batch_norms(sj_model, 1)
    ours = models.multi_step_sew_resnet18(T=T, cnf=cnf, multi_step_neuron=neurons.MultiStepIFNode,
                                          detach_reset=True)
    sj_model, ours = twin(sj_model, ours, np.float64, "train")
    assert_match(run_both(sj_model, ours, images(np.float64, (T, 1, 3, HW, HW)),
                          step_by_step=False), np.float64, cnf)


@pytest.mark.parametrize("name, extra", [("spiking_resnet18", {}),
                                         ("sew_resnet18", {"cnf": "ADD"})])
def test_step_by_step_models_match_spikingjelly(name, extra):
    """SpikingJelly's single-step models use `clock_driven` neurons; refsnn's
    single-step neurons are `activation_based`-style, whose eval mode has no
    graph, so gradients are compared in training mode."""
    torch.manual_seed(2)
    sj_model = sj_builder(name)(single_step_neuron=sj_neuron.LIFNode, tau=1.5,
                                surrogate_function=sj_surrogate.Sigmoid(alpha=3.0), **extra)
    randomize_batch_norms(sj_model, 2)
    ours = getattr(models, name)(single_step_neuron=neurons.LIFNode, tau=1.5,
                                 surrogate_function=surrogate.Sigmoid(alpha=3.0), **extra)
    sj_model, ours = twin(sj_model, ours, np.float64, "train")
    # N=2: in training, batch norm needs more than one value per channel
    # (layer4 is 1x1 at 32x32)
    assert_match(run_both(sj_model, ours, images(np.float64), step_by_step=True),
                 np.float64, name)
    sj_model.eval()
    ours.eval()
    with torch.no_grad():
        sj_functional.reset_net(sj_model)
        y_sj = torch.stack([sj_model(torch.tensor(x)) for x in images(np.float64)]).numpy()
    functional.reset_net(ours)
    y_rs = rs.stack([ours(rs.tensor(x)) for x in images(np.float64)]).data
    np.testing.assert_allclose(y_rs, y_sj, rtol=0, atol=1e-10 * np.abs(y_sj).max())


def test_with_relu_neurons_the_models_are_torchvisions_anns():
    """ANN weights (here: SpikingJelly's resnet18 with `nn.ReLU`, torchvision's
    ANN layout and forward) load into refsnn's models, which with `ReLU` for
    the neuron compute the ANN: step by step on one image, and layer by layer
    once per time step of a static image."""
    torch.manual_seed(3)
    ann = SJ["spiking_resnet"].spiking_resnet18(single_step_neuron=torch.nn.ReLU)
    randomize_batch_norms(ann, 3)
    ann.double().eval()
    step = models.spiking_resnet18(single_step_neuron=layers.ReLU).double().eval()
    layer = models.multi_step_spiking_resnet18(T=T, multi_step_neuron=layers.ReLU).double().eval()
    for model in (step, layer):
        checkpoints.load_torch_state_dict(model, ann.state_dict())
    x = images(np.float64, (N, 3, HW, HW))
    with torch.no_grad():
        y_ann = ann(torch.tensor(x)).numpy()
    tol = 1e-10 * np.abs(y_ann).max()
    np.testing.assert_allclose(step(rs.tensor(x)).data, y_ann, rtol=0, atol=tol)
    y_layer = layer(rs.tensor(x)).data
    for t in range(T):
        np.testing.assert_allclose(y_layer[t], y_ann, rtol=0, atol=tol)
