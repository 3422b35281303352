"""One small dispatcher from `backend=` names to implementations.

Every op that has fast twins declares them once, next to its NumPy reference::

    _nms = Dispatcher("nms", reference=_nms_numpy, numba="nms_numba:nms",
                      cython="nms_cython:nms", cuda="nms_cuda:nms")
    kernel = _nms.get(backend)      # backend=None -> the fastest CPU backend available

Kernel targets are strings "module:function" inside `edudet.kernels`, imported only on first use, so
`import edudet` compiles and imports nothing heavy. Adding a backend touches no caller.
"""
from __future__ import annotations

import importlib
import os
from functools import lru_cache

BACKENDS = ("numpy", "numba", "cython", "cuda")
# the modules that declare a Dispatcher (imported by `backends_for` / `dispatchers`, never by `import edudet`)
OP_MODULES = ("edudet.ops.boxes", "edudet.ops.nms", "edudet.ops.roi_align", "edudet.ops.roi_pool",
              "edudet.matcher", "edudet.targets", "edudet.anchors", "edudet.ops.rotated",
              "edudet.ops.roi_align_rotated", "edudet.rotated_anchors",
              "edudet.ops.iou_variants", "edudet.level_mapper", "edudet.ops.masks")
_REGISTRY: dict = {}
# backend=None picks the first usable of these (CUDA is never picked implicitly: data lives on the host)
DEFAULT_PREFERENCE = ("cython", "numba", "numpy")
# Ops where measurement puts Numba ahead of Cython (`python -m edudet bench`, 2-core machine, 2026-11-22:
# iou+matcher 22.9 vs 34.2 ms, fcos_targets 4.9 vs 7.4 ms, soft_nms 28.6 vs 51.0 ms); every other op measured
# Cython first. Re-measure and edit this table when a kernel changes; nothing else decides the default.
MEASURED_PREFERENCE = {
    "match_boxes": ("numba", "cython", "numpy"),
    "fcos_assign": ("numba", "cython", "numpy"),
    "soft_nms": ("numba", "cython", "numpy"),
    "nms_match": ("numba", "cython", "numpy"),       # 21 vs 36 ms, 3,000 boxes (2026-11-30)
    "masks_to_boxes": ("numba", "cython", "numpy"),  # 0.50 vs 1.15 ms, 50 x 512 x 512 (2026-11-30)
}


@lru_cache(maxsize=None)
def _backend_usable(name: str) -> bool:
    if name == "numpy":
        return True
    if name == "numba":
        try:
            import numba  # noqa: F401
        except ImportError:
            return False
        return True
    if name == "cython":
        # the extensions are built by setup.py; a source checkout without a build has none
        from importlib.machinery import EXTENSION_SUFFIXES
        from pathlib import Path

        try:
            kernels_dir = Path(importlib.import_module("edudet.kernels").__file__).parent
        except ImportError:
            return False
        built = [p for suffix in EXTENSION_SUFFIXES for p in kernels_dir.glob(f"*_cython{suffix}")]
        for path in built[:1]:  # a built extension must also load (a stale build for another numpy may not)
            try:
                importlib.import_module(f"edudet.kernels.{path.name.split('.')[0]}")
            except ImportError:
                return False
        return bool(built)
    if name == "cuda":
        if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
            return _backend_usable("numba")
        if not _backend_usable("numba"):
            return False
        try:
            from numba import cuda

            return bool(cuda.is_available())
        except Exception:  # a broken driver must not break CPU users
            return False
    return False


def available_backends() -> list[str]:
    """The backend names usable in this process, e.g. ``['numpy', 'numba', 'cython']``.

    ``'cuda'`` is listed only with a CUDA GPU or under ``NUMBA_ENABLE_CUDASIM=1`` (the simulator).
    """
    return [b for b in BACKENDS if _backend_usable(b)]


class Dispatcher:
    """Maps backend names to one op's implementations (see the module docstring)."""

    def __init__(self, op: str, reference, preference=None, **targets: str):
        unknown = set(targets) - set(BACKENDS)
        if unknown:
            raise ValueError(f"{op}: unknown backend(s) {sorted(unknown)}")
        self.op = op
        self.preference = tuple(preference or MEASURED_PREFERENCE.get(op, DEFAULT_PREFERENCE))
        self._targets = {"numpy": reference, **targets}
        self._loaded = {"numpy": reference}
        _REGISTRY[op] = self

    @property
    def backends(self) -> list[str]:
        """Backends this op has an implementation for that are usable here."""
        return [b for b in BACKENDS if b in self._targets and _backend_usable(b) and self._importable(b)]

    def _importable(self, backend: str) -> bool:
        try:
            self._load(backend)
        except ImportError:
            return False
        return True

    def _load(self, backend: str):
        fn = self._loaded.get(backend)
        if fn is None:
            module, _, attr = self._targets[backend].partition(":")
            fn = getattr(importlib.import_module(f"edudet.kernels.{module}"), attr)
            self._loaded[backend] = fn
        return fn

    def resolve(self, backend: str | None) -> str:
        """The backend name that `backend` means for this op (``None`` -> the fastest usable CPU one)."""
        if backend is None:
            for name in self.preference:
                if name in self._targets and _backend_usable(name) and self._importable(name):
                    return name
            return "numpy"
        if not isinstance(backend, str):
            raise TypeError(f"backend must be a str or None, got {type(backend).__name__}")
        if backend == "numpy":  # the reference is always there: no need to import every kernel to say so
            return backend
        usable = self.backends
        if backend not in usable:
            raise ValueError(f"{self.op}: backend {backend!r} is not usable here; choose one of {usable}")
        return backend

    def get(self, backend: str | None):
        """The implementation for `backend` (a name or ``None``)."""
        return self._load(self.resolve(backend))


def dispatchers() -> dict:
    """Every op's Dispatcher by op name (imports the op modules; for tests, benchmarks and docs)."""
    for module in OP_MODULES:
        importlib.import_module(module)
    # only edudet's own ops (a Dispatcher built elsewhere, e.g. in a test, registers too)
    return {op: d for op, d in _REGISTRY.items()
            if getattr(d._targets["numpy"], "__module__", "").startswith("edudet.")}


def backends_for(op: str) -> list[str]:
    """The backends usable here for one op, e.g. ``backends_for("nms") -> ['numpy', 'numba', 'cython']``."""
    table = dispatchers()
    if op not in table:
        raise ValueError(f"unknown op {op!r}; choose one of {sorted(table)}")
    return table[op].backends
