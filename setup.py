"""Build hook for the optional C delta accelerator; all metadata lives in pyproject.toml."""

from setuptools import Extension, setup

# optional=True: without a working compiler the build warns and odb.delta stays pure Python.
setup(ext_modules=[Extension("odb._delta", ["odb/_delta.c"], optional=True)])
