"""Independent baseline: a fresh small ResNet for every task, best-on-dev checkpoint.

    python -m nevis.run --learner=independent

On the embedded stream (6 tasks) this takes about 2.5 minutes on 2 CPU cores and should reach
a dev_test stream error around 0.21 (the NEVIS'22 "Independent" baseline, scaled down).
"""

from ml_collections import ConfigDict


def get_config() -> ConfigDict:
    config = ConfigDict()
    config.name = "independent"
    config.strategy = "independent"  # or "finetune": carry the backbone to the next task
    config.seed = 1
    config.model = ConfigDict({
        "name": "resnet",
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
