"""The one error type of sqrtdk.

A message quotes the bad value and says what is allowed, for example
``--dim: 0 is not allowed; d_k must be an integer from 1 to 65536``. The command line prints it as one
line on stderr and exits with code 2.
"""


class InputError(ValueError):
    """Input that sqrtdk refuses before doing any work."""


INTERRUPTED = "sqrtdk: interrupted; nothing was written for the unfinished run"  # Ctrl-C, SIGTERM, SIGHUP
