from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "hmacbatch._native",
            sources=["hmacbatch/_native.c"],
            libraries=["crypto"],
            extra_compile_args=["-O2", "-Wall", "-Wextra"],
        )
    ],
)
