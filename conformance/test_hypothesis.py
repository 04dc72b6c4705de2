"""Hypothesis-driven equivalence with SpikingJelly: drawn neuron configurations
(thresholds, resets, time constants, surrogates) and drawn input sequences,
including values exactly at threshold, signed zeros, subnormals, huge
magnitudes, infinities and NaN. Every example runs SpikingJelly and refsnn
through the catalog's runner and must conform (spikes and potentials bit for
bit, gradients within tolerance)."""
import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("spikingjelly")

from hypothesis import given, strategies as st  # noqa: E402

from refsnn.conformance import catalog, drivers, runner  # noqa: E402

AVAILABLE = drivers.available_backends()
# neuron records without a known SpikingJelly defect on their default configs
NEURONS = [r for r in catalog.RECORDS if r.kind == "neuron" and not r.defects]
SIMPLE = {"IFNode", "LIFNode", "ParametricLIFNode", "MultiStepIFNode", "MultiStepLIFNode",
          "MultiStepParametricLIFNode"}


def _special_values(dtype, v_threshold, tau):
    tiny = float(np.finfo(dtype).smallest_subnormal)
    return [v_threshold, v_threshold * tau, -v_threshold, 0.0, -0.0, tiny, -tiny,
            float(np.finfo(dtype).smallest_normal), 1e30, -1e30, float("inf"), float("-inf"),
            float("nan")]


@st.composite
def neuron_cases(draw):
    """(case, inputs): a catalog neuron record with a drawn configuration, step
    mode, backend and dtype, and a drawn input sequence `x: [T, N, F]`."""
    rec = draw(st.sampled_from(NEURONS))
    cls = rec.sj.rsplit(".", 1)[1]
    config = dict(draw(st.sampled_from(rec.configs)))
    if cls in SIMPLE:  # free hyper-parameters where SpikingJelly has no constraints
        config["v_threshold"] = draw(st.sampled_from([1.0, 0.5, 0.3, 2.0, 1.1]))
        config["v_reset"] = draw(st.sampled_from([None, 0.0, -0.2, 0.1]))
        for key in ("tau", "init_tau"):
            if key in config:
                config[key] = draw(st.sampled_from([2.0, 3.0, 1.5, 7.0, 1.01, 64.0]))
        config["detach_reset"] = draw(st.booleans())
        config["surrogate_function"] = draw(st.sampled_from(catalog.NEURON_SURROGATES))
    mode = draw(st.sampled_from(rec.step_modes))
    backends = [b for b in rec.backends if b in AVAILABLE
                and (mode == "m" or b not in catalog.FUSED_BACKENDS)]
    backend = draw(st.sampled_from(backends))
    dtype = draw(st.sampled_from(rec.dtypes))
    training = draw(st.sampled_from(rec.training))
    case = dataclasses.replace(catalog.Case(rec, 0, mode, backend, dtype, training),
                               config_override=tuple(config.items()))

    T, N, F = draw(st.integers(1, 6)), draw(st.integers(1, 3)), draw(st.integers(1, 5))
    v_th = config.get("v_threshold", 1.0)
    tau = config.get("tau", config.get("init_tau", 2.0))
    ordinary = st.floats(-3.0, 3.0, width=32 if dtype == "float32" else 64)
    element = st.one_of(ordinary, ordinary, ordinary,
                        st.sampled_from(_special_values(np.dtype(dtype), v_th, tau)))
    x = np.array(draw(st.lists(element, min_size=T * N * F, max_size=T * N * F)),
                 dtype=dtype).reshape(T, N, F)
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 16)))
    data = dict(x=x, g_spikes=rng.standard_normal(x.shape).astype(dtype),
                g_v=rng.standard_normal(x.shape).astype(dtype))
    return case, data


@given(neuron_cases())
def test_drawn_neuron_cases_conform(drawn):
    case, data = drawn
    result = runner.run_case(case, data)
    assert result.outcome == "pass", f"{case.id}: {result.outcome}: {result.message}"
