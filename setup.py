"""Build edudet: the pure-Python package plus one Cython extension per `kernels/*_cython.pyx`.

`kernels/` is installed as the subpackage `edudet.kernels`, so users only ever import `edudet`; `lessons/` as
`edudet.lessons` (the lesson notebooks ship in the wheel: `python -m edudet lessons`).
Every `.pyx` there is compiled with OpenMP (for `prange`) when the compiler supports it. Without a working C
compiler edudet still installs, without the Cython backend (one warning); the other backends cover every op.
"""
import glob
import os
import shutil
import sys

import numpy
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    """Build the Cython kernels where a C compiler works; otherwise install without them, warning once."""

    warned = False

    def run(self):
        try:
            super().run()
        except Exception as err:  # no compiler at all (DistutilsPlatformError and friends)
            self._warn(err)

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as err:  # CCompilerError, DistutilsExecError, a missing cc: skip this kernel
            self._warn(err)

    def _warn(self, err):
        if not OptionalBuildExt.warned:
            OptionalBuildExt.warned = True
            print(f"WARNING: edudet's Cython kernels could not be compiled ({err}); installing without the "
                  "'cython' backend. Every op still runs with backend='numba' or 'numpy'.", file=sys.stderr)

def openmp_flags():
    if sys.platform == "win32":
        return ["/openmp"], []
    if sys.platform == "darwin":  # Apple clang has no -fopenmp by default: build without it
        return [], []
    return ["-fopenmp"], ["-fopenmp"]


def pxd_include_dir() -> str:
    """A folder laid out as ``edudet/kernels/*.pxd`` (copies of kernels/*.pxd, modification times kept).

    The extensions are named ``edudet.kernels.X`` but their sources live in ``kernels/``, so Cython would not
    find ``X.pxd`` as ``edudet.kernels.X``'s declarations (and would not export its cdef functions for users'
    ``cimport``) without this.
    """
    root = os.path.join("build", "pxd_include")
    target = os.path.join(root, "edudet", "kernels")
    os.makedirs(target, exist_ok=True)
    for package in (os.path.join(root, "edudet"), target):
        open(os.path.join(package, "__init__.pxd"), "a").close()
    for pxd in glob.glob(os.path.join("kernels", "*.pxd")):
        shutil.copy2(pxd, os.path.join(target, os.path.basename(pxd)))
    return root


def cython_extensions():
    compile_args, link_args = openmp_flags()
    extensions = []
    for pyx in sorted(glob.glob(os.path.join("kernels", "*.pyx"))):
        name = "edudet.kernels." + os.path.splitext(os.path.basename(pyx))[0]
        extensions.append(
            Extension(
                name,
                [pyx],
                include_dirs=[numpy.get_include()],
                extra_compile_args=["-O3", "-g0"] + compile_args,  # no debug symbols in the wheel
                extra_link_args=link_args + ([] if sys.platform in ("win32", "darwin") else ["-s"]),
                define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
            )
        )
    from Cython.Build import cythonize

    return cythonize(
        extensions,
        include_path=[pxd_include_dir()],
        compiler_directives={
            "language_level": 3,
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
    )


setup(
    packages=["edudet", "edudet.ops", "edudet.models", "edudet.data", "edudet.kernels", "edudet.lessons",
              "edudet.testing"],
    package_dir={"edudet": "edudet", "edudet.kernels": "kernels", "edudet.lessons": "lessons"},
    package_data={"edudet": ["data/*.npz", "data/*.json"], "edudet.kernels": ["*.pyx", "*.pxd"],
                  "edudet.lessons": ["[0-9][0-9]_*.py"]},
    ext_modules=cython_extensions(),
    cmdclass={"build_ext": OptionalBuildExt},
    zip_safe=False,
)
