"""Harness overhead, side by side in one process: (a) training steps/s of the harness's
per-task loop ÷ a bare `jax.jit` loop over the same model, optimiser and batches, and
(b) loader examples/s ÷ model training examples/s.

    python benchmarks/harness_throughput.py [--learner=independent] [--task=mnist_5k]
        [--steps=150] [--repeats=3] [--num_devices=N]

The bare loop gets its batches pre-loaded on the device; the harness reads them through the
loader (decode, augmentation, prefetch thread), shards them, checks every step's loss and
updates a progress bar. Alternating repeats keep the ratio fair on a busy machine.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import jax
import numpy as np
import optax
from flax import nnx

from nevis import configs, parallel
from nevis.data import embedded, loader, storage
from nevis.learners import training
from nevis.learners.base import TrainContext
from nevis.learners.finetune import init_task_model
from nevis.learners.optim import make_optimizer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--learner", default="independent")
    parser.add_argument("--task", default="mnist_5k")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--num_devices", type=int, default=None)
    parser.add_argument("--data_dir", default=None)
    args = parser.parse_args()

    data_dir = Path(args.data_dir or tempfile.mkdtemp(prefix="nevis_bench_"))
    spec = embedded.embedded_dataset(args.task).spec
    embedded.prepare_embedded(spec, data_dir, progress=False)
    source = storage.open_split(spec, "train", data_dir)
    dev = storage.open_split(spec, "dev", data_dir)
    config = configs.learner_config(args.learner)
    config.min_steps = config.max_steps = args.steps
    config.eval_every = 10**9  # validate only at the end (excluded from the steady rate)
    mesh = parallel.make_mesh(args.num_devices)
    graphdef, params0 = init_task_model(config, spec, seed=0)

    def logits_fn(p, images):
        return nnx.merge(graphdef, p)(images)

    def loss_fn(p, batch, rng):
        del rng
        logits = logits_fn(p, batch["image"])
        return training.classification_loss(logits, batch, spec.kind, config.label_smoothing), {}

    ctx = TrainContext(
        data=lambda task, split: source if split == "train" else dev, mesh=mesh,
        save_checkpoint=lambda *_: None, restore_checkpoint=lambda _: None,
        checkpoint_every=10**9, show_progress=True,
    )

    def harness() -> float:
        _, _, info = training.train_task(task=spec, params=params0, loss_fn=loss_fn,
                                         logits_fn=logits_fn, config=config, ctx=ctx, seed=0)
        return info["steady_steps_per_second"]

    tx = make_optimizer(config.optimizer, args.steps)
    host_batches = list(
        b for _, b in zip(range(args.steps), training.batch_iterator(
            source, config, mesh, train=True, seed=0), strict=False)
    )
    device_batches = [parallel.shard_batch(b, mesh) for b in host_batches]

    @jax.jit
    def bare_step(p, o, b):
        loss, grads = jax.value_and_grad(lambda q: loss_fn(q, b, None)[0])(p)
        updates, o = tx.update(grads, o, p)
        return optax.apply_updates(p, updates), o, loss

    def bare() -> float:
        p = parallel.replicate(params0, mesh)
        o = jax.jit(tx.init)(p)
        for b in device_batches[: training.WARMUP_STEPS]:
            p, o, loss = bare_step(p, o, b)
        jax.block_until_ready(loss)
        t = time.perf_counter()
        for b in device_batches[training.WARMUP_STEPS:]:
            p, o, loss = bare_step(p, o, b)
        jax.block_until_ready(loss)
        return (len(device_batches) - training.WARMUP_STEPS) / (time.perf_counter() - t)

    def loader_rate() -> float:
        it = loader.batches(source, batch_size=config.batch_size, image_size=config.image_size,
                            shuffle=True, seed=1, augment=training.augment_from_config(
                                config.augment), repeat=True)
        next(it)  # the cache is filled by the harness runs; time steady batches
        t = time.perf_counter()
        n = 200
        for _ in range(n):
            next(it)
        it.close()
        return n * config.batch_size / (time.perf_counter() - t)

    rows = []
    for r in range(args.repeats):
        rows.append((harness(), bare(), loader_rate()))
        print(f"repeat {r}: harness {rows[-1][0]:.2f} steps/s, bare {rows[-1][1]:.2f} steps/s, "
              f"loader {rows[-1][2]:.0f} examples/s")
    h, b, ld = (float(np.median(c)) for c in zip(*rows, strict=True))
    model_examples = b * config.batch_size
    print(f"\n{args.learner} on {args.task}, batch {config.batch_size}, "
          f"{config.image_size}px, {mesh.size} device(s), medians of {args.repeats}:")
    print(f"(a) harness {h:.2f} steps/s / bare jit {b:.2f} steps/s = {h / b:.3f}  (goal >= 0.97)")
    print(f"(b) loader {ld:.0f} examples/s / model {model_examples:.0f} examples/s = "
          f"{ld / model_examples:.1f}  (goal >= 5)")


if __name__ == "__main__":
    main()
