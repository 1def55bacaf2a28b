"""The DEQ learner with path-independence promotion switched off: every solve starts from
zeros with a fixed budget (the setting Anil et al. associate with path dependence).

    python -m nevis.run --learner=deq_fixed_start

Compare its AA and test-time scaling with `--learner=deq`; same cost (about 8 minutes).
"""

from ml_collections import ConfigDict

from experiments import deq


def get_config() -> ConfigDict:
    config = deq.get_config()
    config.init = "zeros"
    config.budget_jitter = 0
    return config
