"""The toolkit can fail: NumPy kernels with planted bugs are caught within the
default number of hypothesis examples by the strategies and comparisons, and
the same kernels without the bug pass the same properties.

The kernels are written here from the conventions (docs/golden-format.md),
independently of refsnn's neuron code: a LIF and a PLIF layer, forward in
SpikingJelly's operation order and backward as closed-form BPTT with the
Sigmoid surrogate. Planted bugs:
- firing on `h > v_threshold` instead of `h - v_threshold >= 0`;
- the surrogate's default alpha instead of the configured one;
- the reset applied one step late (with the previous step's spike);
- PLIF's gradient of w reduced per block of neurons, only one block kept
  (a missing cross-block accumulation).
No shrinking and no example database, so each run finds the bug afresh.
PLIF's decay k = sigmoid(w) uses SciPy's float32 `expit`, as refsnn does:
transcendentals differ by an ulp between libraries, and with inputs landing
exactly on the threshold one ulp in k is a (rounding-level) spike flip.
"""
import numpy as np
import pytest
from hypothesis import Phase, given, settings
from scipy.special import expit

from refsnn import golden, strategies
from refsnn.comparisons import assert_grads_close, assert_spikes_equal

BLOCK = 2   # neurons per block of the PLIF reduction


# ----------------------------------------------------------------------------
# the kernels (one function, bugs switched on by flags)
# ----------------------------------------------------------------------------
def sigmoid_surrogate(z, alpha):
    sig = expit(alpha * z)
    return alpha * sig * (1 - sig)


def lif_layer(manifest, arrays, *, fire_gt=False, default_alpha=False, late_reset=False,
              plif_reduction="all"):
    """A LIF / PLIF layer under the golden calling convention, x_seq: [T, N, F]."""
    cfg, kw = manifest["config"], manifest["config"]["kwargs"]
    if cfg["surrogate"]["class"] != "Sigmoid" or cfg["class"] not in ("LIFNode",
                                                                        "ParametricLIFNode"):
        raise NotImplementedError(cfg["class"])
    x = arrays["x_seq"].reshape(arrays["x_seq"].shape[0], -1)
    dt = x.dtype
    T, M = x.shape
    v_th, v_reset = kw.get("v_threshold", 1.0), kw.get("v_reset", 0.0)
    decay_input, detach = kw.get("decay_input", True), kw.get("detach_reset", False)
    alpha = 4.0 if default_alpha else cfg["surrogate"]["kwargs"].get("alpha", 4.0)
    plif = cfg["class"] == "ParametricLIFNode"
    if plif:
        w = arrays["param.w"]
        k = expit(w).astype(dt)
    zero_reset = v_reset is None or v_reset == 0.

    def charge(xt, v):
        if plif:
            if decay_input:
                return v + (xt - v) * k if zero_reset else v + (xt - (v - v_reset)) * k
            return v * (1. - k) + xt if zero_reset else v - (v - v_reset) * k + xt
        tau = kw["tau"]
        if decay_input:
            return v + (xt - v) / tau if zero_reset else v + (xt - (v - v_reset)) / tau
        return v * (1. - 1. / tau) + xt if zero_reset else v - (v - v_reset) / tau + xt

    def reset(h, s):
        return h - s * v_th if v_reset is None else (1. - s) * h + s * v_reset

    v = arrays["v_init"].reshape(-1).copy()
    hs, ss, vs, v_pre = (np.empty((T, M), dt) for _ in range(4))
    previous = np.zeros(M, dt)
    for t in range(T):
        v_pre[t] = v
        h = charge(x[t], v)
        s = ((h > v_th) if fire_gt else (h - v_th >= 0)).astype(dt)
        v = reset(h, previous if late_reset else s)
        previous = s
        hs[t], ss[t], vs[t] = h, s, v
    shape = arrays["x_seq"].shape
    out = {"spike_seq": ss.reshape(shape), "v_seq": vs.reshape(shape), "h_seq": hs.reshape(shape)}

    # backward (closed-form BPTT)
    gs = arrays["grad_spike_seq"].reshape(T, M)
    gv = arrays["grad_v_seq"].reshape(T, M)
    psi = sigmoid_surrogate(hs - v_th, alpha).astype(dt)
    if v_reset is None:
        R = np.ones_like(hs) if detach else 1 - v_th * psi
    else:
        R = (1 - ss) if detach else (1 - ss) + (v_reset - hs) * psi
    dh_dv = (1 - k) if plif else 1 - 1 / kw["tau"]
    dh_dx = (k if plif else 1 / kw["tau"]) if decay_input else 1.0
    r = 0. if zero_reset else v_reset
    dh_dk = (x - (v_pre - r)) if decay_input else -(v_pre - r)
    gx, gk = np.empty((T, M), dt), np.zeros((T, M), dt)
    g_h = np.zeros(M, dt)
    for t in reversed(range(T)):
        g_v = gv[t] + g_h * dh_dv
        g_h = g_v * R[t] + gs[t] * psi[t]
        gx[t] = g_h * dh_dx
        gk[t] = g_h * dh_dk[t]
    out["grad_x_seq"] = gx.reshape(shape)
    out["grad_v_init"] = (g_h * dh_dv).reshape(arrays["v_init"].shape)
    if plif:
        per_neuron = gk.sum(axis=0)
        blocks = [per_neuron[i:i + BLOCK].sum(dtype=dt) for i in range(0, M, BLOCK)]
        total = blocks[0] if plif_reduction == "first_block" else np.sum(blocks, dtype=dt)
        out["grad_param.w"] = np.asarray(total * k * (1 - k), dtype=dt)
    return out


# ----------------------------------------------------------------------------
# the property: strategies draw the case, comparisons judge it
# ----------------------------------------------------------------------------
def agrees_with_refsnn(kernel, classes):
    """A hypothesis test (run it by calling it): `kernel` matches refsnn on
    neuron cases of `classes` with the Sigmoid surrogate, in float32, with
    the default number of examples."""
    @settings(database=None, phases=(Phase.explicit, Phase.generate))
    @given(strategies.neuron_cases(classes=classes, surrogates=("Sigmoid",),
                                   dtypes=("float32",)))
    def prop(case):
        expected = golden.reference_outputs(case)
        actual = kernel(case.manifest(), {k: v.copy() for k, v in case.inputs.items()})
        T = case.inputs["x_seq"].shape[0]
        assert_spikes_equal(actual["spike_seq"], expected["spike_seq"],
                            h_seq=expected["h_seq"], actual_h_seq=actual["h_seq"],
                            v_threshold=case.config["kwargs"]["v_threshold"])
        for name in ("v_seq", "grad_x_seq", "grad_v_init"):
            assert_grads_close(actual[name], expected[name], steps=T, name=name)
        if "grad_param.w" in expected:
            assert_grads_close(actual["grad_param.w"], expected["grad_param.w"], steps=T,
                               fan_in=case.inputs["x_seq"].size, name="grad of w")
    return prop


def caught(kernel, classes) -> str:
    with pytest.raises(AssertionError) as e:
        agrees_with_refsnn(kernel, classes)()
    return str(e.value)


@pytest.mark.parametrize("classes", [("LIFNode",), ("ParametricLIFNode",)])
def test_the_kernels_without_bugs_pass(classes):
    agrees_with_refsnn(lif_layer, classes)()


def test_firing_on_greater_than_is_caught():
    message = caught(lambda m, a: lif_layer(m, a, fire_gt=True), ("LIFNode",))
    assert "the firing rule differs" in message


def test_surrogate_with_the_wrong_alpha_is_caught():
    message = caught(lambda m, a: lif_layer(m, a, default_alpha=True), ("LIFNode",))
    assert "grad_x_seq" in message or "grad_v_init" in message


def test_reset_one_step_late_is_caught():
    message = caught(lambda m, a: lif_layer(m, a, late_reset=True), ("LIFNode",))
    assert "spikes differ" in message or "v_seq" in message


def test_plif_gradient_reduced_per_block_is_caught():
    message = caught(lambda m, a: lif_layer(m, a, plif_reduction="first_block"),
                     ("ParametricLIFNode",))
    assert "grad of w" in message
