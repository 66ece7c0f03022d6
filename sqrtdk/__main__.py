"""`python -m sqrtdk`: the same command line as `sqrtdk`."""

from sqrtdk.entry import main

main()
