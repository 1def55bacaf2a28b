"""Sweeps on Ray Tune (`python -m nevis.sweep`), TensorBoard scalars and the sweep table.

One local Ray session (2 CPUs) is shared by the module. A 4-trial sweep of the tiny two-task
stream runs on it (its fourth trial has a bad override and fails), then again with one
trial's run lost and its new process SIGKILLed mid-run, then again as it is (no work).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import (
    COMPILATION_CACHE,
    REPO,
    TINY_OVERRIDES,
    TINY_TASKS,
    comparable_summary,
    run_cli,
    tiny_run_args,
)

from nevis.analysis import expand_run_dirs, load_sweep
from nevis.sweep import spec as spec_lib
from nevis.sweep import trial as trial_lib
from nevis.sweep.spec import SweepError

ray = pytest.importorskip("ray")
from nevis.sweep import driver  # noqa: E402  (the module is skipped without Ray)

LEARNING_RATES = (1e-3, 3e-3, 1e-2)
SWEEP_FILE = f'''
def get_sweep():
    return {{"trials": [
        *({{"learner.optimizer.learning_rate": lr}} for lr in {LEARNING_RATES!r}),
        {{"learner.optimizer.learning_rate": 3e-3, "learner.augment.flip": "sideways"}},
    ]}}
'''
NAMES = ["000_learning_rate=0.001", "001_learning_rate=0.003", "002_learning_rate=0.01",
         "003_flip=sideways,learning_rate=0.003"]
VOLATILE = (*driver.TIMING_COLUMNS, *driver.RUN_HISTORY_COLUMNS)


@pytest.fixture(scope="module")
def ray_session():
    with pytest.MonkeyPatch.context() as mp:  # inherited by Ray's workers and the trials
        mp.setenv("JAX_PLATFORMS", "cpu")
        mp.setenv("NEVIS_CACHE_DIR", COMPILATION_CACHE)
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
        try:
            yield
        finally:
            ray.shutdown()


@pytest.fixture(scope="module")
def sweep_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sweep_def") / "four_trials.py"
    path.write_text(SWEEP_FILE)
    return path


def options(sweep_dir: Path, sweep_file: Path, data_dir: Path, **kw) -> driver.SweepOptions:
    return driver.SweepOptions(
        learner="independent", sweep=str(sweep_file), sweep_dir=sweep_dir, data_dir=data_dir,
        config_flags=(*TINY_OVERRIDES, f"--config.stream.tasks={','.join(TINY_TASKS)}"),
        checkpoint_every=10, cpus_per_trial=1, verbose=0, poll_seconds=0.2, **kw)


def comparable_rows(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in VOLATILE} for r in rows]


@pytest.fixture(scope="module")
def reference_sweep(ray_session, sweep_file, data_dir, tmp_path_factory):
    sweep_dir = tmp_path_factory.mktemp("reference_sweep")
    return driver.run_sweep(options(sweep_dir, sweep_file, data_dir))


def test_sweep_table_has_each_trial_with_its_overrides(reference_sweep):
    outcome = reference_sweep
    rows = outcome.rows
    assert [r["trial"] for r in rows] == NAMES
    assert [r["learner.optimizer.learning_rate"] for r in rows] == [*LEARNING_RATES, 3e-3]
    assert [r["learner.augment.flip"] for r in rows] == [None, None, None, "sideways"]
    assert [r["status"] for r in rows] == ["finished"] * 3 + ["failed"]
    for row in rows[:3]:  # what each run actually used, from its own config.json
        workdir = outcome.path / row["workdir"]
        config = json.loads((workdir / "config.json").read_text())
        assert config["learner"]["optimizer"]["learning_rate"] == row[
            "learner.optimizer.learning_rate"]
        assert config["learner"]["max_steps"] == 40  # the sweep-wide --config flags
        summary = json.loads((workdir / "summary.json").read_text())
        assert summary["complete"]
        assert row["stream_error"] == summary["splits"]["dev_test"]["stream_error"]
        assert row["train_flops"] == summary["resources"]["train_flops"] > 0
        assert row["attempts"] == 1 and row["error"] is None and row["wall_seconds"] > 0
    assert len({r["stream_error"] for r in rows[:3]}) == 3  # the learning rate mattered
    failed = rows[3]
    assert "augment.flip='sideways'" in failed["error"] and "valid choices" in failed["error"]
    assert failed["stream_error"] is None
    assert failed["attempts"] == 1  # Ray's restart re-raised the error without running again
    best = min(rows[:3], key=lambda r: r["stream_error"])["trial"]
    assert outcome.best_trial == best


def test_sweep_table_files_and_analysis(reference_sweep):
    import pandas as pd

    outcome = reference_sweep
    sweep = load_sweep(outcome.path)
    assert sweep.rows == json.loads(json.dumps(outcome.rows))
    assert sweep.best_trial == outcome.best_trial and sweep.metric == "stream_error"
    csv = pd.read_csv(outcome.path / "trials.csv")
    assert list(csv["trial"]) == NAMES and list(csv["status"]) == list(sweep.table["status"])
    assert [r.label for r in sweep.runs("finished")] == NAMES[:3]
    # A sweep directory stands for its trials' run directories (nevis.analysis.report).
    assert expand_run_dirs([outcome.path]) == sweep.run_dirs()
    assert "best: " + outcome.best_trial in driver.format_table(outcome)


def test_trials_write_tensorboard_scalars(reference_sweep):
    from nevis.tensorboard import read_scalars

    scalars = read_scalars(reference_sweep.path / "tensorboard" / NAMES[1])
    steps = {tag: [s for s, _, _ in values] for tag, values in scalars.items()}
    # Two tasks of 40 steps, logged every 10 and validated every 20, on one step axis.
    assert steps["train/loss"] == list(range(10, 81, 10))
    assert steps["train/dev_error"] == [20, 40, 60, 80]
    assert steps["dev_test/error"] == [1, 3] and steps["dev_test_final/error"] == [4, 5]
    first_prediction = json.loads((reference_sweep.path / "trials" / NAMES[1] / "events.jsonl")
                                  .read_text().splitlines()[1])
    assert scalars["dev_test/error"][0][1] == pytest.approx(first_prediction["metrics"]["error"])


def test_a_trial_computes_what_a_plain_run_computes(reference_sweep, data_dir, tmp_path):
    """Trial 001 sets the learner's default learning rate, so it is the plain tiny run, although
    pinned to one CPU and writing TensorBoard scalars (which read each logged step's loss)."""
    from test_run import comparable_events

    trial = reference_sweep.path / "trials" / NAMES[1]
    run_cli(*tiny_run_args(tmp_path, data_dir))
    assert comparable_summary(tmp_path) == comparable_summary(trial)
    plain_events, trial_events = comparable_events(tmp_path), comparable_events(trial)
    # Training is bit-identical. A prediction's logits may differ in the last bit: XLA:CPU
    # splits an evaluation batch's sums by thread count, and the trial runs on one thread
    # (measured on an AMD EPYC: cross-entropy 1.2895384396 vs 1.2895384392, counts equal).
    assert [_without_floats(r) for r in plain_events] == [_without_floats(r)
                                                          for r in trial_events]
    for a, b in zip(plain_events, trial_events, strict=True):
        for key, value in a.get("metrics", {}).items():
            assert value == pytest.approx(b["metrics"][key], rel=1e-9), (a["event_index"], key)


def _without_floats(record: dict) -> dict:
    """The record with its prediction metrics' float values left out (counts kept)."""
    if record["event"] != "predict":
        return record
    metrics = {k: v for k, v in record.get("metrics", {}).items() if not isinstance(v, float)}
    return {**record, "metrics": metrics}


def kill_when_running(workdir: Path, killed: dict, timeout: float = 300) -> None:
    """SIGKILLs the trial's run process once it has finished its first event, not its last."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        state = trial_lib.read_json(workdir / trial_lib.STATE_FILE)
        done = len(trial_lib.read_events(workdir))
        if state.get("pid") and state.get("returncode") is None and 1 <= done < 6:
            os.kill(state["pid"], signal.SIGKILL)
            killed.update(pid=state["pid"], events_done=done)
            return
        time.sleep(0.05)


def test_killed_trial_resumes_to_the_uninterrupted_table(
        reference_sweep, ray_session, sweep_file, data_dir, tmp_path):
    """The reference sweep with its Ray state and one trial's run lost, launched again: the
    lost trial runs afresh and is SIGKILLed mid-run; Ray restarts it and its run resumes.
    The others are skipped from their summary.json (finished) or their recorded error."""
    sweep_dir = tmp_path / "killed"
    shutil.copytree(reference_sweep.path, sweep_dir)
    shutil.rmtree(sweep_dir / "ray")
    shutil.rmtree(sweep_dir / "trials" / NAMES[0])
    shutil.rmtree(sweep_dir / "tensorboard" / NAMES[0])
    killed: dict = {}
    killer = threading.Thread(target=kill_when_running,
                              args=(sweep_dir / "trials" / NAMES[0], killed), daemon=True)
    killer.start()
    outcome = driver.run_sweep(options(sweep_dir, sweep_file, data_dir))
    killer.join()
    assert killed, "the trial finished before it could be killed"
    rows = {r["trial"]: r for r in outcome.rows}
    assert rows[NAMES[0]]["attempts"] == 2 and rows[NAMES[0]]["status"] == "finished"
    assert [r["attempts"] for r in outcome.rows[1:]] == [1, 1, 1]  # not run again
    assert comparable_rows(outcome.rows) == comparable_rows(reference_sweep.rows)
    assert outcome.best_trial == reference_sweep.best_trial
    assert (comparable_summary(sweep_dir / "trials" / NAMES[0])
            == comparable_summary(reference_sweep.path / "trials" / NAMES[0]))


def test_relaunch_does_no_work(reference_sweep, ray_session, sweep_file, data_dir):
    sweep_dir = reference_sweep.path

    def footprint():  # every trial's log and process record: a new process changes both
        return {n: ((sweep_dir / "trials" / n / "run.log").read_text(),
                    (sweep_dir / "trials" / n / trial_lib.STATE_FILE).read_text())
                for n in NAMES}

    before = footprint()
    outcome = driver.run_sweep(options(sweep_dir, sweep_file, data_dir))
    assert footprint() == before  # no trial ran, not even the failed one
    assert outcome.rows == reference_sweep.rows


def test_relaunch_with_another_sweep_is_refused(reference_sweep, sweep_file, data_dir):
    same = options(reference_sweep.path, sweep_file, data_dir)
    changed = dataclasses.replace(
        same, config_flags=(*same.config_flags, "--config.learner.seed=2"))
    with pytest.raises(SweepError, match="holds a different sweep"):
        driver.run_sweep(changed)


# -- without Ray trials -----------------------------------------------------------------------

def test_bad_sweeps_fail_fast_with_the_fix(tmp_path):
    base = driver.base_config("independent", "embedded")
    cases = {
        "{'trials': [{'learner.nope': 1}]}": "learner has augment, batch_size",
        "{'trials': [{}], 'space': {}}": "exactly one of 'trials'",
        "{'space': {'learner.seed': {'uniform': [0, 1]}}}": "search='grid' cannot sample",
        "{'space': {'learner.seed': 1}, 'search': 'nope'}": "valid choices: grid, random",
        "{'space': {'learner.seed': 1}, 'metric': 'nope'}": "valid choices: stream_error",
        "{'space': {'learner.seed': 1}, 'split': 'test'}": "not scored by this stream",
        "{'trials': [{'learner.seed': 1}], 'serach': 'random'}": "unknown field(s) serach",
    }
    for i, (raw, message) in enumerate(cases.items()):
        file = tmp_path / f"s{i}.py"
        file.write_text(f"def get_sweep():\n    return {raw}\n")
        with pytest.raises(SweepError, match=message.replace("(", r"\(").replace(")", r"\)")):
            spec_lib.load_spec("independent", str(file), base)
    with pytest.raises(SweepError, match="valid choices: lr, lr_smoothing, frontier"):
        spec_lib.load_spec("independent", "nope", base)
    with pytest.raises(SweepError, match="defines no get_sweep"):
        spec_lib.load_spec("example", "", base)
    with pytest.raises(SweepError, match="batch_size=abc"):
        driver.check_config_flags(base, ["--config.learner.batch_size=abc"])
    driver.check_config_flags(base, ["--config.learner.batch_size=8"])


def test_cli_bad_flags_fail_before_ray(tmp_path):
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    cases = {
        ("--learner=nope",): "valid choices: deq, deq_fixed_start, dynamic, dynamic_cheap",
        ("--learner=independent", "--sweep=nope"): "valid choices: lr, lr_smoothing",
        ("--learner=independent", "--config.learner.nope=1"): "learner has augment",
        ("--learner=independent", "--cpus_per_trial=-1"): "must be >= 0",
    }
    for args, message in cases.items():
        proc = subprocess.run([sys.executable, "-m", "nevis.sweep", *args,
                               f"--sweep_dir={tmp_path / 's'}"], capture_output=True,
                              text=True, cwd=REPO, env=env, timeout=120)
        assert proc.returncode == 2, (args, proc.stderr[-2000:])
        assert message in proc.stderr and "Traceback" not in proc.stderr, (args, proc.stderr)
    assert not (tmp_path / "s").exists()


def test_documented_sweeps_expand_as_declared():
    from ray.tune.search.variant_generator import generate_variants

    base = driver.base_config("independent", "embedded")
    lr = spec_lib.load_spec("independent", "lr", base)
    variants = [v for _, v in generate_variants(lr.param_space())]
    assert [v["overrides"]["learner.optimizer.learning_rate"] for v in variants] == [1e-3, 3e-3]
    assert lr.overrides["learner.max_steps"] == 60  # tiny budgets, for every trial
    random = spec_lib.load_spec("independent", "lr_smoothing", base)
    assert random.search == "random" and random.num_samples == 8
    assert random.varied_keys == ["learner.label_smoothing", "learner.optimizer.learning_rate"]


def test_override_values_parse_back_as_given():
    from absl import flags
    from ml_collections import config_flags

    base = driver.base_config("independent", "embedded")
    overrides = {"learner.model.kwargs.widths": (8, 16), "learner.augment.enabled": False,
                 "learner.optimizer.learning_rate": 1e-05, "stream.tasks": "uci_digits",
                 "stream.prediction_splits": ("dev",)}
    argv = ["x", *spec_lib.override_flags(overrides)]
    values = flags.FlagValues()
    config_flags.DEFINE_config_dict("config", base, flag_values=values, sys_argv=argv)
    values(argv)
    for key, value in overrides.items():
        node = values.config
        for part in key.split("."):
            node = node[part]
        assert node == value, key


def test_trial_names_are_distinct_and_readable():
    long = {f"learner.key_{i}": 1.0 / 3 for i in range(9)}
    other = {**long, "learner.key_8": 0.5}
    assert spec_lib.trial_name(3, {"learner.optimizer.learning_rate": 0.01}) == (
        "003_learning_rate=0.01")
    assert spec_lib.trial_name(0, long) != spec_lib.trial_name(0, other)
    assert len(spec_lib.trial_name(0, long)) <= 68


def test_cpu_leases_never_share_a_cpu(tmp_path, monkeypatch):
    monkeypatch.setattr(trial_lib, "CPU_LEASES", tmp_path)
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        pytest.skip("needs 2 CPUs")
    with trial_lib.lease_cpus(1) as a, trial_lib.lease_cpus(1) as b:
        assert a != b and {*a, *b} <= set(cpus)
        if len(cpus) == 2:
            with trial_lib.lease_cpus(1) as c:
                assert c is None  # all held: no pinning rather than sharing
    with trial_lib.lease_cpus(1) as again:
        assert again == a  # released when the holder is done
    with trial_lib.lease_cpus(0.5) as fractional:
        assert fractional is None


def test_tensorboard_is_not_imported_without_the_flag():
    code = ("import sys, nevis.run, nevis.environment, nevis.learners.training; "
            "assert 'tensorboardX' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, timeout=120,
                   env={**os.environ, "JAX_PLATFORMS": "cpu"})


def test_trial_flags_combine_without_repeating_a_key(tmp_path):
    """nevis.run refuses a key given twice: the command line's flags replace the sweep's fixed
    overrides, a trial's own values replace both, and a flag on a varied key is refused."""
    varied = driver.SweepOptions(learner="independent", sweep="lr",
                                 config_flags=("--config.learner.optimizer.learning_rate=0.1",))
    with pytest.raises(SweepError, match="is what sweep independent:lr varies"):
        driver.prepare(varied)
    settings = trial_lib.TrialSettings(
        sweep_dir=str(tmp_path), learner="independent", stream="embedded",
        run_flags=("--config.learner.max_steps=7",), split="dev_test",
        fixed_overrides={"learner.seed": 3, "learner.label_smoothing": 0.0})
    command = trial_lib.TrialRun(settings, "000_x", {"learner.label_smoothing": 0.2}).command(None)
    config = [a for a in command if a.startswith("--config.")]
    assert sorted(config) == ["--config.learner.label_smoothing=0.2",
                              "--config.learner.max_steps=7", "--config.learner.seed=3"]
