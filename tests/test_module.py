"""Module, Parameter and MemoryModule semantics against PyTorch and SpikingJelly.

Every structural test builds the same module tree in refsnn and in PyTorch and
compares names, orders and load_state_dict results of the two.
"""
from collections import OrderedDict

import numpy as np
import pytest

from refsnn.autograd import Tensor, tensor
from refsnn.containers import Sequential
from refsnn.module import MemoryModule, Module, Parameter

torch = pytest.importorskip("torch")
nn = torch.nn


# --- twin module trees ------------------------------------------------------------
class Affine(Module):
    """Parameters, a persistent and a non-persistent buffer, and a None parameter."""

    def __init__(self, n, seed):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.weight = Parameter(rng.standard_normal((n, n)).astype(np.float32))
        self.register_parameter("unused", None)
        self.bias = Parameter(rng.standard_normal(n).astype(np.float32))
        self.register_buffer("running", np.zeros(n, np.float32))
        self.register_buffer("scratch", np.ones(n, np.float32), persistent=False)


class TorchAffine(nn.Module):
    def __init__(self, n, seed):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.weight = nn.Parameter(torch.from_numpy(rng.standard_normal((n, n)).astype(np.float32)))
        self.register_parameter("unused", None)
        self.bias = nn.Parameter(torch.from_numpy(rng.standard_normal(n).astype(np.float32)))
        self.register_buffer("running", torch.zeros(n))
        self.register_buffer("scratch", torch.ones(n), persistent=False)


def ours_tree():
    """Root(scale, count, body=Sequential(Affine, Sequential(Affine), shared), head,
    alias=shared): the shared module is registered under two names."""
    shared = Affine(3, 2)
    root = Module()
    root.scale = Parameter(np.full(1, 2.0, np.float32))
    root.register_buffer("count", np.array(5, np.int64))
    root.body = Sequential(Affine(3, 0), Sequential(Affine(3, 1)), shared)
    root.head = Affine(3, 3)
    root.alias = shared
    return root


def torch_tree():
    shared = TorchAffine(3, 2)
    root = nn.Module()
    root.scale = nn.Parameter(torch.full((1,), 2.0))
    root.register_buffer("count", torch.tensor(5))
    root.body = nn.Sequential(TorchAffine(3, 0), nn.Sequential(TorchAffine(3, 1)), shared)
    root.head = TorchAffine(3, 3)
    root.alias = shared
    return root


def _assert_same_state(ours, theirs_state):
    ours_state = ours.state_dict()
    assert list(ours_state) == list(theirs_state)
    for key, value in theirs_state.items():
        np.testing.assert_array_equal(ours_state[key], value.numpy(), err_msg=key)


# --- traversal and keys -------------------------------------------------------------
def test_state_dict_keys_and_values_match_torch_in_order():
    ours, theirs = ours_tree(), torch_tree()
    _assert_same_state(ours, theirs.state_dict())
    assert "body.0.scratch" not in ours.state_dict()  # non-persistent
    assert "alias.weight" in ours.state_dict()        # shared module under both names


def test_state_dict_values_are_copies():
    ours = ours_tree()
    state = ours.state_dict()
    state["head.weight"][...] = 0
    assert not np.all(ours.head.weight.data == 0)


def test_named_parameters_buffers_modules_order_matches_torch():
    ours, theirs = ours_tree(), torch_tree()
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert [n for n, _ in ours.named_buffers()] == [n for n, _ in theirs.named_buffers()]
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    assert [n for n, _ in ours.named_children()] == [n for n, _ in theirs.named_children()]
    assert [n for n, _ in ours.named_parameters(prefix="m", recurse=False)] == \
        [n for n, _ in theirs.named_parameters(prefix="m", recurse=False)]
    assert [n for n, _ in ours.body.named_buffers(prefix="body")] == \
        [n for n, _ in theirs.body.named_buffers(prefix="body")]


def test_parameters_are_deduplicated_like_torch():
    ours, theirs = ours_tree(), torch_tree()
    assert len(list(ours.parameters())) == len(list(theirs.parameters()))
    assert len(list(ours.modules())) == len(list(theirs.modules()))


# --- loading --------------------------------------------------------------------------
def test_load_torch_state_dict_into_refsnn_directly():
    ours, theirs = ours_tree(), torch_tree()
    with torch.no_grad():
        for p in theirs.parameters():
            p.add_(1.5)
        theirs.count.fill_(9)
    dtypes = {k: v.dtype for k, v in ours.state_dict().items()}
    result = ours.load_state_dict(theirs.state_dict())
    assert result.missing_keys == [] and result.unexpected_keys == []
    _assert_same_state(ours, theirs.state_dict())
    assert {k: v.dtype for k, v in ours.state_dict().items()} == dtypes


def test_load_refsnn_state_dict_into_torch():
    ours, theirs = ours_tree(), torch_tree()
    for p in ours.parameters():
        p.data = p.data * 3 - 1
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    _assert_same_state(ours, theirs.state_dict())


def test_load_keeps_tensor_identity_and_dtype():
    ours = ours_tree()
    weight = ours.head.weight
    state = {k: v.astype(np.float64) if v.dtype == np.float32 else v
             for k, v in ours.state_dict().items()}
    ours.load_state_dict(state)
    assert ours.head.weight is weight and weight.dtype == np.float32


def _damaged(state):
    """Drop two keys, add unexpected ones at several depths in a scrambled order."""
    state = OrderedDict(state)
    del state["body.1.0.bias"]
    del state["scale"]
    extra = OrderedDict([
        ("head.extra", np.zeros(1)),
        ("body.1.0.weight.t", np.zeros(1)),  # below a parameter
        ("nowhere.weight", np.zeros(1)),      # an unknown child
        ("body.9", np.zeros(1)),
        ("body.0.scratch", np.zeros(3)),      # a non-persistent buffer is not loadable
        ("top", np.zeros(1)),
        ("body.1.0.unused", np.zeros(3)),     # a None parameter
    ])
    keys = list(state)
    mixed = OrderedDict()
    for i, key in enumerate(keys):
        mixed[key] = state[key]
        if i % 3 == 0 and extra:
            k, v = extra.popitem(last=False)
            mixed[k] = v
    mixed.update(extra)
    return mixed


def test_strict_false_returns_missing_and_unexpected_keys_as_torch_does():
    ours, theirs = ours_tree(), torch_tree()
    damaged = _damaged(ours.state_dict())
    before = ours.state_dict()
    result = ours.load_state_dict(damaged, strict=False)
    expected = theirs.load_state_dict({k: torch.from_numpy(np.asarray(v))
                                       for k, v in damaged.items()}, strict=False)
    assert result.missing_keys == expected.missing_keys
    assert result.unexpected_keys == expected.unexpected_keys
    assert result == tuple(expected)
    after = ours.state_dict()
    for key in before:  # present keys are loaded (same values here), missing ones kept
        np.testing.assert_array_equal(after[key], before[key])


def test_strict_false_loads_the_keys_it_has():
    ours, theirs = ours_tree(), torch_tree()
    state = OrderedDict((k, torch.from_numpy(np.asarray(v + 7))) for k, v in
                        ours.state_dict().items() if k != "head.bias")
    ours.load_state_dict(state, strict=False)
    theirs.load_state_dict(state, strict=False)
    _assert_same_state(ours, theirs.state_dict())


def test_strict_error_lists_every_problem_and_changes_nothing():
    ours, theirs = ours_tree(), torch_tree()
    damaged = _damaged(ours.state_dict())
    for key in damaged:
        if key.endswith("weight") and key in ours.state_dict():
            damaged[key] = np.ones((2, 3), np.float32) * 42
    before = ours.state_dict()
    with pytest.raises(RuntimeError) as ours_error:
        ours.load_state_dict(damaged)
    with pytest.raises(RuntimeError) as torch_error:
        theirs.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in damaged.items()})
    message = str(ours_error.value)
    expected = theirs.load_state_dict(
        {k: torch.from_numpy(np.asarray(v)) for k, v in damaged.items()
         if not (k.endswith("weight") and k in before)}, strict=False)
    for key in expected.missing_keys + expected.unexpected_keys:
        assert key in message and key in str(torch_error.value)
    for key in ("body.0.weight", "head.weight", "alias.weight"):
        assert f"{key}: checkpoint (2, 3) vs model (3, 3)" in message
        assert f"size mismatch for {key}" in str(torch_error.value)
    for key, value in ours.state_dict().items():
        np.testing.assert_array_equal(value, before[key])


@pytest.mark.parametrize("strict", [True, False])
def test_shape_mismatch_raises_even_when_not_strict_and_changes_nothing(strict):
    ours, theirs = ours_tree(), torch_tree()
    state = ours.state_dict()
    state["head.bias"] = np.zeros(4, np.float32)
    state["head.weight"] = state["head.weight"] + 1
    before = ours.state_dict()
    with pytest.raises(RuntimeError, match=r"head.bias: checkpoint \(4,\) vs model \(3,\)"):
        ours.load_state_dict(state, strict=strict)
    with pytest.raises(RuntimeError, match="size mismatch for head.bias"):
        theirs.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=strict)
    np.testing.assert_array_equal(ours.head.weight.data, before["head.weight"])


# --- modes and dtypes -------------------------------------------------------------------
def test_train_and_eval_propagate_like_torch():
    ours, theirs = ours_tree(), torch_tree()
    for mode in ("eval", "train"):
        getattr(ours, mode)()
        getattr(theirs, mode)()
        assert [m.training for m in ours.modules()] == [m.training for m in theirs.modules()]
    ours.body.eval()
    theirs.body.eval()
    assert [m.training for _, m in ours.named_modules()] == \
        [m.training for _, m in theirs.named_modules()]
    with pytest.raises(ValueError, match="boolean"):
        ours.train("no")


def test_train_reaches_overridden_train_of_children():
    calls = []

    class Recording(Module):
        def train(self, mode=True):
            calls.append(mode)
            return super().train(mode)

    Sequential(Sequential(Recording())).eval()
    assert calls == [False]


def test_double_and_float_keep_parameter_identity_and_convert_dtypes():
    ours = ours_tree()
    params = list(ours.parameters())
    ours.head.weight.grad = tensor(np.ones((3, 3), np.float32))
    assert ours.double() is ours
    assert all(a is b for a, b in zip(ours.parameters(), params))
    assert all(p.dtype == np.float64 for p in ours.parameters())
    assert ours.head.running.dtype == np.float64
    assert ours.head.weight.grad.dtype == np.float64
    assert ours.count.dtype == np.int64  # integer buffers keep their dtype, as in torch
    ours.float()
    assert all(a is b for a, b in zip(ours.parameters(), params))
    assert all(p.dtype == np.float32 for p in ours.parameters())


def test_assigning_wrong_types_to_registered_names_raises_like_torch():
    ours, theirs = ours_tree(), torch_tree()
    with pytest.raises(TypeError):
        theirs.head.weight = torch.ones(3, 3)
    with pytest.raises(TypeError, match="parameter 'weight'"):
        ours.head.weight = tensor(np.ones((3, 3), np.float32))
    with pytest.raises(TypeError):
        theirs.body = torch.ones(1)
    with pytest.raises(TypeError, match="child module 'body'"):
        ours.body = tensor(np.ones(1))


# --- MemoryModule (SpikingJelly's base.MemoryModule) -------------------------------------
def _memory_twins():
    base = pytest.importorskip("spikingjelly.activation_based.base")
    ours, theirs = MemoryModule(), base.MemoryModule()
    return ours, theirs


def test_register_memory_on_existing_name_asserts_like_spikingjelly():
    ours, theirs = _memory_twins()
    for m in (ours, theirs):
        m.threshold = 1.0
    with pytest.raises(AssertionError) as theirs_error:
        theirs.register_memory("threshold", 0.0)
    with pytest.raises(AssertionError) as ours_error:
        ours.register_memory("threshold", 0.0)
    assert str(ours_error.value) == str(theirs_error.value) == \
        "threshold has been set as a member variable!"
    ours.register_memory("v", 0.0)
    with pytest.raises(AssertionError, match="v has been set as a member variable!"):
        ours.register_memory("v", 1.0)


def test_reset_restores_a_copy_of_the_reset_value():
    ours, theirs = _memory_twins()
    initial = tensor(np.zeros(3, np.float32))
    ours.register_memory("v", initial)
    ours.register_memory("count", 0)
    theirs.register_memory("v", torch.zeros(3))
    for m in (ours, theirs):
        m.count = 5
    ours.v = tensor(np.ones(3, np.float32))
    theirs.v = torch.ones(3)
    ours.reset()
    theirs.reset()
    assert ours.count == 0
    np.testing.assert_array_equal(ours.v.data, theirs.v.numpy())
    # the reset value was copied at registration, and each reset copies it again
    assert ours.v is not initial and ours.v.data is not initial.data
    ours.v.data[...] = 7
    initial.data[...] = 8
    ours.reset()
    np.testing.assert_array_equal(ours.v.data, np.zeros(3, np.float32))
    first = ours.v
    ours.reset()
    assert ours.v is not first and ours.v.data is not first.data


def test_memories_are_not_in_state_dict_nor_parameters():
    ours, theirs = _memory_twins()
    for m in (ours, theirs):
        m.weight = Parameter(np.ones(2, np.float32)) if m is ours else nn.Parameter(torch.ones(2))
    ours.register_memory("v", tensor(np.zeros(2, np.float32)))
    theirs.register_memory("v", torch.zeros(2))
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["weight"]
    assert [n for n, _ in ours.named_parameters()] == ["weight"]
    assert list(ours.named_buffers()) == []
    assert [n for n, _ in ours.named_memories()] == ["v"]


def test_memory_dtype_follows_double_but_reset_value_does_not_like_spikingjelly():
    ours, theirs = _memory_twins()
    ours.register_memory("v", tensor(np.zeros(2, np.float32)))
    theirs.register_memory("v", torch.zeros(2))
    ours.double()
    theirs.double()
    assert ours.v.dtype == np.float64 and theirs.v.dtype == torch.float64
    ours.reset()
    theirs.reset()
    assert ours.v.dtype == np.float32 and theirs.v.dtype == torch.float32


def test_detach_cuts_the_graph_of_tensor_memories():
    ours = MemoryModule()
    ours.register_memory("v", 0.0)
    w = Parameter(np.ones(2))
    ours.v = w * 2
    assert ours.v.grad_fn is not None
    ours.detach()
    assert ours.v.grad_fn is None and not ours.v.requires_grad
    assert isinstance(ours.v, Tensor)


# --- a real network: nested Sequential of Conv2d, BatchNorm2d, ReLU, Flatten, Linear ----
def _ours_net():
    from refsnn import layers
    return Sequential(
        Sequential(layers.Conv2d(2, 4, 3, padding=1), layers.BatchNorm2d(4), layers.ReLU()),
        Sequential(layers.Conv2d(4, 3, 3, stride=2, bias=False), layers.BatchNorm2d(3)),
        layers.Flatten(),
        layers.Linear(3 * 2 * 2, 5))


def _torch_net():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU()),
        nn.Sequential(nn.Conv2d(4, 3, 3, stride=2, bias=False), nn.BatchNorm2d(3)),
        nn.Flatten(),
        nn.Linear(3 * 2 * 2, 5))


def _perturb_torch_net(net):
    """Non-default running statistics and counters so every key carries information."""
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
                m.num_batches_tracked.fill_(3)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)


def test_network_state_dict_keys_and_orders_match_torch():
    ours, theirs = _ours_net(), _torch_net()
    ours_state, theirs_state = ours.state_dict(), theirs.state_dict()
    assert list(ours_state) == list(theirs_state)
    for key, value in theirs_state.items():
        assert ours_state[key].shape == tuple(value.shape), key
        assert ours_state[key].dtype == value.numpy().dtype, key
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert [n for n, _ in ours.named_buffers()] == [n for n, _ in theirs.named_buffers()]
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]


def test_network_weights_move_both_ways_and_compute_the_same():
    ours, theirs = _ours_net().double(), _torch_net().double()
    _perturb_torch_net(theirs)
    ours.load_state_dict(theirs.state_dict())  # torch tensors directly
    _assert_same_state(ours, theirs.state_dict())
    x = np.random.default_rng(0).standard_normal((2, 2, 5, 5))
    ours.eval()
    theirs.eval()
    np.testing.assert_allclose(ours(tensor(x)).data, theirs(torch.from_numpy(x)).detach().numpy(),
                               rtol=1e-12, atol=1e-12)

    back = _torch_net().double()
    for p in ours.parameters():
        p.data = p.data + 0.25
    back.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    _assert_same_state(ours, back.state_dict())
    back.eval()
    np.testing.assert_allclose(ours(tensor(x)).data, back(torch.from_numpy(x)).detach().numpy(),
                               rtol=1e-12, atol=1e-12)


def test_network_strict_false_results_match_torch():
    ours, theirs = _ours_net(), _torch_net()
    state = OrderedDict((k, torch.from_numpy(v)) for k, v in ours.state_dict().items()
                        if k not in ("1.1.running_var", "3.bias"))
    state["1.0.bias"] = torch.zeros(3)            # a parameter that is None here
    state["2.weight"] = torch.zeros(1)            # Flatten holds nothing
    state["3.weight.extra"] = torch.zeros(1)
    state["0.1.running_mean_old"] = torch.zeros(4)
    state.move_to_end("0.0.weight")
    result = ours.load_state_dict(state, strict=False)
    expected = theirs.load_state_dict(state, strict=False)
    assert result.missing_keys == expected.missing_keys
    assert result.unexpected_keys == expected.unexpected_keys
    with pytest.raises(RuntimeError) as error:
        ours.load_state_dict(state)
    for key in expected.missing_keys + expected.unexpected_keys:
        assert key in str(error.value)


def test_network_train_eval_and_double_like_torch():
    ours, theirs = _ours_net(), _torch_net()
    params = list(ours.parameters())
    ours.eval()
    theirs.eval()
    assert [m.training for m in ours.modules()] == [m.training for m in theirs.modules()]
    ours[0].train()
    theirs[0].train()
    assert [m.training for m in ours.modules()] == [m.training for m in theirs.modules()]
    ours.double()
    theirs.double()
    assert all(a is b for a, b in zip(ours.parameters(), params))
    for (name, ours_value), (_, theirs_value) in zip(ours.state_dict().items(),
                                                     theirs.state_dict().items()):
        assert ours_value.dtype == theirs_value.numpy().dtype, name


def test_torch_state_dict_without_num_batches_tracked_reports_it_missing_like_torch():
    ours, theirs = _ours_net(), _torch_net()
    state = theirs.state_dict()  # carries PyTorch's version metadata
    del state["0.1.num_batches_tracked"]
    result = ours.load_state_dict(state, strict=False)
    expected = theirs.load_state_dict(state, strict=False)
    assert result.missing_keys == expected.missing_keys == ["0.1.num_batches_tracked"]


def test_plain_dict_without_num_batches_tracked_keeps_the_count_like_torch():
    """A state dict without PyTorch's version metadata (any plain dict, or one
    of BatchNorm's version 1) may lack num_batches_tracked: torch keeps the
    module's own count instead of reporting it missing."""
    ours, theirs = _ours_net(), _torch_net()
    ours[0][1].num_batches_tracked.data[...] = 5
    with torch.no_grad():
        theirs[0][1].num_batches_tracked.fill_(5)
    state = {k: torch.from_numpy(v) for k, v in ours.state_dict().items()
             if "num_batches_tracked" not in k}
    assert theirs.load_state_dict(state) == ours.load_state_dict(state)   # strict, no error
    assert int(ours[0][1].num_batches_tracked.data) == int(theirs[0][1].num_batches_tracked) == 5
    old = theirs.state_dict()
    del old["0.1.num_batches_tracked"]
    old._metadata["0.1"]["version"] = 1
    assert ours.load_state_dict(old).missing_keys == theirs.load_state_dict(old).missing_keys == []
