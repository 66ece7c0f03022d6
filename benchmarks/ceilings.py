"""The machine's ceilings for the three things sqrtdk spends its time on, on every core at once.

Prints one JSON object: float32 Gaussian draws per second (numpy's Generator, as sqrtdk draws them),
float32 matrix-product FLOP/s (BLAS on all cores), and float32 np.exp evaluations per second. Draws and
exp run on one thread per core (numpy releases the GIL in both), on arrays that stay in cache.

Run: python benchmarks/ceilings.py [--quick]   (--quick: a tenth of the time a measurement, for a smoke test)
"""

import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

CORES = len(os.sched_getaffinity(0))
SECONDS = 0.05 if "--quick" in sys.argv[1:] else 0.5  # per measurement


def per_second(work, units: float) -> float:
    """Units per second of `work(core)` repeated on every core for about SECONDS, best of 3."""

    def loop(core):
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < SECONDS:
            work(core)
            count += 1
        return count / (time.perf_counter() - start)

    best = 0.0
    with ThreadPoolExecutor(CORES) as pool:
        for _ in range(3):
            best = max(best, sum(pool.map(loop, range(CORES))) * units)
    return best


def main() -> None:
    rngs = [np.random.default_rng(i) for i in range(CORES)]
    buffers = [np.empty(1 << 16, np.float32) for _ in range(CORES)]
    x = np.random.default_rng(0).standard_normal(1 << 16, dtype=np.float32) - 4  # softmax-like, <= 0 mostly
    outs = [np.empty_like(x) for _ in range(CORES)]
    a = np.random.default_rng(1).standard_normal((2048, 2048), dtype=np.float32)
    a @ a
    start, reps = time.perf_counter(), 0
    while time.perf_counter() - start < 2 * SECONDS:
        a @ a
        reps += 1
    gemm = 2 * 2048**3 * reps / (time.perf_counter() - start)
    normals = per_second(lambda i: rngs[i].standard_normal(out=buffers[i], dtype=np.float32), 1 << 16)
    exps = per_second(lambda i: np.exp(x, out=outs[i]), 1 << 16)
    print(json.dumps({"cores": CORES, "normals_per_s": normals, "gemm_flops": gemm, "exp_per_s": exps}))


if __name__ == "__main__":
    main()
