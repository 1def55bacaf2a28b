"""The DEQ learner with path-independence promotion switched off: every solve starts from
zeros with a fixed budget (the setting Anil et al. associate with path dependence).

    python -m nevis.run --learner=deq_fixed_start

Compare its AA and test-time scaling with `--learner=deq`. On the embedded stream: 153 s of
CPU time (434 s wall on a 2-core machine shared with three other jobs; `deq` took 127 s of
CPU, 97 s wall, on 2 idle cores), training 1.94e12 FLOPs; dev_test stream error 0.195
(`deq`: 0.187), mean AA 0.9999 at the training budget and 1.0000 at 4× (on this small stream
it stays near 1 either way).
"""

from ml_collections import ConfigDict

from experiments import deq


def get_config() -> ConfigDict:
    config = deq.get_config()
    config.init = "zeros"
    config.budget_jitter = 0
    return config
