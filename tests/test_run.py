"""End-to-end runs of `python -m nevis.run` on a tiny two-task embedded stream."""

from __future__ import annotations

import csv
import json
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import REPO, comparable_summary, run_cli, tiny_run_args


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


def test_resume_after_sigkill_mid_task(reference_run, tmp_path, data_dir):
    workdir, _ = reference_run
    args = tiny_run_args(tmp_path, data_dir, "--checkpoint_every=10")
    proc = subprocess.Popen([sys.executable, "-m", "nevis.run", *args], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # Kill once a mid-task checkpoint of the second task exists (events 0, 1 done).
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        metas = list((tmp_path / "checkpoints").glob("*/meta/metadata"))
        if any(json.loads(m.read_text()).get("has_mid_event")
               and json.loads(m.read_text()).get("event_index", 0) >= 2 for m in metas):
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = json.loads((tmp_path / "summary.json").read_text())
    assert not partial["complete"]
    resumed = run_cli(*args)
    assert "Resuming" in resumed.stderr
    assert comparable_summary(tmp_path) == comparable_summary(workdir)


def test_bad_flags_fail_fast(tmp_path):
    cases = {
        ("--learner=nope",): "valid choices: deq, deq_fixed_start, finetune, independent",
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
    assert f"python -m nevis.data.prepare --dataset={key} --force" in proc.stderr
    assert (run_copy / "summary.json").read_bytes() == before
