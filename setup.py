"""The C parts of the packet path (mediaserver/native/), compiled by cffi at install time;
everything else about the package is in pyproject.toml."""

from setuptools import setup

setup(cffi_modules=["mediaserver/native/fanout_build.py:ffibuilder",
                   "mediaserver/native/bwe_build.py:ffibuilder"])
