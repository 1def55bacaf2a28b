"""Fine-tuning baseline ("Previous" in NEVIS'22): the backbone carries over from task to task.

    python -m nevis.run --learner=finetune

Same budget as `independent`: on the embedded stream 163 s of CPU time (about 2.5 minutes
on 2 free CPU cores; measured 8.5 minutes wall on a machine shared with four other jobs).
Reaches a dev_test stream error of 0.133 (each task scored right after its training: the
carried backbone helps) but a final error of 0.718 when every task is re-evaluated at the end
through the last backbone (average forgetting 0.585).
"""

from ml_collections import ConfigDict

from experiments import independent


def get_config() -> ConfigDict:
    config = independent.get_config()
    config.strategy = "finetune"
    return config
