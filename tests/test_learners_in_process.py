"""The loop and the per-task skeleton in-process (no CLI): a stub learner, the example learner.

The stub (dm_nevis's environment_test in spirit) checks the loop's contract: which events a
learner sees, in which order, and that scores come from its predictions. The example learner
checks the skeleton end to end on real embedded data, including a resume that must not
retrain the task it finished before the interruption.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from conftest import TINY_TASKS

from nevis import configs, environment, parallel
from nevis.datasets import DataAccess
from nevis.learners import make_learner
from nevis.learners.base import Learner, Prediction, PredictOutput, ResourceUsage, TrainOutput
from nevis.streams import PredictionEvent, TrainingEvent, make_stream
from nevis.tasks import TaskKind


def stub_learner(calls: list[str], constant_class: int = 0) -> Learner:
    """Always predicts `constant_class`; trains by counting."""

    def init():
        return {"trained": np.int64(0)}

    def train(event, state, ctx):
        calls.append(f"train {event.task.key}")
        return TrainOutput({"trained": state["trained"] + 1}, ResourceUsage(train_steps=1))

    def predict(event, state, ctx):
        calls.append(f"predict {event.task.key} {event.split}")

        def predictions():
            for batch in ctx.batches(8, 8):
                logits = np.zeros((len(batch["index"]), event.task.num_classes), np.float32)
                logits[:, constant_class] = 1.0
                yield Prediction(logits=logits, index=batch["index"], mask=batch["mask"])

        return PredictOutput(predictions(), ResourceUsage())

    return Learner(name="stub", init=init, train=train, predict=predict)


@pytest.fixture(scope="module")
def stream():
    return make_stream("embedded", tasks=list(TINY_TASKS), prediction_splits=("dev_test",))


def _options(workdir, data_dir):
    return environment.RunOptions(workdir=workdir, data_dir=data_dir, show_progress=False)


def test_stub_learner_sees_every_event_in_order_and_is_scored_by_its_predictions(
        tmp_path, data_dir, stream):
    calls: list[str] = []
    summary = environment.run(stream, stub_learner(calls), _options(tmp_path, data_dir),
                              parallel.make_mesh(1))
    expected = []
    for event in stream.events():
        if isinstance(event, TrainingEvent):
            expected.append(f"train {event.task.key}")
        else:
            assert isinstance(event, PredictionEvent)
            expected.append(f"predict {event.task.key} {event.split}")
    assert calls == expected
    assert summary["complete"] and summary["resources"]["train_steps"] == len(TINY_TASKS)
    # Class 0 for every example: the error is the share of examples that are not class 0.
    data = DataAccess(data_dir, show_progress=False)
    records = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    single = next(t for t in stream.tasks if t.kind == TaskKind.SINGLE_LABEL)
    source = data.open(single, "dev_test")
    labels = np.array([source.targets(r) for r in source.read_records(range(len(source)))])
    scored = [r for r in records if r["task"] == single.key and r["event"] == "predict"]
    assert scored and all(r["metrics"]["error"] == pytest.approx(np.mean(labels != 0))
                          for r in scored)


def _example_config():
    config = configs.learner_config("example")
    config.update(batch_size=32, eval_batch_size=100, min_steps=40, max_steps=40,
                  eval_every=20, log_every=10)
    config.optimizer.warmup_steps = 5
    return config


class _Interrupt(Exception):
    pass


def _interrupted_at_first_prediction(learner: Learner) -> Learner:
    def predict(event, state, ctx):
        raise _Interrupt

    return dataclasses.replace(learner, predict=predict)


def _comparable(workdir):
    out = []
    for line in (workdir / "events.jsonl").read_text().splitlines():
        record = json.loads(line)
        record.pop("seconds")
        for key in ("train_seconds", "steady_steps_per_second"):
            record.get("info", {}).pop(key, None)
        out.append(record)
    return out


def test_example_learner_learns_and_resumes_without_retraining(tmp_path, data_dir, stream):
    mesh = parallel.make_mesh(1)
    full = tmp_path / "full"
    summary = environment.run(stream, make_learner(_example_config()),
                              _options(full, data_dir), mesh)
    assert summary["complete"]
    digits = [r for r in _comparable(full) if r["task"] == "uci_digits"
              and r["event"] == "predict" and not r["final"]]
    assert digits[0]["metrics"]["error"] < 0.5  # 10 classes: chance is 0.9

    # Interrupted after the first training event, then resumed with a counting learner.
    resumed = tmp_path / "resumed"
    learner = make_learner(_example_config())
    with pytest.raises(_Interrupt):
        environment.run(stream, _interrupted_at_first_prediction(learner),
                        _options(resumed, data_dir), mesh)
    trained: list[str] = []

    def counting_train(event, state, ctx):
        trained.append(event.task.key)
        return learner.train(event, state, ctx)

    environment.run(stream, dataclasses.replace(learner, train=counting_train),
                    _options(resumed, data_dir), mesh)
    assert trained == list(TINY_TASKS[1:])  # the first task was not trained again
    assert _comparable(resumed) == _comparable(full)
