"""Hypothesis strategies: configs build and mean the same thing to refsnn and
SpikingJelly, inputs carry the adversarial values they promise, states and
networks have matching shapes."""
import numpy as np
import pytest
from hypothesis import Phase, find, given, settings

from refsnn import golden, strategies as S


def f32_exact(value) -> bool:
    return not isinstance(value, float) or float(np.float32(value)) == value


@given(S.neuron_configs(eval_mode=True))
def test_every_neuron_config_builds_and_its_floats_are_float32_exact(config):
    m = golden.neuron_from_config(config)
    assert type(m).__name__ == config["class"]
    assert m.training == config["training"]
    assert all(f32_exact(v) for v in config["kwargs"].values())
    assert all(f32_exact(v) for v in config["surrogate"]["kwargs"].values())
    if config["class"].startswith("MultiStep"):
        assert config["api"] == "clock_driven" and config["step_mode"] == "m"


@given(S.neuron_configs(api="clock_driven"))
def test_api_flavour_selects_the_classes(config):
    assert config["class"] in S.NEURON_CLASSES["clock_driven"]


def test_unknown_class_is_refused():
    with pytest.raises(ValueError, match="unknown neuron class 'LIFNod'"):
        S.neuron_configs(["LIFNod"])


@given(S.input_sequences((4, 2, 3), "float64", low=-0.5, high=2.0, v_threshold=0.5))
def test_input_sequences_have_the_shape_dtype_and_range(x):
    assert x.shape == (4, 2, 3) and x.dtype == np.float64
    assert not np.isnan(x).any() and np.isfinite(x).all()
    assert (x >= -0.25).all() and (x < 1.0).all()     # [-0.5, 2) * v_threshold


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name, wanted", [
    ("negative zero", lambda x: (np.signbit(x) & (x == 0)).any()),
    ("exact threshold", lambda x: (x == 0.75).any()),
    ("one ulp below threshold", lambda x: (x == np.nextafter(x.dtype.type(0.75), 0)).any()),
    ("subnormal", lambda x: ((x != 0) & (np.abs(x) < np.finfo(x.dtype).smallest_normal)).any()),
])
def test_input_sequences_contain_adversarial_values(dtype, name, wanted):
    find(S.input_sequences((3, 2, 2), dtype, v_threshold=0.75), wanted)


def test_nan_and_infinity_only_when_allowed():
    find(S.input_sequences((3, 2, 2), allow_nan=True), lambda x: np.isnan(x).any())
    find(S.input_sequences((3, 2, 2), allow_infinity=True), lambda x: np.isinf(x).any())


@given(S.neuron_configs(["IzhikevichNode", "LIFNode"]).flatmap(
    lambda c: S.initial_states(c, (2, 3), "float64").map(lambda s: (c, s))))
def test_initial_states_match_the_neuron(config_and_state):
    config, state = config_and_state
    assert set(state) == ({"v", "w"} if config["class"] == "IzhikevichNode" else {"v"})
    assert all(v.shape == (2, 3) and v.dtype == np.float64 for v in state.values())


@pytest.mark.parametrize("cls", ["IFNode", "LIFNode", "ParametricLIFNode", "QIFNode",
                                 "IzhikevichNode", "MultiStepLIFNode"])
def test_threshold_hits_land_exactly_on_the_threshold(cls):
    """Drawn cases charge neurons exactly onto v_threshold at t=0 (read from
    refsnn's recorded h): the input that tells `>=` from `>`."""
    hits = []

    @settings(max_examples=10, database=None, phases=(Phase.generate,))
    @given(S.neuron_cases([cls], dtypes=("float32",), max_steps=2, specials=False))
    def collect(case):
        h0 = golden.reference_outputs(case)["h_seq"][0]
        v_th = np.float32(case.config["kwargs"]["v_threshold"])
        hits.append(int((h0 == v_th).sum()))
    collect()
    assert sum(h > 0 for h in hits) >= len(hits) // 2, hits


@settings(max_examples=20)
@given(S.neuron_cases(eval_mode=True, allow_nan=True))
def test_neuron_cases_are_consistent(case):
    x = case.inputs["x_seq"]
    assert x.ndim == 3 and x.dtype == np.dtype(case.dtype)
    assert case.inputs["v_init"].shape == x.shape[1:]
    assert ("grad_spike_seq" in case.inputs) == case.config["training"]
    out = golden.reference_outputs(case)
    assert out["spike_seq"].shape == x.shape
    golden.assert_outputs_match(case, out, out, exact=True)


@settings(max_examples=10)
@given(S.networks())
def test_networks_run_and_name_every_parameter(case):
    out = golden.reference_outputs(case)
    T, N = case.inputs["x_seq"].shape[:2]
    assert out["spike_seq"].shape[:2] == (T, N)
    params = {k for k in case.inputs if k.startswith("param.")}
    assert {f"grad_{k}" for k in params} <= set(out)
    assert any(k.endswith(".weight") for k in params)


# ----------------------------------------------------------------------------
# the configs mean the same to SpikingJelly (both are run for real)
# ----------------------------------------------------------------------------
def agree_with_spikingjelly(case):
    pytest.importorskip("torch")
    pytest.importorskip("spikingjelly")
    expected = golden.reference_outputs(case)
    actual = golden.spikingjelly_outputs(case)
    bad = [f"{n}: {m}" for n, ok, m in golden.compare_outputs(
        case.manifest(expected), case.inputs, actual, expected) if ok is False]
    assert not bad, "\n".join(bad)


NO_EIF = tuple(c for cs in S.NEURON_CLASSES.values() for c in cs if "EIF" not in c)


@settings(max_examples=15)
@given(S.neuron_cases(NO_EIF, eval_mode=True))
def test_neuron_cases_agree_with_spikingjelly(case):
    agree_with_spikingjelly(case)


@settings(max_examples=5)
@given(S.neuron_cases(["EIFNode", "MultiStepEIFNode"], threshold_hits=False))
def test_eif_cases_agree_with_spikingjelly(case):
    """EIF's charge has an exp, whose last bit differs between NumPy and torch:
    no exact threshold hits there."""
    agree_with_spikingjelly(case)


@settings(max_examples=10)
@given(S.surrogate_cases())
def test_surrogate_cases_agree_with_spikingjelly(case):
    agree_with_spikingjelly(case)


@settings(max_examples=5)
@given(S.networks())
def test_networks_agree_with_spikingjelly(case):
    agree_with_spikingjelly(case)
