"""The one compiled module of the intake (D115): ``vnehr.submissions._fast``, built by every
install (``pip install -e .``; Cython and lxml's headers come from ``[build-system]``)."""

import hashlib
from pathlib import Path

import lxml
from Cython.Build import cythonize
from setuptools import Extension, setup

SOURCE = "src/vnehr/submissions/_fast.pyx"
#: built into the module, so that a module left from another source is not used (D123)
DIGEST = hashlib.sha256((Path(__file__).parent / SOURCE).read_bytes()).hexdigest()

setup(
    ext_modules=cythonize(
        [
            Extension(
                "vnehr.submissions._fast",
                [SOURCE],
                define_macros=[("VNEHR_FAST_SOURCE", f'"{DIGEST}"')],
                include_dirs=lxml.get_include(),
                # without a C compiler the install goes on and the intake runs in Python
                optional=True,
            )
        ],
        compiler_directives={"language_level": 3},
    )
)
