"""The benchmark runs end to end at small sizes (no timing is asserted: speed lives in the benchmark)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_quick_benchmark_prints_its_table():
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick"], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("Machine: ") and "| measurement | value | note |" in lines
    for what in (
        "seed method",
        "sqrtdk variance",
        "sqrtdk saturation",
        "sqrtdk gradient",
        "normal draws",
        "GEMM",
        "exp",
        "--help",
        "peak MiB",
        "the seed method's standard error",
        "relative standard error",
        "of the draw ceiling",
        "with / without figures",
        "OpenBLAS kernel",
        "resource guard",
    ):
        assert any(what in line for line in lines), what


def test_seed_method_baseline():
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "seed_method.py"), "300"], capture_output=True, text=True, check=True
    )
    assert done.stdout.startswith("90000 scores: mean ")
