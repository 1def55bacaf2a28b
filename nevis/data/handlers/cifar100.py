"""CIFAR-100 (Krizhevsky 2009): 32×32 colour images, 100 fine classes.

TFDS `cifar100` 3.0.2 (train 50,000 / test 10,000); label = the fine `label` (not
`coarse_label`). Recipe: TFDS train → 70/15/15 train/dev/dev_test (index order); TFDS test →
test.
"""

from __future__ import annotations

from nevis.data.handlers.tfds_backed import Label, TfdsHandler, train_fractions

HANDLER = TfdsHandler(
    key="cifar100",
    name="CIFAR 100",
    year=2009,
    tfds_name="cifar100",
    tfds_version="3.0.2",
    recipe=train_fractions(0.7, 0.15),
    label=Label("label"),
    homepage="https://www.cs.toronto.edu/~kriz/cifar.html",
    num_classes=100,
)
