"""Hypothesis strategies for property-testing a spiking implementation against
refsnn (needs `hypothesis`, the `test` extra).

- `surrogate_configs`, `neuron_configs`: JSON configs (the golden format's,
  docs/golden-format.md) per neuron class and API flavour
  (`activation_based` in step mode 's' or 'm', `clock_driven` `MultiStep*`);
- `input_sequences`: `x_seq: [T, N, *]` arrays of a dtype and range, with
  adversarial values: exactly at and one ulp around the threshold, signed
  zeros, subnormals, optionally NaN and infinities;
- `initial_states`: a neuron's starting state `{"v": [N, *], ("w": ...)}`;
- `neuron_cases`, `surrogate_cases`, `networks`: complete `refsnn.golden.Case`s
  (config, inputs, parameters, initial state, loss weights), ready for
  `refsnn.golden.reference_outputs(case)` and for your implementation, called
  as `impl(case.manifest(), case.inputs)`.

Every float hyper-parameter is exactly representable in float32, so a config
means the same thing to every implementation.
"""
from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from . import golden
from .golden.configs import state_default

__all__ = ["NEURON_CLASSES", "SURROGATE_CLASSES", "surrogate_configs", "neuron_configs",
           "input_sequences", "initial_states", "neuron_cases", "surrogate_cases",
           "networks"]

#: neuron classes per API flavour (SpikingJelly's names)
NEURON_CLASSES = {
    "activation_based": ("IFNode", "LIFNode", "ParametricLIFNode", "QIFNode", "EIFNode",
                         "IzhikevichNode", "KLIFNode"),
    "clock_driven": ("MultiStepIFNode", "MultiStepLIFNode", "MultiStepParametricLIFNode",
                     "MultiStepEIFNode"),
}
#: surrogate classes drawn by default, with their parameter ranges
SURROGATE_CLASSES = {
    "Sigmoid": {"alpha": (1.0, 8.0)},
    "ATan": {"alpha": (0.5, 4.0)},
    "PiecewiseQuadratic": {"alpha": (0.5, 2.0)},
    "PiecewiseExp": {"alpha": (0.5, 4.0)},
    "SoftSign": {"alpha": (0.5, 4.0)},
    "Erf": {"alpha": (0.5, 4.0)},
    "QPseudoSpike": {"alpha": (1.5, 4.0)},
    "PiecewiseLeakyReLU": {"w": (0.25, 2.0), "c": (0.0, 0.1)},
}
_GRAPH_FREE_EVAL = ("IFNode", "LIFNode")   # activation_based neurons with an eval path


def _floats(low: float, high: float, dtype="float32") -> st.SearchStrategy:
    """Floats in [low, high] (bounds rounded to `dtype`) exactly representable
    in `dtype`, subnormals allowed."""
    d = np.dtype(dtype)
    return st.floats(float(d.type(low)), float(d.type(high)), width=8 * d.itemsize)


def _f32(low: float, high: float, common=()) -> st.SearchStrategy:
    """Floats in [low, high] exactly representable in float32, with `common`
    values (rounded to float32) drawn often."""
    drawn = _floats(low, high)
    if not common:
        return drawn
    return st.one_of(st.sampled_from([float(np.float32(c)) for c in common]), drawn)


def surrogate_configs(classes=None) -> st.SearchStrategy:
    """`{"class": name, "kwargs": {...}}` for the surrogates in `classes`
    (default: all of SURROGATE_CLASSES), parameters drawn from their ranges
    or left at the class default."""
    names = tuple(classes or SURROGATE_CLASSES)

    @st.composite
    def draw(draw_):
        name = draw_(st.sampled_from(names))
        kwargs = {}
        for param, (low, high) in SURROGATE_CLASSES.get(name, {}).items():
            if not draw_(st.booleans()):   # mostly drawn; sometimes the class default
                kwargs[param] = draw_(_f32(low, high))
        return {"class": name, "kwargs": kwargs}
    return draw()


@st.composite
def _neuron_kwargs(draw, cls: str) -> dict:
    base = cls.replace("MultiStep", "")
    kw = {"v_threshold": draw(_f32(0.25, 2.0, (1.0, 0.5)))}
    reset = draw(st.sampled_from(["zero", "none", "other"]))
    kw["v_reset"] = {"zero": 0.0, "none": None}.get(reset) if reset != "other" else \
        draw(_f32(-0.5, 0.0))
    kw["detach_reset"] = draw(st.booleans())
    if base in ("LIFNode", "KLIFNode", "QIFNode", "EIFNode", "IzhikevichNode"):
        kw["tau"] = draw(_f32(1.125, 16.0, (2.0, 1.5, 3.0, 4.0)))
    if base in ("LIFNode", "ParametricLIFNode", "KLIFNode"):
        kw["decay_input"] = draw(st.booleans())
    if base == "ParametricLIFNode":
        kw["init_tau"] = draw(_f32(1.125, 16.0, (2.0, 3.0, 4.0)))
    if base in ("QIFNode", "IzhikevichNode"):
        kw["v_c"] = draw(_f32(0.5, 0.9, (0.8,)))
        kw["a0"] = draw(_f32(0.25, 2.0, (1.0,)))
    if base == "EIFNode":
        kw["delta_T"] = draw(_f32(0.5, 2.0, (1.0,)))
        kw["theta_rh"] = draw(_f32(0.5, 0.9, (0.8,)))
    if base == "IzhikevichNode":
        kw["tau_w"] = draw(_f32(1.5, 8.0, (2.0,)))
        kw["a"] = draw(_f32(0.0, 1.0, (0.0,)))
        kw["b"] = draw(_f32(0.0, 0.5, (0.0,)))
    if base == "KLIFNode":
        kw["scale_reset"] = draw(st.booleans())
        if kw["v_reset"] is None:       # SpikingJelly's KLIF soft reset is broken
            kw["v_reset"] = 0.0
    return kw


def neuron_configs(classes=None, api: str | None = None, step_modes=("s", "m"),
                   surrogates=None, eval_mode: bool = False) -> st.SearchStrategy:
    """Neuron configs (the golden format's): `{"class", "api", "step_mode",
    "training", "kwargs", "surrogate"}`.

    classes: class names (default: every class of `api`, or of both APIs);
    api: 'activation_based' or 'clock_driven' (MultiStep* classes);
    step_modes: activation_based step modes to draw ('m' for clock_driven);
    surrogates: surrogate class names (default: all of SURROGATE_CLASSES);
    eval_mode: also draw eval-mode configs for IF/LIF (their graph-free path).
    """
    if classes is None:
        apis = (api,) if api else tuple(NEURON_CLASSES)
        classes = tuple(c for a in apis for c in NEURON_CLASSES[a])
    classes = tuple(classes)
    for c in classes:
        if not any(c in names for names in NEURON_CLASSES.values()):
            raise ValueError(f"neuron_configs: unknown neuron class {c!r}; known: "
                             f"{sorted(n for v in NEURON_CLASSES.values() for n in v)}")

    @st.composite
    def draw(draw_):
        cls = draw_(st.sampled_from(classes))
        clock_driven = cls.startswith("MultiStep")
        training = True
        if eval_mode and cls in _GRAPH_FREE_EVAL:
            training = draw_(st.booleans())
        return {"class": cls, "api": "clock_driven" if clock_driven else "activation_based",
                "step_mode": "m" if clock_driven else draw_(st.sampled_from(tuple(step_modes))),
                "training": training, "kwargs": draw_(_neuron_kwargs(cls)),
                "surrogate": draw_(surrogate_configs(surrogates))}
    return draw()


def _specials(dtype: np.dtype, v_threshold: float, allow_nan: bool,
              allow_infinity: bool) -> list:
    th = dtype.type(v_threshold)
    tiny = np.finfo(dtype).smallest_subnormal
    values = [th, np.nextafter(th, dtype.type(np.inf)), np.nextafter(th, dtype.type(-np.inf)),
              dtype.type(0.0), dtype.type(-0.0), tiny, -tiny,
              np.nextafter(np.finfo(dtype).smallest_normal, dtype.type(0))]
    if allow_nan:
        values.append(dtype.type(np.nan))
    if allow_infinity:
        values += [dtype.type(np.inf), dtype.type(-np.inf), dtype.type(1e30), dtype.type(-1e30)]
    return values


def _shape(shape):
    return shape if isinstance(shape, st.SearchStrategy) else st.just(tuple(shape))


def _seeded(draw_, shape, dtype, low: float, high: float) -> np.ndarray:
    """Uniform values in [low, high) from a drawn seed: every example exercises
    the dynamics (hypothesis would start from all-zero arrays)."""
    seed = draw_(st.integers(0, 2 ** 32 - 1))
    return np.random.default_rng(seed).uniform(low, high, size=shape).astype(dtype)


def input_sequences(shape, dtype="float32", low: float = -0.5, high: float = 2.0,
                    v_threshold: float = 1.0, specials: bool = True,
                    allow_nan: bool = False, allow_infinity: bool = False) -> st.SearchStrategy:
    """Arrays `x_seq` of `shape` ([T, N, *]; a tuple or a strategy of tuples)
    and `dtype`: uniform in [low, high) times |v_threshold| (from a drawn
    seed), with up to a quarter of the elements replaced by adversarial
    values: exactly v_threshold and its two neighbouring floats, +0.0 and
    -0.0, the smallest subnormals, the largest subnormal; NaN with
    `allow_nan`; +-inf and +-1e30 with `allow_infinity`."""
    d = np.dtype(dtype)
    scale = abs(v_threshold) or 1.0
    pool = _specials(d, v_threshold, allow_nan, allow_infinity)

    @st.composite
    def draw(draw_):
        shp = tuple(draw_(_shape(shape)))
        x = _seeded(draw_, shp, d, low * scale, high * scale)
        if specials and x.size:
            flat = x.reshape(-1)
            for i, value in draw_(st.lists(st.tuples(st.integers(0, flat.size - 1),
                                                     st.sampled_from(pool)),
                                           max_size=max(1, flat.size // 4))):
                flat[i] = value
        return x
    return draw()


def initial_states(config: dict, step_shape, dtype="float32") -> st.SearchStrategy:
    """A neuron's initial state `{"v": [N, *]}` (plus `"w"` for Izhikevich,
    at its resting value): the fresh state (v_reset, or 0 for soft reset), or
    uniform values in [-0.5, 1.2) * v_threshold with v_threshold, v_reset and
    -0.0 mixed in."""
    d = np.dtype(dtype)
    v_th = float(config.get("kwargs", {}).get("v_threshold", 1.0))
    names = golden.neuron_state_names(config)

    @st.composite
    def draw(draw_):
        shp = tuple(draw_(_shape(step_shape)))
        state = {name: np.full(shp, state_default(config, name), dtype=d)
                 for name in names}
        if draw_(st.booleans()) or not state["v"].size:
            return state
        v = _seeded(draw_, shp, d, -0.5 * abs(v_th), 1.2 * abs(v_th))
        flat = v.reshape(-1)
        for i, value in draw_(st.lists(st.tuples(
                st.integers(0, flat.size - 1),
                st.sampled_from([v_th, state_default(config, "v"), -0.0])),
                max_size=max(1, flat.size // 2))):
            flat[i] = value
        state["v"] = v
        return state
    return draw()


@st.composite
def _neuron_case(draw, configs, dtypes, max_steps, max_batch, max_features, low, high,
                 specials, allow_nan, allow_infinity, threshold_hits):
    config = draw(configs)
    dtype = np.dtype(draw(st.sampled_from(tuple(dtypes))))
    T = draw(st.integers(2, max_steps))
    step = (draw(st.integers(1, max_batch)), draw(st.integers(1, max_features)))
    v_th = float(config["kwargs"].get("v_threshold", 1.0))
    x = draw(input_sequences((T,) + step, dtype, low, high, v_th, specials, allow_nan,
                             allow_infinity))
    state = draw(initial_states(config, step, dtype))
    if threshold_hits:
        # one to three neurons get the input that charges them exactly onto the threshold
        hits = golden.threshold_inputs(config, state, dtype).reshape(-1)
        chosen = draw(st.lists(st.integers(0, hits.size - 1), min_size=1, max_size=3,
                               unique=True))
        x0 = x[0].reshape(-1)
        x0[chosen] = hits[chosen]
    inputs = {"x_seq": x}
    roles = {"x_seq": "input"}
    for name, value in state.items():
        inputs[f"{name}_init"], roles[f"{name}_init"] = value, "input"
    m = golden.neuron_from_config(config, dtype)
    for pname, p in m.named_parameters():
        inputs[f"param.{pname}"], roles[f"param.{pname}"] = np.array(p.data), "parameter"
    if config.get("training", True):
        rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
        inputs["grad_spike_seq"] = rng.standard_normal(x.shape).astype(dtype)
        inputs["grad_v_seq"] = rng.standard_normal(x.shape).astype(dtype)
        roles.update(grad_spike_seq="upstream", grad_v_seq="upstream")
    return golden.Case(f"hypothesis_{config['class']}", "neuron", config, dtype.name,
                       inputs, roles)


def neuron_cases(classes=None, api: str | None = None, step_modes=("s", "m"),
                 surrogates=None, eval_mode: bool = False, dtypes=("float32", "float64"),
                 max_steps: int = 8, max_batch: int = 3, max_features: int = 6,
                 low: float = -0.5, high: float = 2.0, specials: bool = True,
                 allow_nan: bool = False, allow_infinity: bool = False,
                 threshold_hits: bool = True) -> st.SearchStrategy:
    """Complete neuron cases (`refsnn.golden.Case`): a config from
    `neuron_configs(classes, api, step_modes, surrogates, eval_mode)`, a dtype,
    `x_seq: [T, N, F]` from `input_sequences` (T in 2..max_steps), an initial
    state from `initial_states`, the class's parameters (PLIF `w`, KLIF `k`),
    and loss weights `grad_spike_seq`, `grad_v_seq` in [-2, 2] (training
    configs only; standard normal, from a drawn seed). With `threshold_hits`,
    one to three neurons receive at t=0 the input that charges them exactly
    onto v_threshold (found on refsnn's own charge)."""
    configs = neuron_configs(classes, api, step_modes, surrogates, eval_mode)
    return _neuron_case(configs, dtypes, max_steps, max_batch, max_features, low, high,
                        specials, allow_nan, allow_infinity, threshold_hits)


def surrogate_cases(classes=None, dtypes=("float32", "float64"),
                    max_size: int = 32) -> st.SearchStrategy:
    """Surrogate cases: a config from `surrogate_configs(classes)`, `x: [K]`
    in [-3, 3) with 0, -0.0 and subnormals mixed in, and standard normal
    `grad_y: [K]`."""
    @st.composite
    def draw(draw_):
        config = draw_(surrogate_configs(classes))
        dtype = np.dtype(draw_(st.sampled_from(tuple(dtypes))))
        K = draw_(st.integers(1, max_size))
        x = draw_(input_sequences((K,), dtype, -3.0, 3.0, 0.0))
        g = np.random.default_rng(draw_(st.integers(0, 2 ** 32 - 1))).standard_normal(
            K).astype(dtype)
        return golden.Case(f"hypothesis_{config['class']}", "surrogate", config, dtype.name,
                           {"x": x, "grad_y": g}, {"x": "input", "grad_y": "upstream"})
    return draw()


def networks(neuron_classes=("IFNode", "LIFNode", "ParametricLIFNode"),
             patterns=("layer_by_layer", "step_by_step"), dtypes=("float32",),
             max_steps: int = 4, max_batch: int = 2, conv: bool = True) -> st.SearchStrategy:
    """Small network cases (`refsnn.golden.Case`, component 'network'): either
    an MLP (Linear, neuron, Linear, neuron) on `[T, N, F]`, or (with `conv`) a
    convolutional net (Conv2d, neuron, AvgPool2d, Flatten, Linear, neuron) on
    `[T, N, C, H, W]`, built in one of `patterns` (SeqToANNContainer with
    multi-step neurons, or a MultiStepContainer of single-step modules).
    Parameters use PyTorch's default initialisation from a drawn seed."""
    neuron = neuron_configs(neuron_classes, api="activation_based", step_modes=("m",),
                            surrogates=("Sigmoid", "ATan", "PiecewiseQuadratic"))

    def layer(cfg):
        cfg = dict(cfg)
        cfg.pop("step_mode")        # the pattern decides it
        return {"type": "neuron", "neuron": cfg}

    @st.composite
    def draw(draw_):
        pattern = draw_(st.sampled_from(tuple(patterns)))
        dtype = np.dtype(draw_(st.sampled_from(tuple(dtypes))))
        T, N = draw_(st.integers(2, max_steps)), draw_(st.integers(1, max_batch))
        hidden, out = draw_(st.integers(2, 6)), draw_(st.integers(1, 4))
        if conv and draw_(st.booleans()):
            c_in, c_mid, side = draw_(st.integers(1, 2)), draw_(st.integers(1, 3)), 4
            layers = [{"type": "Conv2d", "in_channels": c_in, "out_channels": c_mid,
                       "kernel_size": 3, "padding": 1},
                      layer(draw_(neuron)), {"type": "AvgPool2d", "kernel_size": 2},
                      {"type": "Flatten"},
                      {"type": "Linear", "in_features": c_mid * (side // 2) ** 2,
                       "out_features": out},
                      layer(draw_(neuron))]
            shape = (T, N, c_in, side, side)
        else:
            features = draw_(st.integers(1, 6))
            layers = [{"type": "Linear", "in_features": features, "out_features": hidden},
                      layer(draw_(neuron)),
                      {"type": "Linear", "in_features": hidden, "out_features": out},
                      layer(draw_(neuron))]
            shape = (T, N, features)
        x = draw_(input_sequences(shape, dtype, 0.0, 1.5, 1.0))
        seed = draw_(st.integers(0, 2 ** 31 - 1))
        return golden.network_case("hypothesis_network", {"pattern": pattern, "layers": layers},
                                   shape, dtype.name, seed=seed, x_seq=x)
    return draw()
