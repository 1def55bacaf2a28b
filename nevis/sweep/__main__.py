"""`python -m nevis.sweep`: runs a sweep of `nevis.run` trials on Ray Tune.

    python -m nevis.sweep --learner=independent --sweep=lr
    python -m nevis.sweep --learner=independent --sweep=lr --address=HOST:6379 --gpus_per_trial=1
    python -m nevis.sweep --learner=independent --sweep=my_sweeps.py:wide \\
        --config.learner.max_steps=300 --early_stopping=asha

Running the same command again skips finished trials and resumes interrupted ones; failed
trials stay failed unless --retry_failed. Any --config.learner.KEY=VALUE or
--config.stream.KEY=VALUE applies to every trial, over the sweep's fixed `overrides` (a key the
sweep varies cannot be given).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from nevis.sweep.spec import SweepError


def parse(argv: Sequence[str]):
    from nevis.sweep.driver import EARLY_STOPPING, SweepOptions

    parser = argparse.ArgumentParser(
        prog="python -m nevis.sweep", allow_abbrev=False,
        description="Run a sweep of nevis.run trials on Ray Tune (see nevis/sweep/spec.py for "
                    "how to declare one with get_sweep()).")
    add = parser.add_argument
    add("--learner", default=None, help="learner config (experiments/ name or .py path)")
    add("--sweep", default="", help="NAME: the learner file's get_sweep(NAME) (default: its "
        "default sweep); FILE.py or FILE.py:NAME: another file's")
    add("--stream", default="embedded", help="stream config name or path (default: embedded)")
    add("--sweep_dir", default=None, help="default: $NEVIS_OUTPUT_DIR (./runs)/"
        "<learner>-<stream>-sweep[-<name>]")
    add("--data_dir", default=None, help="dataset directory for every trial")
    add("--checkpoint_every", type=int, default=None, help="as nevis.run, for every trial")
    add("--address", default=None, help="Ray cluster address (default: $RAY_ADDRESS, else a "
        "local Ray in this process); the sweep and data directories must be shared")
    add("--num_cpus", type=int, default=None, help="CPUs of the local Ray (default: all)")
    add("--cpus_per_trial", type=float, default=1.0, help="CPUs reserved per trial; a whole "
        "number pins the trial's process to that many CPUs (default: 1)")
    add("--gpus_per_trial", type=float, default=0.0, help="GPUs per trial (default: 0)")
    add("--max_concurrent", type=int, default=0, help="at most this many trials at once "
        "(default: as the resources allow)")
    add("--max_failures", type=int, default=1, help="restarts of a trial whose process was "
        "killed (it resumes from its checkpoint); default: 1")
    add("--early_stopping", default="none", choices=EARLY_STOPPING,
        help="asha: stop trials whose scores after the same number of tasks are poor")
    add("--retry_failed", action="store_true", help="re-run trials that failed before")
    add("--notensorboard", dest="tensorboard", action="store_false",
        help="do not write TensorBoard scalars (default: <sweep_dir>/tensorboard/<trial>)")
    add("--nopin_cpus", dest="pin_cpus", action="store_false",
        help="do not pin trial processes to CPUs")
    add("--verbose", type=int, default=1, help="Ray Tune's output: 0 silent, 1 status, 2 all")
    args, rest = parser.parse_known_args(argv)
    bad = [a for a in rest if not a.startswith("--config.")]
    if bad:
        parser.error(f"unrecognized arguments: {' '.join(bad)}")
    if not args.learner:
        from nevis import configs

        parser.error(f"give --learner=NAME, the learner the sweep varies; valid choices: "
                     f"{', '.join(configs.learner_names())}, or a path to a config file.")
    options = SweepOptions(
        learner=args.learner, sweep=args.sweep, stream=args.stream, sweep_dir=args.sweep_dir,
        data_dir=args.data_dir, config_flags=tuple(rest),
        checkpoint_every=args.checkpoint_every, address=args.address, num_cpus=args.num_cpus,
        cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial,
        max_concurrent=args.max_concurrent, max_failures=args.max_failures,
        early_stopping=args.early_stopping, retry_failed=args.retry_failed,
        tensorboard=args.tensorboard, pin_cpus=args.pin_cpus, verbose=args.verbose,
    )
    return options


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    options = parse(sys.argv[1:] if argv is None else argv)
    from nevis.sweep import driver

    try:
        driver.prepare(options)  # fails in a second, before Ray starts
        try:
            import ray  # noqa: F401
        except ImportError:
            raise SweepError("sweeps need Ray Tune: pip install -e '.[sweep]'.") from None
        outcome = driver.run_sweep(options)
    except SweepError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(driver.format_table(outcome))
    return 0 if any(r["status"] == "finished" for r in outcome.rows) else 1


if __name__ == "__main__":
    sys.exit(main())
