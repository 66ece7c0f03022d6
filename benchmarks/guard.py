"""The resource guard's estimates against measured runs: computing time and peak memory of each case.

The guard (sqrtdk/resources.py) estimates a run's time and the memory its tasks hold before any work.
This measures both for a table of runs, including those it once misjudged: the time of a run in this
process (imports and caches warmed by a first run, then the median of `--repeat` runs, so start-up is
not counted), and its peak memory as tracemalloc sees it (numpy reports its arrays there). The ratio
estimate / measured should lie between 0.5 and 2 on the 2-core machine the cost model was measured on;
a faster or slower machine shifts the time ratios together. The suite (tests/test_resources.py) checks
the memory estimates for the same cases on one thread, where the peak is the same on every run.

    python benchmarks/guard.py              # a Markdown table, medians of 3 runs
    python benchmarks/guard.py --json       # the same numbers as JSON (benchmarks/run.py reads it)
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import tracemalloc
from typing import Any

CASES: list[tuple[str, dict[str, Any]]] = [  # (experiment, parameters)
    ("variance", dict(dim=1024, samples=2**20)),
    ("variance", dict(dim=list(range(1, 3001, 100)), samples=1)),  # rounded up to whole blocks
    ("variance", dict(inputs="projected", d_model=1024, heads=8, samples=1)),  # one fresh layer per replicate
    ("variance", dict(dim=65536, rho=0.5, samples=1)),  # was refused as 256 GiB
    ("variance", dict(dim=4096, rho=0.5, samples=2**14)),
    ("saturation", dict(dim=[16, 1024], seq_len=1024, samples=2**12)),
    ("gradient", dict(dim=256, seq_len=1024, samples=2**12)),
    ("gradient", dict(inputs="projected", d_model=512, heads=8, seq_len=256, samples=2**12)),
    ("toy", dict(seq_len=[10, 10**6])),
    ("precision", dict(dim=[64, 2048], std=[1.0, 32.0], samples=2**11)),
    ("precision", dict(dim=8192, seq_len=1024, samples=256, dtype="bfloat16")),
]


def label(experiment: str, raw: dict[str, Any]) -> str:
    """A case's name in the table: the experiment and its parameters, long lists shortened."""
    parts = []
    for key, value in raw.items():
        if isinstance(value, list) and len(value) > 3:
            value = f"[{value[0]}, {value[1]}, ..., {value[-1]}]"
        parts.append(f"{key}={value}")
    return f"{experiment} {', '.join(parts)}"


def estimate(experiment: str, params: Any, threads: int) -> tuple[float, float]:
    """(seconds, bytes held at once) that the guard estimates for a run on `threads` threads."""
    from sqrtdk import experiments, schema

    costs = [experiments.get(experiment).cost(task, threads) for task in schema.grid(params)]
    return sum(seconds for _, seconds in costs) / threads, max(held for held, _ in costs)


def peak_bytes(experiment: str, params: Any) -> int:
    """The largest memory a run of `params` in this process holds at once, as tracemalloc counts it."""
    from sqrtdk import api

    tracemalloc.start()
    try:
        api.run_params(experiment, params, workers=1, figures=False)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def measure(experiment: str, raw: dict[str, Any], repeat: int) -> dict[str, Any]:
    """Estimate and measurement of one case, on every core (as the guard assumes for workers=1)."""
    from sqrtdk import api, executors

    params = api.parse(experiment, raw, label=lambda k: k, text=False)
    seconds, held = estimate(experiment, params, executors.cores())
    api.run_params(experiment, params, workers=1, figures=False)  # imports and caches out of the timing
    walls = []
    for _ in range(repeat):
        start = time.perf_counter()
        api.run_params(experiment, params, workers=1, figures=False)
        walls.append(time.perf_counter() - start)
    return {
        "case": label(experiment, raw),
        "estimated_s": seconds,
        "measured_s": statistics.median(walls),
        "measured_s_range": [min(walls), max(walls)],
        "estimated_mib": held / 2**20,
        "peak_mib": peak_bytes(experiment, params) / 2**20,
    }


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| case | time: estimated / measured s | ratio | memory: estimated / peak MiB | ratio |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['case']} | {r['estimated_s']:.3g} / {r['measured_s']:.3g} | {r['estimated_s'] / r['measured_s']:.2f} "
            f"| {r['estimated_mib']:.3g} / {r['peak_mib']:.3g} | {r['estimated_mib'] / r['peak_mib']:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each case (default 3)")
    parser.add_argument("--quick", action="store_true", help="the first case, one timed run: a smoke test")
    parser.add_argument("--json", action="store_true", help="JSON instead of a Markdown table")
    args = parser.parse_args(argv)
    cases = CASES[:1] if args.quick else CASES
    results = [measure(experiment, raw, 1 if args.quick else args.repeat) for experiment, raw in cases]
    print(json.dumps(results, indent=1) if args.json else table(results))


if __name__ == "__main__":
    main()
