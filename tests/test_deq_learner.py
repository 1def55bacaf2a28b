"""The DEQ learner end to end on a tiny stream: results, resume in mid-task, divergence."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import COMPILATION_CACHE, REPO, comparable_summary, run_cli, tiny_run_args

DEQ = (
    "--learner=deq",
    "--config.learner.deq.grad=implicit",  # the adjoint's statistics are checked below
    "--config.stream.tasks=uci_digits,lfw_faces",
    "--config.learner.image_size=16",
    "--config.learner.model.width=16",
    "--config.learner.deq.max_steps=6",
    "--config.learner.deq.b_max_steps=6",
    "--config.learner.budget_jitter=2",
    "--config.learner.min_steps=30",
    "--config.learner.max_steps=30",
    "--config.learner.eval_every=15",
    "--config.learner.eval_batch_size=64",
)


def deq_args(workdir, data_dir, *extra):
    return tiny_run_args(workdir, data_dir, *DEQ, *extra)


@pytest.fixture(scope="module")
def deq_data(tmp_path_factory, data_dir):
    """The session's data plus lfw_faces (a second small task)."""
    from nevis.data.embedded import embedded_dataset, prepare_embedded

    prepare_embedded(embedded_dataset("lfw_faces").spec, data_dir, progress=False)
    return data_dir


@pytest.fixture(scope="module")
def deq_run(tmp_path_factory, deq_data):
    workdir = tmp_path_factory.mktemp("deq")
    proc = run_cli(*deq_args(workdir, deq_data))
    return workdir, proc


def test_deq_results(deq_run):
    workdir, proc = deq_run
    summary = json.loads((workdir / "summary.json").read_text())
    assert summary["complete"] and not summary["diverged_tasks"]
    assert 0 < summary["diagnostics"]["aa"]["mean"] <= 1.0 + 1e-6
    assert {"aa_2x", "aa_4x", "residual", "limit_cycle"} <= set(summary["diagnostics"])
    records = [json.loads(line) for line in (workdir / "events.jsonl").read_text().splitlines()]
    train = [r for r in records if r["event"] == "train"]
    for r in train:
        info = r["info"]
        assert 1 <= info["forward_steps_mean"] <= 6 and info["forward_steps_max"] <= 6
        assert 0 <= info["forward_not_converged_mean"] <= 1
        assert 1 <= info["backward_steps_mean"] <= 6
        # every per-example adjoint solve is counted: 30 steps of 32 examples
        assert info["backward_solves"] == 30 * 32 and info["backward_nonfinite"] == 0
        assert 0 <= info["backward_not_converged"] <= 1
        assert 1 <= info["forward_iterations_mean"] <= 6
    predict = [r for r in records if r["event"] == "predict" and not r["final"]]
    digits = next(r for r in predict if r["task"] == "uci_digits")
    assert digits["metrics"]["error"] < 0.85  # chance is 0.9 (30 steps of a tiny DEQ)
    for key in ("budget_2x/error", "budget_4x/error", "scores/aa", "scores/aa_4x"):
        assert key in digits["metrics"]
    per_example = np.load(workdir / digits["per_example_file"])
    n = digits["metrics"]["num_examples"]
    assert per_example["aa"].shape == (n,) and per_example["budget_4x/correct"].shape == (n,)
    np.testing.assert_array_equal(per_example["aa_nonfinite"], ~np.isfinite(per_example["aa"]))
    assert np.mean(per_example["aa"]) == pytest.approx(digits["metrics"]["scores/aa"], rel=1e-5)
    # Inference runs 7 solver budgets per batch: it must cost more than validation's one.
    assert summary["resources"]["inference_flops"] > summary["resources"]["validation_flops"]
    assert "mean aa" in proc.stdout


def test_deq_resume_mid_task(deq_run, tmp_path, deq_data):
    workdir, _ = deq_run
    args = deq_args(tmp_path, deq_data, "--checkpoint_every=10")
    env = {"PATH": "/usr/bin:/bin", "JAX_PLATFORMS": "cpu", "NEVIS_CACHE_DIR": COMPILATION_CACHE}
    proc = subprocess.Popen([sys.executable, "-m", "nevis.run", *args], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        metas = [json.loads(m.read_text())
                 for m in (tmp_path / "checkpoints").glob("*/meta/metadata")]
        if any(m.get("has_mid_event") and m.get("event_index", 0) >= 2 for m in metas):
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    resumed = run_cli(*args)
    assert "Resuming" in resumed.stderr
    assert comparable_summary(tmp_path) == comparable_summary(workdir)


def test_diverging_cell_is_reported_and_the_run_continues(tmp_path, deq_data):
    # Without normalisation and with huge initial kernels the cell overflows within its budget.
    proc = run_cli(*deq_args(tmp_path, deq_data, "--config.learner.model.norm=none",
                             "--config.learner.model.init_scale=1e8"))
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["complete"]
    assert set(summary["diverged_tasks"]) == {"uci_digits", "lfw_faces"}
    assert all(1 <= step <= 30 for step in summary["diverged_tasks"].values())
    text = (tmp_path / "summary.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    for split in summary["splits"].values():
        assert split["stream_error"] is None or np.isfinite(split["stream_error"])
    assert "diverged tasks" in proc.stdout


def _chance_error(key: str) -> float:
    """The error of the best input-blind predictor on a task's dev_test split: the majority
    class (multi-class), or each label's prevalence as its AP (multi-label)."""
    from nevis.data.embedded import embedded_dataset, split_examples

    dataset = embedded_dataset(key)
    examples = split_examples(dataset)["dev_test"]
    targets = [e[dataset.spec.kind.label_field] for e in examples]
    if dataset.spec.kind.label_field == "labels":  # lists of label ids
        hot = np.zeros((len(targets), dataset.spec.num_classes))
        for row, ids in zip(hot, targets, strict=True):
            row[list(ids)] = 1
        return 1.0 - float(hot.mean(axis=0)[hot.any(axis=0)].mean())
    return 1.0 - np.bincount(np.asarray(targets)).max() / len(targets)


def test_default_deq_learns_every_embedded_task_above_chance(tmp_path, data_dir):
    """The default `deq` config (model, solver, gradients as shipped), only shortened to 200
    steps per task: every embedded task ends clearly below its chance error. (64-class
    glyphs_many is the slow one: at 60 steps it is still at chance, 0.979 vs 0.984.)"""
    from nevis.data.embedded import EMBEDDED_TASKS, prepare_embedded

    for spec in EMBEDDED_TASKS:
        prepare_embedded(spec, data_dir, progress=False)
    run_cli(f"--workdir={tmp_path}", f"--data_dir={data_dir}", "--noprogress", "--learner=deq",
            "--config.learner.min_steps=200", "--config.learner.max_steps=200",
            "--config.learner.eval_every=100")
    records = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    errors = {r["task"]: r["metrics"]["error"] for r in records
              if r["event"] == "predict" and not r["final"]}
    assert set(errors) == {spec.key for spec in EMBEDDED_TASKS}
    for key, error in errors.items():
        chance = _chance_error(key)
        assert error < chance - 0.05, (key, error, chance)
