"""refsnn.layers against torch.nn: reprs, state_dict keys/shapes/dtypes, default
initialisation, forward and backward with shared weights, batch-norm running
statistics over several training steps, and error messages."""
import re

import numpy as np
import pytest

import refsnn as rs
from refsnn import layers
from refsnn.testing import gradcheck
from torch_compare import RTOL

try:
    import torch
except ImportError:
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="needs torch")

# (class name, args, kwargs): built as layers.<name> and torch.nn.<name>
CONSTRUCTIONS = [
    ("Linear", (3, 4), {}),
    ("Linear", (3, 4), {"bias": False}),
    ("Conv2d", (3, 16, 3), {"padding": 1, "bias": False}),
    ("Conv2d", (4, 8, (3, 2)), {"stride": 2, "dilation": (1, 2), "groups": 2}),
    ("Conv2d", (2, 2, 3), {"padding": (1, 0)}),
    ("Conv2d", (3, 6, 3), {"padding": "same"}),
    ("Conv2d", (3, 6, 3), {"padding": "valid"}),
    ("Conv1d", (3, 6, 3), {}),
    ("Conv1d", (4, 6, 5), {"stride": 2, "padding": 2, "groups": 2}),
    ("BatchNorm1d", (5,), {}),
    ("BatchNorm1d", (5,), {"momentum": None, "affine": False, "track_running_stats": False}),
    ("BatchNorm2d", (16,), {}),
    ("BatchNorm2d", (3,), {"eps": 1e-3, "bias": False}),
    ("MaxPool2d", (2,), {}),
    ("MaxPool2d", ((3, 2), 1, 1), {"ceil_mode": True}),
    ("AvgPool2d", (2,), {}),
    ("AvgPool2d", (3, 2, 1, True, False, 3), {}),
    ("AdaptiveAvgPool2d", ((1, None),), {}),
    ("AdaptiveAvgPool2d", (1,), {}),
    ("Flatten", (), {}),
    ("Flatten", (0, 2), {}),
    ("ReLU", (), {}),
    ("ReLU", (True,), {}),
    ("Identity", (3,), {"unused": 1}),
]


def _both(name, args, kwargs):
    torch_name = "Dropout" if name == "TorchDropout" else name
    return getattr(layers, name)(*args, **kwargs), getattr(torch.nn, torch_name)(*args, **kwargs)


def _ids(cases):
    return [f"{n}{a}{k or ''}" for n, a, k in cases]


@needs_torch
@pytest.mark.parametrize("name, args, kwargs", CONSTRUCTIONS, ids=_ids(CONSTRUCTIONS))
def test_repr_equals_torch(name, args, kwargs):
    ours, theirs = _both(name, args, kwargs)
    assert repr(ours) == repr(theirs)


@needs_torch
def test_torch_dropout_repr_is_torch_dropout_under_its_own_name():
    ours, theirs = _both("TorchDropout", (0.2,), {})
    assert repr(ours) == "Torch" + repr(theirs) == "TorchDropout(p=0.2, inplace=False)"


# the layers with parameters also take dtype=, as in torch
WITH_DTYPE = [(n, a, {**k, "dtype": np.float64}) for n, a, k in CONSTRUCTIONS
              if n in ("Linear", "Conv1d", "Conv2d", "BatchNorm1d", "BatchNorm2d")]


@needs_torch
@pytest.mark.parametrize("name, args, kwargs", CONSTRUCTIONS + WITH_DTYPE,
                         ids=_ids(CONSTRUCTIONS + WITH_DTYPE))
def test_state_dict_keys_shapes_and_dtypes_equal_torch(name, args, kwargs):
    ours = getattr(layers, name)(*args, **kwargs)
    torch_kwargs = {**kwargs, "dtype": torch.float64} if "dtype" in kwargs else kwargs
    theirs = getattr(torch.nn, name)(*args, **torch_kwargs)
    sd, ref = ours.state_dict(), theirs.state_dict()
    assert list(sd) == list(ref)
    for key in ref:
        assert sd[key].shape == tuple(ref[key].shape), key
        assert sd[key].dtype == ref[key].numpy().dtype, key
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]


@pytest.mark.parametrize("make, fan_in", [
    (lambda: layers.Linear(400, 300), 400),
    (lambda: layers.Conv2d(16, 256, 3), 16 * 9),
    (lambda: layers.Conv2d(16, 256, (3, 1), groups=4), 4 * 3),
    (lambda: layers.Conv1d(8, 512, 5), 8 * 5),
])
def test_default_init_is_uniform_within_one_over_sqrt_fan_in(make, fan_in):
    """kaiming_uniform_(a=sqrt(5)) and PyTorch's bias rule both give U(-b, b), b = 1/sqrt(fan_in)."""
    rs.manual_seed(0)
    layer = make()
    bound = 1 / np.sqrt(fan_in)
    for p in (layer.weight.data, layer.bias.data):
        assert p.dtype == np.float32
        assert np.abs(p).max() <= bound
        n = p.size  # mean and spread of U(-b, b), five standard errors
        assert abs(p.mean()) < 5 * bound / np.sqrt(3 * n)
        assert abs(p.std() - bound / np.sqrt(3)) < 5 * bound / np.sqrt(5 * n)
        assert np.abs(p).max() > bound * (1 - 20 / n)  # reaches out to the bound


def test_default_init_is_reproducible_with_manual_seed():
    rs.manual_seed(3)
    a = layers.Conv2d(2, 4, 3).state_dict()
    rs.manual_seed(3)
    b = layers.Conv2d(2, 4, 3).state_dict()
    c = layers.Conv2d(2, 4, 3).state_dict()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["weight"], c["weight"])


def test_batch_norm_initial_state():
    bn = layers.BatchNorm2d(4)
    assert np.array_equal(bn.weight.data, np.ones(4, np.float32))
    assert np.array_equal(bn.bias.data, np.zeros(4, np.float32))
    assert np.array_equal(bn.running_mean.data, np.zeros(4, np.float32))
    assert np.array_equal(bn.running_var.data, np.ones(4, np.float32))
    assert bn.num_batches_tracked.data.dtype == np.int64 and bn.num_batches_tracked.data == 0


# ----------------------------------------------------------------------------
# forward and backward with torch's weights
# ----------------------------------------------------------------------------
def _twin_step(ours, theirs, x, seed=0):
    """Load torch's weights into ours, run forward + backward on the same input
    and upstream gradient; compare output, input gradient and parameter gradients."""
    ours.load_state_dict(theirs.state_dict())
    rtol = RTOL[x.dtype]
    xo, xt = rs.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y, y_ref = ours(xo), theirs(xt)
    np.testing.assert_allclose(y.data, y_ref.detach().numpy(), rtol=rtol,
                               atol=rtol * np.abs(y_ref.detach().numpy()).max())
    assert y.dtype == y_ref.detach().numpy().dtype
    g = np.random.default_rng(seed).standard_normal(y.shape).astype(x.dtype)
    y.backward(g)
    y_ref.backward(torch.from_numpy(g))
    named = dict(theirs.named_parameters())
    for what, a, b in [("input", xo, xt)] + [(n, p, named[n]) for n, p in ours.named_parameters()]:
        ref = b.grad.numpy()
        np.testing.assert_allclose(a.grad.data, ref, rtol=rtol, atol=rtol * np.abs(ref).max(),
                                   err_msg=f"gradient of {what}")


LAYER_CASES = [
    ("Linear", (6, 5), {}, (3, 2, 6)),
    ("Linear", (6, 5), {"bias": False}, (4, 6)),
    ("Conv2d", (4, 6, 3), {"padding": 1, "stride": 2, "groups": 2}, (2, 4, 7, 6)),
    ("Conv2d", (3, 4, (2, 3)), {"padding": "same", "dilation": 2, "bias": False}, (2, 3, 6, 7)),
    ("Conv1d", (3, 4, 3), {"padding": 1, "dilation": 2}, (2, 3, 9)),
    ("MaxPool2d", (3, 2, 1), {}, (2, 3, 7, 7)),
    ("AvgPool2d", (3, 2, 1), {"ceil_mode": True, "count_include_pad": False}, (2, 3, 6, 7)),
    ("AdaptiveAvgPool2d", ((3, 2),), {}, (2, 3, 7, 5)),
    ("Flatten", (), {}, (2, 3, 4, 5)),
    ("ReLU", (), {}, (3, 7)),
    ("Identity", (), {}, (3, 7)),
]


@needs_torch
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name, args, kwargs, shape", LAYER_CASES,
                         ids=[c[0] + str(i) for i, c in enumerate(LAYER_CASES)])
def test_layer_forward_and_backward_equal_torch(name, args, kwargs, shape, dtype):
    ours, theirs = _both(name, args, kwargs)
    if dtype == np.float64:
        ours.double()
        theirs.double()
    x = np.random.default_rng(1).standard_normal(shape).astype(dtype)
    _twin_step(ours, theirs, x)


@needs_torch
@pytest.mark.parametrize("momentum", [0.1, None])
@pytest.mark.parametrize("name, shape", [("BatchNorm1d", (6, 4)), ("BatchNorm1d", (3, 4, 5)),
                                         ("BatchNorm2d", (3, 4, 3, 2))])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_batch_norm_running_stats_follow_torch_over_training_steps(name, shape, momentum, dtype):
    ours, theirs = _both(name, (4,), {"momentum": momentum})
    if dtype == np.float64:
        ours.double()
        theirs.double()
    rng = np.random.default_rng(2)
    with torch.no_grad():  # non-trivial affine parameters
        theirs.weight.uniform_(0.5, 1.5)
        theirs.bias.uniform_(-1, 1)
    for step in range(5):
        x = (rng.standard_normal(shape) * (step + 1) + step).astype(dtype)
        _twin_step(ours, theirs, x, seed=step)
        for key, ref in theirs.state_dict().items():
            mine = ours.state_dict()[key]
            assert mine.dtype == ref.numpy().dtype, key
            np.testing.assert_allclose(mine, ref.numpy(), rtol=RTOL[np.dtype(dtype)],
                                       err_msg=f"{key} after step {step + 1}")
    assert ours.num_batches_tracked.data == 5
    ours.eval()
    theirs.eval()
    _twin_step(ours, theirs, rng.standard_normal(shape).astype(dtype))
    assert ours.num_batches_tracked.data == 5  # eval does not count


@needs_torch
@pytest.mark.parametrize("kwargs", [{"affine": False}, {"track_running_stats": False},
                                    {"affine": False, "track_running_stats": False},
                                    {"bias": False}])
def test_batch_norm_variants_equal_torch_in_train_and_eval(kwargs):
    ours, theirs = _both("BatchNorm2d", (3,), kwargs)
    ours.double()
    theirs.double()
    rng = np.random.default_rng(5)
    for training in (True, False, True):
        ours.train(training)
        theirs.train(training)
        _twin_step(ours, theirs, rng.standard_normal((2, 3, 4, 4)) + 1)


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_layer_input_gradient_matches_finite_differences(training):
    bn = layers.BatchNorm1d(3).double().train(training)
    bn.weight.data[:] = [0.5, 1.0, 2.0]
    bn.running_var.data[:] = [0.5, 1.0, 3.0]
    x = rs.tensor(np.random.default_rng(6).standard_normal((5, 3, 2)), requires_grad=True)
    # in training the running statistics move on every call; the output does not depend on them
    assert gradcheck(bn, [x])


@needs_torch
def test_torch_dropout_layer_trains_with_a_fresh_mask_and_is_identity_in_eval():
    drop = layers.TorchDropout(0.25)
    x = rs.ones(4000)
    first, second = drop(x).data, drop(x).data
    assert not np.array_equal(first, second)
    theirs = torch.nn.Dropout(0.25)(torch.ones(4000)).numpy()
    assert set(np.unique(first)) == set(np.unique(theirs))  # {0, 1/float32(0.75)}
    drop.eval()
    assert drop(x) is x


# ----------------------------------------------------------------------------
# errors
# ----------------------------------------------------------------------------
def test_batch_norm_rejects_wrong_rank():
    with pytest.raises(ValueError, match=re.escape("BatchNorm2d: expected 4D input (got 3D input)")):
        layers.BatchNorm2d(3)(rs.zeros(2, 3, 4))
    with pytest.raises(ValueError, match=re.escape(
            "BatchNorm1d: expected 2D or 3D input (got 4D input)")):
        layers.BatchNorm1d(3)(rs.zeros(2, 3, 4, 4))
    with pytest.raises(ValueError, match=re.escape("running_mean must be [C=5]")):
        layers.BatchNorm1d(3)(rs.zeros(2, 5))


def test_conv_layers_check_channels_and_arguments():
    with pytest.raises(ValueError, match=re.escape(
            "conv2d: expected input [N, C_in=3, H, W] (4-D) but got [2, 5, 8, 8]")):
        layers.Conv2d(3, 16, 3)(rs.zeros(2, 5, 8, 8))
    with pytest.raises(ValueError, match=re.escape(
            "conv1d: expected input [N, C_in=3, L] (3-D) but got [2, 3, 8, 8]")):
        layers.Conv1d(3, 4, 3)(rs.zeros(2, 3, 8, 8))
    with pytest.raises(ValueError, match="must both be divisible by groups=2"):
        layers.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="invalid padding string 'full'"):
        layers.Conv2d(3, 4, 3, padding="full")
    with pytest.raises(ValueError, match="padding='same' is not supported for strided"):
        layers.Conv2d(3, 4, 3, padding="same", stride=2)
    with pytest.raises(NotImplementedError, match="padding_mode='reflect'"):
        layers.Conv2d(3, 4, 3, padding_mode="reflect")


def test_linear_layer_checks_features():
    with pytest.raises(ValueError, match=re.escape("linear: input [2, 5] has 5 features")):
        layers.Linear(4, 3)(rs.zeros(2, 5))


def test_torch_dropout_rejects_bad_probability():
    with pytest.raises(ValueError, match="between 0 and 1, but got -0.1"):
        layers.TorchDropout(-0.1)
