"""DTD, the Describable Textures Dataset (Cimpoi et al. 2014): 47 texture categories.

TFDS `dtd` 3.0.1 (split 1: train 1,880 / validation 1,880 / test 1,880). Recipe: TFDS train →
first 80% train / rest dev (index order); validation → dev_test; test → test.
"""

from __future__ import annotations

from nevis.data.handlers.tfds_backed import Label, TfdsHandler, train_validation_test

HANDLER = TfdsHandler(
    key="dtd",
    name="DTD",
    year=2014,
    tfds_name="dtd",
    tfds_version="3.0.1",
    recipe=train_validation_test(0.8),
    label=Label("label"),
    homepage="https://www.robots.ox.ac.uk/~vgg/data/dtd/",
    num_classes=47,
)
