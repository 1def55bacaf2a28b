"""Runs a learner on a stream: `python -m nevis.run --learner=NAME --stream=NAME`.

Configs are `get_config()` files (experiments/ for learners, stream_configs/ for streams);
any value can be overridden as --config.learner.x=y or --config.stream.x=y. Running again
with the same --workdir resumes an interrupted run.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
from pathlib import Path

from absl import app, flags
from absl import logging as absl_logging
from ml_collections import ConfigDict, config_flags

from nevis import configs

DEFAULT_LEARNER = "deq"
DEFAULT_STREAM = "embedded"

FLAGS = flags.FLAGS
flags.DEFINE_string("learner", DEFAULT_LEARNER, "Learner config name (experiments/) or path.")
flags.DEFINE_string("stream", DEFAULT_STREAM, "Stream config name (stream_configs/) or path.")
flags.DEFINE_string(
    "workdir",
    None,
    "Run directory (results, checkpoints). Default: $NEVIS_OUTPUT_DIR/<learner>-<stream>, "
    "with NEVIS_OUTPUT_DIR defaulting to ./runs.",
)
flags.DEFINE_string(
    "data_dir", None, "Dataset directory. Default: $NEVIS_DATA_DIR or ~/.nevis/data."
)
flags.DEFINE_integer("checkpoint_every", 100, "Training steps between mid-task checkpoints.")
flags.DEFINE_integer("num_devices", None, "Devices to train on (default: all).")
flags.DEFINE_bool("overwrite", False, "Delete an existing run in --workdir and start afresh.")
flags.DEFINE_bool("progress", True, "Show progress bars.")
flags.DEFINE_string(
    "tensorboard_dir", None,
    "Write TensorBoard scalars (training loss and dev error per logged step, every event's "
    "metrics) into this directory (needs tensorboardX: pip install -e '.[sweep]'). Off by default.",
)
flags.DEFINE_string("coordinator_address", None, "jax.distributed coordinator host:port.")
flags.DEFINE_integer("num_processes", None, "jax.distributed: number of processes.")
flags.DEFINE_integer("process_id", None, "jax.distributed: this process's id.")

log = logging.getLogger("nevis")


def _peek(argv: list[str], name: str, default: str) -> str:
    """Reads --name=value before absl parses, so the config can depend on it."""
    for i, arg in enumerate(argv):
        if arg.startswith(f"--{name}="):
            return arg.split("=", 1)[1]
        if arg == f"--{name}" and i + 1 < len(argv):
            return argv[i + 1]
    return default


def base_config(learner: str, stream: str) -> ConfigDict:
    """The run's config: the learner and stream configs, and the experiment's name (the
    learner config's file name, e.g. `finetune` or `deq_fixed_start`) that labels the run."""
    return ConfigDict(
        {
            "experiment": Path(learner).stem,
            "learner": configs.learner_config(learner),
            "stream": configs.stream_config(stream),
        }
    )


def _check_override_keys(argv: list[str], config: ConfigDict) -> None:
    """Names the unknown key and the valid ones (absl would print a traceback)."""
    seen = set()
    for arg in argv[1:]:
        if not arg.startswith("--config."):
            continue
        path = arg.removeprefix("--config.").split("=", 1)[0].split(".")
        if tuple(path) in seen:  # absl would silently concatenate repeated tuple values
            _fail(f"--config.{'.'.join(path)} is given more than once; give it once.")
        seen.add(tuple(path))
        node, walked = config, []
        for part in path:
            if not isinstance(node, ConfigDict) or part not in node:
                where = ".".join(walked) or "config"
                valid = ", ".join(sorted(node)) if isinstance(node, ConfigDict) else "(a value)"
                _fail(f"unknown config key {'.'.join(path)!r}: {where} has {valid}.")
            node = node[part]
            walked.append(part)


def _enable_compilation_cache() -> None:
    """Persists compiled steps across runs (on CPU a train step takes seconds to compile)."""
    import jax

    cache = os.environ.get("NEVIS_CACHE_DIR", "~/.nevis/cache")
    jax.config.update("jax_compilation_cache_dir", str(Path(cache).expanduser() / "jax"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def _comparable(config: dict) -> str:
    return json.dumps(config, sort_keys=True, default=str)


def _main(argv: list[str]) -> None:
    if len(argv) > 1:
        _fail(f"unexpected arguments: {' '.join(argv[1:])}")
    absl_logging.set_verbosity(absl_logging.WARNING)  # orbax logs every save at INFO
    log.setLevel(logging.INFO)
    _enable_compilation_cache()
    # Heavy imports after flag parsing: errors above are instant.
    from nevis import environment, parallel, results
    from nevis.data.storage_format import DatasetError, default_data_dir
    from nevis.datasets import MissingDataError
    from nevis.learners import make_learner
    from nevis.streams import make_stream

    config = FLAGS.config
    sc = config.stream
    data_dir = Path(FLAGS.data_dir).expanduser() if FLAGS.data_dir else default_data_dir()
    try:
        stream = make_stream(
            sc.name,
            stop_year=sc.stop_year or None,
            prediction_splits=tuple(sc.prediction_splits),
            final_evaluation=sc.final_evaluation,
            tasks=[t for t in str(sc.tasks).split(",") if t],
            data_dir=data_dir,  # class counts computed at extraction come from the manifests
        )
        learner = make_learner(config.learner)
    except ValueError as e:
        _fail(str(e))
    parallel.initialize_distributed(
        FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id
    )
    try:
        mesh = parallel.make_mesh(FLAGS.num_devices)
    except ValueError as e:
        _fail(str(e))
    batch_size = config.learner.get("batch_size", mesh.size)
    if batch_size % mesh.size:
        _fail(
            f"learner.batch_size={batch_size} is not divisible by the {mesh.size} devices in "
            f"use; set --config.learner.batch_size to a multiple of {mesh.size} or pick "
            "--num_devices."
        )

    output_dir = Path(os.environ.get("NEVIS_OUTPUT_DIR", "runs"))
    workdir = Path(FLAGS.workdir or output_dir / f"{config.experiment}-{stream.name}")
    workdir = workdir.expanduser().absolute()
    if FLAGS.overwrite and workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    resolved = config.to_dict()
    config_file = workdir / "config.json"
    if config_file.exists():
        previous = json.loads(config_file.read_text())
        if _comparable(previous) != _comparable(json.loads(_comparable(resolved))):
            _fail(
                f"{workdir} holds a run with a different config; resume it with the same "
                "flags, choose another --workdir, or pass --overwrite to start afresh."
            )
    else:
        config_file.write_text(json.dumps(resolved, indent=2, sort_keys=True, default=str))

    log.info("Run directory: %s", workdir)
    log.info(
        "Stream %s: %d tasks, %d events; scored on %s; devices: %d (%s)",
        stream.name,
        len(stream.tasks),
        len(stream.events()),
        ", ".join(stream.prediction_splits),
        mesh.size,
        mesh.devices.flat[0].platform,
    )
    import jax

    writer = None
    if FLAGS.tensorboard_dir and jax.process_index() == 0:
        from nevis.tensorboard import TensorBoardWriter

        try:
            writer = TensorBoardWriter(Path(FLAGS.tensorboard_dir).expanduser())
        except ImportError:
            _fail("--tensorboard_dir needs tensorboardX; pip install -e '.[sweep]' "
                  "(or tensorboardX), or leave out --tensorboard_dir.")
    options = environment.RunOptions(
        workdir=workdir,
        data_dir=data_dir,
        checkpoint_every=FLAGS.checkpoint_every,
        show_progress=FLAGS.progress,
        metrics_writer=writer,
    )
    try:
        summary = environment.run(stream, learner, options, mesh)
    except (MissingDataError, DatasetError) as e:
        _fail(f"{e}\nResults of completed events are kept in {workdir}.")
    finally:
        if writer is not None:
            writer.close()
    del summary

    if jax.process_index() == 0:
        print(results.format_run(workdir))


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )
    argv = sys.argv
    try:
        config = base_config(
            _peek(argv, "learner", DEFAULT_LEARNER), _peek(argv, "stream", DEFAULT_STREAM)
        )
    except configs.ConfigError as e:
        _fail(str(e))
    _check_override_keys(argv, config)
    try:
        config_flags.DEFINE_config_dict("config", config, lock_config=True)
        app.define_help_flags()  # --help / --helpfull, which app.run would define too late
        remaining = FLAGS(argv)  # parse now: a bad flag or override is one line, no traceback
    except (flags.Error, TypeError, ValueError) as e:
        _fail(f"{e}; see --helpfull for flags.")
    # Parsing twice would append tuple-valued overrides to themselves (ml_collections).
    app.run(_main, argv=argv, flags_parser=lambda _: remaining)


if __name__ == "__main__":
    main()
