"""The DEQ learner with path-independence promotion switched off: every solve starts from
zeros with a fixed budget (the setting Anil et al. associate with path dependence).

    python -m nevis.run --learner=deq_fixed_start

Compare its AA and test-time scaling with `--learner=deq`. On the embedded stream: 414 s of
CPU time (about 7 minutes on 2 free CPU cores; measured 19.5 minutes wall on a machine shared
with four other jobs), training 4.4e12 FLOPs; dev_test stream error 0.351, mean AA 0.9987 at
the training budget and 0.9996 at 4× (on this small stream it stays near 1 either way).
"""

from ml_collections import ConfigDict

from experiments import deq


def get_config() -> ConfigDict:
    config = deq.get_config()
    config.init = "zeros"
    config.budget_jitter = 0
    return config
