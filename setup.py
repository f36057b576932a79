"""Builds the detectors' compiled loops (``detectors/kernels.py``) into the extension module
``detectors._kernels`` with numba's ahead-of-time compiler; everything else is in pyproject.toml."""

import importlib.util
from pathlib import Path

from setuptools import setup

# Loaded by path: importing the ``detectors`` package would need the module being built.
spec = importlib.util.spec_from_file_location("detectors.kernels", Path(__file__).parent / "detectors" / "kernels.py")
assert spec is not None and spec.loader is not None
kernels = importlib.util.module_from_spec(spec)
spec.loader.exec_module(kernels)

setup(ext_modules=[kernels.cc.distutils_extension()])
