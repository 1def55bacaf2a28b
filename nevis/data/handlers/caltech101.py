"""Caltech 101 (Fei-Fei, Fergus & Perona 2004): 101 object categories plus background.

TFDS `caltech101` 3.0.2 (train 3,060 = 30 per class / test 6,084). TFDS's label set has 102
classes (it keeps `background_google`), as the reference. Recipe: TFDS train → 70/15/15
train/dev/dev_test (index order); TFDS test → test.
"""

from __future__ import annotations

from nevis.data.handlers.tfds_backed import Label, TfdsHandler, train_fractions

HANDLER = TfdsHandler(
    key="caltech101",
    name="Caltech 101",
    year=2004,
    tfds_name="caltech101",
    tfds_version="3.0.2",
    recipe=train_fractions(0.7, 0.15),
    label=Label("label"),
    homepage="https://data.caltech.edu/records/mzrjq-6wc02",
    num_classes=102,
)
