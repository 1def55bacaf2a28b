"""The per-task training loop shared by every gradient-trained learner.

A learner supplies its parameters and two pure functions: `loss_fn(params, batch, rng)` and
`logits_fn(params, images)`. This module does the rest: data-parallel steps, validation on
`dev` with best-on-dev selection, mid-task checkpoints (one `TaskProgress` record), the
compute it spent (priced by `nevis.learners.flops`) and a progress bar.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh
from ml_collections import ConfigDict

from nevis import metrics, parallel, progress
from nevis.data import loader
from nevis.data.augment import Augment
from nevis.learners.base import ResourceUsage, SplitSource, TrainContext
from nevis.learners.flops import count_parameters, lowered_flops
from nevis.learners.optim import make_optimizer
from nevis.tasks import TaskKind, TaskSpec

LossFn = Callable[[Any, dict[str, jax.Array], jax.Array], tuple[jax.Array, dict[str, jax.Array]]]
LogitsFn = Callable[[Any, jax.Array], jax.Array]


def classification_loss(
    logits: jax.Array, batch: dict[str, jax.Array], kind: TaskKind, label_smoothing: float
) -> jax.Array:
    """Mean over unmasked rows of softmax or per-class sigmoid cross-entropy."""
    labels = batch[kind.label_field]
    if kind == TaskKind.SINGLE_LABEL:
        targets = optax.smooth_labels(jax.nn.one_hot(labels, logits.shape[-1]), label_smoothing)
        per_example = optax.softmax_cross_entropy(logits, targets)
    else:
        targets = labels * (1 - label_smoothing) + 0.5 * label_smoothing
        per_example = optax.sigmoid_binary_cross_entropy(logits, targets).mean(-1)
    mask = batch["mask"].astype(per_example.dtype)
    return (per_example * mask).sum() / jnp.maximum(mask.sum(), 1.0)


def num_train_steps(config: ConfigDict, num_examples: int) -> int:
    steps = math.ceil(config.epochs * num_examples / config.batch_size)
    return int(min(max(steps, config.min_steps), config.max_steps))


_FLIP = {"auto": None, "true": True, "yes": True, "false": False, "no": False}


def augment_from_config(config: ConfigDict) -> Augment | None:
    """{enabled, crop_padding, flip: auto|true|false} → the loader's augmentation."""
    if not config.enabled:
        return None
    flip = str(config.flip).lower()
    if flip not in _FLIP:
        raise ValueError(f"augment.flip={config.flip!r}; valid choices: auto, true, false.")
    return Augment(crop_padding=config.crop_padding, flip=_FLIP[flip])


def validate_config(config: ConfigDict) -> None:
    """Fails on bad names or values now, before any work, rather than at the first task."""
    make_optimizer(config.optimizer, 10)
    augment_from_config(config.augment)
    for key in ("batch_size", "eval_batch_size", "image_size", "max_steps", "eval_every",
                "log_every"):
        if config[key] < 1:
            raise ValueError(f"learner.{key}={config[key]} must be a positive integer.")


def batch_iterator(
    source: SplitSource, config: ConfigDict, mesh: Mesh, *, train: bool, start_batch: int = 0,
    process_index: int = 0, process_count: int = 1, seed: int = 0,
) -> Iterator[dict[str, np.ndarray]]:
    batch_size = config.batch_size if train else parallel.round_batch_size(
        config.eval_batch_size, mesh
    )
    return loader.batches(
        source,
        batch_size=batch_size,
        image_size=config.image_size,
        shuffle=train,
        seed=seed,
        augment=augment_from_config(config.augment) if train else None,
        repeat=train,
        start_batch=start_batch,
        process_index=process_index,
        process_count=process_count,
    )


@dataclasses.dataclass
class Evaluator:
    """Jitted, sharded logits over padded batches; counts its FLOPs."""

    logits_fn: LogitsFn
    mesh: Mesh
    batches_run: int = 0

    def __post_init__(self):
        self._jitted = jax.jit(self.logits_fn)

    def __call__(self, params: Any, batch: dict[str, np.ndarray]) -> np.ndarray:
        images = parallel.shard_batch({"image": batch["image"]}, self.mesh)["image"]
        self.batches_run += 1
        return parallel.to_host(self._jitted(params, images))

    def cost(self, params: Any, batch_size: int, image_size: int) -> float:
        """FLOPs of one batch, from shapes alone."""
        images = jax.ShapeDtypeStruct((batch_size, image_size, image_size, 3), jnp.float32)
        return lowered_flops(self._jitted.lower(params, images))


def evaluate_error(
    evaluator: Evaluator, params: Any, source: SplitSource, config: ConfigDict, ctx: TrainContext
) -> float:
    """Error (1 - top-1, or 1 - mAP) of `params` on a whole split, padding excluded."""
    spec = source.spec
    state = metrics.init(spec.kind, spec.num_classes)
    for batch in batch_iterator(source, config, ctx.mesh, train=False,
                                process_index=ctx.process_index, process_count=ctx.process_count):
        logits = evaluator(params, batch)
        full = parallel.gather_rows({k: v for k, v in batch.items() if k != "image"})
        state = metrics.update(state, full[spec.kind.label_field], logits, full["mask"],
                               full["index"])
    return metrics.result(state)["error"]


_copy = jax.jit(lambda tree: jax.tree.map(jnp.copy, tree))


WARMUP_STEPS = 5  # steps excluded from the steady-state rate (compilation, cache fills)


class _SteadyClock:
    """Training steps/s after warm-up, excluding validation: the harness's own overhead."""

    def __init__(self, first_step: int):
        self.first_step = first_step
        self.start: float | None = None
        self.paused, self.steps, self.last = 0.0, 0, None

    def tick(self, done: int, out) -> None:
        if done == self.first_step:
            jax.block_until_ready(out)
            self.start = time.perf_counter()
        elif self.start is not None:
            self.steps = done - self.first_step
            self.last = out

    def pause(self, out) -> None:
        if self.start is not None:
            jax.block_until_ready(out)
            self._t = time.perf_counter()

    def resume(self) -> None:
        if self.start is not None:
            self.paused += time.perf_counter() - self._t

    def rate(self) -> float | None:
        if self.start is None or not self.steps:
            return None
        jax.block_until_ready(self.last)
        return self.steps / (time.perf_counter() - self.start - self.paused)


class _AuxStats:
    """Mean and max of each scalar a step reports (since the last resume), and the last."""

    def __init__(self):
        self.sums: dict[str, float] = {}
        self.maxs: dict[str, float] = {}
        self.count = 0
        self.last: dict[str, float] = {}

    def add(self, step: int, out: dict[str, jax.Array]) -> bool:
        """Records one step's outputs; False if its loss is not finite (divergence)."""
        del step
        values = {k: float(v) for k, v in jax.device_get(out).items()}
        if not math.isfinite(values["loss"]):
            return False
        self.count += 1
        self.last = values
        for k, v in values.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
            self.maxs[k] = max(self.maxs.get(k, -math.inf), v)
        return True

    def state(self) -> dict[str, Any]:
        return {"sums": self.sums, "maxs": self.maxs, "count": self.count, "last": self.last}

    def load(self, state: dict[str, Any]) -> None:
        self.sums, self.maxs = dict(state.get("sums", {})), dict(state.get("maxs", {}))
        self.count, self.last = state.get("count", 0), dict(state.get("last", {}))

    def summary(self) -> dict[str, float]:
        out = {f"final_{k}": v for k, v in self.last.items()}
        for k in self.sums:
            if k != "loss":
                out[f"{k}_mean"] = self.sums[k] / self.count
                out[f"{k}_max"] = self.maxs[k]
        return out


@dataclasses.dataclass(frozen=True)
class TaskProgress:
    """Where training of one task stands: what a mid-task checkpoint holds."""

    step: int
    params: Any
    opt_state: Any
    best_params: Any
    best_dev_error: float = math.inf
    best_step: int = 0
    evaluations: int = 0

    def to_tree(self) -> dict[str, Any]:
        """The checkpointed pytree (scalars as numpy values, so orbax stores them)."""
        return {"step": np.int64(self.step), "params": self.params,
                "opt_state": self.opt_state, "best_params": self.best_params,
                "best_dev_error": np.float64(self.best_dev_error),
                "best_step": np.int64(self.best_step), "evaluations": np.int64(self.evaluations)}

    @classmethod
    def from_tree(cls, tree: dict[str, Any]) -> TaskProgress:
        return cls(step=int(tree["step"]), params=tree["params"], opt_state=tree["opt_state"],
                   best_params=tree["best_params"],
                   best_dev_error=float(tree["best_dev_error"]),
                   best_step=int(tree["best_step"]), evaluations=int(tree["evaluations"]))


class _LateOutputs:
    """A step's outputs read one step late, so the device never waits for the host.

    `push` queues a step's outputs and reads the previous step's; `flush` reads what is
    queued now. Both return the step whose loss was not finite (divergence), or None.
    """

    def __init__(self, aux: _AuxStats):
        self.aux = aux
        self.pending: tuple[int, Any] | None = None

    def push(self, step: int, out: Any) -> int | None:
        diverged = self.flush()
        self.pending = (step, out)
        return diverged

    def flush(self) -> int | None:
        if self.pending is None:
            return None
        step, out = self.pending
        self.pending = None
        return None if self.aux.add(step, out) else step


def train_task(
    *,
    task: TaskSpec,
    params: Any,
    loss_fn: LossFn,
    logits_fn: LogitsFn,
    config: ConfigDict,
    ctx: TrainContext,
    seed: int,
    observers: dict[str, Any] | None = None,
) -> tuple[Any, ResourceUsage, dict[str, Any]]:
    """Trains `params` on the task's train split; returns the best-on-dev parameters.

    `observers` are the learner's own running statistics (objects with `state() -> dict`
    and `load(dict)`), checkpointed with the task so a resumed task reports what an
    uninterrupted one would.
    """
    mesh = ctx.mesh
    if config.batch_size % mesh.size:
        raise ValueError(
            f"batch_size={config.batch_size} is not divisible by the {mesh.size} devices in use;"
            f" set --config.learner.batch_size to a multiple of {mesh.size} or --num_devices."
        )
    train_source, dev_source = ctx.data(task, "train"), ctx.data(task, "dev")
    num_steps = num_train_steps(config, len(train_source))
    tx = make_optimizer(config.optimizer, num_steps)
    progress_record = TaskProgress(step=0, params=params, opt_state=jax.jit(tx.init)(params),
                                   best_params=params)
    aux = _AuxStats()
    observers = {"aux": aux, **(observers or {})}
    restored = ctx.restore_checkpoint(progress_record.to_tree())
    if restored is not None:
        tree, notes = restored
        progress_record = TaskProgress.from_tree(tree)
        for name, observer in observers.items():
            observer.load(notes.get(name, {}))
    step0 = progress_record.step
    # Copies: the step donates its inputs, and the caller's arrays must survive.
    carry = _copy(parallel.replicate((progress_record.params, progress_record.opt_state), mesh))
    best = _copy(parallel.replicate(progress_record.best_params, mesh))  # never aliases `carry`
    best_error, best_step = progress_record.best_dev_error, progress_record.best_step
    evaluations = progress_record.evaluations

    def step_fn(carry, batch, step):
        params, opt_state = carry
        rng = jax.random.fold_in(jax.random.key(seed), step)
        (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, batch, rng)
        updates, opt_state = tx.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        return (params, opt_state), {"loss": loss, **aux}

    jitted = jax.jit(step_fn, donate_argnums=0)
    evaluator = Evaluator(logits_fn, mesh)
    batches = batch_iterator(train_source, config, mesh, train=True, start_batch=step0,
                             process_index=ctx.process_index, process_count=ctx.process_count,
                             seed=seed)
    train_flops_per_step, compiled = 0.0, None
    # `resumed_from_step`: where a mid-task checkpoint restarted training (0: from the start).
    info: dict[str, Any] = {"num_steps": num_steps, "resumed_from_step": step0}
    bar = progress.bar(total=num_steps, initial=step0, desc=f"train {task.key}", unit="step",
                       enabled=ctx.show_progress and ctx.process_index == 0, leave=False)
    t0 = time.perf_counter()
    steady = _SteadyClock(first_step=step0 + WARMUP_STEPS)
    outputs = _LateOutputs(aux)
    diverged: int | None = None  # the step whose loss (or dev logits) stopped being finite
    final_error: float | None = None  # the last validation's dev error (None: none finished)
    reason = "non-finite training loss"
    try:
        for step in range(step0, num_steps):
            batch = parallel.shard_batch(next(batches), mesh)
            if compiled is None:  # compile ahead of time: its cost and memory are reported
                lowered = jitted.lower(carry, batch, step)
                train_flops_per_step = lowered_flops(lowered)
                compiled = lowered.compile()
                memory = compiled.memory_analysis()
                if memory is not None:
                    info["step_temp_bytes"] = int(memory.temp_size_in_bytes)
            carry, out = compiled(carry, batch, step)
            done = step + 1
            steady.tick(done, out)
            if diverged := outputs.push(done, out):
                break
            bar.update(1)
            if done % config.log_every == 0:
                if ctx.metrics_writer is not None:  # this step's own values: a device sync
                    if diverged := outputs.flush():
                        break
                    ctx.metrics_writer(done, aux.last)
                bar.set_postfix(loss=f"{aux.last.get('loss', math.nan):.3f}", refresh=False)
            if done % config.eval_every == 0 or done == num_steps:
                if diverged := outputs.flush():
                    break
                steady.pause(out)
                evaluations += 1  # counted (FLOPs) even when it stops at non-finite logits
                try:
                    error = evaluate_error(evaluator, carry[0], dev_source, config, ctx)
                except FloatingPointError:
                    # Non-finite dev logits: the parameters diverged although the loss did not
                    # (yet). Keep the best-on-dev parameters so far, as for a NaN loss.
                    diverged, reason = done, "non-finite validation logits"
                    final_error = None
                    break
                finally:
                    steady.resume()
                final_error = error
                if error < best_error:
                    best_error, best_step = error, done
                    best = _copy(carry[0])  # the step donates its input buffers
                if ctx.metrics_writer is not None:
                    ctx.metrics_writer(done, {"dev_error": error, "best_dev_error": best_error})
                bar.set_postfix(loss=f"{aux.last.get('loss', math.nan):.3f}",
                                dev_error=f"{error:.3f}", refresh=False)
            if done % ctx.checkpoint_every == 0 and done < num_steps:
                if diverged := outputs.flush():  # the notes must include this step
                    break
                ctx.save_checkpoint(TaskProgress(
                    step=done, params=carry[0], opt_state=carry[1], best_params=best,
                    best_dev_error=best_error, best_step=best_step, evaluations=evaluations,
                ).to_tree(), {name: o.state() for name, o in observers.items()})
    finally:
        bar.close()
        if hasattr(batches, "close"):
            batches.close()
    if diverged:
        info.update(diverged_at_step=diverged, diverged_reason=reason)
    steps_run = diverged or num_steps  # counted from 0, resumed or not
    eval_batch = parallel.round_batch_size(config.eval_batch_size, mesh)
    dev_batches = -(-len(dev_source) // eval_batch)
    eval_flops = evaluator.cost(best, eval_batch, config.image_size) * dev_batches * evaluations
    # Diverged before any validation: `best` is still the starting point.
    count, nbytes = count_parameters(best)
    # `final_dev_error`: what a search that selects on the last validation compares.
    info.update(best_dev_error=best_error if math.isfinite(best_error) else None,
                final_dev_error=final_error,
                best_step=best_step, evaluations=evaluations, steps_run=steps_run,
                steady_steps_per_second=steady.rate(),
                dev_batches=dev_batches, train_seconds=time.perf_counter() - t0,
                **aux.summary())
    resources = ResourceUsage(
        train_flops=train_flops_per_step * steps_run,
        validation_flops=eval_flops,
        train_steps=steps_run,
        peak_parameter_count=count,
        peak_parameter_bytes=nbytes,
    )
    return jax.device_get(best), resources, info
