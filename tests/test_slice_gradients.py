"""Backward through basic indexing keeps slice gradients unmaterialised until
they meet; the sums must equal the dense sums and never write into a gradient
array that another input shares."""
import numpy as np

import refsnn as rs


def test_time_loop_over_slices_sums_like_dense_gradients():
    rng = np.random.default_rng(0)
    x = rs.tensor(rng.standard_normal((6, 4, 3)), dtype=np.float64, requires_grad=True)
    w = rng.standard_normal((6, 4, 3))
    loss = sum((x[t] * rs.tensor(w[t])).sum() for t in range(6)) + (x[1:3] * 2.0).sum()
    loss.backward()
    expected = w.copy()
    expected[1:3] += 2.0
    np.testing.assert_array_equal(x.grad.data, expected)


def test_slice_gradient_does_not_write_into_a_shared_gradient_array():
    x = rs.tensor(np.arange(6.0).reshape(2, 3), dtype=np.float64, requires_grad=True)
    p, q = x * 2.0, x * 3.0
    row = p[0]                      # recorded before the Add: its backward runs after
    total = p + q                   # Add hands one gradient array to both p and q
    c = np.full((2, 3), 5.0)
    (total * rs.tensor(c)).sum().backward(retain_graph=True)
    ((row * 7.0).sum() + (total * rs.tensor(c)).sum()).backward()
    expected_once = 2 * c + 3 * c
    expected = 2 * expected_once
    expected[0] += 2 * 7.0
    np.testing.assert_array_equal(x.grad.data, expected)


def test_float32_slices_of_a_non_leaf_keep_dtype_and_values():
    x = rs.tensor(np.linspace(-1, 1, 12, dtype=np.float32).reshape(4, 3), requires_grad=True)
    y = x * 3.0
    out = rs.stack([y[t] * float(t + 1) for t in range(4)]).sum()
    out.backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_array_equal(x.grad.data, np.repeat(np.float32([3, 6, 9, 12])[:, None], 3, 1))
