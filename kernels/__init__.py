"""edudet.kernels: the fast twins of edudet's NumPy references, one file per concept per backend.

``<concept>_numba.py`` (Numba njit, ``cache=True``), ``<concept>_cython.pyx`` (compiled by setup.py, with a
``.pxd`` for ``cimport``), ``<concept>_cuda.py`` (numba.cuda). Each exposes the same signature as the reference
it mirrors and assumes clean, C-contiguous input: validation of values happens once, in `edudet`'s public
functions (the checked layer); see docs/kernels.md for the stable names and what each kernel checks.
Nothing here is imported by ``import edudet``; the dispatcher imports a module on first use.
"""
from __future__ import annotations

import os
from pathlib import Path


def get_include() -> str:
    """A directory to add to a Cython build's include path so that ``cimport edudet.kernels.<module>`` works.

    Installed from a wheel, that is site-packages itself. In an editable install the package's folders are
    not laid out as ``edudet/kernels/``, so a small tree of links to the ``.pxd`` files is made in a cache
    directory (``$XDG_CACHE_HOME/edudet/include``) and returned.
    """
    here = Path(__file__).resolve().parent
    if here.parent.name == "edudet" and (here.parent / "__init__.py").exists():  # a wheel: .../edudet/kernels
        return str(here.parent.parent)
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "edudet" / "include"
    target = cache / "edudet" / "kernels"
    target.mkdir(parents=True, exist_ok=True)
    for init in (cache / "edudet" / "__init__.pxd", target / "__init__.pxd"):
        if not init.exists():
            init.write_text("")
    for pxd in here.glob("*.pxd"):
        link = target / pxd.name
        if link.is_symlink() or link.exists():
            if link.resolve() == pxd:
                continue
            link.unlink()
        link.symlink_to(pxd)
    return str(cache)
