"""The `sqrtdk` console script: the command line, and a Ctrl-C while it loads (a second or more on a busy
machine) ended as one mid-run is, with one line and exit code 130 instead of an import traceback."""

import sys


def main() -> None:
    from sqrtdk.errors import INTERRUPTED

    try:
        from sqrtdk.cli import main as run
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        sys.exit(130)
    run()
