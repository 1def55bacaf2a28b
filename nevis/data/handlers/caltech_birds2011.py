"""CUB-200-2011 (Wah et al. 2011): 200 bird species.

TFDS `caltech_birds2011` 0.2.0 (train 5,994 / test 5,794). Recipe: TFDS train → 70/15/15
train/dev/dev_test (index order); TFDS test → test.
"""

from __future__ import annotations

from nevis.data.handlers.tfds_backed import Label, TfdsHandler, train_fractions

HANDLER = TfdsHandler(
    key="caltech_birds2011",
    name="CUB 200",
    year=2011,
    tfds_name="caltech_birds2011",
    tfds_version="0.2.0",
    recipe=train_fractions(0.7, 0.15),
    label=Label("label"),
    homepage="https://www.vision.caltech.edu/datasets/cub_200_2011/",
    num_classes=200,
)
