"""SVHN, cropped digits (Netzer et al. 2011): 32×32 colour house-number digits, 10 classes.

TFDS `svhn_cropped` 3.1.0 (train 73,257 / test 26,032; the extra split is not used). Recipe:
TFDS train → 70/15/15 train/dev/dev_test (index order); TFDS test → test.
"""

from __future__ import annotations

from nevis.data.handlers.tfds_backed import Label, TfdsHandler, train_fractions

HANDLER = TfdsHandler(
    key="svhn_cropped",
    name="SVHN",
    year=2011,
    tfds_name="svhn_cropped",
    tfds_version="3.1.0",
    recipe=train_fractions(0.7, 0.15),
    label=Label("label"),
    homepage="http://ufldl.stanford.edu/housenumbers/",
    num_classes=10,
)
