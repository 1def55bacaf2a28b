"""Sweeps on Ray: N trials on W Ray workers vs the same trials one after another, and Ray's
overhead per trial.

    python benchmarks/sweep_overhead.py [--trials=4] [--workers=2] [--tasks=all|KEY,KEY]
        [--budget=tiny|default] [--data_dir=DIR] [--json=FILE]

Both sides run the same trials (learning rates 1e-3, 3e-3, 1e-2, 3e-2, …) of the independent
learner on the embedded stream, each a `python -m nevis.run` process writing TensorBoard
scalars, from a compilation cache warmed by one untimed run:

- sequential: one process after another at their default threading (XLA uses every CPU);
- Ray: `nevis.sweep.driver.run_sweep` on a local Ray with W CPUs, one CPU per trial (each
  trial's process is pinned to its own CPU, so XLA runs one thread per trial).

Printed: the wall time of each side and their ratio (Ray's start-up reported apart), and per
Ray trial the seconds from its submission (the sweep's start, or the moment a worker became
free for a queued trial) to its first logged training step, minus a plain run's seconds from
launch to its first logged step (at default threading, and pinned to one CPU as the trial
is): the overhead Ray adds, also as a share of the trial's wall time. The first logged step
is the first `train/loss` scalar's wall time in the run's TensorBoard file (step
`learner.log_every`).
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import mean

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nevis.data.embedded import EMBEDDED_TASKS, prepare_embedded  # noqa: E402
from nevis.tensorboard import read_scalars  # noqa: E402

TINY = ("--config.learner.image_size=16", "--config.learner.batch_size=32",
        "--config.learner.min_steps=60", "--config.learner.max_steps=60",
        "--config.learner.eval_every=30", "--config.learner.log_every=10",
        "--config.learner.optimizer.warmup_steps=5")
RATES = (1e-3, 3e-3, 1e-2, 3e-2, 1e-4, 3e-4, 1e-1, 3e-1)


def first_step_time(tensorboard_dir: Path) -> float:
    scalars = read_scalars(tensorboard_dir)
    return min(wall for _, _, wall in scalars["train/loss"])


def plain_run(workdir: Path, flags: list[str], env: dict, cpus: str | None = None) -> dict:
    """One `nevis.run` process; returns its launch, first logged step and end times."""
    tb = workdir.with_name(workdir.name + "-tb")
    run = [f"--workdir={workdir}", f"--tensorboard_dir={tb}", "--noprogress", *flags]
    command = [sys.executable, "-m", "nevis.run", *run]
    if cpus is not None:  # the sweep's own launcher, as a trial pinned to `cpus` runs
        command = [sys.executable, "-m", "nevis.sweep.child", f"--parent={os.getpid()}",
                   f"--cpus={cpus}", "--", *run]
    start = time.time()
    subprocess.run(command, cwd=REPO, env=env, check=True, capture_output=True)
    end = time.time()
    return {"launch": start, "first_step": first_step_time(tb), "end": end}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--tasks", default="all", help="embedded task keys, or all")
    parser.add_argument("--budget", choices=("tiny", "default"), default="tiny",
                        help="tiny: the documented `lr` sweep's budgets")
    parser.add_argument("--data_dir", default=None)
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args()
    if args.trials > len(RATES):
        parser.error(f"--trials at most {len(RATES)}")

    scratch = Path(tempfile.mkdtemp(prefix="nevis_sweep_bench_"))
    tasks = [s.key for s in EMBEDDED_TASKS] if args.tasks == "all" else args.tasks.split(",")
    data_dir = Path(args.data_dir) if args.data_dir else scratch / "data"
    for spec in EMBEDDED_TASKS:
        if spec.key in tasks:
            prepare_embedded(spec, data_dir, progress=False)
    env = {**os.environ, "NEVIS_CACHE_DIR": str(scratch / "cache")}
    os.environ.update(env)  # the Ray side forwards NEVIS_* to its trials
    common = ["--learner=independent", f"--data_dir={data_dir}",
              f"--config.stream.tasks={','.join(tasks)}",
              *(TINY if args.budget == "tiny" else ())]
    rates = RATES[:args.trials]
    trial_flags = [[*common, f"--config.learner.optimizer.learning_rate={lr!r}"]
                   for lr in rates]

    print(f"{args.trials} trials, {len(tasks)} task(s), {args.budget} budget, "
          f"{os.cpu_count()} CPUs; warming the compilation cache ...", flush=True)
    plain_run(scratch / "warm", trial_flags[0], env)
    pinned = plain_run(scratch / "pinned", trial_flags[0], env, cpus="0")
    pinned_startup = pinned["first_step"] - pinned["launch"]

    sequential = []
    t0 = time.time()
    for i, flags in enumerate(trial_flags):
        sequential.append(plain_run(scratch / f"seq{i}", flags, env))
    sequential_wall = time.time() - t0
    plain_startup = mean(r["first_step"] - r["launch"] for r in sequential)
    print(f"sequential: {sequential_wall:.1f} s; launch to first logged step "
          f"{plain_startup:.2f} s (default threading), {pinned_startup:.2f} s (one CPU)",
          flush=True)

    import ray

    from nevis.sweep import driver

    sweep_file = scratch / "bench_sweep.py"
    trials_text = ", ".join(f"{{'learner.optimizer.learning_rate': {lr!r}}}" for lr in rates)
    sweep_file.write_text(f"def get_sweep():\n    return {{'trials': [{trials_text}]}}\n")
    t_init = time.time()
    ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    ray_start = time.time() - t_init
    options = driver.SweepOptions(
        learner="independent", sweep=str(sweep_file), sweep_dir=scratch / "sweep",
        data_dir=data_dir, config_flags=tuple(common[2:]), cpus_per_trial=1, verbose=0)
    submitted = time.time()
    outcome = driver.run_sweep(options)
    ray_wall = time.time() - submitted
    ray.shutdown()
    assert all(r["status"] == "finished" for r in outcome.rows), outcome.rows

    trials = []
    for row in outcome.rows:
        state = json.loads((outcome.path / row["workdir"] / "sweep_trial.json").read_text())
        trials.append({"trial": row["trial"], "launch": state["started"],
                       "end": state["ended"], "cpus": state["cpus"],
                       "first_step": first_step_time(outcome.path / "tensorboard" /
                                                     row["trial"])})
    # A trial is submitted at the sweep's start, or when a worker frees up for it (queued).
    free = [submitted] * args.workers
    for t in sorted(trials, key=lambda t: t["launch"]):
        t["ready"] = heapq.heappop(free)
        heapq.heappush(free, t["end"])
        t["to_first_step"] = t["first_step"] - t["ready"]
        t["ray_to_launch"] = t["launch"] - t["ready"]
        t["overhead"] = t["to_first_step"] - plain_startup
        t["overhead_vs_pinned"] = t["to_first_step"] - pinned_startup
        t["wall"] = t["end"] - t["ready"]
    print(f"ray: {ray_wall:.1f} s for the sweep (+ {ray_start:.1f} s to start Ray); "
          f"sequential / ray = {sequential_wall / ray_wall:.2f} "
          f"({sequential_wall / (ray_wall + ray_start):.2f} counting Ray's start)")
    print("trial                      cpus  ready→launch  ready→step1  overhead  "
          "(vs 1 CPU)  wall   overhead/wall")
    for t in trials:
        print(f"{t['trial']:<26} {str(t['cpus']):<5} {t['ray_to_launch']:>10.2f}s "
              f"{t['to_first_step']:>10.2f}s {t['overhead']:>8.2f}s "
              f"{t['overhead_vs_pinned']:>8.2f}s {t['wall']:>7.1f}s "
              f"{100 * t['overhead'] / t['wall']:>8.1f} %")
    per_trial = mean(t["overhead"] for t in trials)
    share = mean(t["overhead"] / t["wall"] for t in trials)
    print(f"mean Ray overhead per trial: {per_trial:.2f} s ({100 * share:.1f} % of a trial's "
          f"wall time; goal <= 5 %); ready→launch (Ray's scheduling and the trial's process "
          f"start) {mean(t['ray_to_launch'] for t in trials):.2f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "trials": args.trials, "workers": args.workers, "tasks": tasks,
            "budget": args.budget, "sequential_seconds": sequential_wall,
            "ray_seconds": ray_wall, "ray_start_seconds": ray_start,
            "plain_startup_seconds": plain_startup, "pinned_startup_seconds": pinned_startup,
            "per_trial": trials}, indent=2))


if __name__ == "__main__":
    main()
