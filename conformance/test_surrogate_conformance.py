"""refsnn.surrogate against SpikingJelly 0.0.0.0.14's `clock_driven.surrogate` and
`activation_based.surrogate`, run for real on the same float32/float64 inputs:
spikes, surrogate gradients, primitives (`spiking=False`) and their autograd
gradients, constructor signatures and reprs.

Bit-identical where no transcendental function is involved (table 3.2 of the
SpikingJelly reference); otherwise within a few ulp, and bit-identical again
when the formula is fed torch's own transcendental kernels, which shows that
the operation order is SpikingJelly's.
"""
import inspect

import numpy as np
import pytest

torch = pytest.importorskip("torch")
cd = pytest.importorskip("spikingjelly.clock_driven.surrogate")
ab = pytest.importorskip("spikingjelly.activation_based.surrogate")

import refsnn as rs  # noqa: E402
from refsnn import surrogate as sg  # noqa: E402
from refsnn.conformance.compare import bit_equal  # noqa: E402
from refsnn.mathops import NumpyOps  # noqa: E402

API = {"cd": cd, "ab": ab}

COMMON = [
    ("Sigmoid", {}), ("Sigmoid", {"alpha": 2.5}),
    ("ATan", {}), ("ATan", {"alpha": 3.0}),
    ("PiecewiseQuadratic", {}), ("PiecewiseQuadratic", {"alpha": 3.0}),
    ("PiecewiseExp", {}), ("PiecewiseExp", {"alpha": 1.7}),
    ("SoftSign", {}), ("SoftSign", {"alpha": 0.7}),
    ("Erf", {}), ("Erf", {"alpha": 1.3}),
    ("NonzeroSignLogAbs", {}), ("NonzeroSignLogAbs", {"alpha": 2.2}),
    ("PiecewiseLeakyReLU", {}), ("PiecewiseLeakyReLU", {"w": 0.3, "c": 0.1}),
    ("PiecewiseLeakyReLU", {"w": 0.5, "c": 0.0}),
    ("SquarewaveFourierSeries", {}), ("SquarewaveFourierSeries", {"n": 5, "T_period": 6.0}),
    ("SquarewaveFourierSeries", {"n": 1}),
    ("S2NN", {}), ("S2NN", {"alpha": 3.0, "beta": 0.7}),
    ("QPseudoSpike", {}), ("QPseudoSpike", {"alpha": 3.3}),
]
AB_ONLY = [
    ("LeakyKReLU", {}), ("LeakyKReLU", {"leak": 0.1, "k": 1.7}),
    ("FakeNumericalGradient", {}), ("FakeNumericalGradient", {"alpha": 0.7}),
    ("LogTailedReLU", {}), ("LogTailedReLU", {"alpha": 0.1}),
]
CONFIGS = [("cd", n, kw) for n, kw in COMMON] + [("ab", n, kw) for n, kw in COMMON + AB_ONLY]
DTYPES = [np.float32, np.float64]

# table 3.2: surrogate backwards and primitives without transcendental functions
EXACT_GRAD = {"ATan", "PiecewiseQuadratic", "SoftSign", "PiecewiseLeakyReLU",
              "NonzeroSignLogAbs", "LeakyKReLU", "FakeNumericalGradient", "LogTailedReLU"}
EXACT_PRIMITIVE = {"PiecewiseQuadratic", "SoftSign", "PiecewiseLeakyReLU", "LeakyKReLU"}


def _exact(names, name, kw):
    # QPseudoSpike with alpha=2 uses pow's special cases (-2 and -1): exact
    return name in names or (name == "QPseudoSpike" and kw.get("alpha", 2.0) == 2.0)


def _id(api, name, kw):
    return f"{api}.{name}(" + ",".join(f"{k}={v}" for k, v in kw.items()) + ")"


# --- known SpikingJelly defects: strict xfails that run SpikingJelly for real ---------
AB_NSLA_CRASH = pytest.mark.xfail(
    strict=True, raises=RuntimeError,
    reason="activation_based NonzeroSignLogAbs backward passes a tuple to its TorchScript "
           "function and raises; refsnn's backward is clock_driven's")
LTR_PRIMITIVE_NAN = pytest.mark.xfail(
    strict=True, raises=AssertionError,
    reason="SpikingJelly's LogTailedReLU primitive is NaN for x <= 0 (0*log(x)) and "
           "x = +inf (0*inf); refsnn selects the pieces (SpikingJelly 2.0's fix)")
AB_LTR_ALPHA_F32 = pytest.mark.xfail(
    strict=True, raises=AssertionError,
    reason="activation_based LogTailedReLU backward writes alpha through a TorchScript "
           "index_put that rounds it to float32 even for float64 gradients")


def _params(*, spiking_grad=False, primitive=False):
    """(api, name, kwargs, dtype) parameters with the defect marks that apply."""
    out = []
    for api, name, kw in CONFIGS:
        for dtype in DTYPES:
            marks = []
            if spiking_grad and api == "ab" and name == "NonzeroSignLogAbs":
                marks.append(AB_NSLA_CRASH)
            if spiking_grad and api == "ab" and name == "LogTailedReLU" and dtype == np.float64 \
                    and float(np.float32(kw.get("alpha", 0.0))) != kw.get("alpha", 0.0):
                marks.append(AB_LTR_ALPHA_F32)
            if primitive and name == "LogTailedReLU":
                marks.append(LTR_PRIMITIVE_NAN)
            if primitive and name == "FakeNumericalGradient":
                continue
            out.append(pytest.param(api, name, kw, dtype, marks=marks,
                                    id=f"{_id(api, name, kw)}-{np.dtype(dtype).name}"))
    return out


# --- inputs ------------------------------------------------------------------------------
def _kinks(name, kw):
    """Points where the formulas switch branch, for the config `kw`."""
    if name == "PiecewiseQuadratic":
        return [1.0 / kw.get("alpha", 1.0)]
    if name == "PiecewiseLeakyReLU":
        return [kw.get("w", 1.0)]
    if name == "S2NN":
        return [1.0]  # x = -1: beta/(x+1) = inf
    if name == "LogTailedReLU":
        return [1.0]
    return []


def _inputs(name, kw, dtype):
    """x: [N] with a grid, every kink and its float neighbours, +-0, subnormals,
    tiny, large, +-inf and NaN; g: [N] incoming gradients."""
    rng = np.random.default_rng(20240607)
    fi = np.finfo(dtype)
    edges = [0.0, fi.smallest_subnormal, 1e-40 if dtype == np.float32 else 1e-310, fi.tiny,
             1e-8, 0.5, 1.0, 2.0, 1e30, float(fi.max), np.inf]
    for k in _kinks(name, kw):
        k = dtype(k)
        edges += [k, np.nextafter(k, dtype(0)), np.nextafter(k, dtype(np.inf))]
    edges = np.array(edges, dtype=dtype)
    x = np.concatenate([rng.uniform(-4, 4, 400).astype(dtype), edges, -edges,
                        np.array([np.nan], dtype=dtype)])
    g = rng.normal(size=x.shape).astype(dtype)
    return x, g


# --- the two frameworks ---------------------------------------------------------------
def _make(api, name, kw, spiking):
    kwargs = dict(kw) if name == "FakeNumericalGradient" else dict(kw, spiking=spiking)
    return getattr(API[api], name)(**kwargs), getattr(sg, name)(**kwargs)


def _run_sj(module, x, g):
    """(output, x's gradient or None when the output has no graph)."""
    t = torch.from_numpy(x.copy()).requires_grad_(True)
    y = module(t)
    if not y.requires_grad:  # e.g. SquarewaveFourierSeries(n=1)'s constant primitive
        return y.detach().numpy(), None
    y.backward(torch.from_numpy(g.copy()))
    return y.detach().numpy(), t.grad.numpy()


def _run_refsnn(module, x, g):
    t = rs.tensor(x, requires_grad=True)
    y = module(t)
    if not y.requires_grad:
        return y.data, None
    y.backward(g)
    return y.data, t.grad.data


def _torch_unary(fn):
    return staticmethod(lambda a: fn(torch.from_numpy(np.ascontiguousarray(a))).numpy())


class TorchTranscendentals(NumpyOps):
    """NumPy namespace whose transcendental functions are torch's own kernels:
    what remains is the formula's operation order."""
    exp = _torch_unary(torch.exp)
    log = _torch_unary(torch.log)
    sigmoid = _torch_unary(torch.sigmoid)
    atan = _torch_unary(torch.atan)
    erfc = _torch_unary(torch.erfc)
    cos = _torch_unary(torch.cos)
    sin = _torch_unary(torch.sin)

    @staticmethod
    def pow(a, k):
        return torch.pow(torch.from_numpy(np.ascontiguousarray(a)), k).numpy()


TORCH_MATH = TorchTranscendentals()


# --- comparisons ---------------------------------------------------------------------
def _report(what, x, actual, expected, bad):
    idx = np.flatnonzero(bad)[:6]
    rows = "\n".join(f"  x={x[i]!r}: refsnn {actual[i]!r}, SpikingJelly {expected[i]!r}"
                     for i in idx)
    return f"{what}: {bad.sum()} of {bad.size} elements differ\n{rows}"


def assert_bitwise(what, x, actual, expected):
    """Same dtype and bits (so -0.0 != +0.0); any NaN matches any NaN."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != {expected.dtype}"
    same = bit_equal(actual, expected)
    assert same.all(), _report(what, x, actual, expected, ~same)


def assert_ulp_close(what, x, actual, expected, ulps=4, abs_eps=8):
    """Within `ulps` ulp of the expected value, or `abs_eps` machine epsilons of
    the largest finite expected magnitude (cancellation, e.g. Sigmoid's 1 - s);
    NaN and infinities must match exactly."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != {expected.dtype}"
    finite = np.isfinite(expected)
    scale = np.abs(expected[finite]).max(initial=1.0)
    eps = np.finfo(expected.dtype).eps
    with np.errstate(invalid="ignore"):
        err = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
        tol = ulps * np.spacing(np.abs(expected)).astype(np.float64) + abs_eps * eps * scale
        ok = np.where(finite, err <= tol,
                      (actual == expected) | (np.isnan(actual) & np.isnan(expected)))
    assert ok.all(), _report(what, x, actual, expected, ~ok)


# --- spikes and surrogate gradients -----------------------------------------------------
@pytest.mark.parametrize("api,name,kw,dtype", _params(spiking_grad=True))
def test_spikes_and_surrogate_gradient(api, name, kw, dtype):
    x, g = _inputs(name, kw, dtype)
    sj_module, rs_module = _make(api, name, kw, spiking=True)
    rs_spikes, rs_grad = _run_refsnn(rs_module, x, g)
    sj_spikes, sj_grad = _run_sj(sj_module, x, g)
    assert_bitwise("spikes", x, rs_spikes, sj_spikes)
    if _exact(EXACT_GRAD, name, kw):
        assert_bitwise("grad_x", x, rs_grad, sj_grad)
    else:
        assert_ulp_close("grad_x", x, rs_grad, sj_grad)


@pytest.mark.parametrize("api,name,kw,dtype", _params(spiking_grad=True))
def test_surrogate_gradient_is_bitwise_with_torch_transcendentals(api, name, kw, dtype):
    x, g = _inputs(name, kw, dtype)
    sj_module, rs_module = _make(api, name, kw, spiking=True)
    _, sj_grad = _run_sj(sj_module, x, g)
    with np.errstate(all="ignore"):
        ours = rs_module.grad_x(x, g, TORCH_MATH, **rs_module.formula_params())
    assert_bitwise("grad_x (torch transcendentals)", x, ours, sj_grad)


# --- primitives (spiking=False) -----------------------------------------------------------
@pytest.mark.parametrize("api,name,kw,dtype", _params(primitive=True))
def test_primitive_and_its_autograd_gradient(api, name, kw, dtype):
    x, g = _inputs(name, kw, dtype)
    sj_module, rs_module = _make(api, name, kw, spiking=False)
    rs_y, rs_grad = _run_refsnn(rs_module, x, g)
    sj_y, sj_grad = _run_sj(sj_module, x, g)
    if _exact(EXACT_PRIMITIVE, name, kw):
        assert_bitwise("primitive", x, rs_y, sj_y)
    else:
        assert_ulp_close("primitive", x, rs_y, sj_y)
    # autograd accumulates in its own order: a few ulp, everywhere
    assert (rs_grad is None) == (sj_grad is None), "only one output requires grad"
    if sj_grad is not None:
        assert_ulp_close("autograd grad of primitive", x, rs_grad, sj_grad)


@pytest.mark.parametrize("api,name,kw,dtype", _params(primitive=True))
def test_primitive_is_bitwise_with_torch_transcendentals(api, name, kw, dtype):
    x, g = _inputs(name, kw, dtype)
    sj_module, rs_module = _make(api, name, kw, spiking=False)
    sj_y, _ = _run_sj(sj_module, x, g)
    with np.errstate(all="ignore"):
        ours = rs_module.primitive(x, TORCH_MATH, **rs_module.formula_params())
    assert_bitwise("primitive (torch transcendentals)", x, ours, sj_y)


@pytest.mark.parametrize("alpha", [0.0, 0.1])
@pytest.mark.parametrize("dtype", DTYPES)
def test_log_tailed_relu_primitive_agrees_where_spikingjelly_is_finite(alpha, dtype):
    x, g = _inputs("LogTailedReLU", {"alpha": alpha}, dtype)
    keep = (x > 0) & np.isfinite(x)
    x, g = x[keep], g[keep]
    sj_module, rs_module = _make("ab", "LogTailedReLU", {"alpha": alpha}, spiking=False)
    rs_y, rs_grad = _run_refsnn(rs_module, x, g)
    sj_y, sj_grad = _run_sj(sj_module, x, g)
    assert_ulp_close("primitive", x, rs_y, sj_y)
    assert_ulp_close("autograd grad of primitive", x, rs_grad, sj_grad)
    with np.errstate(all="ignore"):
        ours = rs_module.primitive(x, TORCH_MATH, alpha=alpha)
    assert_bitwise("primitive (torch transcendentals)", x, ours, sj_y)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kw", [{}, {"w": 0.3, "c": 0.1}])
def test_piecewise_leaky_relu_consistent_slope_is_the_primitives_derivative(kw, dtype):
    x, g = _inputs("PiecewiseLeakyReLU", kw, dtype)
    x = x[np.isfinite(x) & (np.abs(np.abs(x) - kw.get("w", 1.0)) > 1e-3)]
    g = np.ones_like(x)
    sj_primitive = cd.PiecewiseLeakyReLU(**kw, spiking=False)
    _, sj_grad = _run_sj(sj_primitive, x, g)
    ours = sg.PiecewiseLeakyReLU(**kw, consistent_slope=True)
    _, rs_grad = _run_refsnn(ours, x, g)
    assert_ulp_close("surrogate grad vs autograd of SpikingJelly's primitive", x, rs_grad, sj_grad)


# --- set_spiking_mode ---------------------------------------------------------------------
CD_IGNORES_SET_SPIKING_MODE = pytest.mark.xfail(
    strict=True, raises=AssertionError,
    reason="clock_driven multi-argument surrogates pick the spiking or primitive function "
           "once in __init__, so set_spiking_mode(False) keeps the Heaviside forward")


@pytest.mark.parametrize("api", [pytest.param("cd", marks=CD_IGNORES_SET_SPIKING_MODE), "ab"])
@pytest.mark.parametrize("name", ["PiecewiseLeakyReLU", "SquarewaveFourierSeries", "S2NN"])
def test_set_spiking_mode_switches_multi_argument_surrogates(api, name):
    x, g = _inputs(name, {}, np.float32)
    sj_module, rs_module = _make(api, name, {}, spiking=True)
    sj_module.set_spiking_mode(False)
    rs_module.set_spiking_mode(False)
    rs_y, _ = _run_refsnn(rs_module, x, g)
    sj_y, _ = _run_sj(sj_module, x, g)
    assert_ulp_close("forward after set_spiking_mode(False)", x, rs_y, sj_y)


# --- constructors and reprs ---------------------------------------------------------------
def _sj_classes():
    out = []
    for api, mod in API.items():
        names = [n for n, _ in COMMON] + ([n for n, _ in AB_ONLY] if api == "ab" else [])
        out += [(api, n) for n in dict.fromkeys(names)]
    return out


@pytest.mark.parametrize("api,name", _sj_classes(), ids=lambda v: str(v))
def test_constructor_signature_matches(api, name):
    def params(cls):
        return [(p.name, p.kind, p.default) for p in
                list(inspect.signature(cls.__init__).parameters.values())[1:]]
    sj_params = params(getattr(API[api], name))
    ours = params(getattr(sg, name))
    assert ours[:len(sj_params)] == sj_params
    assert all(kind == inspect.Parameter.KEYWORD_ONLY for _, kind, _ in ours[len(sj_params):])


@pytest.mark.parametrize("api,name,kw", CONFIGS, ids=[_id(*c) for c in CONFIGS])
def test_repr_and_state_dict_match(api, name, kw):
    sj_module, rs_module = _make(api, name, kw, spiking=True)
    assert repr(rs_module) == repr(sj_module)
    assert list(rs_module.state_dict()) == list(sj_module.state_dict()) == []
