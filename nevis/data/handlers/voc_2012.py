"""PASCAL VOC 2012 (Everingham et al. 2012) as multi-label classification: 20 object classes.

TFDS `voc/2012` 5.0.0 (train 5,717 / validation 5,823; its test split has no labels).
Labels = `labels`. Recipe (reference): TFDS train → first 80% train / rest dev (index order);
validation → first half (int(n/2) records) dev_test, second half test.
"""

from __future__ import annotations

from nevis.data.handlers.tfds_backed import MultiLabel, TfdsHandler, validation_halves
from nevis.tasks import TaskKind

HANDLER = TfdsHandler(
    key="voc_2012",
    name="Pascal 2012",
    year=2012,
    tfds_name="voc/2012",
    tfds_version="5.0.0",
    recipe=validation_halves(0.8),
    label=MultiLabel("labels"),
    homepage="http://host.robots.ox.ac.uk/pascal/VOC/voc2012/",
    num_classes=20,
    kind=TaskKind.MULTI_LABEL,
)
