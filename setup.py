"""Build hook for the one compiled module, the search engine's query kernel
(content_service/engine/_kernel.c). Everything else is in pyproject.toml.

`pip install -e .` (scripts/bootstrap.sh) builds it in place; content_service/Dockerfile builds
it in a build stage with `python setup.py build_ext --inplace`. Without it the engine runs its
pure-Python path (the same answers, slower)."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "content_service.engine._kernel",
            sources=["content_service/engine/_kernel.c"],
            extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wno-missing-braces"],
            define_macros=[("_GNU_SOURCE", None)],  # memmem
        )
    ]
)
