"""The dynamic learner (dm_nevis's `finetuning_dknn`): per task, an initialisation chosen by
k-nearest-neighbour transfer, then a search over (learning rate, label smoothing).

For every training event:

1. Candidates (`candidate_inits`): a fresh initialisation from the task's seed, and the
   backbone of every task trained so far (in the order they were last trained) under a fresh
   head. The first task has one candidate and embeds nothing.
2. Selection (`select_initialisation`): each candidate's backbone embeds the first
   `knn.max_train` train and `knn.max_dev` dev examples (split order, evaluation
   preprocessing); `knn_dev_score` rates the features by a k-NN classifier's dev accuracy
   (mAP for multi-label tasks). The best score wins; ties go to the earliest candidate, fresh
   first, so transfer has to earn its place.
3. Search (`run_trials`): `num_trials` trainings from that initialisation, one per
   (learning rate, label smoothing) of `trial_hparams`. The trial with the lowest *final* dev
   error wins (ties: lowest index) and its *best*-dev parameters are kept, as in the
   reference. Trials run one after another in this process (`trial_workers=1`) or as Ray
   tasks on `trial_workers` local workers; both give the same choice and, on one device, the
   same parameters.

The task's compute is everything it ran: every trial's training and validation, the
embedding (XLA cost analysis of the jitted backbone × batches) and the neighbour search
(2·dev·train·features FLOPs, counted analytically), all as training FLOPs except
validation. Trials keep no mid-task checkpoints: a run killed during a task re-runs that
task's selection and trials from the start (with the same seeds, so to the same result).
Prediction is the independent baseline's: each task predicts with its own stored model.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Sequence
from itertools import islice
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import nnx
from ml_collections import ConfigDict

from nevis import metrics, parallel
from nevis.learners import baseline, per_task, training
from nevis.learners.base import (
    Learner,
    LearnerState,
    ResourceUsage,
    SplitSource,
    TrainContext,
    TrainOutput,
)
from nevis.models import init_params
from nevis.streams import TrainingEvent
from nevis.tasks import TaskKind, TaskSpec

FRESH = "fresh"  # the candidate name of a fresh initialisation; others are "from:<task key>"
LEARNING_RATE_RANGE = (1e-4, 1e-1)  # log-uniform
LABEL_SMOOTHING_RANGE = (0.0, 0.3)  # uniform
RAY_EXTRA_HINT = "pip install -e '.[sweep]'"
PureParams = dict[str, Any]  # nnx.to_pure_dict of a task model's parameters, numpy leaves


# -- k-nearest-neighbour transfer score ---------------------------------------------------------


def _unit_rows(features: np.ndarray) -> np.ndarray:
    features = np.asarray(features, np.float64).reshape(len(features), -1)
    return features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)


def nearest_neighbours(queries: np.ndarray, references: np.ndarray, k: int,
                       chunk: int = 1024) -> np.ndarray:
    """[Q, k] indices of each query's k most cosine-similar references, nearest first.

    Cosine similarity of L2-normalised features (the same order as Euclidean distance between
    the normalised features); equal similarities rank the lower reference index first.
    """
    queries, references = _unit_rows(queries), _unit_rows(references)
    k = min(k, len(references))
    parts = []
    for start in range(0, len(queries), chunk):
        similarity = queries[start:start + chunk] @ references.T
        parts.append(np.argsort(-similarity, axis=1, kind="stable")[:, :k])
    return np.concatenate(parts) if parts else np.zeros((0, k), np.int64)


def majority_vote(neighbour_labels: np.ndarray) -> np.ndarray:
    """[Q] the most frequent label of each row of [Q, k] neighbour labels (nearest first);
    a tie goes to the tied label with the nearer neighbour, so the vote is deterministic."""
    n, k = neighbour_labels.shape
    num_classes = int(neighbour_labels.max(initial=0)) + 1
    rows = np.arange(n)
    votes = np.zeros((n, num_classes), np.int64)
    first_rank = np.full((n, num_classes), k, np.int64)
    for rank in reversed(range(k)):  # nearest last, so it sets first_rank
        votes[rows, neighbour_labels[:, rank]] += 1
        first_rank[rows, neighbour_labels[:, rank]] = rank
    # A vote outweighs any rank difference (< k + 1); absent labels score below present ones.
    return np.argmax(votes * (k + 1) - first_rank, axis=1)


def knn_dev_score(train_feats: np.ndarray, train_labels: np.ndarray, dev_feats: np.ndarray,
                  dev_labels: np.ndarray, kind: TaskKind | str, k: int = 5) -> float:
    """How well features transfer: a k-NN classifier's score on dev, higher is better.

    Neighbours by cosine similarity of L2-normalised features (`nearest_neighbours`).
    Single-label: top-1 accuracy of the neighbours' majority vote (`majority_vote`).
    Multi-label: the mean of the neighbours' multi-hot labels scores each class, and the
    result is the mean average precision over classes with a positive (`nevis.metrics`).
    """
    if len(dev_feats) == 0 or len(train_feats) == 0:
        raise ValueError("k-NN scoring needs at least one train and one dev example.")
    neighbours = nearest_neighbours(dev_feats, train_feats, k)
    labels = np.asarray(train_labels)[neighbours]
    if TaskKind(kind) == TaskKind.SINGLE_LABEL:
        return float(np.mean(majority_vote(labels) == np.asarray(dev_labels)))
    scores = labels.astype(np.float64).mean(axis=1)
    return metrics.multi_label(scores, np.asarray(dev_labels))["mean_average_precision"]


def first_best(scores: Sequence[float | None], *, lowest: bool = False) -> int:
    """Index of the highest (or `lowest`) score, the earliest on ties; missing or NaN scores
    never win unless every score is missing (then index 0)."""
    def key(i: int) -> float:  # smaller is better
        s = scores[i]
        return math.inf if s is None or math.isnan(s) else (s if lowest else -s)

    return min(range(len(scores)), key=lambda i: (key(i), i))


# -- candidates and selection -----------------------------------------------------------------


def previous_tasks(state: LearnerState) -> list[str]:
    """Keys of the tasks trained so far, in the order they were last trained."""
    return sorted(state["models"], key=lambda key: int(state["sequence"][key]))


def candidate_inits(config: ConfigDict, task: TaskSpec, seed: int, state: LearnerState
                    ) -> tuple[nnx.GraphDef, list[str], list[nnx.State]]:
    """(graphdef, names, parameters) of the candidates: the fresh model of `seed`, then per
    previous task that model with the previous task's backbone (the head stays fresh: its
    classes are the new task's)."""
    graphdef, fresh = init_params(lambda: baseline.build_model(config, task, seed))
    names, inits = [FRESH], [fresh]
    for key in previous_tasks(state):
        params = jax.tree.map(lambda x: x, fresh)  # a new State: the fresh one stays intact
        nnx.replace_by_pure_dict(params["backbone"], state["models"][key]["backbone"])
        names.append(f"from:{key}")
        inits.append(params)
    return graphdef, names, inits


def embed_split(evaluator: training.Evaluator, params: nnx.State, source: SplitSource,
                config: ConfigDict, ctx: TrainContext, limit: int
                ) -> tuple[np.ndarray, np.ndarray, int]:
    """(features, labels, batches run) of the first `limit` examples of a split, in split order
    (evaluation preprocessing, padding dropped)."""
    batch_size = parallel.round_batch_size(config.eval_batch_size, ctx.mesh)
    count = min(limit, len(source))
    num_batches = -(-count // batch_size)
    batches = training.batch_iterator(source, config, ctx.mesh, train=False,
                                      process_index=ctx.process_index,
                                      process_count=ctx.process_count)
    label_field = source.spec.kind.label_field
    features, labels = [], []
    try:
        for batch in islice(batches, num_batches):
            feats = evaluator(params, batch)
            rows = parallel.gather_rows({k: v for k, v in batch.items() if k != "image"})
            keep = rows["mask"] & (rows["index"] < count)
            features.append(feats[keep])
            labels.append(rows[label_field][keep])
    finally:
        if hasattr(batches, "close"):
            batches.close()
    return np.concatenate(features), np.concatenate(labels), num_batches


@dataclasses.dataclass(frozen=True)
class Selection:
    index: int  # of the chosen candidate
    scores: list[float | None]  # per candidate; None when there was nothing to choose from
    flops: float  # embedding (XLA) + neighbour search (analytic)
    train_examples: int = 0
    dev_examples: int = 0


def select_initialisation(config: ConfigDict, task: TaskSpec, graphdef: nnx.GraphDef,
                          inits: Sequence[nnx.State], ctx: TrainContext) -> Selection:
    """Scores every candidate's backbone with `knn_dev_score`; the best (earliest on ties)."""
    if len(inits) == 1:
        return Selection(0, [None], 0.0)
    evaluator = training.Evaluator(lambda p, x: nnx.merge(graphdef, p).backbone(x), ctx.mesh)
    train_source, dev_source = ctx.data(task, "train"), ctx.data(task, "dev")
    batch_size = parallel.round_batch_size(config.eval_batch_size, ctx.mesh)
    scores, flops = [], 0.0
    for params in inits:
        params = parallel.replicate(params, ctx.mesh)
        train_x, train_y, train_batches = embed_split(evaluator, params, train_source, config,
                                                      ctx, config.knn.max_train)
        dev_x, dev_y, dev_batches = embed_split(evaluator, params, dev_source, config, ctx,
                                                config.knn.max_dev)
        scores.append(knn_dev_score(train_x, train_y, dev_x, dev_y, task.kind, config.knn.k))
        batch_flops = evaluator.cost(params, batch_size, config.image_size)
        search_flops = 2.0 * len(dev_x) * len(train_x) * int(np.prod(train_x.shape[1:]))
        flops += batch_flops * (train_batches + dev_batches) + search_flops
    return Selection(first_best(scores), scores, flops, len(train_x), len(dev_x))


# -- the per-task search --------------------------------------------------------------------


def trial_hparams(seed: int, n: int) -> list[tuple[float, float]]:
    """n (learning rate, label smoothing) pairs: learning rates log-uniform and smoothings
    uniform over their ranges, drawn as two arrays from one generator seeded by `seed`."""
    rng = np.random.default_rng(seed)
    low, high = np.log(LEARNING_RATE_RANGE[0]), np.log(LEARNING_RATE_RANGE[1])
    learning_rates = np.exp(rng.uniform(low, high, n))
    smoothings = rng.uniform(*LABEL_SMOOTHING_RANGE, n)
    return [(float(lr), float(ls)) for lr, ls in zip(learning_rates, smoothings, strict=True)]


def trial_config(config: ConfigDict, learning_rate: float, label_smoothing: float) -> ConfigDict:
    """A copy of `config` that trains with the trial's learning rate and label smoothing."""
    trial = ConfigDict(config.to_dict())
    trial.optimizer.learning_rate = learning_rate
    trial.label_smoothing = label_smoothing
    return trial


def _no_checkpoint_save(tree: Any, notes: dict[str, Any]) -> None:
    del tree, notes


def _no_checkpoint_restore(template: Any) -> None:
    del template


def trial_context(ctx: TrainContext) -> TrainContext:
    """`ctx` without mid-task checkpoints or step logging: trials of one task would overwrite
    each other's (a killed task re-runs all its trials instead)."""
    return dataclasses.replace(ctx, save_checkpoint=_no_checkpoint_save,
                               restore_checkpoint=_no_checkpoint_restore, metrics_writer=None)


@dataclasses.dataclass(frozen=True)
class TrialResult:
    params: PureParams  # the trial's best-dev parameters
    resources: ResourceUsage
    info: dict[str, Any]  # training.train_task's


def run_trial(config: ConfigDict, task: TaskSpec, seed: int, init: PureParams,
              hparams: tuple[float, float], ctx: TrainContext) -> TrialResult:
    """One trial: `training.train_task` from `init` with the trial's hyper-parameters.

    Every trial of a task shares its seed (data order, augmentation), so trials differ only in
    their hyper-parameters. The same code runs in this process and on a Ray worker.
    """
    learning_rate, label_smoothing = hparams
    abstract = nnx.eval_shape(lambda: baseline.build_model(config, task, seed))
    graphdef, params = nnx.split(abstract, nnx.Param)
    nnx.replace_by_pure_dict(params, init)

    def logits_fn(params, images):
        return nnx.merge(graphdef, params)(images)

    def loss_fn(params, batch, rng):
        del rng  # deterministic model
        logits = logits_fn(params, batch["image"])
        return training.classification_loss(logits, batch, task.kind, label_smoothing), {}

    best, resources, info = training.train_task(
        task=task, params=params, loss_fn=loss_fn, logits_fn=logits_fn,
        config=trial_config(config, learning_rate, label_smoothing), ctx=trial_context(ctx),
        seed=seed,
    )
    return TrialResult(nnx.to_pure_dict(best), resources, info)


def _trial_on_worker(config: dict[str, Any], task: TaskSpec, seed: int, init: PureParams,
                     hparams: tuple[float, float], data_dir: str) -> TrialResult:
    """A Ray task: one trial on its own data access and a 1-device mesh."""
    from nevis.datasets import DataAccess  # a worker opens the data itself

    ctx = TrainContext(
        data=DataAccess(Path(data_dir), show_progress=False).open,
        mesh=parallel.make_mesh(1),
        save_checkpoint=_no_checkpoint_save,
        restore_checkpoint=_no_checkpoint_restore,
        checkpoint_every=2**62,
        show_progress=False,
        data_dir=Path(data_dir),
    )
    return run_trial(ConfigDict(config), task, seed, init, hparams, ctx)


def _import_ray():
    try:
        import ray
    except ImportError as e:
        raise ImportError(
            f"learner.trial_workers > 1 runs trials on Ray, which is not installed; install the "
            f"`sweep` extra ({RAY_EXTRA_HINT}) or set --config.learner.trial_workers=1."
        ) from e
    return ray


def run_trials(config: ConfigDict, task: TaskSpec, seed: int, init: PureParams,
               hparams: Sequence[tuple[float, float]], ctx: TrainContext) -> list[TrialResult]:
    """Every trial, in trial order: here one after another (`config.trial_workers` = 1), or
    as Ray tasks, at most `trial_workers` at a time (Ray started locally if it is not)."""
    workers = int(config.trial_workers)
    if workers <= 1:
        return [run_trial(config, task, seed, init, hp, ctx) for hp in hparams]
    if ctx.data_dir is None:
        raise ValueError("learner.trial_workers > 1 needs the run's data directory "
                         "(TrainContext.data_dir) so that workers can open the data.")
    if ctx.process_count > 1:
        raise ValueError("learner.trial_workers > 1 is not supported in a multi-process run.")
    ray = _import_ray()
    if not ray.is_initialized():  # a local Ray sized for the trials, or $RAY_ADDRESS's
        local = {} if os.environ.get("RAY_ADDRESS") else {"num_cpus": workers}
        ray.init(include_dashboard=False, log_to_driver=False, **local)
    remote = ray.remote(num_cpus=1)(_trial_on_worker)
    shared = (config.to_dict(), task, seed, ray.put(init))
    data_dir = str(Path(ctx.data_dir).expanduser().absolute())
    refs, running = [], []
    for hp in hparams:
        if len(running) >= workers:
            _, running = ray.wait(running, num_returns=1)
        ref = remote.remote(*shared, tuple(hp), data_dir)
        refs.append(ref)
        running.append(ref)
    return ray.get(refs)


def _final_error(result: TrialResult) -> float | None:
    """What selects a trial: its last validation's dev error; None (never chosen while
    another trial has one) when it diverged."""
    return None if result.info.get("diverged_at_step") else result.info.get("final_dev_error")


def trial_summary(hparams: tuple[float, float], result: TrialResult) -> dict[str, Any]:
    """One trial as the training record lists it."""
    out = {"learning_rate": hparams[0], "label_smoothing": hparams[1],
           "final_dev_error": result.info.get("final_dev_error"),
           "best_dev_error": result.info.get("best_dev_error"),
           "train_flops": result.resources.train_flops,
           "validation_flops": result.resources.validation_flops,
           "steps_run": result.resources.train_steps}
    if result.info.get("diverged_at_step"):
        out["diverged_at_step"] = result.info["diverged_at_step"]
    return out


# -- the learner ----------------------------------------------------------------------------


def init_state() -> LearnerState:
    """The skeleton's state, plus when each task was last trained (`sequence`, a counter over
    training events) so that candidates keep stream order through a checkpoint."""
    return {**per_task.init_state(), "sequence": {}}


def remember(config: ConfigDict, state: LearnerState, task: TaskSpec, seed: int,
             params: PureParams) -> LearnerState:
    """The state after training `task` to `params`: the skeleton's (`per_task.after_training`,
    nothing carried) and the task's place in the training order."""
    _, model = nnx.split(nnx.eval_shape(lambda: baseline.build_model(config, task, seed)),
                         nnx.Param)
    nnx.replace_by_pure_dict(model, params)
    trained_so_far = sum(int(v) for v in state["trained"].values())
    return {
        **per_task.after_training(state, task, model, carried_parts=()),
        "sequence": {**state["sequence"], task.key: np.int64(trained_so_far)},
    }


def _validate(config: ConfigDict) -> None:
    if config.strategy != "independent":
        raise ValueError(f"learner.strategy={config.strategy!r}: the dynamic learner chooses "
                         "each task's initialisation itself; use strategy 'independent'.")
    for key, value in (("num_trials", config.num_trials), ("trial_workers", config.trial_workers),
                       ("knn.k", config.knn.k), ("knn.max_train", config.knn.max_train),
                       ("knn.max_dev", config.knn.max_dev)):
        if value < 1:
            raise ValueError(f"learner.{key}={value} must be a positive integer.")


def make_learner(config: ConfigDict) -> Learner:
    """The dynamic learner: the baseline's model and prediction, its own training."""
    _validate(config)
    base = baseline.make_learner(config)  # checks the model and training config; predicts

    def train(event: TrainingEvent, state: LearnerState, ctx: TrainContext) -> TrainOutput:
        t0 = time.perf_counter()
        task = event.task
        seed = per_task.task_seed(config.seed, task, per_task.occurrence(state, task))
        graphdef, names, inits = candidate_inits(config, task, seed, state)
        selection = select_initialisation(config, task, graphdef, inits, ctx)
        init = jax.device_get(nnx.to_pure_dict(inits[selection.index]))
        hparams = trial_hparams(seed, config.num_trials)
        results = run_trials(config, task, seed, init, hparams, ctx)
        chosen = first_best([_final_error(r) for r in results], lowest=True)
        resources = ResourceUsage(train_flops=selection.flops)
        for result in results:
            resources = resources + result.resources
        info = {
            **results[chosen].info,  # the kept model's training (best step, losses, ...)
            "steps_run": resources.train_steps,  # over all trials, as the resources count
            "train_seconds": time.perf_counter() - t0,
            "candidates": names,
            "candidate_scores": selection.scores,
            "chosen_candidate": names[selection.index],
            "knn_flops": selection.flops,
            "knn_train_examples": selection.train_examples,
            "knn_dev_examples": selection.dev_examples,
            "num_trials": len(results),
            "trials": [trial_summary(hp, r) for hp, r in zip(hparams, results, strict=True)],
            "chosen_trial": chosen,
        }
        new_state = remember(config, state, task, seed, results[chosen].params)
        return TrainOutput(new_state, resources, info)

    return dataclasses.replace(base, name=config.name, init=init_state, train=train)
