"""The dynamic learner with 4 trials per task (NEVIS'22 `cheap_finetuning_dknn`'s budget).

    python -m nevis.run --learner=dynamic_cheap

Measured on the embedded stream at reduced budgets (--config.learner.min_steps=60
--config.learner.max_steps=60, 2 CPU cores shared with other jobs): 489 s, dev_test stream
error 0.458, 1.74e12 training FLOPs (4 trials + k-NN embedding); `independent` with the same
flags: 58 s, 0.486, 3.75e11. Most of the time is compiling each trial's step.
"""

from ml_collections import ConfigDict

from experiments import dynamic


def get_config() -> ConfigDict:
    config = dynamic.get_config()
    config.num_trials = 4
    return config
