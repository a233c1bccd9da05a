"""The one compiled module of the intake (D115): ``vnehr.submissions._fast``, built by every
install (``pip install -e .``; Cython and lxml's headers come from ``[build-system]``)."""

import lxml
from Cython.Build import cythonize
from setuptools import Extension, setup

setup(
    ext_modules=cythonize(
        [
            Extension(
                "vnehr.submissions._fast",
                ["src/vnehr/submissions/_fast.pyx"],
                include_dirs=lxml.get_include(),
                # without a C compiler the install goes on and the intake runs in Python
                optional=True,
            )
        ],
        compiler_directives={"language_level": 3},
    )
)
