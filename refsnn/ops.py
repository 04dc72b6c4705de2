"""Neural-network ops on `refsnn.autograd`, with PyTorch's semantics and names.

Each op is a `Function` with a hand-written backward (or a thin composition of
existing ones). Shapes use PyTorch's layout, channels first:

- `linear(x, weight, bias)`: `x: [*, in]`, `weight: [out, in]` -> `[*, out]`.
- `conv1d`: `[N, C_in, L]`; `conv2d`: `[N, C_in, H, W]`; weight
  `[C_out, C_in/groups, *kernel]`.
- `max_pool2d`, `avg_pool2d`, `adaptive_avg_pool2d`: `[N, C, H, W]`.
- `batch_norm`: `[N, C, *]`, statistics per channel `C`.
- `dropout`: any shape; `pad`: any shape, constant mode.

How the 2-D window ops work: the input is padded once, and a window op is
split into one strided view of the padded input per kernel offset `(i, j)`
(`_Grid.view`). Convolution lays each padded image row out `Wq` output
columns wide (`_WideRows`: a few junk columns per row that no caller sees),
so that what offset `(i, j)` reads of a channel is one long strided run:
im2col `[n, C*kh*kw, Ho*Wq]` is one copy from a strided view, the GEMM with
the weight matrix `[O, C*kh*kw]` writes the output in its own layout, and
the input gradient's col2im is one sum of shifted views per stride phase.
To keep the im2col matrix in cache and out of memory, the batch is processed
in chunks of a few images, and backward rebuilds each chunk instead of
saving the matrix.
"""
from __future__ import annotations

import itertools
from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .autograd import Function, Tensor, as_tensor, default_generator

__all__ = ["linear", "conv1d", "conv2d", "max_pool2d", "avg_pool2d",
           "adaptive_avg_pool2d", "batch_norm", "dropout", "pad"]

# im2col is built for this many bytes' worth of images at a time (one image at
# least): big enough for efficient GEMMs, small enough to stay in cache.
_IM2COL_CHUNK_BYTES = 2 << 20


# ----------------------------------------------------------------------------
# small helpers
# ----------------------------------------------------------------------------
def _tensor(value):
    """`value` as a Tensor (None stays None)."""
    return value if value is None or isinstance(value, Tensor) else as_tensor(value)


def _shape(shape) -> str:
    return "[" + ", ".join(str(n) for n in shape) + "]"


def _ntuple(value, n: int, what: str) -> tuple:
    """An int or an n-tuple of ints as an n-tuple (PyTorch's `_single`/`_pair`);
    `what` names the argument in the error ("conv2d: stride")."""
    if isinstance(value, (int, np.integer)):
        return (int(value),) * n
    value = tuple(int(v) for v in value)
    if len(value) != n:
        raise ValueError(f"{what} must be an int or a {n}-tuple of ints, got {value}")
    return value


def _pair(value, name: str, op: str) -> tuple:
    return _ntuple(value, 2, f"{op}: {name}")


def _one(value, name: str, op: str) -> int:
    return _ntuple(value, 1, f"{op}: {name}")[0]


def _check_dtypes(op: str, x: Tensor, *others) -> None:
    for name, t in others:
        if t is not None and t.dtype != x.dtype:
            raise TypeError(f"{op}: input is {x.dtype} but {name} is {t.dtype}; convert "
                            f"one of them (.float() / .double()) so both match")


class _Grid(NamedTuple):
    """Where a 2-D sliding window lands on a padded input.

    `kernel`, `stride`, `dilation` are (rows, cols) pairs; `out` is the output
    size (Ho, Wo). For kernel offset (i, j), `view(xp, i, j)` is the strided
    view `[..., Ho, Wo]` of `xp` holding, at output position (h, w), the input
    element that offset (i, j) of window (h, w) sees.
    """
    kernel: tuple
    stride: tuple
    dilation: tuple
    out: tuple

    def offsets(self):
        return itertools.product(range(self.kernel[0]), range(self.kernel[1]))

    def view(self, xp: np.ndarray, i: int, j: int) -> np.ndarray:
        (sh, sw), (dh, dw), (ho, wo) = self.stride, self.dilation, self.out
        return xp[..., i * dh: i * dh + sh * (ho - 1) + 1: sh,
                  j * dw: j * dw + sw * (wo - 1) + 1: sw]

    def span(self) -> tuple:
        """Input rows and cols the windows reach: `(Ho-1)*s + (k-1)*d + 1`."""
        return tuple((o - 1) * s + (k - 1) * d + 1 for o, s, k, d in
                     zip(self.out, self.stride, self.kernel, self.dilation))


def _out_size(size: int, lo: int, hi: int, k: int, s: int, d: int, ceil: bool = False) -> int:
    """PyTorch's output length of a window op along one axis."""
    reach = size + lo + hi - d * (k - 1) - 1
    if not ceil:
        return reach // s + 1
    out = -(-reach // s) + 1
    if (out - 1) * s >= size + lo:  # the last window must start inside input or left pad
        out -= 1
    return out


def _padded(x: np.ndarray, pads: tuple, value=0) -> np.ndarray:
    """`x: [N, C, H, W]` padded by `pads = (top, bottom, left, right)`."""
    top, bottom, left, right = pads
    if not any(pads):
        return x
    n, c, h, w = x.shape
    xp = np.full((n, c, h + top + bottom, w + left + right), value, dtype=x.dtype)
    xp[:, :, top:top + h, left:left + w] = x
    return xp


def _unpadded(gxp: np.ndarray, pads: tuple, shape: tuple) -> np.ndarray:
    top, _, left, _ = pads
    return gxp[:, :, top:top + shape[2], left:left + shape[3]]


# ----------------------------------------------------------------------------
# linear
# ----------------------------------------------------------------------------
class Linear(Function):
    """`y = x @ weight.T + bias` over the last dim of `x: [*, in]`."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.saved = (x, weight)
        out = np.matmul(x, weight.T)
        if bias is not None:
            out += bias
        return out

    @staticmethod
    def backward(ctx, g):
        x, weight = ctx.saved
        need_x, need_w, need_b = ctx.needs_input_grad
        g2 = g.reshape(-1, g.shape[-1])
        gx = np.matmul(g, weight) if need_x else None
        gw = g2.T @ x.reshape(-1, x.shape[-1]) if need_w else None
        gb = g2.sum(0) if need_b else None
        return gx, gw, gb


def linear(x, weight, bias=None) -> Tensor:
    """`x: [*, in_features]`, `weight: [out_features, in_features]`,
    `bias: [out_features]` -> `[*, out_features]`."""
    x, weight, bias = _tensor(x), _tensor(weight), _tensor(bias)
    if weight.ndim != 2:
        raise ValueError(f"linear: weight must be [out_features, in_features] (2-D), "
                         f"got {_shape(weight.shape)}")
    if x.ndim < 1 or x.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: input {_shape(x.shape)} has {x.shape[-1] if x.ndim else 0} "
                         f"features in its last dim but weight {_shape(weight.shape)} "
                         f"expects in_features={weight.shape[1]}")
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"linear: bias must be [out_features={weight.shape[0]}], "
                         f"got {_shape(bias.shape)}")
    _check_dtypes("linear", x, ("weight", weight), ("bias", bias))
    return Linear.apply(x, weight, bias)


# ----------------------------------------------------------------------------
# convolution
# ----------------------------------------------------------------------------
def _conv_chunks(n: int, cols_bytes_per_image: int):
    """(start, stop) image ranges for the chunked im2col."""
    step = max(1, _IM2COL_CHUNK_BYTES // max(cols_bytes_per_image, 1))
    return [(i, min(i + step, n)) for i in range(0, n, step)]


class _WideRows(NamedTuple):
    """conv2d's windows, with every output row computed `Wq` columns wide.

    The input is zero-padded to `[N, C, Hp, Wp]` with `Hp`, `Wp` multiples of
    the strides (`pads` may be wider at the bottom and right than asked for),
    and each output row is computed `Wq = Wp / sw` columns wide: columns
    `Wo..Wq-1` are junk that no caller sees. In exchange, what kernel offset
    (i, j) reads of a channel is one strided view `[Ho, Wq]` with row step
    `sh*Wp`, at stride 1 one contiguous run of `Ho*Wp` elements, so im2col
    and col2im are a few long copies and sums instead of k*k*Ho short ones.
    The junk windows of the last row read up to `(kw-1)*dw` elements past the
    last plane: `pad` allocates that tail.

    col2im works per phase (a, b) of the padded input, the rows `a::sh` and
    columns `b::sw` (one phase at stride 1): each is a `[Hp/sh, Wq]` grid on
    which every kernel offset that reaches it, (i, j) with `i*dh = a + sh*u`
    and `j*dw = b + sw*v`, sends its gradients `[Ho, Wq]` shifted by (u, v).
    A shift is a flat offset `u*Wq + v` in a row of `scatter_buffer` that
    holds the gradients `reach` elements in with zeros around, so a phase is
    one sum of shifted views of those rows.
    """
    grid: _Grid
    pads: tuple     # (top, bottom, left, right)
    padded: tuple   # (Hp, Wp)

    @property
    def wide(self) -> int:
        """Wq, the output columns computed per row."""
        return self.padded[1] // self.grid.stride[1]

    @property
    def reach(self) -> int:
        """Largest flat shift `u*Wq + v` of a kernel offset within its phase."""
        (kh, kw), (sh, sw), (dh, dw) = self.grid.kernel, self.grid.stride, self.grid.dilation
        return (kh - 1) * dh // sh * self.wide + (kw - 1) * dw // sw

    def pad(self, x: np.ndarray) -> np.ndarray:
        """`x: [n, C, H, W]` zero-padded to `[n, C, Hp, Wp]`, plus a zero tail."""
        n, c, h, w = x.shape
        (hp, wp), top, left = self.padded, self.pads[0], self.pads[2]
        tail = (self.grid.kernel[1] - 1) * self.grid.dilation[1]
        xp = np.zeros(n * c * hp * wp + tail, dtype=x.dtype)[:n * c * hp * wp]
        xp = xp.reshape(n, c, hp, wp)
        xp[:, :, top:top + h, left:left + w] = x
        return xp

    def widen(self, g: np.ndarray) -> np.ndarray:
        """`g: [N, O, Ho, Wo]` as `[N, O, Ho, Wq]`, junk columns 0."""
        g_wide = np.zeros(g.shape[:3] + (self.wide,), dtype=g.dtype)
        g_wide[..., :g.shape[3]] = g
        return g_wide

    def windows(self, xp: np.ndarray) -> np.ndarray:
        """Read-only view `[n, C, kh, kw, Ho, Wq]` of `xp` (made by `pad`):
        at (c, i, j, h, w) the input that offset (i, j) of window (h, w) sees."""
        (kh, kw), (sh, sw), (dh, dw) = self.grid.kernel, self.grid.stride, self.grid.dilation
        s_n, s_c, s_h, s_w = xp.strides
        return as_strided(xp, (*xp.shape[:2], kh, kw, self.grid.out[0], self.wide),
                          (s_n, s_c, dh * s_h, dw * s_w, sh * s_h, sw * s_w), writeable=False)

    def scatter_buffer(self, n: int, c: int, dtype) -> np.ndarray:
        """Zeros `[n, C*kh*kw, reach + Hp/sh*Wq]`, one row per im2col row;
        gradients go to `[..., reach:reach + Ho*Wq]` and the rest stays 0."""
        kh, kw = self.grid.kernel
        rows = self.padded[0] // self.grid.stride[0]
        return np.zeros((n, c * kh * kw, self.reach + rows * self.wide), dtype=dtype)

    def col2im(self, buf: np.ndarray, gxp: np.ndarray) -> None:
        """Set `gxp: [n, C, Hp, Wp]` to the sums of the gradients in `buf`
        (from `scatter_buffer`) over the windows that read each element."""
        (kh, kw), (sh, sw), (dh, dw) = self.grid.kernel, self.grid.stride, self.grid.dilation
        rows, wq = self.padded[0] // sh, self.wide
        flat = buf.reshape(-1)
        s_n, s_row, s_e = buf.strides
        for a, b in itertools.product(range(sh), range(sw)):
            i_first, i_step, i_count = _offsets_in_phase(kh, dh, sh, a)
            j_first, j_step, j_count = _offsets_in_phase(kw, dw, sw, b)
            out = gxp[:, :, a::sh, b::sw]
            if not i_count or not j_count:
                out[...] = 0
                continue
            start = ((i_first * kw + j_first) * buf.shape[2] + self.reach
                     - (i_first * dh - a) // sh * wq - (j_first * dw - b) // sw)
            shifted = as_strided(
                flat[start:], (*gxp.shape[:2], i_count, j_count, rows, wq),
                (s_n, kh * kw * s_row, i_step * kw * s_row - i_step * dh // sh * wq * s_e,
                 j_step * s_row - j_step * dw // sw * s_e, wq * s_e, s_e), writeable=False)
            np.sum(shifted, axis=(2, 3), out=out)


def _offsets_in_phase(k: int, d: int, s: int, phase: int) -> tuple:
    """(first, step, count) of the kernel offsets i < k with `i*d % s == phase`."""
    hits = [i for i in range(k) if i * d % s == phase]
    return (hits[0] if hits else 0, hits[1] - hits[0] if len(hits) > 1 else 1, len(hits))


def _wide_rows(x_shape: tuple, pads: tuple, grid: _Grid) -> _WideRows:
    """The layout for input `x_shape` padded by `pads`, bottom and right pads
    grown until the strides divide the padded size."""
    top, bottom, left, right = pads
    (sh, sw), (h, w) = grid.stride, x_shape[2:]
    hp = -(-(h + top + bottom) // sh) * sh
    wp = -(-(w + left + right) // sw) * sw
    return _WideRows(grid, (top, hp - h - top, left, wp - w - left), (hp, wp))


# Junk columns hold inputs (forward, weight gradient) or zeros (input
# gradient) that meet zeros on the other side of the GEMM, so they add 0 --
# unless an input or weight is inf or NaN: 0 * inf is NaN, where PyTorch gives
# inf. A gradient that comes out non-finite is therefore recomputed with the
# junk columns set to 0 (`zero_junk`); finite ones are exact as they are.
def _conv_weight_grad(g_wide, xp, rows: _WideRows, groups: int, zero_junk=False):
    """`[G, O/G, C/G*kh*kw]` from `g_wide: [N, O, Ho, Wq]` and the padded input."""
    n, c = xp.shape[:2]
    o = g_wide.shape[1]
    (kh, kw), (ho, wo), wq = rows.grid.kernel, rows.grid.out, rows.wide
    chunks = _conv_chunks(n, c * kh * kw * ho * wq * xp.itemsize)
    cols = np.empty((chunks[0][1], c, kh, kw, ho, wq), dtype=xp.dtype)
    gw = np.zeros((groups, o // groups, c // groups * kh * kw), dtype=xp.dtype)
    for a, b in chunks:
        np.copyto(cols[:b - a], rows.windows(xp[a:b]))
        if zero_junk:
            cols[:b - a, ..., wo:] = 0
        cols_t = cols[:b - a].reshape(b - a, groups, -1, ho * wq).swapaxes(-1, -2)
        gw += np.matmul(g_wide[a:b].reshape(b - a, groups, o // groups, -1), cols_t).sum(0)
    if not zero_junk and not np.isfinite(gw).all():
        return _conv_weight_grad(g_wide, xp, rows, groups, zero_junk=True)
    return gw


def _conv_input_grad(g_wide, weight, rows: _WideRows, groups: int, zero_junk=False):
    """Gradient `[N, C, Hp, Wp]` of the padded input from `g_wide: [N, O, Ho, Wq]`."""
    n, o, ho = g_wide.shape[:3]
    c, kh, kw = weight.shape[1] * groups, weight.shape[2], weight.shape[3]
    wo, wq = rows.grid.out[1], rows.wide
    w_t = weight.reshape(groups, o // groups, -1).swapaxes(-1, -2)
    chunks = _conv_chunks(n, c * kh * kw * ho * wq * weight.itemsize)
    scatter = rows.scatter_buffer(chunks[0][1], c, weight.dtype)
    gxp = np.empty((n, c, *rows.padded), dtype=weight.dtype)
    for a, b in chunks:
        g_mat = g_wide[a:b].reshape(b - a, groups, o // groups, -1)
        spots = scatter[:b - a, :, rows.reach:rows.reach + ho * wq]
        np.matmul(w_t, g_mat, out=spots.reshape(b - a, groups, -1, ho * wq))
        if zero_junk:
            spots.reshape(b - a, -1, ho, wq)[..., wo:] = 0
        rows.col2im(scatter[:b - a], gxp[a:b])
    if not zero_junk and not np.isfinite(gxp).all():
        return _conv_input_grad(g_wide, weight, rows, groups, zero_junk=True)
    return gxp


class Conv2d(Function):
    """2-D cross-correlation by chunked im2col + GEMM on wide rows (`_WideRows`).

    forward(x: [N, C, H, W], weight: [O, C/G, kh, kw], bias: [O] | None,
    rows: _WideRows, groups) -> [N, O, Ho, Wo]. Per chunk of n images, im2col
    `[n, C, kh, kw, Ho*Wq]` is one copy from a strided view and the GEMM
    `[G, O/G, C/G*kh*kw] @ [n, G, C/G*kh*kw, Ho*Wq]` writes `[n, O, Ho, Wq]`
    straight into the output, which is returned as a view without the junk
    columns. Backward rebuilds each chunk's im2col for the weight gradient;
    the input gradient's GEMM writes into `scatter_buffer` rows, summed by
    `_WideRows.col2im`. Like torch, inf - inf gives NaN without a warning.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, rows, groups):
        n, c = x.shape[:2]
        o, kh, kw = weight.shape[0], weight.shape[2], weight.shape[3]
        (ho, wo), wq = rows.grid.out, rows.wide
        xp = rows.pad(x)
        w_mat = weight.reshape(groups, o // groups, -1)
        chunks = _conv_chunks(n, c * kh * kw * ho * wq * x.itemsize)
        cols = np.empty((chunks[0][1], c, kh, kw, ho, wq), dtype=x.dtype)
        out = np.empty((n, groups, o // groups, ho * wq), dtype=x.dtype)
        with np.errstate(invalid="ignore"):
            for a, b in chunks:
                np.copyto(cols[:b - a], rows.windows(xp[a:b]))
                y = np.matmul(w_mat, cols[:b - a].reshape(b - a, groups, -1, ho * wq),
                              out=out[a:b])
                if bias is not None:
                    y += bias.reshape(groups, -1, 1)
        ctx.saved = (xp, weight, x.shape, rows, groups)
        return out.reshape(n, o, ho, wq)[..., :wo]

    @staticmethod
    def backward(ctx, g):
        xp, weight, x_shape, rows, groups = ctx.saved
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        g_wide = rows.widen(g)
        with np.errstate(invalid="ignore"):
            gxp = _conv_input_grad(g_wide, weight, rows, groups) if need_x else None
            gw = _conv_weight_grad(g_wide, xp, rows, groups) if need_w else None
            gb = g.sum((0, 2, 3)) if need_b else None
        gx = _unpadded(gxp, rows.pads, x_shape) if need_x else None
        gw = gw.reshape(weight.shape) if need_w else None
        return gx, gw, gb, None, None


def _conv_padding(padding, kernel, dilation, stride, op: str) -> tuple:
    """(top, bottom, left, right) from an int, a pair, 'valid' or 'same'."""
    if isinstance(padding, str):
        if padding == "valid":
            return 0, 0, 0, 0
        if padding == "same":
            if stride != (1, 1):
                raise ValueError(f"{op}: padding='same' is not supported for strided "
                                 f"convolutions (stride={stride})")
            pads = []
            for k, d in zip(kernel, dilation):  # the odd pixel goes to the end, as torch
                total = d * (k - 1)
                pads += [total // 2, total - total // 2]
            return tuple(pads)
        raise ValueError(f"{op}: padding must be an int, a tuple, 'valid' or 'same', "
                         f"got {padding!r}")
    ph, pw = _pair(padding, "padding", op)
    if ph < 0 or pw < 0:
        raise ValueError(f"{op}: padding must be non-negative, got {(ph, pw)}")
    return ph, ph, pw, pw


def _conv(op: str, x, weight, bias, stride, padding, dilation, groups, spatial: str):
    """Check arguments of conv1d/conv2d (as 2-D) and run `Conv2d`.

    `spatial` names the spatial dims of the caller for messages ("L" or "H, W").
    """
    ndim = 2 + len(spatial.split(", "))
    c_in = weight.shape[1] * groups if weight.ndim == ndim else "?"
    expected = f"[N, C_in={c_in}, {spatial}] ({ndim}-D)"
    if weight.ndim != ndim:
        raise ValueError(f"{op}: expected weight [C_out, C_in/groups, kernel...] "
                         f"({ndim}-D) but got {_shape(weight.shape)}")
    if not isinstance(groups, (int, np.integer)) or groups < 1:
        raise ValueError(f"{op}: groups must be a positive int, got {groups!r}")
    if weight.shape[0] % groups:
        raise ValueError(f"{op}: out_channels={weight.shape[0]} (weight "
                         f"{_shape(weight.shape)}) is not divisible by groups={groups}")
    if x.ndim != ndim or x.shape[1] != c_in:
        raise ValueError(f"{op}: expected input {expected} but got {_shape(x.shape)}")
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"{op}: bias must be [C_out={weight.shape[0]}], got "
                         f"{_shape(bias.shape)}")
    _check_dtypes(op, x, ("weight", weight), ("bias", bias))
    if ndim == 3:  # conv1d runs as conv2d over [N, C, 1, L]
        x, weight = x.unsqueeze(2), weight.unsqueeze(2)
        stride, dilation = (1, _one(stride, "stride", op)), (1, _one(dilation, "dilation", op))
        if not isinstance(padding, str):
            padding = (0, _one(padding, "padding", op))
    else:
        stride, dilation = _pair(stride, "stride", op), _pair(dilation, "dilation", op)
    if min(stride) < 1 or min(dilation) < 1:
        raise ValueError(f"{op}: stride and dilation must be positive, got "
                         f"stride={stride[-ndim + 2:]}, dilation={dilation[-ndim + 2:]}")
    kernel = weight.shape[2:]
    pads = _conv_padding(padding, kernel, dilation, stride, op)
    out = tuple(_out_size(n, lo, hi, k, s, d) for n, lo, hi, k, s, d in zip(
        x.shape[2:], pads[::2], pads[1::2], kernel, stride, dilation))
    if min(out) < 1:
        span = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
        padded = tuple(n + lo + hi for n, lo, hi in zip(x.shape[2:], pads[::2], pads[1::2]))
        drop = slice(1, None) if ndim == 3 else slice(None)
        raise ValueError(f"{op}: the kernel spans {span[drop]} (kernel with dilation) but the "
                         f"padded input is only {padded[drop]} for input {_shape(x.shape)}")
    grid = _Grid(tuple(kernel), stride, dilation, out)
    y = Conv2d.apply(x, weight, bias, _wide_rows(x.shape, pads, grid), groups)
    return y.squeeze(2) if ndim == 3 else y


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups: int = 1) -> Tensor:
    """`x: [N, C_in, H, W]`, `weight: [C_out, C_in/groups, kh, kw]`, `bias: [C_out]`
    -> `[N, C_out, Ho, Wo]`. `padding` may be an int, a pair, 'valid' or 'same'."""
    x, weight, bias = _tensor(x), _tensor(weight), _tensor(bias)
    return _conv("conv2d", x, weight, bias, stride, padding, dilation, groups, "H, W")


def conv1d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups: int = 1) -> Tensor:
    """`x: [N, C_in, L]`, `weight: [C_out, C_in/groups, k]`, `bias: [C_out]` -> `[N, C_out, Lo]`."""
    x, weight, bias = _tensor(x), _tensor(weight), _tensor(bias)
    return _conv("conv1d", x, weight, bias, stride, padding, dilation, groups, "L")


# ----------------------------------------------------------------------------
# pooling
# ----------------------------------------------------------------------------
def _pool_geometry(op: str, x: Tensor, kernel_size, stride, padding, dilation, ceil_mode):
    """Check pool arguments; return (pads, grid) with the padded input big
    enough for every window (ceil_mode windows may run past the right pad)."""
    if x.ndim != 4:
        raise ValueError(f"{op}: expected input [N, C, H, W] (4-D) but got {_shape(x.shape)}")
    kernel = _pair(kernel_size, "kernel_size", op)
    stride = kernel if stride is None or stride == () else _pair(stride, "stride", op)
    ph, pw = _pair(padding, "padding", op)
    dilation = _pair(dilation, "dilation", op)
    if min(kernel) < 1 or min(stride) < 1 or min(dilation) < 1:
        raise ValueError(f"{op}: kernel_size, stride and dilation must be positive, got "
                         f"kernel_size={kernel}, stride={stride}, dilation={dilation}")
    for p, k in ((ph, kernel[0]), (pw, kernel[1])):
        if p < 0 or p > k // 2:
            raise ValueError(f"{op}: padding {(ph, pw)} must be non-negative and at most "
                             f"half of the kernel size {kernel}")
    out = (_out_size(x.shape[2], ph, ph, kernel[0], stride[0], dilation[0], ceil_mode),
           _out_size(x.shape[3], pw, pw, kernel[1], stride[1], dilation[1], ceil_mode))
    if min(out) < 1:
        raise ValueError(f"{op}: output size would be {out} for input {_shape(x.shape)}, "
                         f"kernel_size={kernel}, padding={(ph, pw)}: the input is too small")
    grid = _Grid(kernel, stride, dilation, out)
    span_h, span_w = grid.span()
    pads = (ph, max(ph, span_h - x.shape[2] - ph), pw, max(pw, span_w - x.shape[3] - pw))
    return pads, grid


class MaxPool2d(Function):
    """Max over each window; the gradient goes to the first maximum in
    row-major window order (NaN wins), as PyTorch's CPU kernel."""

    @staticmethod
    def forward(ctx, x, pads, grid):
        xp = _padded(x, pads, value=-np.inf)
        best = argbest = None
        for offset, (i, j) in enumerate(grid.offsets()):
            cand = grid.view(xp, i, j)
            if best is None:
                best, argbest = cand.copy(), np.zeros(cand.shape, dtype=np.int32)
                continue
            take = (cand > best) | np.isnan(cand)
            np.copyto(best, cand, where=take)
            argbest[take] = offset
        ctx.saved = (argbest, xp.shape, x.shape, pads, grid)
        return best

    @staticmethod
    def backward(ctx, g):
        argbest, xp_shape, x_shape, pads, grid = ctx.saved
        gxp = np.zeros(xp_shape, dtype=g.dtype)
        zero = np.zeros((), dtype=g.dtype)
        for offset, (i, j) in enumerate(grid.offsets()):
            grid.view(gxp, i, j)[...] += np.where(argbest == offset, g, zero)
        return _unpadded(gxp, pads, x_shape), None, None


def _pool_divisor(x_size: tuple, pads: tuple, grid: _Grid, count_include_pad: bool,
                  dtype) -> np.ndarray:
    """Per-output divisor `[Ho, Wo]` of avg_pool2d, PyTorch's rule: the window
    is clipped to input+padding (include pad) or to the input (exclude)."""
    counts = []
    for axis in range(2):
        size, lo = x_size[axis], pads[2 * axis]
        start = np.arange(grid.out[axis]) * grid.stride[axis] - lo
        end = np.minimum(start + grid.kernel[axis], size + lo)
        if not count_include_pad:
            start, end = np.maximum(start, 0), np.minimum(end, size)
        counts.append(end - start)
    return np.multiply.outer(counts[0], counts[1]).astype(dtype)


class AvgPool2d(Function):
    """Mean over each window (sum, then divide by the window's divisor)."""

    @staticmethod
    def forward(ctx, x, pads, grid, divisor):
        xp = _padded(x, pads)
        total = None
        for i, j in grid.offsets():
            view = grid.view(xp, i, j)
            total = view.copy() if total is None else total + view
        ctx.saved = (xp.shape, x.shape, pads, grid, divisor)
        return total / divisor

    @staticmethod
    def backward(ctx, g):
        xp_shape, x_shape, pads, grid, divisor = ctx.saved
        share = g / divisor
        gxp = np.zeros(xp_shape, dtype=g.dtype)
        for i, j in grid.offsets():
            grid.view(gxp, i, j)[...] += share
        return _unpadded(gxp, pads, x_shape), None, None, None


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1,
               ceil_mode: bool = False) -> Tensor:
    """`x: [N, C, H, W]` -> `[N, C, Ho, Wo]`, windows padded with -inf."""
    x = _tensor(x)
    pads, grid = _pool_geometry("max_pool2d", x, kernel_size, stride, padding, dilation,
                                ceil_mode)
    return MaxPool2d.apply(x, pads, grid)


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override=None) -> Tensor:
    """`x: [N, C, H, W]` -> `[N, C, Ho, Wo]`, zero padding, PyTorch's divisors."""
    x = _tensor(x)
    pads, grid = _pool_geometry("avg_pool2d", x, kernel_size, stride, padding, 1, ceil_mode)
    if divisor_override is not None:
        if divisor_override <= 0:
            raise ValueError(f"avg_pool2d: divisor_override must be positive, "
                             f"got {divisor_override}")
        divisor = np.asarray(divisor_override, dtype=x.dtype)
    else:
        divisor = _pool_divisor(x.shape[2:], pads, grid, count_include_pad, x.dtype)
    return AvgPool2d.apply(x, pads, grid, divisor)


def _adaptive_matrix(size: int, out: int, dtype) -> np.ndarray:
    """`[out, size]` averaging matrix: row i averages input
    `[floor(i*size/out), ceil((i+1)*size/out))`, PyTorch's adaptive bins."""
    m = np.zeros((out, size), dtype=np.float64)
    for i in range(out):
        start, end = (i * size) // out, -(-((i + 1) * size) // out)
        m[i, start:end] = 1.0 / (end - start)
    return m.astype(dtype)


class AdaptiveAvgPool2d(Function):
    """`y = A_h @ x @ A_w.T` with the averaging matrices of both axes."""

    @staticmethod
    def forward(ctx, x, rows, cols):
        ctx.saved = (rows, cols)
        return rows @ (x @ cols.T)

    @staticmethod
    def backward(ctx, g):
        rows, cols = ctx.saved
        return (rows.T @ g) @ cols, None, None


def adaptive_avg_pool2d(x, output_size) -> Tensor:
    """`x: [N, C, H, W]` -> `[N, C, *output_size]`; an entry None keeps that size."""
    x = _tensor(x)
    if x.ndim != 4:
        raise ValueError(f"adaptive_avg_pool2d: expected input [N, C, H, W] (4-D) but got "
                         f"{_shape(x.shape)}")
    if isinstance(output_size, (int, np.integer)) or output_size is None:
        output_size = (output_size, output_size)
    size = tuple(x.shape[2 + a] if s is None else int(s) for a, s in enumerate(output_size))
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"adaptive_avg_pool2d: output_size must be two positive ints, "
                         f"got {output_size}")
    rows = _adaptive_matrix(x.shape[2], size[0], x.dtype)
    cols = _adaptive_matrix(x.shape[3], size[1], x.dtype)
    return AdaptiveAvgPool2d.apply(x, rows, cols)


# ----------------------------------------------------------------------------
# batch norm
# ----------------------------------------------------------------------------
class BatchNorm(Function):
    """`y = (x - mean) / sqrt(var + eps) * weight + bias` per channel.

    Training: batch mean and biased variance; `running_mean`/`running_var`
    (arrays or None) are updated in place with `momentum`, the variance
    unbiased (`n / (n - 1)`), as PyTorch. Eval: the running statistics.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, training, momentum, eps):
        axes = (0,) + tuple(range(2, x.ndim))
        shape = (1, -1) + (1,) * (x.ndim - 2)  # broadcast a [C] vector against x
        if training:
            n = x.size // x.shape[1]
            mean64 = x.mean(axis=axes, dtype=np.float64)
            var64 = np.square(x - mean64.reshape(shape)).mean(axis=axes)
            if running_mean is not None:
                running_mean[...] = (momentum * mean64 + (1 - momentum) * running_mean)
            if running_var is not None:
                running_var[...] = (momentum * var64 * n / (n - 1)
                                    + (1 - momentum) * running_var)
            mean, var = mean64.astype(x.dtype), var64.astype(x.dtype)
        else:
            mean, var = running_mean, running_var
        invstd = (1 / np.sqrt(var + np.asarray(eps, dtype=var.dtype))).astype(x.dtype)
        xhat = (x - mean.reshape(shape)) * invstd.reshape(shape)
        out = xhat if weight is None else xhat * weight.reshape(shape)
        if bias is not None:
            out = out + bias.reshape(shape)
        ctx.saved = (xhat, invstd, weight, training, axes, shape)
        return out

    @staticmethod
    def backward(ctx, g):
        xhat, invstd, weight, training, axes, shape = ctx.saved
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        g_sum = g.sum(axis=axes)
        g_xhat_sum = (g * xhat).sum(axis=axes)
        gx = None
        if need_x:
            scale = invstd if weight is None else invstd * weight
            if training:
                n = g.size // g.shape[1]
                gx = (g - (g_sum / n).reshape(shape)
                      - xhat * (g_xhat_sum / n).reshape(shape)) * scale.reshape(shape)
            else:
                gx = g * scale.reshape(shape)
        return (gx, g_xhat_sum if need_w else None, g_sum if need_b else None,
                None, None, None, None, None)


def batch_norm(x, running_mean, running_var, weight=None, bias=None, training: bool = False,
               momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """PyTorch's `F.batch_norm`: `x: [N, C, *]`, vectors `[C]`.

    In training the running statistics (Tensors or arrays, or None) are updated
    in place: `r = (1 - momentum) * r + momentum * batch_stat`.
    """
    x, weight, bias = _tensor(x), _tensor(weight), _tensor(bias)
    if x.ndim < 2:
        raise ValueError(f"batch_norm: expected input [N, C, *] (at least 2-D) but got "
                         f"{_shape(x.shape)}")
    c = x.shape[1]
    stats = [r.data if isinstance(r, Tensor) else r for r in (running_mean, running_var)]
    for name, v in (("running_mean", stats[0]), ("running_var", stats[1]),
                    ("weight", weight), ("bias", bias)):
        if v is not None and tuple(v.shape) != (c,):
            raise ValueError(f"batch_norm: {name} must be [C={c}] for input "
                             f"{_shape(x.shape)}, got {_shape(v.shape)}")
    if not training and (stats[0] is None or stats[1] is None):
        raise ValueError("batch_norm: running_mean and running_var are needed when "
                         "training=False")
    if training and x.numel() // c <= 1:
        raise ValueError(f"batch_norm: expected more than 1 value per channel when "
                         f"training, got input {_shape(x.shape)}")
    _check_dtypes("batch_norm", x, ("weight", weight), ("bias", bias))
    return BatchNorm.apply(x, weight, bias, stats[0], stats[1], bool(training),
                           momentum, eps)


# ----------------------------------------------------------------------------
# dropout, pad and small wrappers
# ----------------------------------------------------------------------------
def dropout(x, p: float = 0.5, training: bool = True) -> Tensor:
    """PyTorch's per-call dropout: zero each element with probability `p` and
    scale the rest by `1/(1-p)` (the noise is `bernoulli(1-p) / f(1-p)` in
    x's dtype); identity when not training. The mask comes from the library
    generator, so `refsnn.manual_seed` makes it reproducible."""
    x = _tensor(x)
    if not 0 <= p <= 1:
        raise ValueError(f"dropout: probability has to be between 0 and 1, but got {p}")
    if not training:
        return x
    if p == 1:
        noise = np.zeros(x.shape, dtype=x.dtype)
    else:
        keep = default_generator().random(x.shape) < 1 - p
        noise = keep.astype(x.dtype) / np.asarray(1 - p, dtype=x.dtype)
    return x * Tensor._wrap(noise)


class Pad(Function):
    """Constant padding by `widths = ((lo, hi), ...)` per dim; negative
    amounts crop, as PyTorch."""

    @staticmethod
    def forward(ctx, x, widths, value):
        cut = [(max(-lo, 0), max(-hi, 0)) for lo, hi in widths]
        grow = [(max(lo, 0), max(hi, 0)) for lo, hi in widths]
        ctx.saved = (cut, grow)
        kept = tuple(slice(lo, n - hi) for n, (lo, hi) in zip(x.shape, cut))
        return np.pad(x[kept], grow, mode="constant", constant_values=value)

    @staticmethod
    def backward(ctx, g):
        cut, grow = ctx.saved
        inner = tuple(slice(lo, n - hi) for n, (lo, hi) in zip(g.shape, grow))
        return np.pad(g[inner], cut), None, None


def pad(x, pad, mode: str = "constant", value: float = 0.0) -> Tensor:
    """PyTorch's `F.pad` (constant mode): `pad = (last_lo, last_hi, prev_lo, ...)`."""
    x = _tensor(x)
    if mode != "constant":
        raise NotImplementedError(f"pad: only mode='constant' is implemented, got {mode!r}")
    pad = tuple(int(p) for p in pad)
    if len(pad) % 2 or len(pad) // 2 > x.ndim:
        raise ValueError(f"pad: padding {pad} must have an even length of at most "
                         f"2 * ndim = {2 * x.ndim} for input {_shape(x.shape)}")
    widths = [(0, 0)] * x.ndim
    for k in range(len(pad) // 2):
        widths[x.ndim - 1 - k] = (pad[2 * k], pad[2 * k + 1])
    for n, (lo, hi) in zip(x.shape, widths):
        if n + lo + hi < 0:
            raise ValueError(f"pad: padding {pad} crops more than the input {_shape(x.shape)} has")
    return Pad.apply(x, tuple(widths), value)
