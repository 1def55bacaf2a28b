"""EMNIST Balanced (Cohen et al. 2017): 28×28 grey handwritten characters, 47 classes.

TFDS `emnist/balanced` 3.1.0 (train 112,800 / test 18,800). Recipe: TFDS train → 70/15/15
train/dev/dev_test (index order); TFDS test → test. (TFDS stores EMNIST images transposed, as
the reference reads them.)
"""

from __future__ import annotations

from nevis.data.handlers.tfds_backed import Label, TfdsHandler, train_fractions

HANDLER = TfdsHandler(
    key="emnist_balanced",
    name="EMNIST Balanced",
    year=2017,
    tfds_name="emnist/balanced",
    tfds_version="3.1.0",
    recipe=train_fractions(0.7, 0.15),
    label=Label("label"),
    homepage="https://www.nist.gov/itl/products-and-services/emnist-dataset",
    num_classes=47,
    channels=1,
)
