"""What the study scripts share: a --quick mode for CI, an --out folder, and plain-text narration."""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path


def options(doc: str, argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=doc.strip().splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples: seconds instead of minutes")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("results/studies"),
        help="folder for the study's tables and figures (default: results/studies)",
    )
    return parser.parse_args(argv)


def heading(text: str) -> None:
    print(f"\n## {text}\n")


def say(text: str) -> None:
    """A paragraph of narration, wrapped for a terminal."""
    print(textwrap.fill(" ".join(text.split()), width=100) + "\n")


def pm(value: float, se: float, digits: int = 4) -> str:
    """'1.0012 ± 0.0021'."""
    return f"{value:.{digits}g} ± {se:.2g}"
