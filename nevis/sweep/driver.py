"""Runs a sweep on Ray Tune and writes its table (`run_sweep`; the CLI is `nevis.sweep`).

The sweep directory:

    sweep.json     the sweep's definition (a re-launch must match it), its best trial, counts
    trials.csv     the table: one row per trial (also trials.json)
    trials/NAME/   each trial's run directory (a `nevis.run` workdir) + run.log, sweep_trial.json
    tensorboard/NAME/  each trial's TensorBoard scalars (`tensorboard --logdir <sweep>/tensorboard`)
    ray/           Ray Tune's experiment state (what `Tuner.restore` resumes)
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from absl import flags as absl_flags
from ml_collections import ConfigDict, config_flags

from nevis import configs, results
from nevis.sweep import spec as spec_lib
from nevis.sweep import trial as trial_lib
from nevis.sweep.spec import SweepError, SweepSpec

SCHEMA_VERSION = 1
EARLY_STOPPING = ("none", "asha")
# Table columns that depend on how the sweep ran rather than on what it computed: wall time,
# and how many processes a trial took (a killed and restarted trial took more).
TIMING_COLUMNS = ("seconds", "wall_seconds")
RUN_HISTORY_COLUMNS = ("attempts",)
FORWARDED_ENV = ("NEVIS_", "JAX_", "XLA_", "TF_CPP_MIN_LOG_LEVEL")  # into every trial


@dataclasses.dataclass(frozen=True)
class SweepOptions:
    """Everything `python -m nevis.sweep` takes (see its --help)."""

    learner: str
    sweep: str = ""
    stream: str = "embedded"
    sweep_dir: str | Path | None = None
    data_dir: str | Path | None = None
    config_flags: tuple[str, ...] = ()  # --config.KEY=VALUE for every trial
    checkpoint_every: int | None = None
    address: str | None = None  # a Ray cluster; None: $RAY_ADDRESS or a local Ray
    num_cpus: int | None = None  # a local Ray's CPUs (default: all)
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_concurrent: int = 0  # 0: as many as the resources allow
    max_failures: int = 1
    early_stopping: str = "none"
    retry_failed: bool = False
    tensorboard: bool = True
    pin_cpus: bool = True
    verbose: int = 1
    poll_seconds: float = 1.0


@dataclasses.dataclass
class SweepOutcome:
    path: Path
    spec: SweepSpec
    rows: list[dict[str, Any]]
    best_trial: str | None


def base_config(learner: str, stream: str) -> ConfigDict:
    try:
        return ConfigDict({"learner": configs.learner_config(learner),
                           "stream": configs.stream_config(stream)})
    except configs.ConfigError as e:
        raise SweepError(str(e)) from None


def _flag_key(arg: str) -> str:
    return arg.removeprefix("--config.").split("=", 1)[0]


def check_config_flags(base: ConfigDict, config_flag_args: Sequence[str]) -> ConfigDict:
    """Parses the sweep-wide `--config.*` flags as nevis.run will (names and types); returns
    the config they make."""
    for arg in config_flag_args:
        if not arg.startswith("--config.") or "=" not in arg:
            raise SweepError(f"unexpected argument {arg!r}; config overrides are "
                             "--config.learner.KEY=VALUE or --config.stream.KEY=VALUE.")
    keys = [_flag_key(a) for a in config_flag_args]
    spec_lib.check_keys(base, keys, "--config")
    argv = ["nevis.sweep", *config_flag_args]
    try:
        values = absl_flags.FlagValues()
        config_flags.DEFINE_config_dict("config", ConfigDict(base.to_dict()),
                                        flag_values=values, lock_config=True, sys_argv=argv)
        values(argv)
    except (absl_flags.Error, TypeError, ValueError) as e:
        raise SweepError(f"{e}") from None
    return values.config


def default_sweep_dir(learner: str, stream: str, sweep: str) -> Path:
    output_dir = Path(os.environ.get("NEVIS_OUTPUT_DIR", "runs"))
    name = Path(spec_lib.sweep_file(learner, sweep)[1] or "").name
    label = f"{Path(learner).stem}-{stream}-sweep" + (f"-{name}" if name else "")
    return output_dir / label


def _identity(options: SweepOptions, spec: SweepSpec) -> dict[str, Any]:
    learner = options.learner
    if learner.endswith(".py"):
        learner = str(Path(learner).resolve())
    return {"learner": learner, "stream": options.stream,
            "config_flags": sorted(options.config_flags), "spec": spec.identity()}


def _trial_name(trial) -> str:
    """Ray's trial number (its order of creation) and the trial's overrides."""
    number = int(str(trial.experiment_tag).split("_", 1)[0] or 0)
    return spec_lib.trial_name(number, trial.config.get("overrides", {}))


def _init_ray(options: SweepOptions) -> None:
    import ray

    if ray.is_initialized():
        return
    local = options.address is None and not os.environ.get("RAY_ADDRESS")
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": options.verbose > 1,
                              "configure_logging": options.verbose > 0}
    if local and options.num_cpus:
        kwargs["num_cpus"] = options.num_cpus
    ray.init(address=options.address, **kwargs)


def _check_resources(options: SweepOptions) -> None:
    import ray

    available = ray.cluster_resources()
    for name, need in (("CPU", options.cpus_per_trial), ("GPU", options.gpus_per_trial)):
        if need > available.get(name, 0):
            flag = f"--{name.lower()}s_per_trial"
            raise SweepError(f"{flag}={need} but the Ray cluster has {available.get(name, 0)} "
                             f"{name}(s); lower {flag} or add nodes (--address, --num_cpus).")


def _row(result, spec: SweepSpec, split: str, sweep_dir: Path) -> dict[str, Any]:
    name = Path(result.path).name
    workdir = sweep_dir / "trials" / name
    summary = trial_lib.read_json(workdir / "summary.json")
    state = trial_lib.read_json(workdir / trial_lib.STATE_FILE)
    # The trial's own record first: Ray restores an errored trial's result without its config.
    overrides = state.get("overrides") or (result.config or {}).get("overrides", {})
    scores = summary.get("splits", {}).get(split, {})
    resources = summary.get("resources", {})
    if result.error is not None:
        status = "failed"
        failure = state.get("failure") or {}
        error = failure.get("error") or str(result.error).strip().splitlines()[-1]
    else:
        status = "finished" if summary.get("complete") else "stopped"
        error = None
    row: dict[str, Any] = {"trial": name, "status": status}
    row.update({key: overrides.get(key) for key in spec.varied_keys})
    row["split"] = split
    for column in dict.fromkeys(["stream_error", spec.metric, "unique_task_error",
                                 "final_stream_error"]):
        row[column] = scores.get(column)
    row.update(events_completed=summary.get("events_completed"),
               train_flops=resources.get("train_flops"),
               total_flops=resources.get("total_flops"),
               seconds=summary.get("timing", {}).get("seconds"),
               wall_seconds=state.get("wall_seconds"),
               attempts=state.get("attempts", 0),
               error=error, workdir=f"trials/{name}")
    return row


def best_trial(rows: list[dict[str, Any]], spec: SweepSpec) -> str | None:
    scored = [r for r in rows if r["status"] == "finished" and r.get(spec.metric) is not None
              and math.isfinite(r[spec.metric])]
    if not scored:
        return None
    sign = 1 if spec.mode == "min" else -1
    return min(scored, key=lambda r: (sign * r[spec.metric], r["trial"]))["trial"]


def write_table(sweep_dir: Path, rows: list[dict[str, Any]]) -> None:
    import csv

    results.write_json(sweep_dir / "trials.json", {"schema_version": SCHEMA_VERSION,
                                                   "trials": rows})
    columns = list(dict.fromkeys(k for r in rows for k in r))
    tmp = sweep_dir / "trials.csv.tmp"
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, sweep_dir / "trials.csv")


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def format_table(outcome: SweepOutcome) -> str:
    """The table printed at the end of a sweep."""
    spec = outcome.spec
    columns = ["trial", "status", *spec.varied_keys, spec.metric, "train_flops",
               "wall_seconds", "error"]
    header = [c.removeprefix("learner.").removeprefix("stream.") for c in columns]
    body = [[_fmt(r.get(c)) if c != "error" else (r.get("error") or "")[:80] for c in columns]
            for r in outcome.rows]
    lines = [results.format_table([header, *body]), ""]
    split = outcome.rows[0]["split"] if outcome.rows else spec.split
    if outcome.best_trial:
        best = next(r for r in outcome.rows if r["trial"] == outcome.best_trial)
        lines.append(f"best: {outcome.best_trial} ({spec.metric} on {split}: "
                     f"{_fmt(best[spec.metric])}, {spec.mode}imised)")
    lines.append(f"table: {outcome.path / 'trials.csv'}  "
                 f"TensorBoard: tensorboard --logdir {outcome.path / 'tensorboard'}")
    return "\n".join(lines)


def prepare_embedded_data(config: ConfigDict, spec: SweepSpec,
                          data_dir: Path | None) -> None:
    """Builds the embedded datasets the trials read, once, before any trial starts.

    A run builds missing embedded datasets itself, but trials starting together would build
    the same dataset at once into one data directory.
    """
    from nevis.data import embedded, storage_format
    from nevis.streams import make_stream

    sc = ConfigDict(config.stream.to_dict())
    for key, value in spec.overrides.items():
        if key.startswith("stream."):
            sc[key.removeprefix("stream.")] = value
    varied = any(k.startswith("stream.") for k in spec.varied_keys)
    tasks = [] if varied else [t for t in str(sc.tasks).split(",") if t]
    root = data_dir or storage_format.default_data_dir()
    try:
        stream = make_stream(sc.name, stop_year=sc.stop_year or None, tasks=tasks,
                             prediction_splits=tuple(sc.prediction_splits), data_dir=root)
    except ValueError as e:
        raise SweepError(str(e)) from None
    for task in stream.unique_tasks():
        if task.source == "embedded":
            embedded.prepare_embedded(task, root, progress=False)


def prepare(options: SweepOptions) -> tuple[SweepSpec, Path, ConfigDict]:
    """Checks everything that can be checked without Ray; raises SweepError."""
    if options.early_stopping not in EARLY_STOPPING:
        raise SweepError(f"--early_stopping={options.early_stopping!r}; valid choices: "
                         f"{', '.join(EARLY_STOPPING)}.")
    if options.cpus_per_trial < 0 or options.gpus_per_trial < 0:
        raise SweepError("--cpus_per_trial and --gpus_per_trial must be >= 0.")
    base = check_config_flags(base_config(options.learner, options.stream),
                              options.config_flags)
    spec = spec_lib.load_spec(options.learner, options.sweep, base)
    varied = sorted(set(spec.varied_keys) & {_flag_key(a) for a in options.config_flags})
    if varied:
        raise SweepError(f"--config.{varied[0]} is what sweep {spec.name} varies; drop the flag "
                         "or sweep another key.")
    if options.early_stopping != "none" and spec.metric in ("final_stream_error",
                                                            "average_forgetting"):
        raise SweepError(f"early stopping compares trials during the stream; metric "
                         f"{spec.metric!r} exists only at its end: use stream_error.")
    sweep_dir = Path(options.sweep_dir or default_sweep_dir(options.learner, options.stream,
                                                            options.sweep))
    return spec, sweep_dir.expanduser().absolute(), base


def run_sweep(options: SweepOptions) -> SweepOutcome:
    """Runs (or resumes, or re-reads) the sweep on Ray Tune; returns its table."""
    spec, sweep_dir, config = prepare(options)
    split = spec.split or str(tuple(config.stream.prediction_splits)[0])
    identity = _identity(options, spec)
    definition_file = sweep_dir / "sweep.json"
    if definition_file.exists():
        previous = json.loads(definition_file.read_text()).get("identity")
        if previous != json.loads(json.dumps(identity)):
            raise SweepError(f"{sweep_dir} holds a different sweep (learner, stream, --config "
                             "flags or get_sweep() changed); re-launch it as it was, or choose "
                             "another --sweep_dir.")
    sweep_dir.mkdir(parents=True, exist_ok=True)
    definition = {"schema_version": SCHEMA_VERSION, "identity": identity, "sweep": spec.name,
                  "description": spec.description, "metric": spec.metric, "mode": spec.mode,
                  "split": split, "varied_keys": spec.varied_keys}
    results.write_json(definition_file, definition)
    if options.retry_failed:
        for state_file in (sweep_dir / "trials").glob(f"*/{trial_lib.STATE_FILE}"):
            state = trial_lib.read_json(state_file)
            if state.get("failure"):
                trial_lib.write_json(state_file, {**state, "failure": None})

    data_dir = options.data_dir and Path(options.data_dir).expanduser().absolute()
    prepare_embedded_data(config, spec, data_dir or None)

    from ray import tune

    _init_ray(options)
    _check_resources(options)
    run_flags = ([f"--data_dir={data_dir}"] if data_dir else []) + (
        [f"--checkpoint_every={options.checkpoint_every}"] if options.checkpoint_every else []
    ) + list(options.config_flags)
    given = {_flag_key(a) for a in options.config_flags}  # the command line's win
    settings = trial_lib.TrialSettings(
        sweep_dir=str(sweep_dir), learner=options.learner, stream=options.stream,
        run_flags=tuple(run_flags), split=split, cpus_per_trial=options.cpus_per_trial,
        fixed_overrides={k: v for k, v in spec.overrides.items() if k not in given},
        pin_cpus=options.pin_cpus, tensorboard=options.tensorboard,
        env=tuple((k, v) for k, v in sorted(os.environ.items())
                  if k.startswith(FORWARDED_ENV)),
        poll_seconds=options.poll_seconds,
    )
    trainable = tune.with_resources(
        tune.with_parameters(trial_lib.trainable, settings=settings),
        {"cpu": options.cpus_per_trial, "gpu": options.gpus_per_trial},
    )
    ray_dir = sweep_dir / "ray"
    if tune.Tuner.can_restore(ray_dir):
        tuner = tune.Tuner.restore(str(ray_dir), trainable, resume_unfinished=True,
                                   resume_errored=options.retry_failed)
    else:
        scheduler = None
        if options.early_stopping == "asha":
            from ray.tune.schedulers import ASHAScheduler

            scheduler = ASHAScheduler(time_attr="training_iteration", grace_period=1,
                                      reduction_factor=2)
        tuner = tune.Tuner(
            trainable,
            param_space=spec.param_space(),
            tune_config=tune.TuneConfig(
                metric=spec.metric, mode=spec.mode, search_alg=spec.searcher(),
                scheduler=scheduler, num_samples=spec.num_samples,
                max_concurrent_trials=options.max_concurrent or None,
                trial_name_creator=_trial_name, trial_dirname_creator=_trial_name,
                reuse_actors=True,  # a queued trial starts in the worker just freed (seconds)
            ),
            run_config=tune.RunConfig(
                name="ray", storage_path=str(sweep_dir),
                failure_config=tune.FailureConfig(max_failures=options.max_failures),
                verbose=options.verbose,
            ),
        )
    start = time.time()
    grid = tuner.fit()
    rows = sorted((_row(r, spec, split, sweep_dir) for r in grid), key=lambda r: r["trial"])
    best = best_trial(rows, spec)
    write_table(sweep_dir, rows)
    counts = {s: sum(r["status"] == s for r in rows) for s in ("finished", "failed", "stopped")}
    results.write_json(definition_file, {**definition, "best_trial": best, "counts": counts,
                                         "last_launch_seconds": time.time() - start})
    return SweepOutcome(path=sweep_dir, spec=spec, rows=rows, best_trial=best)
