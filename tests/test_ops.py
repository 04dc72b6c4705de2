"""refsnn.ops checked two independent ways.

1. float64 gradients against central finite differences (`refsnn.testing.gradcheck`),
   with hypothesis drawing shapes, strides, paddings, dilations, groups, pool
   sizes and batch-norm modes.
2. Values and gradients against PyTorch running the same op on the same
   arrays (`tests/torch_compare.py`): float64 within 1e-10 and float32 within
   1e-5 of the largest entry of the tensor compared (matmul/conv/pool sums
   round in a different order, so entrywise ulp equality is not expected).
"""
import re
from unittest import mock

import numpy as np
import pytest
from hypothesis import assume, given, strategies as st

import refsnn as rs
from refsnn import ops
from refsnn.testing import gradcheck
from torch_compare import RTOL, compare_with_torch

try:
    import torch
except ImportError:  # the finite-difference half still runs
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="needs torch")


def nn(lib):
    """The functional namespace of `lib` (refsnn or torch), so that each
    computation is written once: `nn(lib).conv2d(x, w, ...)`."""
    return ops if lib is rs else lib.nn.functional
seeds = st.integers(0, 2**32 - 1)


# ----------------------------------------------------------------------------
# shared helpers
# ----------------------------------------------------------------------------
def _arrays(seed, shapes, dtype=np.float64, distinct=False):
    """Random arrays; `distinct=True` spaces values >= 0.1 apart (no max ties,
    so finite differences never flip an argmax). The stream differs from the
    one `compare_with_torch(seed=seed)` draws the upstream gradient from."""
    rng = np.random.default_rng([seed, 1])
    out = []
    for shape in shapes:
        if distinct:
            n = int(np.prod(shape))
            a = (rng.permutation(n) - n / 2) * 0.1 + rng.uniform(0, 0.01, n)
            out.append(a.reshape(shape).astype(dtype))
        else:
            out.append(rng.standard_normal(shape).astype(dtype))
    return out


def _check_gradients(fn, arrays):
    inputs = [rs.tensor(a, requires_grad=True) for a in arrays]
    assert gradcheck(fn, inputs)


# ----------------------------------------------------------------------------
# strategies
# ----------------------------------------------------------------------------
@st.composite
def conv2d_cases(draw, max_side=7):
    """(x shape, weight shape, with bias, stride, padding, dilation, groups)."""
    groups = draw(st.integers(1, 3))
    c_in, c_out = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    side = []
    for k, d, p in zip(kernel, dilation, padding):
        least = max(1, d * (k - 1) + 1 - 2 * p)
        side.append(draw(st.integers(least, max(least, max_side))))
    x_shape = (draw(st.integers(1, 3)), c_in, *side)
    w_shape = (c_out, c_in // groups, *kernel)
    return x_shape, w_shape, draw(st.booleans()), stride, padding, dilation, groups


@st.composite
def pool_cases(draw, with_dilation=True):
    """(x shape, kernel, stride, padding, dilation, ceil_mode); padding at most
    half the kernel, as PyTorch requires."""
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2))) if with_dilation else (1, 1)
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    side = [draw(st.integers(max(1, d * (k - 1) + 1 - 2 * p), 8))
            for k, d, p in zip(kernel, dilation, padding)]
    ceil_mode = draw(st.booleans())
    # A dilated window can fall entirely into the padding; torch's max_pool2d
    # then writes its gradient out of bounds (heap corruption), so avoid it.
    for n, k, s, p, d in zip(side, kernel, stride, padding, dilation):
        out = ops._out_size(n, p, p, k, s, d, ceil_mode)
        assume(all(any(0 <= o * s - p + i * d < n for i in range(k)) for o in range(out)))
    x_shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3)), *side)
    return x_shape, kernel, stride, padding, dilation, ceil_mode


chunk_bytes = st.sampled_from([1, 3000, ops._IM2COL_CHUNK_BYTES])  # 1 image, a few, all


# ----------------------------------------------------------------------------
# linear
# ----------------------------------------------------------------------------
@given(seeds, st.lists(st.integers(1, 3), max_size=2), st.integers(1, 4), st.integers(1, 4),
       st.booleans())
def test_linear_gradients_match_finite_differences(seed, lead, n_in, n_out, bias):
    arrays = _arrays(seed, [(*lead, n_in), (n_out, n_in)] + ([(n_out,)] if bias else []))
    _check_gradients(lambda x, w, *b: ops.linear(x, w, *b), arrays)


@needs_torch
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@given(seed=seeds, lead=st.lists(st.integers(1, 4), max_size=3), n_in=st.integers(1, 9),
       n_out=st.integers(1, 9))
def test_linear_matches_torch(dtype, seed, lead, n_in, n_out):
    arrays = _arrays(seed, [(*lead, n_in), (n_out, n_in), (n_out,)], dtype)
    compare_with_torch(lambda lib, *t: nn(lib).linear(*t), arrays, seed=seed)


def test_linear_rejects_mismatched_features():
    x, w = rs.zeros(2, 5), rs.zeros(3, 4)
    with pytest.raises(ValueError, match=re.escape(
            "linear: input [2, 5] has 5 features in its last dim but weight [3, 4] "
            "expects in_features=4")):
        ops.linear(x, w)
    with pytest.raises(ValueError, match=re.escape("linear: bias must be [out_features=3]")):
        ops.linear(rs.zeros(2, 4), w, rs.zeros(4))


# ----------------------------------------------------------------------------
# convolution
# ----------------------------------------------------------------------------
@given(seeds, conv2d_cases(max_side=5), chunk_bytes)
def test_conv2d_gradients_match_finite_differences(seed, case, chunk):
    x_shape, w_shape, bias, stride, padding, dilation, groups = case
    arrays = _arrays(seed, [x_shape, w_shape] + ([(w_shape[0],)] if bias else []))
    with mock.patch.object(ops, "_IM2COL_CHUNK_BYTES", chunk):
        _check_gradients(lambda x, w, *b: ops.conv2d(x, w, *b, stride=stride, padding=padding,
                                                     dilation=dilation, groups=groups), arrays)


@needs_torch
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@given(seed=seeds, case=conv2d_cases(), chunk=chunk_bytes)
def test_conv2d_matches_torch(dtype, seed, case, chunk):
    x_shape, w_shape, bias, stride, padding, dilation, groups = case
    arrays = _arrays(seed, [x_shape, w_shape] + ([(w_shape[0],)] if bias else []), dtype)
    with mock.patch.object(ops, "_IM2COL_CHUNK_BYTES", chunk):
        compare_with_torch(
            lambda lib, x, w, *b: nn(lib).conv2d(x, w, *b, stride=stride, padding=padding,
                                                 dilation=dilation, groups=groups),
            arrays, seed=seed)


@needs_torch
@pytest.mark.parametrize("kernel, dilation", [((3, 3), 1), ((2, 4), (2, 1)), ((1, 2), 3)])
def test_conv2d_same_and_valid_padding_match_torch(kernel, dilation):
    arrays = _arrays(1, [(2, 4, 7, 6), (6, 2, *kernel), (6,)])
    for padding in ("same", "valid"):
        compare_with_torch(lambda lib, x, w, b: nn(lib).conv2d(
            x, w, b, padding=padding, dilation=dilation, groups=2), arrays)


@needs_torch
def test_conv2d_realistic_float32_layer_matches_torch():
    """The benchmark's shape: 16 -> 32 channels, 3x3, padding 1, several chunks."""
    arrays = _arrays(2, [(8, 16, 16, 16), (32, 16, 3, 3), (32,)], np.float32)
    compare_with_torch(lambda lib, x, w, b: nn(lib).conv2d(x, w, b, padding=1), arrays)


@needs_torch
def test_conv2d_weight_gradient_alone_when_input_needs_none():
    """First layer of a network: only the weight and bias get gradients."""
    compare_with_torch(lambda lib, x, w, b: nn(lib).conv2d(x, w, b, stride=2, padding=1),
                       _arrays(3, [(2, 3, 6, 6), (4, 3, 3, 3), (4,)]),
                       requires_grad=[False, True, True])


@needs_torch
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("bad", ["input", "weight"])
def test_conv2d_inf_in_input_or_weight_matches_torch(stride, bad):
    """An inf gives torch's inf and NaN pattern in every gradient. (Edge
    columns and kernel column 2 are where the wide-row layout's junk columns
    meet inputs and weights: they must not turn 0 * inf into NaN.)"""
    x, w, b = _arrays(4, [(2, 3, 7, 8), (4, 3, 3, 3), (4,)])
    if bad == "input":
        x[0, 1, 2, 0] = x[1, 0, 3, 7] = np.inf
    else:
        w[1, 2, 0, 2] = -np.inf
    compare_with_torch(lambda lib, x, w, b: nn(lib).conv2d(x, w, b, stride=stride, padding=1),
                       [x, w, b])


@given(seeds, st.integers(1, 3), st.integers(1, 2), st.integers(1, 3), st.integers(1, 3),
       st.integers(1, 2), st.integers(0, 2), st.booleans())
def test_conv1d_gradients_match_finite_differences(seed, groups, per_group, k, stride,
                                                   dilation, padding, bias):
    c = groups * per_group
    length = max(1, dilation * (k - 1) + 1 - 2 * padding) + 2
    arrays = _arrays(seed, [(2, c, length), (groups, per_group, k)] + ([(groups,)] if bias else []))
    _check_gradients(lambda x, w, *b: ops.conv1d(x, w, *b, stride=stride, padding=padding,
                                                 dilation=dilation, groups=groups), arrays)


@needs_torch
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@given(seed=seeds, case=conv2d_cases())
def test_conv1d_matches_torch(dtype, seed, case):
    x_shape, w_shape, bias, stride, padding, dilation, groups = case  # use the W axis only
    arrays = _arrays(seed, [x_shape[:2] + x_shape[3:], w_shape[:2] + w_shape[3:]]
                     + ([(w_shape[0],)] if bias else []), dtype)
    compare_with_torch(
        lambda lib, x, w, *b: nn(lib).conv1d(x, w, *b, stride=stride[1], padding=padding[1],
                                             dilation=dilation[1], groups=groups),
        arrays, seed=seed)


def test_conv_errors_name_the_op_and_shapes():
    w = rs.zeros(16, 3, 3, 3)
    with pytest.raises(ValueError, match=re.escape(
            "conv2d: expected input [N, C_in=3, H, W] (4-D) but got [2, 5, 8, 8]")):
        ops.conv2d(rs.zeros(2, 5, 8, 8), w)
    with pytest.raises(ValueError, match=re.escape(
            "conv2d: expected input [N, C_in=3, H, W] (4-D) but got [3, 8, 8]")):
        ops.conv2d(rs.zeros(3, 8, 8), w)
    with pytest.raises(ValueError, match=re.escape(
            "conv1d: expected input [N, C_in=4, L] (3-D) but got [2, 3, 9]")):
        ops.conv1d(rs.zeros(2, 3, 9), rs.zeros(6, 2, 3), groups=2)
    with pytest.raises(ValueError, match="conv2d: the kernel spans"):
        ops.conv2d(rs.zeros(1, 3, 2, 2), w)
    with pytest.raises(ValueError, match=re.escape("conv2d: bias must be [C_out=16]")):
        ops.conv2d(rs.zeros(1, 3, 4, 4), w, rs.zeros(3))
    with pytest.raises(ValueError, match="not divisible by groups=3"):
        ops.conv2d(rs.zeros(1, 6, 4, 4), rs.zeros(4, 2, 1, 1), groups=3)
    with pytest.raises(TypeError, match="conv2d: input is float64 but weight is float32"):
        ops.conv2d(rs.zeros(1, 3, 4, 4, dtype=np.float64), w)


def test_conv2d_runs_without_recording_under_no_grad():
    w = rs.randn(2, 1, 3, 3, requires_grad=True)
    with rs.no_grad():
        y = ops.conv2d(rs.randn(1, 1, 5, 5), w, padding=1)
    assert y.shape == (1, 2, 5, 5) and not y.requires_grad


# ----------------------------------------------------------------------------
# pooling
# ----------------------------------------------------------------------------
@given(seeds, pool_cases())
def test_max_pool2d_gradients_match_finite_differences(seed, case):
    x_shape, kernel, stride, padding, dilation, ceil_mode = case
    _check_gradients(lambda x: ops.max_pool2d(x, kernel, stride, padding, dilation, ceil_mode),
                     _arrays(seed, [x_shape], distinct=True))


@needs_torch
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@given(seed=seeds, case=pool_cases())
def test_max_pool2d_matches_torch(dtype, seed, case):
    x_shape, kernel, stride, padding, dilation, ceil_mode = case
    compare_with_torch(
        lambda lib, x: nn(lib).max_pool2d(x, kernel, stride, padding, dilation, ceil_mode),
        _arrays(seed, [x_shape], dtype), seed=seed)


@needs_torch
def test_max_pool2d_ties_send_the_gradient_where_torch_does():
    x = np.round(np.random.default_rng(4).uniform(0, 2, (2, 2, 7, 7)))  # many ties
    compare_with_torch(lambda lib, t: nn(lib).max_pool2d(t, 3, 2, 1), [x])


@given(seeds, pool_cases(with_dilation=False), st.booleans(), st.sampled_from([None, 2, 5]))
def test_avg_pool2d_gradients_match_finite_differences(seed, case, include_pad, divisor):
    x_shape, kernel, stride, padding, _, ceil_mode = case
    _check_gradients(lambda x: ops.avg_pool2d(x, kernel, stride, padding, ceil_mode,
                                              include_pad, divisor), _arrays(seed, [x_shape]))


@needs_torch
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@given(seed=seeds, case=pool_cases(with_dilation=False), include_pad=st.booleans(),
       divisor=st.sampled_from([None, 3]))
def test_avg_pool2d_matches_torch(dtype, seed, case, include_pad, divisor):
    x_shape, kernel, stride, padding, _, ceil_mode = case
    args = (kernel, stride, padding, ceil_mode, include_pad, divisor)
    compare_with_torch(lambda lib, x: nn(lib).avg_pool2d(x, *args),
                       _arrays(seed, [x_shape], dtype), seed=seed)


adaptive_sizes = st.tuples(st.integers(1, 9), st.integers(1, 9), st.integers(1, 5),
                           st.one_of(st.none(), st.integers(1, 5)))


@given(seeds, adaptive_sizes)
def test_adaptive_avg_pool2d_gradients_match_finite_differences(seed, sizes):
    h, w, oh, ow = sizes
    _check_gradients(lambda x: ops.adaptive_avg_pool2d(x, (oh, ow)),
                     _arrays(seed, [(2, 2, h, w)]))


@needs_torch
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@given(seed=seeds, sizes=adaptive_sizes)
def test_adaptive_avg_pool2d_matches_torch(dtype, seed, sizes):
    h, w, oh, ow = sizes
    compare_with_torch(lambda lib, x: nn(lib).adaptive_avg_pool2d(x, (oh, ow)),
                       _arrays(seed, [(2, 3, h, w)], dtype), seed=seed)


def test_pool_errors_name_the_op_and_shapes():
    with pytest.raises(ValueError, match=re.escape(
            "max_pool2d: expected input [N, C, H, W] (4-D) but got [3, 8]")):
        ops.max_pool2d(rs.zeros(3, 8), 2)
    with pytest.raises(ValueError, match="avg_pool2d: padding .* at most half"):
        ops.avg_pool2d(rs.zeros(1, 1, 8, 8), 2, padding=2)
    with pytest.raises(ValueError, match="max_pool2d: output size would be"):
        ops.max_pool2d(rs.zeros(1, 1, 2, 2), 3)
    with pytest.raises(ValueError, match=re.escape(
            "adaptive_avg_pool2d: expected input [N, C, H, W] (4-D) but got [4, 4, 4]")):
        ops.adaptive_avg_pool2d(rs.zeros(4, 4, 4), 1)


# ----------------------------------------------------------------------------
# batch norm
# ----------------------------------------------------------------------------
bn_shapes = st.sampled_from([(4, 3), (2, 3, 5), (2, 2, 3, 3), (3, 1, 2, 2)])


@given(seeds, bn_shapes, st.booleans(), st.booleans())
def test_batch_norm_gradients_match_finite_differences(seed, shape, training, affine):
    c = shape[1]
    x, w, b, mean, var = _arrays(seed, [shape, (c,), (c,), (c,), (c,)])
    var = np.abs(var) + 0.5
    stats = (None, None) if training else (mean, var)
    _check_gradients(
        lambda x, *wb: ops.batch_norm(x, *stats, *wb, training=training, eps=1e-3),
        [x, w, b] if affine else [x])


@needs_torch
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@given(seed=seeds, shape=bn_shapes, training=st.booleans(),
       momentum=st.sampled_from([0.1, 0.5, 1.0]))
def test_batch_norm_and_running_stats_match_torch(dtype, seed, shape, training, momentum):
    c = shape[1]
    x, w, b, mean, var = _arrays(seed, [shape, (c,), (c,), (c,), (c,)], dtype)
    var = np.abs(var) + 0.5
    stats = {rs: (mean.copy(), var.copy()), torch: (torch.tensor(mean), torch.tensor(var))}
    compare_with_torch(
        lambda lib, x, w, b: nn(lib).batch_norm(x, *stats[lib], w, b, training, momentum),
        [x, w, b], seed=seed)
    for mine, ref in zip(stats[rs], stats[torch]):
        np.testing.assert_allclose(mine, ref.numpy(), rtol=RTOL[np.dtype(dtype)])


def test_batch_norm_errors():
    with pytest.raises(ValueError, match=re.escape(
            "batch_norm: expected more than 1 value per channel when training, got input [1, 4]")):
        ops.batch_norm(rs.zeros(1, 4), None, None, training=True)
    with pytest.raises(ValueError, match=re.escape(
            "batch_norm: running_mean must be [C=4] for input [2, 4], got [3]")):
        ops.batch_norm(rs.zeros(2, 4), np.zeros(3), np.ones(4))


# ----------------------------------------------------------------------------
# dropout
# ----------------------------------------------------------------------------
def test_dropout_is_reproducible_with_manual_seed():
    x = rs.ones(1000)
    rs.manual_seed(7)
    first = ops.dropout(x, 0.3).data
    rs.manual_seed(7)
    assert np.array_equal(first, ops.dropout(x, 0.3).data)
    assert not np.array_equal(first, ops.dropout(x, 0.3).data)  # the stream moves on


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_zeroes_a_fraction_p_and_scales_the_rest(p):
    rs.manual_seed(0)
    n = 20000
    x = rs.tensor(np.random.default_rng(0).uniform(1, 2, n), requires_grad=True)
    y = ops.dropout(x, p)
    kept = y.data != 0
    assert abs(1 - kept.mean() - p) < 5 * np.sqrt(p * (1 - p) / n)
    np.testing.assert_allclose(y.data[kept], x.data[kept] / (1 - p), rtol=1e-15)
    y.sum().backward()  # d y / d x is the noise itself
    np.testing.assert_array_equal(x.grad.data, np.where(kept, 1 / (1 - p), 0.0))


@needs_torch
@pytest.mark.parametrize("p", [0.3, 0.5, 0.7])
def test_dropout_float32_scale_equals_torch(p):
    """The kept value is 1 / float32(1 - p) computed in float32, as torch's noise."""
    ours = np.unique(ops.dropout(rs.ones(4000), p).data)
    theirs = np.unique(torch.nn.functional.dropout(torch.ones(4000), p, training=True).numpy())
    assert ours.dtype == theirs.dtype == np.float32
    np.testing.assert_array_equal(ours, theirs)


def test_dropout_edge_probabilities_and_eval():
    x = rs.randn(50)
    assert ops.dropout(x, 0.5, training=False) is x
    assert np.array_equal(ops.dropout(x, 0.0).data, x.data)
    assert np.array_equal(ops.dropout(x, 1.0).data, np.zeros(50, np.float32))
    with pytest.raises(ValueError, match="dropout: probability has to be between 0 and 1"):
        ops.dropout(x, 1.5)


# ----------------------------------------------------------------------------
# pad
# ----------------------------------------------------------------------------
pads = st.lists(st.integers(-1, 2), min_size=2, max_size=6).filter(lambda p: len(p) % 2 == 0)


@given(seeds, pads, st.floats(-2, 2))
def test_pad_gradients_match_finite_differences(seed, widths, value):
    _check_gradients(lambda x: ops.pad(x, widths, value=value), _arrays(seed, [(2, 3, 4)]))


@needs_torch
@given(seed=seeds, widths=pads, value=st.floats(-2, 2))
def test_pad_matches_torch(seed, widths, value):
    compare_with_torch(lambda lib, x: nn(lib).pad(x, widths, value=value),
                       _arrays(seed, [(2, 3, 4)]), seed=seed)


def test_pad_errors():
    with pytest.raises(ValueError, match="pad: padding \\(1, 1, 1\\) must have an even length"):
        ops.pad(rs.zeros(2, 2), (1, 1, 1))
    with pytest.raises(NotImplementedError, match="only mode='constant'"):
        ops.pad(rs.zeros(2, 2), (1, 1), mode="reflect")
