"""Reuse of large result arrays whose last user has let go of them.

Fresh memory costs a page fault per 4 KiB page on first write, which for the
fused neuron loops costs as much as the loops themselves. A `ResultPool` hands
out cache-line-aligned empty arrays and keeps up to `limit_bytes` of them; an
array is handed out again only when the pool holds the last reference to it
and to its memory (buffers that wrap an array reference it, views reference
its memory, so a result still in use is never overwritten). The autograd asks
`pool_references` to tell the pools' references from a user's before it
hands a gradient over as `.grad` without a copy.
"""
from __future__ import annotations

import sys
import threading
import weakref

import numpy as np

__all__ = ["ResultPool", "pool_references"]

_POOLS = weakref.WeakSet()


def pool_references(a: np.ndarray) -> int:
    """How many of the references to `a` are held by result pools."""
    return sum(pool.holds(a) for pool in list(_POOLS))


ALIGN = 64  # bytes, a cache line: vector loads and stores of a row never straddle two


def _aligned_empty(shape, dtype) -> np.ndarray:
    """`np.empty(shape, dtype)` starting on an ALIGN-byte boundary (NumPy's
    own large arrays start 16 bytes into a page). Its `base` is the raw byte
    buffer, which every view of it references too."""
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    raw = np.empty(nbytes + ALIGN, np.uint8)
    start = -raw.ctypes.data % ALIGN
    return raw[start:start + nbytes].view(dtype).reshape(shape)


class ResultPool:
    """`empty(shape, dtype)` like `np.empty` (ALIGN-aligned), reusing free
    arrays of that shape."""

    def __init__(self, limit_bytes: int):
        self.limit_bytes = limit_bytes
        self._arrays: list = []
        self._lock = threading.Lock()
        _POOLS.add(self)

    def holds(self, a: np.ndarray) -> bool:
        """Whether `a` is one of the kept arrays."""
        return any(kept is a for kept in self._arrays)

    @staticmethod
    def _is_free(a: np.ndarray) -> bool:
        # a: the pool's list, the loop variable, the call's argument and
        # getrefcount's own; its memory (a.base): a itself and getrefcount's
        # argument, so no view of a is alive either (a view's base is a.base)
        return sys.getrefcount(a) == 4 and sys.getrefcount(a.base) == 2

    def empty(self, shape, dtype) -> np.ndarray:
        shape, dtype = tuple(shape), np.dtype(dtype)
        with self._lock:
            for a in self._arrays:
                if a.shape == shape and a.dtype == dtype and self._is_free(a):
                    return a
            out = _aligned_empty(shape, dtype)
            used = sum(a.nbytes for a in self._arrays) + out.nbytes
            for a in [a for a in self._arrays if self._is_free(a)]:  # make room
                if used <= self.limit_bytes:
                    break
                used -= a.nbytes
                self._arrays = [b for b in self._arrays if b is not a]
            if used <= self.limit_bytes:
                self._arrays.append(out)
            return out

    def clear(self) -> None:
        """Drop every kept array (those still in use stay valid)."""
        with self._lock:
            self._arrays = []
