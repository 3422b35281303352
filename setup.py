"""Build edudet: the pure-Python package plus one Cython extension per `kernels/*_cython.pyx`.

`kernels/` is installed as the subpackage `edudet.kernels`, so users only ever import `edudet`.
Every `.pyx` there is compiled with OpenMP (for `prange`) when the compiler supports it.
"""
import glob
import os
import sys

import numpy
from setuptools import Extension, setup

def openmp_flags():
    if sys.platform == "win32":
        return ["/openmp"], []
    if sys.platform == "darwin":  # Apple clang has no -fopenmp by default: build without it
        return [], []
    return ["-fopenmp"], ["-fopenmp"]


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
                extra_compile_args=["-O3"] + compile_args,
                extra_link_args=link_args,
                define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
            )
        )
    from Cython.Build import cythonize

    return cythonize(
        extensions,
        compiler_directives={
            "language_level": 3,
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
    )


setup(
    packages=["edudet", "edudet.ops", "edudet.models", "edudet.data", "edudet.kernels"],
    package_dir={"edudet": "edudet", "edudet.kernels": "kernels"},
    package_data={"edudet": ["data/*.npz", "data/*.json"], "edudet.kernels": ["*.pyx"]},
    ext_modules=cython_extensions(),
    zip_safe=False,
)
