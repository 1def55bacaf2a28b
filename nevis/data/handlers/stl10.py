"""STL-10 (Coates, Ng & Lee 2011): 96×96 colour images, 10 classes.

TFDS `stl10` 1.0.0 (train 5,000 / test 8,000; the unlabelled split is not used). Recipe: TFDS
train → 70/15/15 train/dev/dev_test (index order); TFDS test → test.
"""

from __future__ import annotations

from nevis.data.handlers.tfds_backed import Label, TfdsHandler, train_fractions

HANDLER = TfdsHandler(
    key="stl10",
    name="STL10",
    year=2011,
    tfds_name="stl10",
    tfds_version="1.0.0",
    recipe=train_fractions(0.7, 0.15),
    label=Label("label"),
    homepage="https://cs.stanford.edu/~acoates/stl10/",
    num_classes=10,
)
