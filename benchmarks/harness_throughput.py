"""Harness overhead, side by side in one process: (a) training steps/s of the harness's
per-task loop ÷ a bare `jax.jit` loop over the same model, loss, optimiser and batches, and
(b) loader examples/s ÷ model training examples/s.

    python benchmarks/harness_throughput.py [--learner=independent|finetune|deq]
        [--task=mnist_5k] [--steps=150] [--repeats=3] [--num_devices=N]
        [--set image_size=16 --set deq.max_steps=8 ...]   # learner config overrides

The harness side is the learner's own `train` (the public learner API, as
`python -m nevis.run` calls it): it reads batches through the loader (decode, augmentation,
prefetch thread), shards them, checks every step's loss, keeps the learner's statistics and
updates a progress bar. Its clock is the benchmark's own: the learner's training context is
asked to checkpoint every K = (steps - 1) // 2 steps, and the hook (which saves nothing)
waits for the parameters and reads the time at steps K and 2K, so the rate covers exactly K
steady training steps -- not compilation, validation, the prefetch thread's shutdown or the
FLOP-counting lowering after the loop, which the harness's own `steady_steps_per_second`
includes (printed alongside for comparison).

The bare side runs the very loss function and parameters the learner handed to the shared
training loop (captured by wrapping `nevis.learners.training.train_task` for the first
harness run), with the same optimiser, rng per step and buffer donation, on batches
pre-loaded on the device; it reads each step's loss one step late, as the harness does
(unbounded asynchronous dispatch was slower for the DEQ step, whose adjoint statistics
leave by host callback: 7.6-9.0 against 10.3 steps/s on a shared 2-core CPU).
Alternating repeats keep the ratio fair on a busy machine.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import jax
import numpy as np
import optax
from ml_collections import ConfigDict

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # experiments/ configs import it
from nevis import configs, learners, parallel
from nevis.data import embedded, loader, storage
from nevis.learners import training
from nevis.learners.base import TrainContext
from nevis.learners.optim import make_optimizer
from nevis.streams import TrainingEvent


@contextlib.contextmanager
def capture_train_task(store: dict):
    """Record the keyword arguments a learner passes to the shared training loop."""
    original = training.train_task

    def wrapper(**kwargs):
        store.setdefault("kwargs", kwargs)
        return original(**kwargs)

    training.train_task = wrapper
    try:
        yield store
    finally:
        training.train_task = original


def apply_override(config: ConfigDict, item: str) -> None:
    """KEY=VALUE (KEY dotted, e.g. deq.max_steps) into the learner config, or exit."""
    key, sep, value = item.partition("=")
    *path, leaf = key.split(".")
    node = config
    for part in path:
        if not isinstance(node.get(part), ConfigDict):
            raise SystemExit(f"--set {item}: {part!r} is not a config group; valid: "
                             f"{', '.join(sorted(node.keys()))}")
        node = node[part]
    if not sep or leaf not in node:
        raise SystemExit(f"--set {item}: expected KEY=VALUE with KEY one of "
                         f"{', '.join(sorted(node.keys()))}")
    node[leaf] = value if isinstance(node[leaf], str) else ast.literal_eval(value)


class HookClock:
    """Times the steps between two mid-task checkpoint hooks (steps K and 2K)."""

    def __init__(self):
        self.marks: list[float] = []

    def save(self, state, notes) -> None:
        del notes
        jax.block_until_ready(state["params"])
        self.marks.append(time.perf_counter())

    def rate(self, every: int) -> float:
        if len(self.marks) < 2:
            raise RuntimeError("the training loop called the checkpoint hook "
                               f"{len(self.marks)} time(s); need 2 (steps {every}, {2 * every})")
        return every / (self.marks[1] - self.marks[0])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--learner", default="independent")
    parser.add_argument("--task", default="mnist_5k")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--num_devices", type=int, default=None)
    parser.add_argument("--data_dir", default=None)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="learner config override, e.g. --set image_size=16")
    args = parser.parse_args()
    if args.steps < 2 * training.WARMUP_STEPS + 1:
        parser.error(f"--steps={args.steps} too small; need >= {2 * training.WARMUP_STEPS + 1} "
                     "(K = (steps - 1) // 2 warm-up steps, then K timed steps)")

    data_dir = Path(args.data_dir or tempfile.mkdtemp(prefix="nevis_bench_"))
    spec = embedded.embedded_dataset(args.task).spec
    embedded.prepare_embedded(spec, data_dir, progress=False)
    source = storage.open_split(spec, "train", data_dir)
    dev = storage.open_split(spec, "dev", data_dir)
    config = configs.learner_config(args.learner)
    config.min_steps = config.max_steps = args.steps
    for item in args.set:
        apply_override(config, item)
    config.eval_every = 10**9  # validate only at the end (outside the timed window)
    every = (args.steps - 1) // 2  # hooks at K and 2K < steps
    mesh = parallel.make_mesh(args.num_devices)
    learner = learners.make_learner(config)
    event = TrainingEvent(task=spec, year=spec.year)

    def harness() -> tuple[float, float]:
        clock = HookClock()
        ctx = TrainContext(
            data=lambda task, split: source if split == "train" else dev, mesh=mesh,
            save_checkpoint=clock.save, restore_checkpoint=lambda _: None,
            checkpoint_every=every, show_progress=True,
        )
        out = learner.train(event, learner.init(), ctx)
        return clock.rate(every), out.info["steady_steps_per_second"]

    captured: dict = {}
    with capture_train_task(captured):
        first = harness()
    kw = captured["kwargs"]
    loss_fn, params0, seed = kw["loss_fn"], kw["params"], kw["seed"]
    num_steps = training.num_train_steps(kw["config"], len(source))
    tx = make_optimizer(kw["config"].optimizer, num_steps)
    host_batches = [b for _, b in zip(range(num_steps), training.batch_iterator(
        source, kw["config"], mesh, train=True, seed=seed), strict=False)]
    device_batches = [parallel.shard_batch(b, mesh) for b in host_batches]

    @partial(jax.jit, donate_argnums=(0, 1))  # as the harness's step donates its carry
    def bare_step(p, o, b, step):
        rng = jax.random.fold_in(jax.random.key(seed), step)
        (loss, _), grads = jax.value_and_grad(loss_fn, has_aux=True)(p, b, rng)
        updates, o = tx.update(grads, o, p)
        return optax.apply_updates(p, updates), o, loss

    def bare() -> float:
        p = jax.tree.map(jax.numpy.copy, parallel.replicate(params0, mesh))  # donated below
        o = jax.jit(tx.init)(p)
        for i, b in enumerate(device_batches[:every]):
            p, o, loss = bare_step(p, o, b, i)
        jax.block_until_ready(loss)
        t = time.perf_counter()
        prev = None
        for i, b in enumerate(device_batches[every:2 * every], start=every):
            p, o, loss = bare_step(p, o, b, i)
            if prev is not None:
                float(prev)  # read each loss one step late, as the harness does
            prev = loss
        jax.block_until_ready(loss)
        return every / (time.perf_counter() - t)

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
        h, reported = first if r == 0 else harness()
        rows.append((h, bare(), loader_rate(), reported))
        print(f"repeat {r}: harness {rows[-1][0]:.2f} steps/s (its own steady_steps_per_second "
              f"{reported:.2f}), bare {rows[-1][1]:.2f} steps/s, loader {rows[-1][2]:.0f} "
              "examples/s", flush=True)
    h, b, ld, rep = (float(np.median(c)) for c in zip(*rows, strict=True))
    model_examples = b * config.batch_size
    print(f"\n{args.learner} on {args.task}, batch {config.batch_size}, "
          f"{config.image_size}px, {mesh.size} device(s), steps {every}..{2 * every} timed, "
          f"medians of {args.repeats}:")
    print(f"(a) harness {h:.2f} steps/s / bare jit {b:.2f} steps/s = {h / b:.3f}  (goal >= 0.97)"
          f"; the harness's self-reported rate {rep:.2f} steps/s = {rep / b:.3f} of bare")
    print(f"(b) loader {ld:.0f} examples/s / model {model_examples:.0f} examples/s = "
          f"{ld / model_examples:.1f}  (goal >= 5)")


if __name__ == "__main__":
    main()
