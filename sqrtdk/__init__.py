"""sqrtdk: measure why attention divides its scores by sqrt(d_k).

`sqrtdk.run("variance", dim=[16, 64])` runs an experiment and `sqrtdk.run_config("configs/x.toml")` a
config; both return a `Result` (see `sqrtdk.api`). `sqrtdk.core` holds the numerical core (closed forms,
sampling, moments, the softmax statistics, a multi-head forward pass) and `sqrtdk.experiments` one module
per experiment.
"""

from typing import Any

__all__ = ["InputError", "Result", "__version__", "run", "run_config"]
_SUBPACKAGES = ("core", "experiments")  # public, and reached as attributes like the names above


def __getattr__(name: str) -> Any:
    # numpy and friends load only when the API is used, so `sqrtdk --help` stays instant
    if name in ("run", "run_config"):
        from sqrtdk import api

        return getattr(api, name)
    if name == "Result":
        from sqrtdk.result import Result

        return Result
    if name == "InputError":
        from sqrtdk.errors import InputError

        return InputError
    if name == "__version__":  # one place: the installed package's metadata (pyproject.toml)
        from importlib.metadata import version

        return version("sqrtdk")
    if name in _SUBPACKAGES:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'sqrtdk' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The public names, which load lazily, and the module's own dunders: not what it imports for itself."""
    return sorted({*__all__, *_SUBPACKAGES, *(n for n in globals() if n.startswith("__") and n.endswith("__"))})
