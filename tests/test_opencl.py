"""The OpenCL backend against the NumPy fused backend (`refsnn.fused`), on
whatever OpenCL device is installed (PoCL in CI).

Forward: bit for bit, for every kind x surrogate x reset x detach x decay x
dtype x layout, except where the generated code calls a transcendental
function (EIF's exp), whose OpenCL and NumPy implementations round differently.
Backward: bit for bit where the generated code uses only correctly rounded
IEEE operations (+ - * /, sqrt), else within a few ulp; PLIF's dL/dk is a
reduction in another order, so always within a few ulp.

Programs are built once per process (one per kind, surrogate, dtype and
layout, holding both directions' kernels);
`test_matrix_without_caches` reruns part of the matrix in a subprocess with
the pyopencl and PoCL caches disabled.
"""
import dataclasses
import io
import os
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest

pytest.importorskip("pyopencl")

from refsnn import fused, functional, neurons  # noqa: E402
from refsnn.opencl import codegen, kernels, programs  # noqa: E402
from refsnn.opencl.backend import DeviceSequence, OpenCLFusedBackend  # noqa: E402
from refsnn.opencl.device import OpenCLUnavailable, runtime, select_device  # noqa: E402
from refsnn.opencl.devices_report import print_devices  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRANSCENDENTALS = ("exp(", "log(", "cos(", "sin(", "atan(", "erfc(", "tanh(", "pow(")
RESETS = (None, 0.0, -0.3)


@pytest.fixture(scope="module")
def rt():
    try:
        return runtime()
    except OpenCLUnavailable as err:
        if os.environ.get("CI"):   # CI installs PoCL: a missing device there is a failure
            pytest.fail(f"no OpenCL device in CI: {err}")
        pytest.skip(f"no OpenCL device: {err}")


@pytest.fixture(scope="module")
def backends(rt):
    """Both layouts; the per-neuron one (the GPU path) also copies to and from
    device buffers, as it does on a GPU, instead of sharing host memory."""
    return {"chunked": OpenCLFusedBackend(layout="chunked"),
            "per-neuron": OpenCLFusedBackend(layout="per-neuron", share_host_memory=False)}


def dtypes(rt):
    return ("float32", "float64") if rt.has_fp64 else ("float32",)


def spec_for(kind, dtype, surrogate="Sigmoid", v_reset=0.0, detach_reset=False, decay_input=True):
    params = tuple(kernels.surrogate_class(surrogate)().formula_params().items())
    return fused.NeuronSpec(kind=kind, v_threshold=1.0, v_reset=v_reset, detach_reset=detach_reset,
                            surrogate=surrogate, surrogate_params=params, dtype=dtype,
                            decay_input=decay_input, tau=3.0, v_rest=0.0, v_c=0.8, a0=1.0,
                            delta_T=1.0, theta_rh=0.8, tau_w=3.0, a=0.3, b=0.2)


def structures(kind, dtype):
    """Every structural variant of `kind`: surrogates x v_reset x detach x decay."""
    decays = (True, False) if kind in ("LIF", "PLIF") else (True,)
    for surrogate in kernels.SURROGATE_NAMES:
        for v_reset in RESETS:
            for detach in (False, True):
                for decay in decays:
                    yield spec_for(kind, dtype, surrogate, v_reset, detach, decay)


def uses_transcendental(spec, bodies) -> bool:
    f = kernels.formulas(spec)
    return any(fn in f.bodies.get(b, "") for b in bodies for fn in TRANSCENDENTALS)


def run_both(backend, spec, x, v0, k, grad_spike, grad_v, extra0=(), grad_extra=()):
    """(forward, backward) results of `backend` and of the NumPy fused backend;
    `extra0`, `grad_extra`: Izhikevich's w0 and grad_w_seq."""
    have = {"v0": v0, "x_seq": x, "k": k}
    results = []
    for b in (backend, fused.NUMPY_FUSED):
        spike, v_seq, h_seq, *extra_seqs = b.forward(spec, x, v0, k, *extra0)
        have.update(h_seq=h_seq, v_seq=v_seq)
        saved = fused.Saved(**{name: have[name] for name in fused.saved_fields(spec)})
        grads = b.backward(spec, saved, grad_spike, grad_v, *grad_extra)
        results.append(((spike, v_seq, np.asarray(h_seq), *extra_seqs), grads))
    return results


def assert_close(actual, expected, dtype, what, ulps=64):
    """Equal, or |a - e| <= ulps * eps * (|e| + max finite |e|): rounding
    differences that may have travelled through the T-step recurrence."""
    eps = np.finfo(dtype).eps
    actual, expected = np.asarray(actual), np.asarray(expected)
    finite = np.isfinite(expected)
    scale = np.abs(expected) + np.max(np.abs(expected[finite]), initial=0.0)
    with np.errstate(invalid="ignore"):
        close = (actual == expected) | (np.isnan(actual) & np.isnan(expected)) \
            | (finite & (np.abs(actual - expected) <= ulps * eps * scale))
    assert close.all(), f"{what}: {(~close).sum()} values differ beyond rounding, e.g. " \
        f"{actual[~close][:3]} vs {expected[~close][:3]}"


def check_spec(backend, spec, rng, T=5, M=77, grad_v=True):
    dtype = np.dtype(spec.dtype)
    x = rng.normal(0.6, 1.0, (T, M)).astype(dtype)
    v0 = rng.normal(0.0, 0.5, M).astype(dtype)
    k = np.asarray(0.4, dtype) if spec.kind == "PLIF" else None
    gs = rng.normal(size=(T, M)).astype(dtype)
    gv = rng.normal(size=(T, M)).astype(dtype) if grad_v else None
    n_extra = len(spec.states) - 1        # Izhikevich: w0 and grad_w_seq
    extra0 = tuple(rng.normal(0.0, 0.3, M).astype(dtype) for _ in range(n_extra))
    gw = tuple(rng.normal(size=(T, M)).astype(dtype) if grad_v else None for _ in range(n_extra))
    (fwd, bwd), (fwd_np, bwd_np) = run_both(backend, spec, x, v0, k, gs, gv, extra0, gw)
    label = f"{spec.kind} {spec.surrogate} v_reset={spec.v_reset} detach={spec.detach_reset} " \
            f"decay={spec.decay_input} {spec.dtype}"
    exact_forward = not uses_transcendental(spec, kernels.FORWARD_BODIES)
    assert len(fwd) == len(fwd_np) == 3 + n_extra
    for name, a, b in zip(("spike_seq", "v_seq", "h_seq", "w_seq"), fwd, fwd_np):
        assert a.dtype == dtype and a.shape == (T, M)
        if exact_forward:
            assert np.array_equal(a, b, equal_nan=True), f"{label}: forward {name} not bit-identical"
        else:
            assert_close(a, b, dtype, f"{label}: forward {name}")
    exact_backward = exact_forward and not uses_transcendental(spec, kernels.BACKWARD_BODIES)
    assert len(bwd) == len(bwd_np) == 3 + n_extra
    for name, a, b in zip(("grad_x_seq", "grad_v0", "grad_k", "grad_w0"), bwd, bwd_np):
        if name == "grad_k":
            continue
        assert a.dtype == dtype and a.shape == b.shape
        if exact_backward:
            assert np.array_equal(a, b, equal_nan=True), f"{label}: {name} not bit-identical"
        else:
            assert_close(a, b, dtype, f"{label}: {name}")
    if spec.kind != "PLIF":
        assert bwd[2] is None and bwd_np[2] is None
        return
    # dL/dk = sum over t, M of dL/dh * dh/dk: summed in another order, so compare
    # within float rounding of a sum, relative to the sum of |terms|
    v_pre = np.concatenate([v0[None], fwd_np[1][:-1]])
    _, dh_dx, dh_dk = fused.charge_jacobian(spec, v_pre, x, k)
    terms = (bwd_np[0].astype(np.float64) / np.float64(dh_dx)) * dh_dk
    assert bwd[2].dtype == dtype and bwd[2].shape == ()
    assert abs(float(bwd[2]) - float(bwd_np[2])) <= T * M * np.finfo(dtype).eps * np.sum(np.abs(terms)), \
        f"{label}: grad_k {bwd[2]} vs {bwd_np[2]}"


# ----------------------------------------------------------------------------
# the equivalence matrix
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("layout", ["chunked", "per-neuron"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kind", fused.FUSED_KINDS)
def test_matrix_equals_numpy_fused(backends, rt, kind, dtype, layout):
    if dtype not in dtypes(rt):
        pytest.skip(f"{rt.name} has no fp64")
    rng = np.random.default_rng(abs(hash((kind, dtype, layout))) % 2**32)
    for spec in structures(kind, dtype):
        check_spec(backends[layout], spec, rng)


def test_matrix_without_caches(rt):
    """The float32 chunked matrix again in a fresh process with the pyopencl and
    PoCL kernel caches off, so every program is compiled from source."""
    env = dict(os.environ, PYOPENCL_NO_CACHE="1", POCL_KERNEL_CACHE="0",
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
           os.path.abspath(__file__), "-k", "test_matrix_equals_numpy_fused and float32 and chunked"]
    done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert f"{len(fused.FUSED_KINDS)} passed" in done.stdout, done.stdout[-2000:]


def test_special_values_forward_bit_identical(backends, rt):
    """+-inf, NaN, +-0 and subnormals through charge, fire and reset (N8)."""
    tiny = np.finfo(np.float32).smallest_subnormal
    column = np.array([np.inf, -np.inf, np.nan, 0.0, -0.0, tiny, -tiny, 1.0, 1.0 + 2**-23,
                       1.0 - 2**-24, 3e38, -3e38], np.float32)
    x = np.tile(column, (4, 3))
    v0 = np.zeros(x.shape[1], np.float32)
    for layout, backend in backends.items():
        for v_reset in RESETS:
            spec = spec_for("LIF", "float32", v_reset=v_reset)
            with np.errstate(all="ignore"):
                expected = fused.NUMPY_FUSED.forward(spec, x, v0, None)
            got = backend.forward(spec, x, v0, None)
            for a, b in zip(got, expected):
                assert np.array_equal(np.asarray(a), b, equal_nan=True), (layout, v_reset)


@pytest.mark.parametrize("M", [1, 7, 8, 1024, 5003])
def test_layouts_agree_for_sizes_around_chunks_and_groups(backends, M):
    spec = spec_for("PLIF", "float32", "ATan", v_reset=None, decay_input=True)
    check_spec(backends["chunked"], spec, np.random.default_rng(M), T=3, M=M)
    check_spec(backends["per-neuron"], spec, np.random.default_rng(M), T=3, M=M)


def test_value_dependent_formulas_get_programs_of_their_own(backends):
    """QPseudoSpike with alpha != 2 uses a general pow and SquarewaveFourierSeries
    with n = 4 has more terms than the catalog's: both leave the catalog
    program and still match; a formula with too many parameters is refused
    by `supports` with the reason."""
    layout = kernels.Layout("per-neuron")
    for surrogate, params in (("QPseudoSpike", (("alpha", 3.0),)),
                              ("SquarewaveFourierSeries", (("n", 4), ("T_period", 8.0)))):
        spec = dataclasses.replace(spec_for("LIF", "float32"), surrogate=surrogate,
                                   surrogate_params=params)
        program, variants = kernels.neuron_program("backward", spec, kernels.formulas(spec), layout)
        catalog = kernels.catalog_program("LIF", "float32", layout, spec.surrogate)
        assert program is not catalog
        assert variants == (0, 0, 0, 0)
        for backend in backends.values():
            check_spec(backend, spec, np.random.default_rng(5))
    too_many = dataclasses.replace(spec_for("LIF", "float32"), surrogate="SquarewaveFourierSeries",
                                   surrogate_params=(("n", 40), ("T_period", 8.0)))
    assert "slots" in backends["chunked"].supports(too_many)


def test_state_carries_across_calls(backends):
    """Two calls, the second starting from the first's last v, equal one call."""
    rng = np.random.default_rng(1)
    spec = spec_for("QIF", "float32", v_reset=-0.1)
    x = rng.normal(0.3, 1.0, (12, 300)).astype(np.float32)
    v0 = np.full(300, -0.1, np.float32)
    for backend in backends.values():
        whole = backend.forward(spec, x, v0, None)
        first = backend.forward(spec, x[:5], v0, None)
        second = backend.forward(spec, x[5:], first[1][-1].copy(), None)
        for a, b, c in zip(whole[:2], first[:2], second[:2]):
            assert np.array_equal(a, np.concatenate([b, c]))


def test_neuron_module_with_opencl_backend_matches_numpy_fused(rt):
    """`backend='opencl'` on a multi-step PLIF: spikes and state over two calls
    without reset, gradients of x and w, and `reset_net` clearing the state."""
    rng = np.random.default_rng(2)
    import refsnn as rs
    x_data = rng.normal(0.6, 1.0, (6, 4, 33)).astype(np.float32)
    results = {}
    for backend in ("numpy-fused", "opencl"):
        node = neurons.ParametricLIFNode(init_tau=3.0, step_mode="m", backend=backend)
        x = rs.tensor(x_data, requires_grad=True)
        y1 = node(x)
        y2 = node(x)
        (y1.sum() + (y2 * 2.0).sum() + (node.v * 3.0).sum()).backward()
        results[backend] = (y1.data, y2.data, node.v.data, x.grad.data, node.w.grad.data)
        functional.reset_net(node)
        assert node.v == 0.0
    for name, a, b in zip(("spikes 1", "spikes 2", "v", "grad x", "grad w"),
                          results["opencl"], results["numpy-fused"]):
        if name.startswith("grad"):
            assert_close(a, b, np.float32, name)
        else:
            assert np.array_equal(a, b), name


def test_plif_decay_gradient_reduced_across_many_work_groups(backends, rt):
    """dL/dk summed over T x M with M far above a work-group (SpikingJelly
    issue #151), against a float64 reduction; the same bits on every run."""
    rng = np.random.default_rng(3)
    T, M = 4, 300_007
    spec = spec_for("PLIF", "float32", "ATan", v_reset=0.0, decay_input=True)
    x = rng.normal(0.6, 1.0, (T, M)).astype(np.float32)
    v0 = np.zeros(M, np.float32)
    k = np.asarray(0.4, np.float32)
    gs = rng.normal(size=(T, M)).astype(np.float32)
    spike, v_seq, h_seq = fused.NUMPY_FUSED.forward(spec, x, v0, k)
    # the float64 reference: the NumPy recurrence's dL/dh times dh/dk, summed in float64
    saved = fused.Saved(h_seq=h_seq, v_seq=v_seq, v0=v0, x_seq=x, k=k)
    grad_x, _, _ = fused.NUMPY_FUSED.backward(spec, saved, gs, None)
    v_pre = np.concatenate([v0[None], v_seq[:-1]])
    reference = np.sum((grad_x / k).astype(np.float64) * (x - v_pre).astype(np.float64))
    for backend in backends.values():
        _, _, h_dev = backend.forward(spec, x, v0, k)
        saved_dev = fused.Saved(h_seq=h_dev, v_seq=v_seq, v0=v0, x_seq=x, k=k)
        first = backend.backward(spec, saved_dev, gs, None)[2]
        again = backend.backward(spec, saved_dev, gs, None)[2]
        assert first.shape == () and first.dtype == np.float32
        assert first.tobytes() == again.tobytes()
        assert abs(float(first) - reference) <= 1e-5 * np.sum(np.abs(grad_x / k * (x - v_pre)))


def test_h_seq_stays_on_the_device_and_copies_on_demand(backends):
    spec = spec_for("LIF", "float32")
    x = np.ones((3, 10), np.float32)
    _, _, h_seq = backends["chunked"].forward(spec, x, np.zeros(10, np.float32), None)
    assert isinstance(h_seq, DeviceSequence) and h_seq.shape == (3, 10)
    assert np.array_equal(np.asarray(h_seq), fused.NUMPY_FUSED.forward(
        spec, x, np.zeros(10, np.float32), None)[2])
    assert set(backends["chunked"].last_timings) == {"to_device_s", "kernel_s", "to_host_s"}


# ----------------------------------------------------------------------------
# the C emitter on its own
# ----------------------------------------------------------------------------
def test_literals_round_once_like_python_floats():
    assert codegen.literal(0.1) == "(real)(0.1)"
    assert codegen.literal(float("inf")) == "(real)(INFINITY)"
    tau = codegen.Param(3.0)
    folded = 1. - 1. / tau
    assert isinstance(folded, codegen.Param) and folded.value == 1. - 1. / 3.0
    em = codegen.CEmitter("P")
    em.finish(em.input("v") * folded)
    assert "P.s0" in em.body("real")
    assert em.slot_values(np.float32)[0] == np.float32(1. - 1. / 3.0)


def test_every_surrogate_derivative_compiles_and_matches_numpy(rt):
    """Each surrogate's `grad_x`, emitted once and run on the device, against
    the NUMPY namespace on a grid with special values."""
    cl = pytest.importorskip("pyopencl")
    grid = np.concatenate([np.linspace(-3, 3, 121), [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-40, -1e-40,
                                                      0.5, -0.5, 1.0, -1.0]]).astype(np.float32)
    g = np.linspace(-2, 2, grid.size).astype(np.float32)
    for name in kernels.SURROGATE_NAMES:
        sg = kernels.surrogate_class(name)()
        params = {n: codegen.Param(v) if type(v) is float else v
                  for n, v in sg.formula_params().items()}
        em = codegen.CEmitter("(*P)")
        em.finish(sg.grad_x(em.input("x"), em.input("g"), em, **params))
        source = "\n".join([programs.CONTRACT_OFF, "typedef float real;", "typedef float16 real16;",
                            em.function("f", "real", ["real x", "real g", "const real16 *P"]),
                            "__kernel void run(__global const real *x, __global const real *g, "
                            "__global real *out, const real16 P) "
                            "{ size_t i = get_global_id(0); out[i] = f(x[i], g[i], &P); }"])
        prg = programs.build(rt, source)
        mf = cl.mem_flags
        xb = cl.Buffer(rt.context, mf.READ_ONLY | mf.COPY_HOST_PTR, hostbuf=grid)
        gb = cl.Buffer(rt.context, mf.READ_ONLY | mf.COPY_HOST_PTR, hostbuf=g)
        ob = cl.Buffer(rt.context, mf.WRITE_ONLY, grid.nbytes)
        slots = em.slot_values(np.float32).view(cl.cltypes.float16).reshape(())
        programs.kernel(prg, "run")(rt.queue, grid.shape, None, xb, gb, ob, slots)
        out = np.empty_like(grid)
        cl.enqueue_copy(rt.queue, out, ob)
        expected = sg.derivative_array(grid, g)
        if any(fn in em.body("real") for fn in TRANSCENDENTALS):
            assert_close(out, expected, np.float32, name, ulps=8)
        else:
            assert np.array_equal(out, expected, equal_nan=True), name


# ----------------------------------------------------------------------------
# programs, devices and errors
# ----------------------------------------------------------------------------
def test_programs_are_built_once_and_kernels_reused(rt):
    source = programs.CONTRACT_OFF + "\n__kernel void one(__global float *x) { x[0] = 1.0f; }\n"
    first = programs.build(rt, source)
    assert programs.build(rt, source) is first
    assert programs.kernel(first, "one") is programs.kernel(first, "one")


def test_build_failure_carries_the_compiler_log(rt):
    source = programs.CONTRACT_OFF + "\n__kernel void bad(__global float *x) { x[0] = nope; }\n"
    with pytest.raises(programs.KernelBuildError, match="nope"):
        programs.build(rt, source)


def test_compiler_warnings_surface_except_the_wide_vector_abi_note(rt):
    source = (programs.CONTRACT_OFF + "\n#warning planted note\n"
              "__kernel void k(__global float *x) { x[0] = 1.0f; }\n")
    with pytest.warns(RuntimeWarning, match="planted note"):
        programs.build(rt, source)
    with warnings.catch_warnings():
        warnings.simplefilter("error")       # the kernels' own programs build silently
        spec = spec_for("LIF", "float32")
        backend = OpenCLFusedBackend(layout="chunked")
        for direction in ("forward", "backward"):
            layout = backend._layout_of(np.dtype("float32"))
            programs.build(rt, kernels.neuron_program(direction, spec, kernels.formulas(spec),
                                                      layout)[0].source)


def test_build_rules_are_enforced(rt):
    with pytest.raises(ValueError, match="FP_CONTRACT"):
        programs.build(rt, "__kernel void k(__global float *x) { }")
    assert programs.BUILD_OPTIONS == ("-cl-fp32-correctly-rounded-divide-sqrt",)
    for name in ("forward", "backward_step", "backward"):
        assert programs.CONTRACT_OFF in programs.kernel_source(f"neuron_{name}.cl")
    spec = spec_for("LIF", "float32")
    for direction in ("forward", "backward"):
        source = kernels.neuron_program(direction, spec, kernels.formulas(spec),
                                        kernels.Layout("per-neuron"))[0].source
        assert source.startswith(programs.CONTRACT_OFF)


def test_float64_on_a_device_without_fp64_is_refused(rt):
    no_fp64 = dataclasses.replace(rt, has_fp64=False)
    with pytest.raises(TypeError, match="cl_khr_fp64"):
        no_fp64.check_dtype("float64")


def test_flushed_denormals_are_reported_once(rt):
    flushing = dataclasses.replace(rt, denormals={"float32": False}, _warned=set())
    with pytest.warns(RuntimeWarning, match="denormals"):
        flushing.check_dtype("float32")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        flushing.check_dtype("float32")
    assert rt.denormals["float32"], f"{rt.name} flushes float32 denormals"


def test_wrong_inputs_are_refused_or_converted_once(backends):
    backend = backends["chunked"]
    spec = spec_for("LIF", "float32")
    x = np.random.default_rng(4).normal(0.5, 1, (6, 20)).astype(np.float32)
    v0 = np.zeros(20, np.float32)
    with pytest.raises(TypeError, match="x_seq has dtype float64"):
        backend.forward(spec, x.astype(np.float64), v0, None)
    with pytest.raises(ValueError, match=r"v0 has shape \(21,\)"):
        backend.forward(spec, x, np.zeros(21, np.float32), None)
    strided = np.asfortranarray(x)
    assert np.array_equal(backend.forward(spec, strided, v0, None)[0],
                          backend.forward(spec, x, v0, None)[0])


def test_device_selection_by_environment(rt, monkeypatch):
    monkeypatch.setenv("REFSNN_OPENCL_DEVICE", "0:0")
    assert select_device().int_ptr == select_device("0:0").int_ptr
    monkeypatch.setenv("REFSNN_OPENCL_DEVICE", "no-such-device")
    with pytest.raises(OpenCLUnavailable, match="platforms seen"):
        select_device()
    monkeypatch.delenv("REFSNN_OPENCL_DEVICE")
    monkeypatch.setenv("PYOPENCL_CTX", "0:99")
    with pytest.raises(OpenCLUnavailable, match="PYOPENCL_CTX.*out of range"):
        select_device()


def test_devices_report_marks_the_chosen_device(rt, monkeypatch):
    monkeypatch.delenv("REFSNN_OPENCL_DEVICE", raising=False)
    monkeypatch.delenv("PYOPENCL_CTX", raising=False)
    out = io.StringIO()
    assert print_devices(out) == 0
    text = out.getvalue()
    assert rt.device.name.strip() in text and "fp64" in text
    marked = [line for line in text.splitlines() if re.match(r"\s+\* \d+:\d+ ", line)]
    assert len(marked) == 1 and rt.device.name.strip() in marked[0]
    monkeypatch.setenv("REFSNN_OPENCL_DEVICE", "no-such-device")
    out = io.StringIO()
    assert print_devices(out) == 2
    assert "platforms seen" in out.getvalue()


def test_import_refsnn_never_imports_pyopencl():
    code = ("import sys, refsnn, refsnn.opencl, refsnn.fused, refsnn.neurons; "
            "assert 'pyopencl' not in sys.modules, 'pyopencl imported'")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=ROOT))
    assert done.returncode == 0, done.stderr


def test_missing_pyopencl_names_the_extra():
    code = ("import sys; sys.modules['pyopencl'] = None\n"
            "from refsnn.opencl.device import runtime\n"
            "try:\n    runtime()\nexcept RuntimeError as e:\n    print(e)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=ROOT))
    assert done.stdout.strip() == ("pyopencl is not installed; install the OpenCL extra: "
                                   "pip install refsnn[opencl]"), done.stdout + done.stderr


def test_held_host_results_are_not_reused_and_freed_ones_are(backends):
    """Result arrays come from a pool (`_host_empty`): one still referenced
    (even through a view) is never overwritten; freed ones are handed out again."""
    b, spec = backends["chunked"], spec_for("LIF", "float32")
    rng = np.random.default_rng(3)
    x1, x2 = (rng.random((4, 70), dtype=np.float32) * 2 for _ in range(2))
    v0 = np.zeros(70, np.float32)
    spike, v_seq, _ = b.forward(spec, x1, v0, None)
    expected, view = v_seq.copy(), v_seq[1]
    del v_seq
    second = b.forward(spec, x2, v0, None)
    assert not any(np.shares_memory(view, a) for a in second[:2])
    np.testing.assert_array_equal(view, expected[1])
    np.testing.assert_array_equal(second[1], fused.NUMPY_FUSED.forward(spec, x2, v0, None)[1])
    del spike, view, second
    ids = {id(a) for a in b.forward(spec, x1, v0, None)[:2]}   # all freed at once
    assert ids == {id(a) for a in b.forward(spec, x1, v0, None)[:2]}


@pytest.mark.parametrize("layout", ["chunked", "per-neuron"])
@pytest.mark.parametrize("which", ["scalar", "row"])
def test_grad_spike_broadcast_over_time_is_read_as_one_row(backends, layout, which):
    """A grad_spike_seq with stride 0 over T (the gradient of a sum, or of a
    mean over time) gives the gradients of the same values materialised."""
    spec, rng = spec_for("LIF", "float32"), np.random.default_rng(4)
    T, M = 5, 45
    x = (rng.random((T, M), dtype=np.float32) * 2).astype(np.float32)
    v0 = np.zeros(M, np.float32)
    row = np.float32(0.25) if which == "scalar" else rng.standard_normal(M).astype(np.float32)
    grad_spike = np.broadcast_to(row, (T, M))
    b = backends[layout]
    _, _, h_seq = b.forward(spec, x, v0, None)
    got = b.backward(spec, fused.Saved(h_seq=h_seq), grad_spike, None)
    full = np.ascontiguousarray(grad_spike)
    expected = fused.NUMPY_FUSED.backward(
        spec, fused.Saved(h_seq=fused.NUMPY_FUSED.forward(spec, x, v0, None)[2]), full, None)
    for a, e, name in zip(got[:2], expected[:2], ("grad_x_seq", "grad_v0")):
        assert_close(a, e, np.float32, name, ulps=8)
