"""The loop's scoring cannot be flattered: failed events, coverage, diagnostics, divergence.

Every run here is in-process on toy datasets with a stub learner that predicts from the
true labels (an oracle), so each expected number is exact: an event scores error 0 unless the
stub was told to misbehave on it.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nevis import configs, environment, parallel, results
from nevis.data.testing import write_toy_dataset
from nevis.datasets import DataAccess
from nevis.learners import training
from nevis.learners.base import (
    Learner,
    Prediction,
    PredictOutput,
    ResourceUsage,
    TrainContext,
    TrainOutput,
)
from nevis.streams import Stream
from nevis.tasks import TaskKind

SIZES = {"train": 12, "dev": 6, "dev_test": 10, "test": 6}
BATCH = 4  # 10 dev_test examples: batches of 4, 4 and 2 (+2 padding rows)
TASKS = {  # key: (kind, classes)
    "toy_a": (TaskKind.SINGLE_LABEL, 3),
    "toy_b": (TaskKind.MULTI_LABEL, 4),
    "toy_c": (TaskKind.SINGLE_LABEL, 3),
    "toy_d": (TaskKind.SINGLE_LABEL, 5),
}
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """(data_dir, {key: spec}, {key: dev_test labels as the metrics see them})."""
    data_dir = tmp_path_factory.mktemp("toy_data")
    specs, labels = {}, {}
    for seed, (key, (kind, classes)) in enumerate(TASKS.items()):
        spec, examples = write_toy_dataset(data_dir, key, kind, classes, SIZES, seed=seed)
        specs[key] = spec
        rows = examples["dev_test"]
        if kind == TaskKind.SINGLE_LABEL:
            labels[key] = np.array([r["label"] for r in rows])
        else:
            labels[key] = np.zeros((len(rows), classes), np.float32)
            for i, r in enumerate(rows):
                labels[key][i, r["labels"]] = 1
    return data_dir, specs, labels


@pytest.fixture(scope="module")
def mesh():
    return parallel.make_mesh(1)


def oracle_learner(labels, faults=None, *, reverse=False, two_passes=False, train=None):
    """Predicts every dev_test example correctly, except where `faults` say otherwise.

    `faults[(task key, final)]` is a set of: "nan" (NaN logits), "short" (drops the last
    batch), "duplicate" (predicts the first batch twice), "nan_extra" (NaN `budget_4x`
    extra logits), "nan_score" (NaN per-example `aa` score of example 0).
    """
    faults = faults or {}

    def init():
        return {"trained": {}}

    def default_train(event, state, ctx):
        del ctx
        return TrainOutput({"trained": {**state["trained"], event.task.key: np.int64(1)}},
                           ResourceUsage(train_steps=1), {})

    def predict(event, state, ctx):
        task, table = event.task, labels[event.task.key]
        bad = faults.get((task.key, event.final), set())

        def logits_for(batch):
            rows = table[np.where(batch["mask"], batch["index"], 0)]
            if task.kind == TaskKind.SINGLE_LABEL:
                return np.eye(task.num_classes, dtype=np.float32)[rows] * 5
            return rows * 10 - 5

        def predictions():
            if two_passes:  # a first pass over the whole split, as a learner may need
                assert sum(int(b["mask"].sum()) for b in ctx.batches(BATCH, 8)) == len(table)
            batches = list(ctx.batches(BATCH, 8))
            if reverse:
                batches = batches[::-1]
            if "short" in bad:
                batches = batches[:-1]
            if "duplicate" in bad:
                batches = [batches[0], *batches]
            for batch in batches:
                logits = logits_for(batch)
                if "nan" in bad:
                    logits = logits * np.nan
                ones = np.ones(len(logits), np.float32)
                first = (batch["index"] == 0) & ("nan_score" in bad)
                yield Prediction(
                    logits=logits, index=batch["index"], mask=batch["mask"],
                    extra_logits={"budget_2x": logits,
                                  "budget_4x": logits * np.nan if "nan_extra" in bad else logits},
                    scores={"aa": np.where(first, np.nan, ones), "residual": ones * 0.5},
                )

        return PredictOutput(predictions(), ResourceUsage(inference_flops=1.0))

    return Learner(name="oracle", init=init, train=train or default_train, predict=predict)


def run_stream(tmp_path, toy, mesh, learner, keys):
    data_dir, specs, _ = toy
    stream = Stream("toy", tuple(specs[k] for k in keys), tuple(2000 + i for i in range(len(keys))))
    options = environment.RunOptions(workdir=tmp_path / "run", data_dir=data_dir,
                                     show_progress=False)
    summary = environment.run(stream, learner, options, mesh)
    records = [json.loads(line)
               for line in (tmp_path / "run" / "events.jsonl").read_text().splitlines()]
    return summary, records


def predict_records(records, key):
    return [r for r in records if r["event"] == "predict" and r["task"] == key]


@pytest.fixture(scope="module")
def failing_run(tmp_path_factory, toy, mesh):
    """toy_a fine; toy_b NaN everywhere; toy_c NaN at the end; toy_d NaN during the stream;
    toy_a's diagnostics (budget_4x, aa) are NaN."""
    faults = {("toy_a", False): {"nan_extra", "nan_score"}, ("toy_a", True): {"nan_extra"},
              ("toy_b", False): {"nan"}, ("toy_b", True): {"nan"},
              ("toy_c", True): {"nan"}, ("toy_d", False): {"nan"}}
    tmp = tmp_path_factory.mktemp("failing")
    return (*run_stream(tmp, toy, mesh, oracle_learner(toy[2], faults), list(TASKS)), tmp / "run")


def test_failed_events_count_as_error_one(failing_run):
    summary, records, workdir = failing_run
    s = summary["splits"]["dev_test"]
    # During the stream: a 0, b failed, c 0, d failed. Final: a 0, b failed, c failed, d 0.
    assert s["num_events"] == 4 and s["num_failed_events"] == 2
    assert s["stream_error"] == pytest.approx(0.5)
    assert s["stream_error_successful_only"] == pytest.approx(0.0)
    assert s["unique_task_error"] == pytest.approx(0.5)
    assert s["average_single_label_accuracy"] == pytest.approx(2 / 3)  # a, c: 1; d: 0
    assert s["pooled_single_label_accuracy"] == pytest.approx(2 / 3)  # 10 examples each
    assert s["average_multi_label_mean_average_precision"] == pytest.approx(0.0)  # b
    assert s["num_failed_final_events"] == 2
    assert s["final_stream_error"] == pytest.approx(0.5)
    assert s["forgetting"] == pytest.approx({"toy_a": 0, "toy_b": 0, "toy_c": 1, "toy_d": -1})
    failed = {(f["task"], f["event_index"]) for f in summary["failed_events"]}
    assert {t for t, _ in failed} == {"toy_b", "toy_c", "toy_d"} and len(failed) == 4
    assert all("NaN" in f["reason"] for f in summary["failed_events"])
    b = predict_records(records, "toy_b")[0]
    assert b["status"] == "failed" and b["metrics"]["error"] == 1.0
    assert "per_example_file" not in b
    table = results.format_run(workdir)
    assert "2 failed event(s) scored as error 1" in table and "successful events only" in table


def test_nonfinite_diagnostics_do_not_fail_the_event(failing_run):
    summary, records, workdir = failing_run
    during, final = predict_records(records, "toy_a")
    assert during["status"] == final["status"] == "ok"
    assert during["metrics"]["error"] == 0.0 and during["metrics"]["budget_2x/error"] == 0.0
    assert set(during["diagnostic_failures"]) == {"budget_4x", "aa"}
    assert set(final["diagnostic_failures"]) == {"budget_4x"}
    assert "budget_4x/error" not in during["metrics"]
    assert during["diagnostic_failures"]["aa"].startswith("1 of 10 per-example values")
    # The NaN score is left out of the event mean, and kept in the per-example file.
    assert during["metrics"]["scores/aa"] == 1.0 and during["metrics"]["scores/residual"] == 0.5
    per_example = np.load(workdir / during["per_example_file"])
    assert {"budget_2x/correct", "residual"} <= set(per_example)
    assert "budget_4x/correct" not in per_example
    assert np.isnan(per_example["aa"]).sum() == 1
    assert [d["event_index"] for d in summary["diagnostic_failures"]] == [
        during["event_index"], final["event_index"]]
    assert summary["diagnostics"]["aa"]["mean"] == 1.0


@pytest.mark.parametrize("fault, reason", [
    ("short", "learner 'oracle' predicted 8 of 10 examples of toy_a/dev_test; "
              "missing indices 8..9"),
    ("duplicate", "learner 'oracle' predicted example(s) more than once: indices 0..3"),
])
def test_predictions_must_cover_the_split_exactly(tmp_path, toy, mesh, fault, reason):
    learner = oracle_learner(toy[2], {("toy_a", False): {fault}})
    summary, records = run_stream(tmp_path, toy, mesh, learner, ["toy_a"])
    during, final = predict_records(records, "toy_a")
    assert during["status"] == "failed" and final["status"] == "ok"
    assert during["reason"].startswith(reason), during["reason"]
    s = summary["splits"]["dev_test"]
    assert s["stream_error"] == 1.0 and s["final_stream_error"] == 0.0


def test_predictions_are_matched_to_labels_by_index(tmp_path, toy, mesh):
    """A learner may pass over the split twice and yield its predictions in any order."""
    learner = oracle_learner(toy[2], reverse=True, two_passes=True)
    summary, records = run_stream(tmp_path, toy, mesh, learner, ["toy_a", "toy_b"])
    assert all(r["status"] == "ok" for r in records)
    assert [r["metrics"]["error"] for r in records if r["event"] == "predict"] == [0.0] * 4
    assert summary["splits"]["dev_test"]["stream_error"] == 0.0


def _tiny_config():
    config = configs.learner_config("independent")
    config.update(image_size=8, batch_size=4, eval_batch_size=8, min_steps=6, max_steps=6,
                  eval_every=3, log_every=1)
    config.augment.enabled = False
    config.optimizer.warmup_steps = 1
    return config


def test_nonfinite_validation_logits_are_divergence(tmp_path, toy, mesh):
    """NaN dev logits with a finite loss: recorded as divergence, best params kept, run goes on."""
    config, captured = _tiny_config(), {}

    def features(images):
        return images.mean(axis=(1, 2))  # [B, 3]

    def train(event, state, ctx):
        task = event.task
        params = {"w": jnp.zeros((3, task.num_classes)), "b": jnp.zeros(task.num_classes)}

        def logits_fn(p, images):  # what validation sees: NaN
            return (features(images) @ p["w"] + p["b"]) * jnp.nan

        def loss_fn(p, batch, rng):
            del rng
            logits = features(batch["image"]) @ p["w"] + p["b"]
            return training.classification_loss(logits, batch, task.kind, 0.0), {}

        best, resources, info = training.train_task(
            task=task, params=params, loss_fn=loss_fn, logits_fn=logits_fn, config=config,
            ctx=ctx, seed=0)
        captured.update(best=best, info=info)
        return TrainOutput({"trained": {**state["trained"], task.key: np.int64(1)}},
                           resources, info)

    learner = dataclasses.replace(oracle_learner(toy[2]), train=train)
    summary, records = run_stream(tmp_path, toy, mesh, learner, ["toy_a"])
    assert summary["diverged_tasks"] == {"toy_a": config.eval_every}
    info = records[0]["info"]
    assert records[0]["status"] == "diverged"
    assert info["diverged_reason"] == "non-finite validation logits"
    assert info["best_dev_error"] is None and info["steps_run"] == config.eval_every
    # No validation succeeded: the initial parameters are kept.
    assert all(np.all(np.asarray(v) == 0) for v in jax.tree.leaves(captured["best"]))
    assert summary["complete"] and summary["splits"]["dev_test"]["stream_error"] == 0.0


def test_train_event_records_resumed_from_step(tmp_path, toy, mesh):
    """resumed_from_step is the step a mid-task checkpoint restarted training at, else 0."""
    config = _tiny_config()
    data_dir, specs, _ = toy

    def save(state, notes):  # to host: the next step donates the buffers
        saved.append((jax.device_get(state), notes))

    def context(restored):
        return TrainContext(data=DataAccess(data_dir).open, mesh=mesh, save_checkpoint=save,
                            restore_checkpoint=lambda template: restored,
                            checkpoint_every=2, show_progress=False)

    def loss_fn(p, batch, rng):
        del rng
        logits = batch["image"].mean(axis=(1, 2)) @ p["w"]
        return training.classification_loss(logits, batch, TaskKind.SINGLE_LABEL, 0.0), {}

    def logits_fn(p, images):
        return images.mean(axis=(1, 2)) @ p["w"]

    kwargs = dict(task=specs["toy_a"], params={"w": jnp.zeros((3, 3))}, loss_fn=loss_fn,
                  logits_fn=logits_fn, config=config, seed=0)
    saved: list = []
    _, _, info = training.train_task(ctx=context(None), **kwargs)
    assert info["resumed_from_step"] == 0
    state, notes = saved[1]  # the checkpoint at step 4
    _, _, info = training.train_task(ctx=context((state, notes)), **kwargs)
    assert info["resumed_from_step"] == 4


def _result_files_section() -> str:
    text = (REPO / "WORKSPACE.md").read_text()
    return text.split("## Result files", 1)[1].split("\n## ", 1)[0]


def test_result_files_are_versioned_and_documented(failing_run):
    """Every field the loop writes is described in WORKSPACE.md, at the current version."""
    summary, records, _ = failing_run
    assert summary["schema_version"] == results.SCHEMA_VERSION
    assert all(r["schema_version"] == results.SCHEMA_VERSION for r in records)
    section = _result_files_section()
    assert f"(currently {results.SCHEMA_VERSION};" in section
    documented = set(re.findall(r"`([A-Za-z_][\w/<>.]*)`", section))
    keys = set(summary) | set(summary["resources"]) | set(summary["timing"])
    keys |= {k for s in summary["splits"].values() for k in s}
    keys |= {k for f in summary["failed_events"] + summary["diagnostic_failures"] for k in f}
    keys |= {k for d in summary["diagnostics"].values() for k in d}
    keys |= {k for r in records for k in r}
    assert sorted(keys - documented) == []
