"""The dynamic learner (nevis/learners/dynamic.py): k-NN choice of initialisation, the
per-task search, its compute, sequential vs Ray trials, and a run through the loop.

The selector is checked on constructed streams: task 2 = task 1 relabelled (a permutation of
class ids: the trained backbone's features must win) and task 1 = unrelated noise with random
labels (the fresh initialisation must win).
"""

from __future__ import annotations

import json
import sys

import jax
import numpy as np
import pytest
from conftest import COMPILATION_CACHE, TINY_TASKS
from flax import nnx

from nevis import configs, environment, parallel
from nevis.data import embedded, storage_writer
from nevis.data.testing import write_toy_dataset
from nevis.datasets import DataAccess
from nevis.learners import dynamic, make_learner, per_task
from nevis.learners.base import TrainContext
from nevis.streams import TrainingEvent, make_stream
from nevis.tasks import TaskKind, TaskSpec


def _config(steps: int = 40, num_trials: int = 2, trial_workers: int = 1):
    config = configs.learner_config("dynamic_cheap")
    config.update(image_size=16, batch_size=32, eval_batch_size=100, min_steps=steps,
                  max_steps=steps, eval_every=20, log_every=10, num_trials=num_trials,
                  trial_workers=trial_workers)
    config.optimizer.warmup_steps = 5
    return config


def _context(data_dir) -> TrainContext:
    return TrainContext(
        data=DataAccess(data_dir, show_progress=False).open, mesh=parallel.make_mesh(1),
        save_checkpoint=lambda tree, notes: None, restore_checkpoint=lambda template: None,
        checkpoint_every=10**9, show_progress=False, data_dir=data_dir,
    )


# -- pure pieces ----------------------------------------------------------------------------


def test_knn_dev_score_single_label_votes_and_breaks_ties_by_the_nearer_neighbour():
    # Two clusters on the unit circle; dev points sit next to one cluster each.
    train = np.array([[1, 0], [1, 0.1], [1, -0.1], [0, 1], [0.1, 1], [-0.1, 1]], float)
    labels = np.array([0, 0, 0, 1, 1, 1])
    dev = np.array([[1, 0.05], [0.05, 1]])
    assert dynamic.knn_dev_score(train, labels, dev, np.array([0, 1]), "single_label", k=3) == 1
    assert dynamic.knn_dev_score(train, labels, dev, np.array([1, 1]), "single_label", k=3) == .5
    # Feature scale does not matter (L2-normalised); a 2-2 vote goes to the nearer label.
    assert dynamic.knn_dev_score(train * 7, labels, dev, np.array([0, 1]), "single_label",
                                 k=3) == 1
    assert list(dynamic.majority_vote(np.array([[2, 1, 1, 2], [1, 2, 2, 1]]))) == [2, 1]
    # Equal similarities: the lower train index is the nearer neighbour.
    assert dynamic.nearest_neighbours(np.ones((1, 2)), np.ones((4, 2)), k=2).tolist() == [[0, 1]]


def test_knn_dev_score_multi_label_is_mean_average_precision():
    train = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], float)
    train_labels = np.array([[1, 0], [1, 0], [0, 1], [0, 1]], float)
    dev = np.array([[1, 0.05], [0.05, 1]])
    perfect = dynamic.knn_dev_score(train, train_labels, dev, np.array([[1, 0], [0, 1]], float),
                                    TaskKind.MULTI_LABEL, k=2)
    inverted = dynamic.knn_dev_score(train, train_labels, dev,
                                     np.array([[0, 1], [1, 0]], float), TaskKind.MULTI_LABEL, k=2)
    assert perfect == 1.0 and inverted == 0.5


def test_first_best_prefers_the_earliest_and_skips_missing_scores():
    assert dynamic.first_best([0.5, 0.7, 0.7]) == 1
    assert dynamic.first_best([0.3, 0.1, 0.1], lowest=True) == 1
    assert dynamic.first_best([None, 0.2, float("nan")], lowest=True) == 1
    assert dynamic.first_best([None, None], lowest=True) == 0
    assert dynamic.first_best([float("nan"), None, 0.1]) == 2


def test_trial_hparams_are_seeded_and_in_range():
    pairs = dynamic.trial_hparams(123, 16)
    assert pairs == dynamic.trial_hparams(123, 16) != dynamic.trial_hparams(124, 16)
    assert len(pairs) == 16 and len(set(pairs)) == 16
    assert all(1e-4 <= lr <= 1e-1 and 0 <= ls <= 0.3 for lr, ls in pairs)
    # Log-uniform: the learning rates spread over the decades, not just the top one.
    assert min(lr for lr, _ in pairs) < 1e-2


def test_missing_ray_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ImportError, match=r"sweep"):
        dynamic._import_ray()


# -- the kNN selector on constructed streams ------------------------------------------------


RELABELLED = TaskSpec("digits_relabelled", "UCI Digits relabelled", 1999,
                      TaskKind.SINGLE_LABEL, 10, "custom")


@pytest.fixture(scope="module")
def selector_data(tmp_path_factory):
    """uci_digits, the same splits with permuted class ids, and 10-class random noise."""
    directory = tmp_path_factory.mktemp("dynamic_data")
    digits = embedded.embedded_dataset("uci_digits")
    embedded.prepare_embedded(digits.spec, directory, progress=False)
    permutation = np.random.default_rng(0).permutation(10)
    examples = {split: [{"image": e["image"], "label": int(permutation[e["label"]])}
                        for e in rows]
                for split, rows in embedded.split_examples(digits).items()}
    storage_writer.write_dataset(RELABELLED, examples, directory, progress=False)
    noise, _ = write_toy_dataset(directory, "noise", num_classes=10, channels=3,
                                 sizes={"train": 500, "dev": 100, "dev_test": 10, "test": 10})
    return directory, digits.spec, noise


def _trained_state(config, task, ctx):
    """The learner's state after one well-behaved training of `task` (fixed hyper-parameters,
    so that a trained backbone is what the test is about, not a lucky draw)."""
    seed = per_task.task_seed(config.seed, task, 0)
    _, _, inits = dynamic.candidate_inits(config, task, seed, dynamic.init_state())
    init = jax.device_get(nnx.to_pure_dict(inits[0]))
    result = dynamic.run_trial(config, task, seed, init, (3e-3, 0.0), ctx)
    return dynamic.remember(config, dynamic.init_state(), task, seed, result.params), result


def _select(config, task, state, ctx):
    seed = per_task.task_seed(config.seed, task, 0)
    graphdef, names, inits = dynamic.candidate_inits(config, task, seed, state)
    return names, dynamic.select_initialisation(config, task, graphdef, inits, ctx)


def test_selector_picks_the_previous_state_when_the_task_is_relabelled(selector_data):
    directory, digits, _ = selector_data
    config, ctx = _config(steps=100), _context(directory)
    state, result = _trained_state(config, digits, ctx)
    assert result.info["best_dev_error"] < 0.2  # the backbone learned digits
    names, selection = _select(config, RELABELLED, state, ctx)
    assert names == ["fresh", "from:uci_digits"]
    assert selection.scores[1] > selection.scores[0] and selection.index == 1
    assert selection.flops > 0 and selection.dev_examples == len(ctx.data(RELABELLED, "dev"))


def test_selector_picks_the_fresh_init_after_unrelated_noise(selector_data):
    directory, digits, noise = selector_data
    config, ctx = _config(steps=100), _context(directory)
    state, _ = _trained_state(config, noise, ctx)
    names, selection = _select(config, digits, state, ctx)
    assert names == ["fresh", "from:noise"]
    assert selection.scores[0] > selection.scores[1] and selection.index == 0


def test_selector_limits_the_embedded_examples(selector_data):
    directory, digits, noise = selector_data
    config, ctx = _config(), _context(directory)
    config.knn.update(max_train=50, max_dev=30)
    state = dynamic.remember(config, dynamic.init_state(), noise, 0, jax.device_get(
        nnx.to_pure_dict(dynamic.candidate_inits(config, noise, 0, dynamic.init_state())[2][0])))
    _, selection = _select(config, digits, state, ctx)
    assert (selection.train_examples, selection.dev_examples) == (50, 30)


# -- sequential and Ray trials --------------------------------------------------------------


@pytest.fixture
def local_ray(monkeypatch):
    ray = pytest.importorskip("ray")
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")  # inherited by Ray's workers
    monkeypatch.setenv("NEVIS_CACHE_DIR", COMPILATION_CACHE)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        yield ray
    finally:
        ray.shutdown()


def test_trials_on_two_ray_workers_match_sequential_trials(data_dir, local_ray):
    task = next(t for t in make_stream("embedded").tasks if t.key == "uci_digits")
    ctx = _context(data_dir)
    outputs = {}
    for workers in (1, 2):
        learner = make_learner(_config(trial_workers=workers))
        outputs[workers] = learner.train(TrainingEvent(task, task.year), learner.init(), ctx)
    sequential, parallel_run = outputs[1], outputs[2]
    assert sequential.info["chosen_trial"] == parallel_run.info["chosen_trial"]
    assert sequential.info["trials"] == parallel_run.info["trials"]
    assert sequential.resources == parallel_run.resources
    jax.tree.map(np.testing.assert_array_equal, sequential.state["models"],
                 parallel_run.state["models"])


# -- through the loop -----------------------------------------------------------------------


def test_dynamic_learner_runs_the_stream_and_reports_its_choices(tmp_path, data_dir):
    stream = make_stream("embedded", tasks=list(TINY_TASKS), prediction_splits=("dev_test",))
    options = environment.RunOptions(workdir=tmp_path, data_dir=data_dir, show_progress=False)
    summary = environment.run(stream, make_learner(_config()), options, parallel.make_mesh(1))
    assert summary["complete"]
    records = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    trains = [r for r in records if r["event"] == "train"]
    assert [r["task"] for r in trains] == list(TINY_TASKS)
    for record in trains:
        info, resources = record["info"], record["resources"]
        trials = info["trials"]
        assert len(trials) == info["num_trials"] == 2
        # The task's compute is every trial's plus the k-NN selection's.
        assert resources["train_flops"] == pytest.approx(
            sum(t["train_flops"] for t in trials) + info["knn_flops"], rel=1e-12)
        assert resources["validation_flops"] == pytest.approx(
            sum(t["validation_flops"] for t in trials), rel=1e-12)
        assert resources["train_steps"] == sum(t["steps_run"] for t in trials)
        finals = [t["final_dev_error"] for t in trials]
        assert info["chosen_trial"] == finals.index(min(finals))
        assert info["best_dev_error"] == trials[info["chosen_trial"]]["best_dev_error"]
    first, second = trains
    assert first["info"]["candidates"] == ["fresh"] and first["info"]["knn_flops"] == 0
    assert second["info"]["candidates"] == ["fresh", f"from:{TINY_TASKS[0]}"]
    assert second["info"]["knn_flops"] > 0 and None not in second["info"]["candidate_scores"]
    assert second["info"]["chosen_candidate"] in second["info"]["candidates"]
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert [(c["task"], c["chosen_candidate"], c["chosen_trial"], c["num_trials"])
            for c in on_disk["learner_choices"]] == [
        (r["task"], r["info"]["chosen_candidate"], r["info"]["chosen_trial"], 2) for r in trains]
