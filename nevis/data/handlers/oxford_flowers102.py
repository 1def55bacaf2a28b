"""Oxford Flowers 102 (Nilsback & Zisserman 2008): 102 flower categories.

TFDS `oxford_flowers102` 2.1.1 (train 1,020 / validation 1,020 / test 6,149). Recipe: TFDS
train → first 80% train / rest dev (index order); validation → dev_test; test → test.
"""

from __future__ import annotations

from nevis.data.handlers.tfds_backed import Label, TfdsHandler, train_validation_test

HANDLER = TfdsHandler(
    key="oxford_flowers102",
    name="Oxford Flowers 102",
    year=2008,
    tfds_name="oxford_flowers102",
    tfds_version="2.1.1",
    recipe=train_validation_test(0.8),
    label=Label("label"),
    homepage="https://www.robots.ox.ac.uk/~vgg/data/flowers/102/",
    num_classes=102,
)
