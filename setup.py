"""Builds the Cython extensions in ext/ into the ctrader package.

Metadata lives in pyproject.toml; this file only declares the compiled hot paths.
"""
import glob
import os

import runpy

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))

# The C structs in ext/records.h are generated from ctrader/core/records.py on every build, so
# the Cython view of a record can never drift from the numpy one.
# (Run in-process: under pip's build isolation only this interpreter sees the build deps.)
runpy.run_path(os.path.join(HERE, "tools", "gen_records_header.py"))["write_header"]()


def _extensions():
    exts = []
    for pyx in sorted(glob.glob(os.path.join("ext", "*.pyx"))):
        name = os.path.splitext(os.path.basename(pyx))[0]
        exts.append(
            Extension(
                f"ctrader._ext.{name}",
                [pyx],
                include_dirs=[numpy.get_include(), "ext"],
                extra_compile_args=["-O3", "-march=x86-64-v2", "-fno-strict-aliasing"],
                define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
            )
        )
    return exts


setup(
    ext_modules=cythonize(
        _extensions(),
        compiler_directives={"language_level": "3", "boundscheck": False, "wraparound": False},
        include_path=["ext"],
    ),
)
