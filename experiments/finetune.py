"""Fine-tuning baseline ("Previous" in NEVIS'22): the backbone carries over from task to task.

    python -m nevis.run --learner=finetune

Same budget as `independent` (about 2.5 minutes on the embedded stream on 2 CPU cores);
the final re-evaluation shows how much earlier tasks are forgotten.
"""

from ml_collections import ConfigDict

from experiments import independent


def get_config() -> ConfigDict:
    config = independent.get_config()
    config.strategy = "finetune"
    return config
