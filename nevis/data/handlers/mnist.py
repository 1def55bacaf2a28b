"""MNIST (LeCun et al. 1998): 28×28 grey handwritten digits, 10 classes.

TFDS `mnist` 3.0.1 (train 60,000 / test 10,000). Reference recipe: TFDS train → first 70%
train, next 15% dev, last 15% dev_test (index order); TFDS test → test.
"""

from __future__ import annotations

from nevis.data.handlers.tfds_backed import Label, TfdsHandler, train_fractions

HANDLER = TfdsHandler(
    key="mnist",
    name="MNIST",
    year=1998,
    tfds_name="mnist",
    tfds_version="3.0.1",
    recipe=train_fractions(0.7, 0.15),
    label=Label("label"),
    homepage="http://yann.lecun.com/exdb/mnist/",
    num_classes=10,
    channels=1,
)
