"""Scratch arrays kept between calls, one set per thread.

A forward pass makes some large arrays that live for one stage only, such as the pooled RoI features (1000
boxes x 256 x 7 x 7 floats: 50 MB) that the box head reads once. NumPy takes an array that large straight from
the OS and gives it back when it is freed, so every call pays again for the OS to map and zero its pages
(measured: Faster R-CNN R50-FPN on 2 x 320 x 480, the RoI pooling stage 330-400 ms with fresh arrays, 240 ms
with kept ones). A `Workspace` keeps each named array and hands out views of it instead. One set per thread
(``threading.local``): a model run from two threads must not share them. The cost is memory held between
calls: each named array stays at the largest size asked for. (Tried for Winograd's per-band copies too: no
gain there at 800 x 1216, where the zero fill of a reused buffer costs what the fresh pages did.)
"""
from __future__ import annotations

import math
import threading

import numpy as np


class Workspace(threading.local):
    """``workspace.array(name, shape, dtype)``: a C-contiguous view of the array kept under `name` (grown when
    too small), its values whatever the last user left there (``zero=True`` fills it with 0). A view stays
    valid until the next request for the same name in the same thread: use it before then."""

    def array(self, name: str, shape: tuple, dtype=np.float32, zero: bool = False) -> np.ndarray:
        buffers = self.__dict__.setdefault("buffers", {})
        size = math.prod(shape)
        buffer = buffers.get(name)
        if buffer is None or buffer.size < size or buffer.dtype != np.dtype(dtype):
            buffer = buffers[name] = np.empty(size, dtype)
        view = buffer[:size].reshape(shape)
        if zero:
            view[...] = 0
        return view

    def __reduce__(self):
        # scratch is not state: a copied or pickled model (copy.deepcopy, multiprocessing) gets an empty workspace
        # (a thread-local object cannot be pickled as it is)
        return Workspace, ()
