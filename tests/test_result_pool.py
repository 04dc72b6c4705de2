"""`ResultPool` hands an array out again only when nobody else holds it."""
import numpy as np

from refsnn.result_pool import ALIGN, ResultPool, pool_references


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


def test_arrays_start_on_a_cache_line_and_the_pool_reports_its_references():
    pool = ResultPool(1 << 20)
    arrays = [pool.empty(shape, dtype) for shape, dtype in
              (((3, 7), np.float32), ((5,), np.float64), ((0, 4), np.float32), ((), np.float32))]
    for a, (shape, dtype) in zip(arrays, (((3, 7), np.float32), ((5,), np.float64),
                                          ((0, 4), np.float32), ((), np.float32))):
        assert a.shape == shape and a.dtype == dtype and a.flags.c_contiguous and a.flags.writeable
        assert a.size == 0 or a.ctypes.data % ALIGN == 0
        assert pool.holds(a) and pool_references(a) == 1
    assert pool_references(np.empty(3)) == 0
