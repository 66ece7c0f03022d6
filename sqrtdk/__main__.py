"""`python -m sqrtdk`: the same command line as `sqrtdk`."""

from sqrtdk.cli import main

main()
