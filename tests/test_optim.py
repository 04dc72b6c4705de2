"""SGD and Adam against torch.optim, step for step on the same random gradients.

Measured on torch 2.13 CPU (x86, AVX2, MKL), 20 steps:
- SGD float32: bit-identical for every momentum / dampening / weight decay /
  Nesterov combination; float64: within 4e-16 of the largest parameter
  (PyTorch fuses `add(alpha=)` into an FMA, NumPy rounds twice in float64).
- Adam float32: PyTorch's MKL `sqrt` is not always correctly rounded, NumPy's
  is; the 1-ulp differences in the denominator leave parameters within
  0.84 float32 eps of the tensor's largest entry (5 seeds x 5 configs; single
  entries that pass near zero differ by up to 128 ulp of their own size). With
  PyTorch's `sqrt` substituted, bit-identical.
"""
import numpy as np
import pytest

import refsnn.optim as optim
from refsnn.autograd import Tensor, tensor
from refsnn.module import Parameter

torch = pytest.importorskip("torch")

SHAPES = [(7, 5), (13,), (3, 4, 6), ()]


def _twin_run(make_ours, make_theirs, dtype, steps=20, seed=0):
    """Run both optimizers on identical parameters and gradients; yield the
    (ours, theirs) parameter lists after every step, then the optimizers."""
    rng = np.random.default_rng(seed)
    init = [np.asarray(rng.standard_normal(s), dtype=dtype) for s in SHAPES]
    ours = [Parameter(a.copy()) for a in init]
    theirs = [torch.nn.Parameter(torch.from_numpy(a.copy())) for a in init]
    opt_ours, opt_theirs = make_ours(ours), make_theirs(theirs)
    history = []
    for _ in range(steps):
        for p, t in zip(ours, theirs):
            g = np.asarray(rng.standard_normal(p.shape), dtype=dtype)
            p.grad = Tensor(g.copy())
            t.grad = torch.from_numpy(g.copy())
        opt_ours.step()
        opt_theirs.step()
        history.append(([p.data.copy() for p in ours],
                        [t.detach().numpy().copy() for t in theirs]))
    return history, (ours, opt_ours), (theirs, opt_theirs)


def _max_relative(ours, theirs):
    """Largest |ours - theirs| relative to the largest |theirs| of the tensor."""
    return max(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300)
               for a, b in zip(ours, theirs))


def _assert_state_matches(ours_params, opt_ours, theirs_params, opt_theirs, rel):
    for p, t in zip(ours_params, theirs_params):
        mine, ref = opt_ours.state[p], opt_theirs.state[t]
        assert set(mine) == set(ref)
        for key in ref:
            a, b = np.asarray(mine[key].data), ref[key].detach().numpy()
            assert a.dtype == b.dtype, key
            assert _max_relative([a], [b]) <= rel, key


SGD_CONFIGS = [
    dict(lr=0.1),
    dict(lr=0.1, momentum=0.9),
    dict(lr=0.05, momentum=0.9, dampening=0.3),
    dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.01),
    dict(lr=0.05, momentum=0.8, nesterov=True),
    dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.1),
    dict(lr=0.2, weight_decay=0.05),
]
ADAM_CONFIGS = [
    dict(),
    dict(lr=0.01, weight_decay=0.1),
    dict(lr=0.01, betas=(0.5, 0.9), amsgrad=True),
    dict(lr=0.02, betas=(0.3, 0.99), eps=1e-6),  # lerp weight 0.7 >= 0.5 branch
    dict(lr=0.01, betas=(0.8, 0.95), weight_decay=0.01, amsgrad=True),
]


@pytest.mark.parametrize("config", SGD_CONFIGS, ids=str)
def test_sgd_float64_matches_torch_step_for_step(config):
    history, (ps, opt), (ts, topt) = _twin_run(
        lambda p: optim.SGD(p, **config), lambda p: torch.optim.SGD(p, **config), np.float64)
    for step, (ours, theirs) in enumerate(history):
        assert _max_relative(ours, theirs) <= 1e-12, f"step {step}"
    _assert_state_matches(ps, opt, ts, topt, 1e-12)


@pytest.mark.parametrize("config", SGD_CONFIGS, ids=str)
def test_sgd_float32_bit_identical_to_torch(config):
    history, (ps, opt), (ts, topt) = _twin_run(
        lambda p: optim.SGD(p, **config), lambda p: torch.optim.SGD(p, **config), np.float32)
    for step, (ours, theirs) in enumerate(history):
        for a, b in zip(ours, theirs):
            assert a.dtype == np.float32
            np.testing.assert_array_equal(a, b, err_msg=f"step {step}")
    _assert_state_matches(ps, opt, ts, topt, 0.0)


@pytest.mark.parametrize("config", ADAM_CONFIGS, ids=str)
def test_adam_float64_matches_torch_step_for_step(config):
    history, (ps, opt), (ts, topt) = _twin_run(
        lambda p: optim.Adam(p, **config), lambda p: torch.optim.Adam(p, **config), np.float64)
    for step, (ours, theirs) in enumerate(history):
        assert _max_relative(ours, theirs) <= 1e-12, f"step {step}"
    _assert_state_matches(ps, opt, ts, topt, 1e-12)


@pytest.mark.parametrize("config", ADAM_CONFIGS, ids=str)
def test_adam_float32_within_one_eps_of_torch(config):
    """The only difference left is PyTorch's (MKL's) square root."""
    history, _, _ = _twin_run(
        lambda p: optim.Adam(p, **config), lambda p: torch.optim.Adam(p, **config), np.float32)
    worst = max(_max_relative(ours, theirs) for ours, theirs in history)
    assert worst <= np.finfo(np.float32).eps


@pytest.mark.parametrize("config", ADAM_CONFIGS, ids=str)
def test_adam_float32_bit_identical_with_torch_sqrt(config, monkeypatch):
    """Everything but the square root follows PyTorch's operations and roundings."""
    monkeypatch.setattr(optim, "_sqrt", lambda a: torch.from_numpy(
        np.ascontiguousarray(a)).sqrt().numpy())
    history, (ps, opt), (ts, topt) = _twin_run(
        lambda p: optim.Adam(p, **config), lambda p: torch.optim.Adam(p, **config),
        np.float32, steps=30)
    for step, (ours, theirs) in enumerate(history):
        for a, b in zip(ours, theirs):
            np.testing.assert_array_equal(a, b, err_msg=f"step {step}")
    _assert_state_matches(ps, opt, ts, topt, 0.0)


def test_fused_multiply_add_is_correctly_rounded_in_float32():
    # a*b + c = 1 + 3*2^-24 - 2^-54 lies just below a float32 midpoint: rounding
    # to float64 first lands on the midpoint, which ties to the wrong neighbour.
    a, b, c = np.float32(2**-24 * (1 + 2**-15)), np.float32(1 - 2**-15), np.float32(1 + 2**-23)
    assert np.float32(np.float64(a) * np.float64(b) + np.float64(c)) == np.float32(1 + 2**-22)
    assert optim._fma(np.array([a]), b, np.array([c]))[0] == np.float32(1 + 2**-23)
    # and element for element PyTorch's fused addcmul on widely spread magnitudes
    rng = np.random.default_rng(0)
    a, b, c = (rng.standard_normal(4099) * 2.0 ** rng.integers(-30, 30, 4099)
               for _ in range(3))
    a, b, c = a.astype(np.float32), b.astype(np.float32), c.astype(np.float32)
    expected = torch.addcmul(torch.from_numpy(c), torch.from_numpy(a), torch.from_numpy(b))
    np.testing.assert_array_equal(optim._fma(a, b, c), expected.numpy())


def test_param_groups_take_their_own_hyperparameters_like_torch():
    def groups(params):
        return [{"params": params[:2], "lr": 0.3}, {"params": params[2:], "momentum": 0.5}]
    history, (_, opt), (_, topt) = _twin_run(
        lambda p: optim.SGD(groups(p), lr=0.1, momentum=0.9),
        lambda p: torch.optim.SGD(groups(p), lr=0.1, momentum=0.9), np.float32, steps=5)
    for ours, theirs in history:
        for a, b in zip(ours, theirs):
            np.testing.assert_array_equal(a, b)
    assert [g["lr"] for g in opt.param_groups] == [g["lr"] for g in topt.param_groups]
    assert [g["momentum"] for g in opt.param_groups] == [0.9, 0.5]


def test_step_updates_in_place_keeps_dtype_and_skips_params_without_grad():
    w = Parameter(np.ones((2, 3), np.float32))
    frozen = Parameter(np.ones(3, np.float32))
    array = w.data
    opt = optim.Adam([w, frozen], lr=0.1)
    w.grad = tensor(np.full((2, 3), 0.5, np.float32))
    opt.step()
    assert w.data is array and w.data.dtype == np.float32
    assert not np.all(w.data == 1)
    np.testing.assert_array_equal(frozen.data, np.ones(3, np.float32))
    assert len(opt.state[frozen]) == 0


def test_step_returns_closure_loss():
    w = Parameter(np.array([2.0]))
    opt = optim.SGD([w], lr=0.25)

    def closure():
        opt.zero_grad()
        loss = (w * w).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert float(loss.data) == 4.0
    np.testing.assert_array_equal(w.data, [1.0])  # 2 - 0.25 * 4


def test_zero_grad_sets_none_or_zeros():
    w = Parameter(np.ones(3))
    opt = optim.SGD([w], lr=0.1)
    w.grad = tensor(np.ones(3))
    opt.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(w.grad.data, np.zeros(3))
    opt.zero_grad()
    assert w.grad is None


@pytest.mark.parametrize("make, message", [
    (lambda: optim.SGD([], lr=0.1), "optimizer got an empty parameter list"),
    (lambda: optim.Adam(iter([])), "optimizer got an empty parameter list"),
    (lambda: optim.SGD([Parameter(np.ones(1))], lr=-0.1), "lr=-0.1"),
    (lambda: optim.SGD([Parameter(np.ones(1))], lr=0.1, momentum=-1), "momentum=-1"),
    (lambda: optim.SGD([Parameter(np.ones(1))], lr=0.1, weight_decay=-1), "weight_decay=-1"),
    (lambda: optim.SGD([Parameter(np.ones(1))], lr=0.1, nesterov=True), "nesterov"),
    (lambda: optim.SGD([Parameter(np.ones(1))], lr=0.1, momentum=0.9, dampening=0.1,
                       nesterov=True), "dampening=0.1"),
    (lambda: optim.Adam([Parameter(np.ones(1))], lr=-1), "lr=-1"),
    (lambda: optim.Adam([Parameter(np.ones(1))], betas=(1.0, 0.9)), r"betas\[0\]=1.0"),
    (lambda: optim.Adam([Parameter(np.ones(1))], betas=(0.9, -0.1)), r"betas\[1\]=-0.1"),
    (lambda: optim.Adam([Parameter(np.ones(1))], eps=-1e-8), "eps=-1e-08"),
    (lambda: optim.Adam([Parameter(np.ones(1))], weight_decay=-1), "weight_decay=-1"),
])
def test_bad_arguments_raise_value_error_naming_them(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_bad_argument_cases_are_also_rejected_by_torch():
    """The ValueError cases above mirror PyTorch's own checks."""
    t = [torch.nn.Parameter(torch.ones(1))]
    for make in (lambda: torch.optim.SGD([], lr=0.1),
                 lambda: torch.optim.SGD(t, lr=-0.1),
                 lambda: torch.optim.SGD(t, lr=0.1, momentum=-1),
                 lambda: torch.optim.SGD(t, lr=0.1, nesterov=True),
                 lambda: torch.optim.SGD(t, lr=0.1, momentum=0.9, dampening=0.1, nesterov=True),
                 lambda: torch.optim.Adam(t, betas=(1.0, 0.9)),
                 lambda: torch.optim.Adam(t, betas=(0.9, -0.1)),
                 lambda: torch.optim.Adam(t, eps=-1e-8)):
        with pytest.raises(ValueError):
            make()


def test_bad_parameter_collections_are_rejected():
    w = Parameter(np.ones(2))
    with pytest.raises(TypeError, match="single Tensor"):
        optim.SGD(w, lr=0.1)
    with pytest.raises(TypeError, match="not a set"):
        optim.SGD([{"params": {w}}], lr=0.1)
    with pytest.raises(TypeError, match="only optimize refsnn Tensors"):
        optim.SGD([np.ones(2)], lr=0.1)
    with pytest.raises(ValueError, match="non-leaf"):
        optim.SGD([w * 2], lr=0.1)
    with pytest.raises(ValueError, match="more than one parameter group"):
        optim.SGD([{"params": [w]}, {"params": [w]}], lr=0.1)
