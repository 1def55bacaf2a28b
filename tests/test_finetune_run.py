"""`--learner=finetune` end to end: the second task starts from the first task's backbone."""

from __future__ import annotations

import json

import numpy as np
from conftest import TINY_TASKS, run_cli, tiny_run_args
from flax import nnx

from nevis.checkpointing import Checkpointer
from nevis.configs import learner_config
from nevis.data.embedded import embedded_dataset
from nevis.learners import baseline
from nevis.learners.per_task import task_seed
from nevis.models import init_params


def _distance(a: dict, b: dict) -> float:
    leaves_a, leaves_b = (np.concatenate([np.ravel(x) for x in _leaves(t)]) for t in (a, b))
    return float(np.linalg.norm(leaves_a - leaves_b))


def _leaves(tree) -> list:
    if isinstance(tree, dict):
        return [leaf for key in sorted(tree) for leaf in _leaves(tree[key])]
    return [np.asarray(tree)]


def test_finetune_carries_the_backbone_and_reports_forgetting(tmp_path, data_dir):
    run_cli(*tiny_run_args(tmp_path, data_dir, "--learner=finetune"))
    first, second = TINY_TASKS
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["complete"]
    # Task 1 is re-evaluated at the end through task 2's backbone: its error moved.
    forgetting = summary["splits"]["dev_test"]["forgetting"]
    assert forgetting[first] != 0.0

    state, _ = Checkpointer(tmp_path / "checkpoints").restore()
    models = state["models"]
    assert _distance(state["backbone"], models[second]["backbone"]) == 0.0  # the latest
    # Where task 2 started: the backbone task 1 ended with, not its own fresh initialisation
    # (the one an independent run would train from). 40 steps move it far less than the gap.
    # The finetune config is independent's with another strategy: same model and seed.
    # (experiments/finetune.py imports `experiments`, importable only from the repo root.)
    config = learner_config("independent")
    config.image_size = 16
    task = embedded_dataset(second).spec
    _, fresh = init_params(lambda: baseline.build_model(config, task,
                                                        task_seed(config.seed, task, 0)))
    fresh = nnx.to_pure_dict(fresh)["backbone"]
    from_first = _distance(models[second]["backbone"], models[first]["backbone"])
    from_fresh = _distance(models[second]["backbone"], fresh)
    assert from_first < 0.5 * from_fresh, (from_first, from_fresh)
