"""End-to-end runs of `python -m nevis.run` on a tiny two-task embedded stream."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import COMPILATION_CACHE, REPO, comparable_summary, run_cli, tiny_run_args

from nevis import progress, results


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory, data_dir):
    workdir = tmp_path_factory.mktemp("reference")
    proc = run_cli(*tiny_run_args(workdir, data_dir))
    return workdir, proc


def test_end_to_end_results(reference_run):
    workdir, proc = reference_run
    summary = json.loads((workdir / "summary.json").read_text())
    assert summary["complete"] and summary["events_completed"] == summary["events_total"] == 6
    split = summary["splits"]["dev_test"]
    assert split["num_events"] == 2
    assert 0 <= split["stream_error"] < 1
    assert split["average_forgetting"] == 0.0  # independent learner: nothing is forgotten
    records = [json.loads(line) for line in (workdir / "events.jsonl").read_text().splitlines()]
    assert [r["event"] for r in records[:2]] == ["train", "predict"]
    digits = next(r for r in records if r["task"] == "uci_digits" and r["event"] == "predict")
    assert digits["metrics"]["error"] < 0.75  # chance is 0.9; 40 steps of a tiny net
    shapes = next(
        r for r in records if r["task"] == "shapes_multilabel" and r["event"] == "predict"
    )
    assert "mean_average_precision" in shapes["metrics"]
    res = summary["resources"]
    assert res["train_flops"] > 0 and res["validation_flops"] > 0 and res["inference_flops"] > 0
    assert res["train_steps"] == 80 and res["peak_parameter_count"] > 1000
    rows = list(csv.DictReader((workdir / "tasks.csv").open()))
    assert len(rows) == 4 and {r["split"] for r in rows} == {"dev_test"}
    per_example = np.load(workdir / digits["per_example_file"])
    assert per_example["correct"].mean() == pytest.approx(1 - digits["metrics"]["error"])
    assert len(np.unique(per_example["index"])) == digits["metrics"]["num_examples"]
    assert "stream error" in proc.stdout and "uci_digits" in proc.stdout


def test_same_seed_gives_identical_results(reference_run, tmp_path, data_dir):
    workdir, _ = reference_run
    run_cli(*tiny_run_args(tmp_path, data_dir))
    assert comparable_summary(tmp_path) == comparable_summary(workdir)


def run_and_kill(workdir, data_dir, kill: str, *extra: str) -> None:
    """A tiny run that SIGKILLs itself at `kill` (see tests/run_and_kill.py)."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "NEVIS_CACHE_DIR": COMPILATION_CACHE}
    proc = subprocess.run(
        [sys.executable, str(REPO / "tests" / "run_and_kill.py"), kill,
         *tiny_run_args(workdir, data_dir, *extra)],
        capture_output=True, text=True, cwd=REPO, env=env,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    assert not json.loads((workdir / "summary.json").read_text())["complete"]


def events(workdir) -> list[dict]:
    return [json.loads(line) for line in (workdir / "events.jsonl").read_text().splitlines()]


def comparable_events(workdir) -> list[dict]:
    """events.jsonl without the fields that may differ on resume: timing and run history."""
    out = []
    for record in events(workdir):
        record = {k: v for k, v in record.items() if k not in results.TIMING_KEYS}
        if "info" in record:
            record["info"] = {k: v for k, v in record["info"].items()
                              if k not in (*results.TIMING_KEYS, *results.RUN_HISTORY_KEYS)}
        out.append(record)
    return out


@pytest.fixture(scope="module")
def killed_mid_task(reference_run, tmp_path_factory, data_dir):
    """A run killed right after the step-30 checkpoint of its second task (event 2)."""
    workdir = tmp_path_factory.mktemp("killed_mid_task")
    run_and_kill(workdir, data_dir, "--kill_after_checkpoint=shapes_multilabel:30",
                 "--checkpoint_every=10")
    return workdir


def test_resume_after_sigkill_mid_task(reference_run, killed_mid_task, tmp_path, data_dir):
    reference, _ = reference_run
    workdir = tmp_path / "run"
    shutil.copytree(killed_mid_task, workdir)
    run_cli(*tiny_run_args(workdir, data_dir, "--checkpoint_every=10"))
    resumed = {r["event_index"]: r["info"]["resumed_from_step"]
               for r in events(workdir) if r["event"] == "train"}
    assert resumed == {0: 0, 2: 30}  # the killed task restarted at its checkpoint
    assert comparable_summary(workdir) == comparable_summary(reference)
    assert comparable_events(workdir) == comparable_events(reference)


def test_resume_after_sigkill_in_prediction(reference_run, tmp_path, data_dir):
    reference, _ = reference_run
    # Prediction events: 1 and 3 during the stream, 4 and 5 final; kill inside event 3.
    run_and_kill(tmp_path, data_dir, "--kill_in_prediction=2")
    assert [r["event_index"] for r in events(tmp_path)] == [0, 1, 2]
    run_cli(*tiny_run_args(tmp_path, data_dir))
    assert comparable_summary(tmp_path) == comparable_summary(reference)
    assert comparable_events(tmp_path) == comparable_events(reference)


@pytest.fixture(scope="module")
def overwritten_run(killed_mid_task, tmp_path_factory, data_dir):
    """The killed run started again with --overwrite, progress bars on, output in a file."""
    workdir = tmp_path_factory.mktemp("overwritten") / "run"
    shutil.copytree(killed_mid_task, workdir)
    (workdir / "predictions" / "stale.npz").write_bytes(b"")
    log_file = workdir.parent / "output.log"
    start = time.perf_counter()
    args = [a for a in tiny_run_args(workdir, data_dir, "--overwrite", "--checkpoint_every=10",
                                     "--config.learner.log_every=1") if a != "--noprogress"]
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "NEVIS_CACHE_DIR": COMPILATION_CACHE}
    with log_file.open("w") as out:  # stdout and stderr: a file, not a terminal
        subprocess.run([sys.executable, "-m", "nevis.run", *args], stdout=out,
                       stderr=subprocess.STDOUT, cwd=REPO, env=env, check=True)
    return workdir, log_file.read_text(), time.perf_counter() - start


def test_overwrite_starts_afresh(reference_run, overwritten_run):
    reference, _ = reference_run
    workdir, output, _ = overwritten_run
    assert "Resuming" not in output
    assert not (workdir / "predictions" / "stale.npz").exists()
    records = events(workdir)
    assert [r["info"]["resumed_from_step"] for r in records if r["event"] == "train"] == [0, 0]
    assert comparable_summary(workdir) == comparable_summary(reference)


def test_progress_in_a_log_file_is_throttled(overwritten_run):
    """Not a terminal: each bar prints its first and last state and a line per ~10 s."""
    _, output, seconds = overwritten_run
    lines = [line for line in re.split(r"[\r\n]+", output) if line.strip()]
    bar_lines = [line for line in lines if "train " in line and "step" in line]
    bars = 2  # one per task; with log_every=1 an unthrottled bar redraws at every step (80)
    assert len(bar_lines) <= bars * (2 + seconds / progress.NON_INTERACTIVE_INTERVAL), bar_lines
    assert not [line for line in lines if "OCDBT" in line]  # a harmless warning per checkpoint
    assert len(lines) - len(bar_lines) < 20, lines  # a few log lines and the results table


def test_bad_flags_fail_fast(tmp_path):
    cases = {
        ("--learner=nope",): "valid choices: deq, deq_fixed_start, dynamic, dynamic_cheap",
        ("--stream=nope",): "valid choices: debug, embedded",
        ("--config.learner.optimizer.name=nope",): "valid choices: sgd, adamw",
        ("--config.learner.nope=1",): "learner has augment, batch_size",
        ("--config.learner.batch_size=abc",): "batch_size=abc",
        ("--config.learner.seed=1", "--config.learner.seed=2"): "given more than once",
        ("--config.stream.prediction_splits=('train',)",): "valid choices: dev, dev_test, test",
    }
    for args, message in cases.items():
        proc = run_cli(*args, f"--workdir={tmp_path / 'w'}", check=False)
        assert proc.returncode != 0, args
        assert message in proc.stderr, (args, proc.stderr[-2000:])
        assert "Traceback" not in proc.stderr, args
    assert not (tmp_path / "w" / "summary.json").exists()


def test_helpfull_lists_the_flags_and_the_config(tmp_path):
    """`--helpfull` is what the bad-flag errors point to: it must work (it once failed as
    an unknown flag, because the config is parsed before absl's app defines help flags)."""
    proc = run_cli("--helpfull", f"--workdir={tmp_path / 'w'}", check=False)
    assert proc.returncode in (0, 1), proc.stderr[-2000:]  # absl exits 1 after printing help
    assert "Unknown command line flag" not in proc.stdout + proc.stderr
    assert "--learner" in proc.stdout and "--config" in proc.stdout, proc.stdout[-2000:]
    assert not (tmp_path / "w").exists()


def test_missing_data_names_every_dataset(tmp_path):
    proc = run_cli("--stream=debug", f"--workdir={tmp_path / 'w'}",
                   f"--data_dir={tmp_path / 'empty'}", check=False)
    assert proc.returncode == 2
    assert "2 dataset(s)" in proc.stderr
    assert "voc_2007" in proc.stderr and "coil20" in proc.stderr
    assert not (tmp_path / "w" / "events.jsonl").exists()


def test_corrupt_dataset_stops_run_and_keeps_results(reference_run, tmp_path, data_dir):
    workdir, _ = reference_run
    data_copy = tmp_path / "data"
    shutil.copytree(data_dir, data_copy)
    run_copy = tmp_path / "run"
    shutil.copytree(workdir, run_copy)
    before = (run_copy / "summary.json").read_bytes()
    shard = next(iter(sorted((data_copy / "uci_digits").rglob("*dev_test.array_record*"))))
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])  # truncate
    proc = run_cli(*tiny_run_args(run_copy, data_copy), check=False)
    assert proc.returncode == 2
    key = "uci_digits"
    assert key in proc.stderr
    assert f"python -m nevis.prepare --dataset={key} --force" in proc.stderr
    assert (run_copy / "summary.json").read_bytes() == before
