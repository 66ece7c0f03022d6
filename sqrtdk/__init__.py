"""sqrtdk: measure why attention divides its scores by sqrt(d_k).

`sqrtdk.run("variance", dim=[16, 64])` runs an experiment and returns a `Result` (see `sqrtdk.api`).
"""

__version__ = "0.1.0"

__all__ = ["__version__", "run", "Result", "InputError"]


def __getattr__(name: str):
    # numpy and friends load only when the API is used, so `sqrtdk --help` stays instant
    if name in ("run", "Result"):
        from sqrtdk import api

        return getattr(api, name)
    if name == "InputError":
        from sqrtdk.errors import InputError

        return InputError
    raise AttributeError(f"module 'sqrtdk' has no attribute {name!r}")
