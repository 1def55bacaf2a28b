"""The example learner (nevis/learners/example.py): an MLP on 16×16 pixels per task.

    python -m nevis.run --learner=example

A template for new learners, not a contender. On the embedded stream it takes about a minute
on 2 CPU cores; see the README's learner table for the stream error it reaches.
"""

from ml_collections import ConfigDict

from experiments import independent


def get_config() -> ConfigDict:
    config = independent.get_config()
    config.name = "example"
    config.hidden = 256
    config.image_size = 16
    config.augment.enabled = False
    del config.model  # the MLP's only option is `hidden`
    return config
