"""`ResultPool` hands an array out again only when nobody else holds it."""
import numpy as np

from refsnn.result_pool import ResultPool


def test_held_arrays_and_their_views_are_never_handed_out_again():
    pool = ResultPool(1 << 20)
    a = pool.empty((4, 5), np.float32)
    b = pool.empty((4, 5), np.float32)
    assert b is not a
    view = a[1]
    a_id = id(a)
    del a
    c = pool.empty((4, 5), np.float32)
    assert id(c) != a_id and not np.shares_memory(c, view)


def test_free_arrays_are_reused_and_the_limit_is_kept():
    pool = ResultPool(100 * 4)
    a = pool.empty((10, 10), np.float32)
    a_id = id(a)
    del a
    assert id(pool.empty((10, 10), np.float32)) == a_id
    big = pool.empty((20, 20), np.float32)      # over the limit: handed out, not kept
    assert big.shape == (20, 20)
    assert sum(x.nbytes for x in pool._arrays) <= pool.limit_bytes
    pool.clear()
    assert pool._arrays == []
