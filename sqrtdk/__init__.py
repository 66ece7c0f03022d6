"""sqrtdk: measure why attention divides its scores by sqrt(d_k).

`sqrtdk.run("variance", dim=[16, 64])` runs an experiment and `sqrtdk.run_config("configs/x.toml")` a
config; both return a `Result` (see `sqrtdk.api`). `sqrtdk.theory` holds the closed forms,
`sqrtdk.softmax` the stable softmax statistics and `sqrtdk.multihead` a multi-head attention forward pass.
"""

__version__ = "0.1.0"

__all__ = ["__version__", "run", "run_config", "Result", "InputError"]


def __getattr__(name: str):
    # numpy and friends load only when the API is used, so `sqrtdk --help` stays instant
    if name in ("run", "run_config", "Result"):
        from sqrtdk import api

        return getattr(api, name)
    if name == "InputError":
        from sqrtdk.errors import InputError

        return InputError
    raise AttributeError(f"module 'sqrtdk' has no attribute {name!r}")
