"""PASCAL VOC 2007 (Everingham et al. 2007) as multi-label classification: 20 object classes.

TFDS `voc/2007` 5.0.0 (train 2,501 / validation 2,510 / test 4,952). Labels = `labels` (the
classes of every annotated object, difficult ones included, as the reference). Recipe: TFDS
train → first 80% train / rest dev (index order); validation → dev_test; test → test.
"""

from __future__ import annotations

from nevis.data.handlers.tfds_backed import MultiLabel, TfdsHandler, train_validation_test
from nevis.tasks import TaskKind

HANDLER = TfdsHandler(
    key="voc_2007",
    name="Pascal 2007",
    year=2007,
    tfds_name="voc/2007",
    tfds_version="5.0.0",
    recipe=train_validation_test(0.8),
    label=MultiLabel("labels"),
    homepage="http://host.robots.ox.ac.uk/pascal/VOC/voc2007/",
    num_classes=20,
    kind=TaskKind.MULTI_LABEL,
)
