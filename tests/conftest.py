"""What the tests share: the command line run in-process (`cli`)."""

from __future__ import annotations

import signal

import pytest

from sqrtdk.cli import main


@pytest.fixture
def cli(capsys):
    """cli(*argv) -> (exit code, stdout, stderr) of `sqrtdk *argv`, run in this process; the signal
    handlers that `main` installs are put back afterwards, so they never reach other tests."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}

    def run(*argv: str) -> tuple[int, str, str]:
        with pytest.raises(SystemExit) as exit_info:
            main([str(a) for a in argv])
        captured = capsys.readouterr()
        return exit_info.value.code, captured.out, captured.err

    yield run
    for signum, handler in saved.items():
        signal.signal(signum, handler)
