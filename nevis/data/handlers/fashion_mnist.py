"""Fashion-MNIST (Xiao, Rasul & Vollgraf 2017): 28×28 grey clothing images, 10 classes.

TFDS `fashion_mnist` 3.0.1 (train 60,000 / test 10,000). Recipe: TFDS train → 70/15/15
train/dev/dev_test (index order); TFDS test → test.
"""

from __future__ import annotations

from nevis.data.handlers.tfds_backed import Label, TfdsHandler, train_fractions

HANDLER = TfdsHandler(
    key="fashion_mnist",
    name="Fashion MNIST",
    year=2017,
    tfds_name="fashion_mnist",
    tfds_version="3.0.1",
    recipe=train_fractions(0.7, 0.15),
    label=Label("label"),
    homepage="https://github.com/zalandoresearch/fashion-mnist",
    num_classes=10,
    channels=1,
)
