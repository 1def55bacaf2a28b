"""Oxford-IIIT Pet (Parkhi et al. 2012): 37 cat and dog breeds.

TFDS `oxford_iiit_pet` 4.0.0 (train 3,680 / test 3,669); label = breed (`label`). Recipe: TFDS
train → 70/15/15 train/dev/dev_test (index order); TFDS test → test.
"""

from __future__ import annotations

from nevis.data.handlers.tfds_backed import Label, TfdsHandler, train_fractions

HANDLER = TfdsHandler(
    key="oxford_iiit_pet",
    name="Oxford IIIT Pets",
    year=2012,
    tfds_name="oxford_iiit_pet",
    tfds_version="4.0.0",
    recipe=train_fractions(0.7, 0.15),
    label=Label("label"),
    homepage="https://www.robots.ox.ac.uk/~vgg/data/pets/",
    num_classes=37,
)
