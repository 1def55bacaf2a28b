"""Independent baseline: a fresh small ResNet for every task, best-on-dev checkpoint.

    python -m nevis.run --learner=independent

On the embedded stream (6 tasks) this takes about 2.5 minutes on 2 CPU cores and should reach
a dev_test stream error around 0.21 (the NEVIS'22 "Independent" baseline, scaled down).

Sweeps (`get_sweep`, run with `python -m nevis.sweep --learner=independent --sweep=NAME`):
`lr` (the default) tries two learning rates on the embedded stream with tiny budgets, about
2 minutes on 2 CPU cores; `lr_smoothing` samples 8 (learning rate, label smoothing) pairs at
the full budget, as the reference's per-task search does for the whole stream; `frontier`
trains at 1/4, 1/2, 1 and 2 times the step budget (stream error against training FLOPs, the
curve `experiments/deq.py`'s `frontier` is compared with).
"""

from ml_collections import ConfigDict


def get_config() -> ConfigDict:
    config = ConfigDict()
    config.name = "baseline"  # the learner's factory (nevis.learners.FACTORIES)
    config.strategy = "independent"  # or "finetune": carry the backbone to the next task
    config.seed = 1
    config.model = ConfigDict({
        "name": "resnet",  # a backbone of nevis.models.BACKBONES
        "kwargs": {"widths": (16, 32, 64), "blocks": (1, 1, 1), "norm_groups": 8,
                   "stem_stride": 2},
    })
    config.image_size = 32
    config.batch_size = 64
    config.eval_batch_size = 256
    config.epochs = 15  # per task; steps = epochs clipped to [min_steps, max_steps] (max wins)
    config.min_steps = 150
    config.max_steps = 500
    config.eval_every = 100
    config.log_every = 25
    config.label_smoothing = 0.1
    # Train-time augmentation: random crop after padding (pixels) and horizontal flip
    # ("auto": only for tasks whose labels survive mirroring, i.e. not digits or glyphs).
    config.augment = ConfigDict({"enabled": True, "crop_padding": 2, "flip": "auto"})
    config.optimizer = ConfigDict({
        "name": "adamw",
        "learning_rate": 3e-3,
        "weight_decay": 1e-4,
        "momentum": 0.9,  # used by "sgd"
        "schedule": "cosine",
        "warmup_steps": 30,
        "grad_clip_norm": 0.0,
    })
    return config


# Budgets small enough that a trial on the embedded stream takes about a minute on a CPU core.
TINY = {
    "learner.image_size": 16,
    "learner.batch_size": 32,
    "learner.min_steps": 60,
    "learner.max_steps": 60,
    "learner.eval_every": 30,
    "learner.log_every": 10,
    "learner.optimizer.warmup_steps": 5,
}
SWEEPS = ("lr", "lr_smoothing", "frontier")
FRONTIER_SCALES = (0.25, 0.5, 1.0, 2.0)


def frontier_trials(config: ConfigDict) -> list[dict]:
    """The step budget (epochs, min and max steps) scaled by each of FRONTIER_SCALES."""
    return [{"learner.epochs": max(1, round(config.epochs * s)),
             "learner.min_steps": round(config.min_steps * s),
             "learner.max_steps": round(config.max_steps * s)} for s in FRONTIER_SCALES]


def get_sweep(name: str = "") -> dict:
    """A sweep of this learner by name (see the module docstring)."""
    name = name or "lr"
    if name == "lr":
        return {
            "description": "learning rate x 2 on the embedded stream, tiny budgets",
            "overrides": TINY,
            "space": {"learner.optimizer.learning_rate": {"grid": [1e-3, 3e-3]}},
        }
    if name == "lr_smoothing":
        return {
            "description": "learning rate (log-uniform) with label smoothing, 8 samples",
            "space": {"learner.optimizer.learning_rate": {"loguniform": [1e-4, 1e-1]},
                      "learner.label_smoothing": {"uniform": [0.0, 0.3]}},
            "search": "random",
            "num_samples": 8,
            "seed": 0,
        }
    if name == "frontier":
        return {"description": "the step budget x 1/4, 1/2, 1, 2: error against FLOPs",
                "trials": frontier_trials(get_config())}
    raise ValueError(f"unknown sweep {name!r}; valid choices: {', '.join(SWEEPS)}.")
