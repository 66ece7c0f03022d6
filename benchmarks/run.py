"""sqrtdk's benchmark: whole-process wall time and peak memory against the seed method and the machine.

Every figure is a whole process (`os.wait4` gives its peak resident memory), run several times; runs of
two commands that are compared alternate (A B A B ...), the median is reported with the range, and the
ratio is the median of the pairwise ratios, so that a machine that drifts does not bias it.

    python benchmarks/run.py                 # the full benchmark (about ten minutes on two cores)
    python benchmarks/run.py --quick         # every measurement at a small size, once: a smoke test

Measured:
1. the seed method (seed_method.py): a dense 10000 x 100 by 100 x 10000 float64 product, then the mean
   and std of the 10^8 scaled scores, against `sqrtdk variance --dim 100` over 10^8 scores (mean,
   variance with its interval, kurtosis, both scalings, no plot), and sqrtdk with only as many scores as
   it needs to match the seed method's precision;
2. `sqrtdk saturation` and `sqrtdk gradient` at d_k = 64, n = 128 over 10^6 query rows, in scores per second;
3. the machine's ceilings (ceilings.py): Gaussian draws, float32 GEMM and float32 exp per second, and each
   sqrtdk figure as a fraction of the ceiling that bounds it;
4. `sqrtdk --help` start-up; peak memory of `sqrtdk variance` at 10^7 and 10^9 scores; `sqrtdk reproduce`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SQRTDK = [sys.executable, "-c", "from sqrtdk.cli import main; main()"]
D_K, SEED_N = 100, 10000


def measure(cmd: list[str], cwd: Path = ROOT) -> tuple[float, float]:
    """(wall seconds, peak resident MiB) of one whole process; its output is discarded."""
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, cwd=cwd)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode:
            err.seek(0)
            raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {err.read().decode()[-500:]}")
    return wall, usage.ru_maxrss / 1024  # ru_maxrss is in KiB on Linux


def runs(cmds: dict[str, list[str]], repeat: int) -> dict[str, list[tuple[float, float]]]:
    """Each command `repeat` times, in turn (A B A B ...), after one warm-up of each."""
    for cmd in cmds.values():
        measure(cmd)
    out: dict[str, list[tuple[float, float]]] = {name: [] for name in cmds}
    for _ in range(repeat):
        for name, cmd in cmds.items():
            out[name].append(measure(cmd))
    return out


def summary(values: list[float], spec: str = ".3g") -> str:
    if len(values) == 1:
        return format(values[0], spec)
    return f"{statistics.median(values):{spec}} ({min(values):{spec}} to {max(values):{spec}})"


def sqrtdk_json(args: list[str], out: Path) -> dict:
    done = subprocess.run(
        SQRTDK + args + ["--json", "--no-plot", "--out", str(out)], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return json.loads(done.stdout)


def seed_se(n: int, d: int = D_K) -> float:
    """Standard error of the seed method's scaled variance: scores of one n x n block share queries and keys
    (Var(s^2) = 2 d^2 + 6 d; two scores sharing a query or a key: Cov(s^2, s'^2) = 2 d)."""
    return math.sqrt((2 * d * d + 6 * d) / n**2 + 4 * d * (n - 1) / n**2) / d


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="counted runs of each command (default 5)")
    parser.add_argument("--quick", action="store_true", help="small sizes, one run each: a smoke test")
    args = parser.parse_args(argv)
    repeat = 1 if args.quick else args.repeat
    scores = 10**6 if args.quick else 10**8
    seed_n = math.isqrt(scores)
    rows = 10**4 if args.quick else 10**6
    memory_sizes = (10**5, 10**6) if args.quick else (10**7, 10**9)

    tmp = Path(tempfile.mkdtemp(prefix="sqrtdk-bench-"))
    ceilings = json.loads(
        subprocess.run([sys.executable, str(HERE / "ceilings.py")], capture_output=True, text=True, check=True).stdout
    )
    table: list[tuple[str, str, str]] = []

    def row(what: str, value: str, note: str = "") -> None:
        table.append((what, value, note))
        print(f"{what}: {value} {note}", file=sys.stderr)

    # 1. the seed method against sqrtdk variance on the same number of scores, alternating
    variance = ["variance", "--dim", str(D_K), "--no-plot", "--quiet", "--out", str(tmp)]
    pair = runs(
        {
            "seed": [sys.executable, str(HERE / "seed_method.py"), str(seed_n)],
            "sqrtdk": SQRTDK + variance + ["--samples", str(scores)],
        },
        repeat,
    )
    seed_wall = [w for w, _ in pair["seed"]]
    ours_wall = [w for w, _ in pair["sqrtdk"]]
    ratios = [b / a for (a, _), (b, _) in zip(pair["seed"], pair["sqrtdk"])]
    row(
        f"seed method, {seed_n**2:.0e} scores: wall s",
        summary(seed_wall),
        f"peak {summary([m for _, m in pair['seed']], '.0f')} MiB",
    )
    row(
        f"sqrtdk variance, {scores:.0e} scores: wall s",
        summary(ours_wall),
        f"peak {summary([m for _, m in pair['sqrtdk']], '.0f')} MiB",
    )
    row("sqrtdk / seed method, wall", summary(ratios), "target <= 0.3")
    doc = sqrtdk_json(["variance", "--dim", str(D_K), "--samples", str(scores)], tmp)
    scaled = next(r for r in doc["rows"] if r["scaling"] == "sqrt")
    row(
        "standard error of the scaled variance",
        f"{scaled['variance_se']:.2g} (sqrtdk)",
        f"{seed_se(seed_n):.2g} (seed method, from its block structure)",
    )
    needed = max(10**4, int(scores * (scaled["variance_se"] / seed_se(seed_n)) ** 2))
    equal = runs({"sqrtdk": SQRTDK + variance + ["--samples", str(needed)]}, repeat)["sqrtdk"]
    row(
        f"sqrtdk variance to the seed method's precision ({needed:.2g} scores): wall s",
        summary([w for w, _ in equal]),
        f"ratio {statistics.median(w for w, _ in equal) / statistics.median(seed_wall):.2f}",
    )

    # 2. saturation and gradient, scores per second
    per_second = {}
    for kind in ("saturation", "gradient"):
        cmd = SQRTDK + [
            kind,
            "--dim",
            "64",
            "--seq-len",
            "128",
            "--samples",
            str(rows),
            "--no-plot",
            "--quiet",
            "--out",
            str(tmp),
        ]
        walls = [w for w, _ in runs({kind: cmd}, repeat)[kind]]
        per_second[kind] = rows * 128 / statistics.median(walls)
        row(
            f"sqrtdk {kind}, {rows:.0e} rows x 128 keys: wall s",
            summary(walls),
            f"{per_second[kind] / 1e6:.0f} M scores/s, {per_second[kind] / ceilings['exp_per_s']:.1%} of the exp ceiling",
        )

    # 3. the ceilings
    variance_rate = scores / statistics.median(ours_wall)
    row(
        "ceiling: float32 normal draws per s, all cores",
        f"{ceilings['normals_per_s'] / 1e6:.0f} M",
        f"sqrtdk variance draws about 1 per score (blocks of n = 2 d_k): {variance_rate / ceilings['normals_per_s']:.0%}",
    )
    row(
        "ceiling: float32 GEMM FLOP/s, all cores",
        f"{ceilings['gemm_flops'] / 1e9:.0f} G",
        f"sqrtdk variance does 2 d_k = {2 * D_K} per score: {2 * D_K * variance_rate / ceilings['gemm_flops']:.0%}",
    )
    row(
        "ceiling: float32 exp per s, all cores",
        f"{ceilings['exp_per_s'] / 1e6:.0f} M",
        "the saturation and gradient fractions are above",
    )

    # 4. the training lab: steps per second at the default size and at the committed sweep's larger head
    # dimension, against the GEMM ceiling (one task: one core)
    steps = 20 if args.quick else 200
    from sqrtdk.experiments.train import step_flops

    for label, extra, flops in (
        ("recall, d_model 64, batch 64", [], step_flops(64, 24, 64, 129, 2)),
        (
            "copy, d_model 256, batch 32",
            ["--task", "copy", "--d-model", "256", "--batch", "32"],
            step_flops(32, 17, 256, 129, 2),
        ),
    ):
        train = SQRTDK + ["train", "--scaling", "sqrt", "--lr", "0.01", "--replicates", "1", "--steps", str(steps)]
        train += extra + ["--no-plot", "--quiet", "--out", str(tmp / "train")]
        timed = runs({"train": train, "help": SQRTDK + ["--help"]}, repeat)
        spent = statistics.median(w for w, _ in timed["train"]) - statistics.median(w for w, _ in timed["help"])
        share = flops * steps / spent / (ceilings["gemm_flops"] / ceilings["cores"])
        row(
            f"sqrtdk train ({label}): steps per s, one task",
            f"{steps / spent:.0f}",
            f"{flops / 1e6:.0f} MFLOP a step: {share:.1%} of one core's GEMM ceiling",
        )

    # 5. what drawing the figures adds to the commands people start with
    for command in (["variance", "--dim", "64"], ["saturation"], ["gradient"]):
        base = SQRTDK + command + ["--quiet", "--out", str(tmp / "draw")]
        timed = runs({"figures": base, "tables": base + ["--no-plot"]}, repeat)
        drawn = statistics.median(w for w, _ in timed["figures"])
        bare = statistics.median(w for w, _ in timed["tables"])
        share = (drawn - bare) / drawn
        row(
            f"sqrtdk {' '.join(command)}: wall s with / without figures",
            f"{drawn:.2f} / {bare:.2f}",
            f"figures {share:.0%} of the run (target <= 33%: {'met' if share <= 1 / 3 else '**not met**'})",
        )

    # 6. start-up, memory, reproduce
    walls = [w for w, _ in runs({"help": SQRTDK + ["--help"]}, repeat)["help"]]
    row("sqrtdk --help: wall s", summary(walls), "target <= 0.3")
    peaks = {}
    for size in memory_sizes:
        peaks[size] = statistics.median(
            m for _, m in runs({"v": SQRTDK + variance + ["--samples", str(size)]}, 1 if size > 10**8 else repeat)["v"]
        )
    small, large = memory_sizes
    row(
        f"sqrtdk variance peak MiB at {small:.0e} / {large:.0e} scores",
        f"{peaks[small]:.0f} / {peaks[large]:.0f}",
        f"ratio {peaks[large] / peaks[small]:.2f} (target <= 1.10)",
    )
    if not args.quick:
        out = tmp / "reproduce"
        walls = [w for w, _ in runs({"r": SQRTDK + ["reproduce", "--out", str(out), "--quiet"]}, 3)["r"]]
        row("sqrtdk reproduce (15 configs, figures): wall s", summary(walls), "target <= 60")

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    print(
        f"Machine: {cpu}, {ceilings['cores']} cores, Python {platform.python_version()}, "
        f"numpy {__import__('numpy').__version__}. Medians of {repeat} runs (range in brackets).\n"
    )
    print("| measurement | value | note |\n|---|---|---|")
    for what, value, note in table:
        print(f"| {what} | {value} | {note} |")


if __name__ == "__main__":
    main()
