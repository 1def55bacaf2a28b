"""Dynamic learner (NEVIS'22 `finetuning_dknn`): per task, a k-NN-chosen initialisation and a
16-trial (learning rate, label smoothing) search; see nevis/learners/dynamic.py.

    python -m nevis.run --learner=dynamic

Each task trains 16 times (the independent baseline's model and budget per trial), and every
trial compiles its own step (its learning rate and smoothing are constants of the step), so a
full run on the embedded stream takes about an hour on 2 CPU cores: extrapolated, not
measured, from `dynamic_cheap`'s ~20 s per trial at 60 steps and `independent`'s 2.5 minutes.
`--config.learner.trial_workers=N` runs a task's trials on N local Ray workers (the `sweep`
extra) with the same choices and results.
"""

from ml_collections import ConfigDict

from experiments import independent


def get_config() -> ConfigDict:
    config = independent.get_config()
    config.name = "dynamic"  # the learner's factory (nevis.learners.FACTORIES)
    config.strategy = "independent"  # prediction: each task's own model (the only choice)
    # Per task; each trial draws its own optimizer.learning_rate and label_smoothing (the
    # values inherited above are not used).
    config.num_trials = 16
    config.trial_workers = 1  # 1: trials in this process; N > 1: on N local Ray workers
    # Initialisation choice: k-NN dev score of each candidate's backbone features on the
    # first max_train train and max_dev dev examples.
    config.knn = ConfigDict({"k": 5, "max_train": 10_000, "max_dev": 5_000})
    return config
