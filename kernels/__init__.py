"""edudet.kernels: the fast twins of edudet's NumPy references, one file per concept per backend.

``<concept>_numba.py`` (Numba njit, ``cache=True``), ``<concept>_cython.pyx`` (compiled by setup.py),
``<concept>_cuda.py`` (numba.cuda). Each exposes the same signature as the reference it mirrors and
assumes clean, C-contiguous input: validation happens once, in `edudet`'s public functions.
Nothing here is imported by ``import edudet``; the dispatcher imports a module on first use.
"""
